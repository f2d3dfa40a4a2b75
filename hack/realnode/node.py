"""The test cluster's one real node: containerd, the kubelet, kube-proxy and a fake-GPU device plugin.

Everything the node writes lives under the cluster's state dir, except what the kubelet and the
kernel insist on placing elsewhere; `clean_node` undoes all of it:
- two links: ``dialnode0``, a port-less bridge carrying the node IP (the kubelet refuses a
  loopback node IP and this kernel has no dummy links), and ``dialpods0``, the pods' CNI bridge;
- ``/var/lib/kubelet/device-plugins`` (the device-plugin API's fixed socket directory);
- ``/var/log/containers`` links, the ``kubepods`` cgroups in every v1 hierarchy, iptables chains
  (kube-proxy's and the kubelet's ``KUBE-*``), the kubelet's bind mount of its root dir on
  itself, containers' rootfs and network-namespace mounts.
Only cgroup v1 and v2 hosts with the cgroupfs driver are supported (the kubelet runs with
``failCgroupV1: false``); the machine's cgroup mounts are never touched.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time

NODE_NAME = "dial-node"
NODE_IP = "10.213.0.1"
NODE_LINK = "dialnode0"
POD_BRIDGE = "dialpods0"
POD_CIDR = "10.214.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
CNI_NETWORK = "dial-pods"
CNI_BIN = "/usr/lib/cni"
RUNC = "/usr/sbin/runc"
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"  # fixed by the device-plugin API
PAUSE_IMAGE = "registry.k8s.io/pause:dial"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def setup_network() -> None:
    """The node IP on a port-less bridge; the pod bridge itself is made by the CNI bridge plugin."""
    if not link_exists(NODE_LINK):
        _ip("link", "add", NODE_LINK, "type", "bridge")
    if NODE_IP not in _ip("-4", "addr", "show", "dev", NODE_LINK).stdout:
        _ip("addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
    _ip("link", "set", NODE_LINK, "up")


def paths(d: str) -> dict[str, str]:
    n = os.path.join(d, "node")
    return {
        "root": n,
        "containerd_root": os.path.join(n, "containerd", "root"),
        "containerd_state": os.path.join(n, "containerd", "state"),
        "containerd_sock": os.path.join(n, "containerd", "containerd.sock"),
        "containerd_config": os.path.join(n, "containerd", "config.toml"),
        "runc_root": os.path.join(n, "runc"),
        "cni_conf": os.path.join(n, "cni", "net.d"),
        "cni_ipam": os.path.join(n, "cni", "ipam"),
        "kubelet_root": os.path.join(n, "kubelet"),
        "kubelet_config": os.path.join(n, "kubelet-config.yaml"),
        "pod_logs": os.path.join(n, "pod-logs"),
        "kube_proxy_config": os.path.join(n, "kube-proxy-config.yaml"),
    }


def write_configs(d: str, pki: str, ports: dict[str, int]) -> dict[str, str]:
    """containerd's, the CNI network's, the kubelet's and kube-proxy's configuration; returns paths()."""
    p = paths(d)
    for k in ("containerd_root", "containerd_state", "runc_root", "cni_conf", "cni_ipam", "kubelet_root", "pod_logs"):
        os.makedirs(p[k], exist_ok=True)
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    with open(p["containerd_config"], "w") as f:
        f.write(f"""version = 3
root = '{p["containerd_root"]}'
state = '{p["containerd_state"]}'
[grpc]
  address = '{p["containerd_sock"]}'
[ttrpc]
  address = '{p["containerd_sock"]}.ttrpc'
[debug]
  address = '{p["containerd_sock"]}.debug'
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
[{cri_runtime}]
  enable_selinux = false
  # This VM's root lacks CAP_SYS_RESOURCE: the -998 oom_score_adj containerd gives sandboxes would
  # fail inside runc ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{cri_runtime}.containerd]
    default_runtime_name = 'runc'
    [{cri_runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{cri_runtime}.containerd.runtimes.runc.options]
        BinaryName = '{RUNC}'
        Root = '{p["runc_root"]}'
        SystemdCgroup = false
  [{cri_runtime}.cni]
    bin_dirs = ['{CNI_BIN}']
    conf_dir = '{p["cni_conf"]}'
    max_conf_num = 1
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{PAUSE_IMAGE}'
""")
    with open(os.path.join(p["cni_conf"], "10-dial-pods.conflist"), "w") as f:
        json.dump({
            "cniVersion": "1.0.0", "name": CNI_NETWORK,
            "plugins": [{
                "type": "bridge", "bridge": POD_BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]], "routes": [{"dst": "0.0.0.0/0"}],
                         "dataDir": p["cni_ipam"]},
            }],
        }, f, indent=1)
    with open(p["kubelet_config"], "w") as f:
        json.dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": NODE_IP, "port": ports["kubelet"], "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet-healthz"],
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": os.path.join(pki, "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": os.path.join(pki, "kubelet.crt"), "tlsPrivateKeyFile": os.path.join(pki, "kubelet.key"),
            "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{p['containerd_sock']}",
            "podLogsDir": p["pod_logs"],
            "clusterDomain": "cluster.local", "resolvConf": "/etc/resolv.conf",
            # images are imported, never pulled: never garbage-collect them
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False, "maxPods": 110,
            "syncFrequency": "10s", "fileCheckFrequency": "20s",
            "nodeStatusReportFrequency": "20s",
        }, f, indent=1)
    with open(p["kube_proxy_config"], "w") as f:
        json.dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": os.path.join(pki, "kube-proxy.kubeconfig")},
            "hostnameOverride": NODE_NAME, "mode": "iptables", "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{ports['kube-proxy-healthz']}",
            "metricsBindAddress": f"127.0.0.1:{ports['kube-proxy-metrics']}",
            # leave the machine's conntrack sysctls alone
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }, f, indent=1)
    return p


def components(dialkube: str, containerd_bin_dir: str, pki: str, p: dict[str, str], gpus: int) -> list[tuple[str, list[str]]]:
    """(name, argv) of the node's processes in start order."""
    return [
        ("containerd", [os.path.join(containerd_bin_dir, "containerd"), "--config", p["containerd_config"]]),
        ("kube-proxy", [dialkube, "kube-proxy", f"--config={p['kube_proxy_config']}", "--v=1"]),
        ("kubelet", [dialkube, "kubelet", f"--config={p['kubelet_config']}",
                     f"--kubeconfig={os.path.join(pki, 'node.kubeconfig')}", f"--root-dir={p['kubelet_root']}",
                     f"--node-ip={NODE_IP}", f"--hostname-override={NODE_NAME}", "--v=1"]),
        ("gpu-device-plugin", [dialkube, "gpu-device-plugin", f"--count={gpus}", f"--dir={DEVICE_PLUGIN_DIR}"]),
    ]


# ------------------------------------------------------------------------------------ clean up
def _cgroup_dirs() -> list[str]:
    """Every kubepods cgroup dir (cgroup v1: one per hierarchy; v2: one), deepest first."""
    found: list[str] = []
    for root in glob.glob("/sys/fs/cgroup/*/kubepods") + glob.glob("/sys/fs/cgroup/kubepods"):
        for dirpath, _dirs, _files in os.walk(root):
            found.append(dirpath)
    return sorted(set(found), key=lambda x: x.count("/"), reverse=True)


def pod_pids() -> set[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs():
        for name in ("cgroup.procs", "tasks"):
            try:
                with open(os.path.join(d, name)) as f:
                    pids.update(int(x) for x in f.read().split())
            except (OSError, ValueError):
                pass
    return pids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def node_pids(d: str) -> set[int]:
    """Containers (by cgroup) and the runc shims of this cluster's containerd (by command line)."""
    root = paths(d)["root"]
    pids = pod_pids()
    for pid in (int(x) for x in os.listdir("/proc") if x.isdigit()):
        cmd = _cmdline(pid)
        if "containerd-shim" in cmd and root in cmd:
            pids.add(pid)
    pids.discard(os.getpid())
    return pids


def node_mounts(d: str) -> list[str]:
    root = paths(d)["root"]
    out: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == root or mp.startswith(root + "/"):
                out.append(mp)
    return out


def _iptables_cleanup() -> None:
    """Delete every KUBE-* chain and the jumps to them, in iptables and ip6tables, every table."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle"):
            r = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True)
            if r.returncode != 0:
                continue
            chains = [ln[1:].split()[0] for ln in r.stdout.splitlines() if ln.startswith(":KUBE-")]
            if not chains:
                continue
            for ln in r.stdout.splitlines():
                parts = ln.split()
                if ln.startswith("-A ") and not parts[1].startswith("KUBE-") and "-j" in parts:
                    target = parts[parts.index("-j") + 1]
                    if target.startswith("KUBE-"):
                        subprocess.run([tool, "-t", table, "-D", *parts[1:]], capture_output=True)
            for c in chains:
                subprocess.run([tool, "-t", table, "-F", c], capture_output=True)
            for c in chains:
                subprocess.run([tool, "-t", table, "-X", c], capture_output=True)


def iptables_leftovers() -> list[str]:
    left: list[str] = []
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            r = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True)
            left += [f"{tool} {table} {ln}" for ln in r.stdout.splitlines() if "KUBE-" in ln]
    return left


def clean_node(d: str, dialkube: str | None = None) -> None:
    """Undo everything the node did on this machine (processes, mounts, links, cgroups, chains)."""
    for pid in node_pids(d):  # the components are stopped already: nothing here needs a grace period
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while node_pids(d) and time.monotonic() < deadline:
        time.sleep(0.1)
    for mp in sorted(node_mounts(d), key=lambda m: m.count("/"), reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    for cg in _cgroup_dirs():
        try:
            os.rmdir(cg)
        except OSError:
            pass
    if dialkube and os.path.exists(dialkube):
        subprocess.run([dialkube, "kube-proxy", "--cleanup"], capture_output=True, timeout=60)
    _iptables_cleanup()
    for link in (POD_BRIDGE, NODE_LINK):
        if link_exists(link):
            _ip("link", "del", link, check=False)
    for veth in glob.glob("/sys/class/net/veth*"):
        master = os.path.join(veth, "master")
        if os.path.islink(master) and os.path.basename(os.readlink(master)) == POD_BRIDGE:
            _ip("link", "del", os.path.basename(veth), check=False)
    shutil.rmtree(DEVICE_PLUGIN_DIR, ignore_errors=True)
    for parent in ("/var/lib/kubelet",):
        try:
            os.rmdir(parent)
        except OSError:
            pass
    root = paths(d)["root"]
    for link in glob.glob("/var/log/containers/*.log"):
        try:
            if os.readlink(link).startswith(root):
                os.remove(link)
        except OSError:
            pass
    for f in glob.glob(f"/var/lib/cni/results/{CNI_NETWORK}-*"):
        os.remove(f)


def leftovers(d: str) -> list[str]:
    """What clean_node should have removed and is still there (empty when clean)."""
    left = [f"process {pid}: {_cmdline(pid)[:100]}" for pid in node_pids(d)]
    left += [f"mount {m}" for m in node_mounts(d)]
    left += [f"cgroup {c}" for c in _cgroup_dirs()]
    left += [f"link {x}" for x in (POD_BRIDGE, NODE_LINK) if link_exists(x)]
    left += iptables_leftovers()
    left += [f"file {x}" for x in (DEVICE_PLUGIN_DIR,) if os.path.exists(x)]
    with open("/proc/self/mountinfo") as f:
        left += [f"netns {ln.split()[4]}" for ln in f if "/netns/" in ln.split()[4] and "cni-" in ln.split()[4]]
    return left
