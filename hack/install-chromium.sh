#!/bin/sh
# Install Debian's chromium for the headless-browser checks of `dial report` (tests/e2e/test_report.py).
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo) and the Debian mirrors.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
