#!/bin/sh
# Install what the real test node needs from Debian's packages: runc and the CNI plugins that
# containerd runs pods with, iptables and conntrack for kube-proxy, and buildah, mmdebstrap and
# uidmap for building the images (hack/realnode/images.py). containerd itself is built from its
# Go module by hack/cluster. Idempotent: does nothing when every tool is already there.
set -eu
need=""
for tool in /usr/sbin/runc /usr/lib/cni/bridge /usr/sbin/iptables /usr/sbin/conntrack /usr/bin/buildah /usr/bin/mmdebstrap; do
    [ -x "$tool" ] || need=1
done
if [ -z "$need" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    runc containernetworking-plugins iptables conntrack buildah mmdebstrap uidmap fuse-overlayfs
