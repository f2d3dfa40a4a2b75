#!/bin/sh
# Install Debian's prometheus (server and promtool) for the end-to-end metrics checks
# (tests/e2e/test_chart_e2e.py). Idempotent: does nothing when /usr/bin/prometheus exists.
# The tests run their own Prometheus with a temporary config and data directory; the package's
# service is not needed, so it is not started (policy-rc.d) and is stopped if something started it.
# Needs root (or sudo) and the Debian mirrors.
set -eu
if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    echo "prometheus already installed: $(/usr/bin/prometheus --version 2>&1 | head -n 1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
    # Exit 101: "action not allowed", so the package's postinst does not start the service.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends prometheus
/usr/bin/prometheus --version 2>&1 | head -n 1
