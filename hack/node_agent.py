#!/usr/bin/env python3
"""Dial's node agent: plays kubelet for the local test control plane (hack/cluster).

It registers Nodes (cpu, memory, pods and ``nvidia.com/gpu`` capacity), keeps them Ready
(node status + Lease in ``kube-node-lease``), and runs the pods that the real kube-scheduler
binds to them, each container as a local process:

* ``command``/``args`` run as a process (the image is only recorded); ``python`` resolves to
  the interpreter that runs this agent (its directory is first on PATH). ``$(VAR)`` references
  are expanded as Kubernetes does. Without ``command``, ``args`` are run as the command.
* ``env`` (``value``, ``valueFrom`` fieldRef/resourceFieldRef/configMapKeyRef/secretKeyRef) and
  ``envFrom``; ``workingDir``.
* Volumes: emptyDir, configMap, secret, downwardAPI and projected (serviceAccountToken,
  configMap, secret, downwardAPI). A persistentVolumeClaim is the node directory
  ``<data>/claims/<namespace>/<claimName>``, shared by all pods mounting that claim (there is no
  storage provisioner: the claim must be bound, e.g. to a PV the test creates, for the
  scheduler to place the pod; the PV's own source is ignored). Absolute paths are remapped under the pod's root
  ``<data>/pods/<ns>_<pod>_<uid>/fs``: a mount path ``/data`` is ``<root>/fs/data`` (a symlink
  to the volume directory), and occurrences of a mount path (or the workingDir) in command,
  args and env values are rewritten to the remapped path. ``DIAL_POD_ROOT`` holds ``<root>/fs``.
* GPUs: ``nvidia.com/gpu`` limits get distinct ids from the node's pool, handed out as
  ``CUDA_VISIBLE_DEVICES`` (and ``NVIDIA_VISIBLE_DEVICES``); a container without GPUs gets
  ``CUDA_VISIBLE_DEVICES=""``.
* ``activeDeadlineSeconds`` is enforced (phase Failed, reason DeadlineExceeded). Probes, exec,
  port-forward, hostPath and image entrypoints are not implemented.
* The pod's ServiceAccount token (TokenRequest bound to the pod) is given to the process as a
  ``KUBECONFIG`` file; the process never sees the agent's own (admin) credentials.
* Init containers run to completion in order; init containers with ``restartPolicy: Always``
  (native sidecars) start first, run alongside the main containers and are terminated once
  the main containers are done. ``restartPolicy`` Always/OnFailure/Never is honoured.
* Deletion: SIGTERM to the process group, the grace period, then SIGKILL; the pod is put in a
  terminal phase and removed (delete with grace 0), as kubelet does.
* CPU priority: pod processes run at ``nice`` 19 (``DIAL_POD_NICE``; 0 turns it off). A real node
  gives the control plane and the operator CPU of their own (requests, separate machines); on
  one small machine shared with the trials, the niceness simulates that isolation, so busy trials
  slow each other and not the API server or the operator.
* Logs: ``<data>/logs/<namespace>/<pod>/<container>.log`` (the current instance; the previous
  one is ``<container>.previous.log``). With ``--kubelet-port`` the agent also serves the
  kubelet ``/containerLogs`` endpoint, so ``kubectl logs`` works.

Run: ``python hack/node_agent.py --kubeconfig admin.kubeconfig --data-dir DIR [--nodes 1]
[--gpus 2] [--cpu 8] [--memory 16Gi]``.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.server
import json
import logging
import os
import re
import shutil
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("node-agent")

KUBELET_VERSION = "v1.37.2-dial"


POD_NICENESS = int(os.environ.get("DIAL_POD_NICE", "19"))
NICE = shutil.which("nice") or "nice"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ts(t: dt.datetime | None = None) -> str:
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_micro(t: dt.datetime | None = None) -> str:
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_quantity(q: str | int | None) -> float:
    """Kubernetes quantity -> float (cpu in cores, memory in bytes)."""
    if q is None:
        return 0.0
    s = str(q).strip()
    suffixes = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
        "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    }
    for suf in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * suffixes[suf]
    return float(s)


class GPUPool:
    def __init__(self, count: int):
        self.free = list(range(count))
        self.lock = threading.Lock()

    def take(self, n: int) -> list[int]:
        with self.lock:
            if n > len(self.free):
                raise RuntimeError(f"UnexpectedAdmissionError: {n} nvidia.com/gpu requested, {len(self.free)} free")
            got, self.free = self.free[:n], self.free[n:]
            return got

    def give(self, ids: list[int]) -> None:
        with self.lock:
            self.free = sorted(set(self.free) | set(ids))


class Node:
    def __init__(self, name: str, cpu: str, memory: str, gpus: int, pods: int):
        self.name, self.cpu, self.memory, self.gpus, self.pods = name, cpu, memory, gpus, pods
        self.gpu_pool = GPUPool(gpus)


class ContainerRun:
    """One container of a pod: its process, restarts and status."""

    def __init__(self, pod: "PodWorker", spec: dict, kind: str):
        self.pod, self.spec, self.kind = pod, spec, kind  # kind: init | sidecar | main
        self.name = spec["name"]
        self.proc: subprocess.Popen | None = None
        self.restart_count = 0
        self.started_at: dt.datetime | None = None
        self.state: dict = {"waiting": {"reason": "PodInitializing" if kind == "main" else "ContainerCreating"}}
        self.last_state: dict = {}
        self.exit_code: int | None = None
        self.gpu_ids: list[int] = []
        self.log_path = os.path.join(pod.log_dir, f"{self.name}.log")

    @property
    def sidecar(self) -> bool:
        return self.kind == "sidecar"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        pod = self.pod
        if os.path.exists(self.log_path) and self.restart_count > 0:
            os.replace(self.log_path, os.path.join(pod.log_dir, f"{self.name}.previous.log"))
        os.makedirs(pod.log_dir, exist_ok=True)
        try:
            argv, env, cwd = pod.build_process(self)
        except Exception as e:  # configuration error: like CreateContainerConfigError
            log.warning("pod %s container %s: %s", pod.key, self.name, e)
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            self.exit_code = 128
            self.finish(128, reason="CreateContainerConfigError", message=str(e))
            return
        if POD_NICENESS:
            argv = [NICE, "-n", str(POD_NICENESS), *argv]  # exec'd by nice: same pid, no preexec_fn in a threaded agent
        out = open(self.log_path, "wb", buffering=0)
        try:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            out.write(f"{e}\n".encode())
            out.close()
            self.finish(128, reason="StartError", message=str(e))
            return
        out.close()
        self.started_at = now()
        self.exit_code = None
        self.state = {"running": {"startedAt": ts(self.started_at)}}
        log.info("pod %s container %s started pid %d: %s", pod.key, self.name, self.proc.pid, argv)

    def finish(self, code: int, reason: str | None = None, message: str | None = None) -> None:
        self.exit_code = code
        term: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": ts(self.started_at or now()),
            "finishedAt": ts(),
            "containerID": f"dial://{self.proc.pid if self.proc else 0}",
        }
        if message:
            term["message"] = message
        self.state = {"terminated": term}

    def poll(self) -> int | None:
        """Exit code if the process has exited since the last poll."""
        if self.proc is None or "running" not in self.state:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        if code < 0:  # killed by a signal: shell convention 128+n
            code = 128 - code
        self.finish(code)
        return code

    def signal(self, sig: int) -> None:
        if self.running():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float) -> None:
        """SIGTERM, wait up to grace seconds, then SIGKILL."""
        if not self.running():
            self.poll()
            return
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0)
        while time.monotonic() < deadline and self.running():
            time.sleep(0.05)
        if self.running():
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.poll()
        # the process group may still hold children: make sure they are gone
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def prepare_restart(self) -> None:
        self.last_state = self.state
        self.restart_count += 1
        self.state = {"waiting": {"reason": "CrashLoopBackOff" if self.exit_code else "Restarting"}}

    def status(self) -> dict:
        image = self.spec.get("image", "")
        ready = "running" in self.state and (self.kind != "init")
        st: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": f"dial-local://{image}",
            "state": self.state,
            "lastState": self.last_state,
            "ready": ready if self.kind != "init" else ("terminated" in self.state and self.exit_code == 0),
            "restartCount": self.restart_count,
            "started": "running" in self.state,
        }
        if self.proc is not None:
            st["containerID"] = f"dial://{self.proc.pid}"
        return st


class PodWorker(threading.Thread):
    """Runs one pod: init containers, sidecars, main containers; reports status."""

    def __init__(self, agent: "NodeAgent", pod: dict, node: Node):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.agent, self.pod, self.node = agent, pod, node
        md = pod["metadata"]
        self.ns, self.name, self.uid = md["namespace"], md["name"], md["uid"]
        self.key = f"{self.ns}/{self.name}"
        self.root = os.path.join(agent.data_dir, "pods", f"{self.ns}_{self.name}_{self.uid}")
        self.fs = os.path.join(self.root, "fs")
        self.log_dir = os.path.join(agent.data_dir, "logs", self.ns, self.name)
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.inits = [
            ContainerRun(self, c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        self.mains = [ContainerRun(self, c, "main") for c in spec.get("containers") or []]
        self.stop_event = threading.Event()
        self.killed_event = threading.Event()
        self.grace: float = float(spec.get("terminationGracePeriodSeconds", 30) or 0)
        self.phase = "Pending"
        self.initialized = False
        self.start_time = now()
        self.reason: str | None = None
        self.message: str | None = None
        self.gpu_ids: list[int] = []
        self.vol_dirs: dict[str, str] = {}
        self.kubeconfig_path: str | None = None
        self.done = threading.Event()
        self.status_lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    def request_stop(self, grace: float | None) -> None:
        if grace is not None:
            self.grace = min(self.grace, grace)
        self.stop_event.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s worker crashed", self.key)
            for c in self.inits + self.mains:
                c.stop(0)
            self.phase, self.reason, self.message = "Failed", "NodeAgentError", "node agent error (see agent log)"
            self.report()
        finally:
            self.node.gpu_pool.give(self.gpu_ids)
            self.gpu_ids = []
            self.done.set()
            self.agent.pod_done(self)

    def _run(self) -> None:
        os.makedirs(self.fs, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.report()
        try:
            self.setup()
        except Exception as e:
            log.exception("pod %s setup failed", self.key)
            self.phase, self.reason, self.message = "Failed", "SetupError", str(e)
            self.report()
            self.wait_for_deletion()
            return

        # init containers: regular ones to completion in order, sidecars started and kept
        for c in self.inits:
            if self.stop_event.is_set():
                break
            if c.sidecar:
                c.start()
                self.report()
                continue
            while not self.stop_event.is_set():
                c.start()
                self.report()
                while c.running() and not self.stop_event.is_set():
                    self.supervise_sidecars()
                    time.sleep(0.05)
                if self.stop_event.is_set():
                    break
                code = c.poll()
                if code is None:
                    code = c.exit_code
                self.report()
                if code == 0:
                    break
                if self.restart_policy == "Never":
                    self.terminate_all(self.grace)
                    self.phase = "Failed"
                    self.report()
                    self.wait_for_deletion()
                    return
                self.backoff(c)
                c.prepare_restart()
        if not self.stop_event.is_set():
            self.initialized = True
            for c in self.mains:
                c.start()
            self.phase = "Running"
            self.report()

        # main loop
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        while not self.stop_event.is_set():
            if deadline and (now() - self.start_time).total_seconds() > deadline:
                self.terminate_all(self.grace)
                self.phase, self.reason = "Failed", "DeadlineExceeded"
                self.message = f"Pod was active on the node longer than the specified deadline ({deadline}s)"
                self.report()
                self.node.gpu_pool.give(self.gpu_ids)
                self.gpu_ids = []
                self.wait_for_deletion()
                return
            changed = self.supervise_sidecars()
            for c in self.mains:
                code = c.poll()
                if code is None:
                    continue
                changed = True
                if self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0):
                    self.report()
                    c.restart_at = time.monotonic() + self.backoff_seconds(c)
                    c.prepare_restart()
            for c in self.mains:
                if "waiting" in c.state and getattr(c, "restart_at", None) and time.monotonic() >= c.restart_at:
                    c.restart_at = None
                    c.start()
                    changed = True
            if all("terminated" in c.state for c in self.mains):
                # main containers are done and will not restart: stop sidecars, go terminal
                self.stop_sidecars(self.grace)
                self.phase = "Succeeded" if all(c.exit_code == 0 for c in self.mains) else "Failed"
                self.report()
                self.node.gpu_pool.give(self.gpu_ids)
                self.gpu_ids = []
                self.wait_for_deletion()
                return
            if changed:
                self.report()
            time.sleep(0.05)

        # deletion requested
        self.terminate_all(self.grace)
        if self.phase not in ("Succeeded", "Failed"):
            ok = self.initialized and all(c.exit_code == 0 for c in self.mains)
            self.phase = "Succeeded" if ok else "Failed"
        self.report()
        self.finalize_deletion()

    def supervise_sidecars(self) -> bool:
        changed = False
        for c in self.inits:
            if c.sidecar and c.proc is not None and c.poll() is not None:
                changed = True
                c.prepare_restart()
                c.start()
        return changed

    def backoff_seconds(self, c: ContainerRun) -> float:
        return min(0.5 * (2 ** c.restart_count), 10.0)

    def backoff(self, c: ContainerRun) -> None:
        self.stop_event.wait(self.backoff_seconds(c))

    def stop_sidecars(self, grace: float) -> None:
        for c in reversed([c for c in self.inits if c.sidecar]):
            c.stop(grace)

    def terminate_all(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        mains = [c for c in self.mains if c.running()]
        for c in mains:
            c.signal(signal.SIGTERM)
        for c in mains:
            c.stop(max(0.0, deadline - time.monotonic()))
        for c in self.mains + self.inits:
            if not c.sidecar:
                c.stop(0)
        self.stop_sidecars(max(0.0, deadline - time.monotonic()))
        for c in self.mains + self.inits:
            if "terminated" not in c.state and c.proc is None:
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                          "message": "The container could not be located when the pod was terminated",
                                          "finishedAt": ts(), "startedAt": ts()}}
            elif "terminated" not in c.state:
                c.poll()

    def wait_for_deletion(self) -> None:
        self.stop_event.wait()
        self.terminate_all(self.grace)
        self.finalize_deletion()

    def finalize_deletion(self) -> None:
        if self.killed_event.is_set():
            return
        try:
            self.agent.core.delete_namespaced_pod(
                self.name, self.ns, grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)),
            )
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s final delete: %s", self.key, e.reason)

    def kill_now(self) -> None:
        """The pod object is gone: stop everything immediately."""
        self.killed_event.set()
        self.grace = 0
        self.stop_event.set()

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        spec, md = self.pod["spec"], self.pod["metadata"]
        # GPUs for the pod: the larger of the sum over main containers and any init container
        need_main = sum(gpu_limit(c.spec) for c in self.mains)
        need_init = max([gpu_limit(c.spec) for c in self.inits] or [0])
        need_side = sum(gpu_limit(c.spec) for c in self.inits if c.sidecar)
        self.gpu_ids = self.node.gpu_pool.take(max(need_main + need_side, need_init))
        it = iter(self.gpu_ids)
        for c in [c for c in self.inits if c.sidecar] + self.mains:
            c.gpu_ids = [next(it) for _ in range(gpu_limit(c.spec))]
        for c in self.inits:
            if not c.sidecar:
                c.gpu_ids = self.gpu_ids[: gpu_limit(c.spec)]

        sa = spec.get("serviceAccountName") or "default"
        token = None
        if spec.get("automountServiceAccountToken", True) is not False or any(
            (v.get("projected") or {}).get("sources") for v in spec.get("volumes") or []
        ):
            token = self.agent.request_token(self.ns, sa, self.name, self.uid)
        if token and spec.get("automountServiceAccountToken", True) is not False:
            self.kubeconfig_path = os.path.join(self.root, "kubeconfig")
            write_file(self.kubeconfig_path, self.agent.pod_kubeconfig(self.ns, token), 0o600)

        vol_root = os.path.join(self.root, "volumes")
        for v in spec.get("volumes") or []:
            d = os.path.join(vol_root, v["name"])
            if "persistentVolumeClaim" in v:
                # No storage: a claim is a directory of the node shared by every pod that mounts it.
                d = os.path.join(self.agent.data_dir, "claims", self.ns, v["persistentVolumeClaim"]["claimName"])
            os.makedirs(d, exist_ok=True)
            self.vol_dirs[v["name"]] = d
            if "configMap" in v:
                self.write_keys(d, self.agent.get_configmap(self.ns, v["configMap"]), v["configMap"])
            elif "secret" in v:
                self.write_keys(d, self.agent.get_secret(self.ns, v["secret"].get("secretName")), v["secret"], b64=True)
            elif "downwardAPI" in v:
                for item in v["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        write_file(os.path.join(d, item["path"]), self.field_ref(item["fieldRef"]["fieldPath"]))
            elif "projected" in v:
                for src in v["projected"].get("sources") or []:
                    if "serviceAccountToken" in src:
                        t = src["serviceAccountToken"]
                        tok = self.agent.request_token(
                            self.ns, sa, self.name, self.uid, audience=t.get("audience"),
                            expiration=t.get("expirationSeconds"),
                        ) if t.get("audience") else token
                        write_file(os.path.join(d, t.get("path", "token")), tok or "", 0o600)
                    elif "configMap" in src:
                        self.write_keys(d, self.agent.get_configmap(self.ns, src["configMap"]), src["configMap"])
                    elif "secret" in src:
                        self.write_keys(d, self.agent.get_secret(self.ns, src["secret"].get("name")), src["secret"], b64=True)
                    elif "downwardAPI" in src:
                        for item in src["downwardAPI"].get("items") or []:
                            if "fieldRef" in item:
                                write_file(os.path.join(d, item["path"]), self.field_ref(item["fieldRef"]["fieldPath"]))
            # emptyDir and others (hostPath is not supported): an empty directory
        # mount points under the pod root
        for c in self.inits + self.mains:
            for m in c.spec.get("volumeMounts") or []:
                src = self.vol_dirs.get(m["name"])
                if src is None:
                    continue
                if m.get("subPath"):
                    src = os.path.join(src, m["subPath"])
                    os.makedirs(src, exist_ok=True)
                target = self.remap(m["mountPath"])
                if os.path.islink(target) or os.path.exists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(src, target)

    def write_keys(self, d: str, data: dict | None, ref: dict, b64: bool = False) -> None:
        if data is None:
            if ref.get("optional"):
                return
            raise RuntimeError(f"{'secret' if b64 else 'configmap'} {ref.get('name') or ref.get('secretName')} not found")
        items = ref.get("items")
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in pairs:
            if key not in data:
                continue
            val = data[key]
            write_file(os.path.join(d, path), base64.b64decode(val) if b64 else val)

    def remap(self, path: str) -> str:
        return os.path.join(self.fs, path.lstrip("/")) if path.startswith("/") else os.path.join(self.fs, path)

    def field_ref(self, path: str) -> str:
        md, spec = self.pod["metadata"], self.pod["spec"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        if path in ("metadata.labels", "metadata.annotations"):
            return "\n".join(f'{k}="{v}"' for k, v in sorted((md.get(path.split(".")[1]) or {}).items()))
        return {
            "metadata.name": md["name"],
            "metadata.namespace": md["namespace"],
            "metadata.uid": md["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }.get(path, "")

    def build_process(self, c: ContainerRun) -> tuple[list[str], dict, str]:
        spec = c.spec
        py_dir = os.path.dirname(sys.executable)
        env: dict[str, str] = {
            "PATH": os.pathsep.join([py_dir, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]),
            "HOME": os.path.join(self.fs, "root"),
            "HOSTNAME": self.name,
            "DIAL_POD_ROOT": self.fs,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
        }
        os.makedirs(env["HOME"], exist_ok=True)
        for k in ("LANG", "LC_ALL", "TZ", "TMPDIR") + tuple(self.agent.pass_env):
            if k in os.environ:
                env[k] = os.environ[k]
        if self.kubeconfig_path:
            env["KUBECONFIG"] = self.kubeconfig_path
        # like the NVIDIA device plugin: a container sees only the GPUs it was given (none: none)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, c.gpu_ids))
        env["NVIDIA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"] or "void"
        # path remapping for mount paths and the working dir
        mounts = [m["mountPath"] for m in spec.get("volumeMounts") or []]
        wd = spec.get("workingDir")
        prefixes = sorted({p.rstrip("/") for p in mounts + ([wd] if wd else []) if p and p != "/"}, key=len, reverse=True)
        rx = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in prefixes) + r")(?=$|[/\s'\"=:,;)\]])") if prefixes else None

        def rewrite(s: str) -> str:
            return rx.sub(lambda m: self.remap(m.group(1)), s) if rx else s

        for ef in spec.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                data = self.agent.get_configmap(self.ns, ef["configMapRef"])
                if data is None and not ef["configMapRef"].get("optional"):
                    raise RuntimeError(f"configmap {ef['configMapRef'].get('name')} not found")
                for k, v in (data or {}).items():
                    env[prefix + k] = v
            if "secretRef" in ef:
                data = self.agent.get_secret(self.ns, ef["secretRef"].get("name"))
                if data is None and not ef["secretRef"].get("optional"):
                    raise RuntimeError(f"secret {ef['secretRef'].get('name')} not found")
                for k, v in (data or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode()
        for e in spec.get("env") or []:
            if "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    val = self.field_ref(vf["fieldRef"]["fieldPath"])
                elif "resourceFieldRef" in vf:
                    val = self.resource_ref(spec if not vf["resourceFieldRef"].get("containerName") else self.container_spec(vf["resourceFieldRef"]["containerName"]), vf["resourceFieldRef"])
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    data = self.agent.get_configmap(self.ns, ref)
                    if (data is None or ref["key"] not in data):
                        if ref.get("optional"):
                            continue
                        raise RuntimeError(f"configmap key {ref.get('name')}/{ref['key']} not found")
                    val = data[ref["key"]]
                elif "secretKeyRef" in vf:
                    ref = vf["secretKeyRef"]
                    data = self.agent.get_secret(self.ns, ref.get("name"))
                    if (data is None or ref["key"] not in data):
                        if ref.get("optional"):
                            continue
                        raise RuntimeError(f"secret key {ref.get('name')}/{ref['key']} not found")
                    val = base64.b64decode(data[ref["key"]]).decode()
                else:
                    val = ""
            else:
                val = expand(e.get("value", ""), env)
            env[e["name"]] = rewrite(val)
        command = [rewrite(expand(a, env)) for a in spec.get("command") or []]
        args = [rewrite(expand(a, env)) for a in spec.get("args") or []]
        argv = command + args
        if not argv:
            raise RuntimeError("container has no command or args (images are not run, only recorded)")
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None and not os.path.isabs(argv[0]):
            raise RuntimeError(f'executable "{argv[0]}" not found in $PATH')
        if exe:
            argv[0] = exe
        cwd = self.remap(wd) if wd else self.fs
        os.makedirs(cwd, exist_ok=True)
        return argv, env, cwd

    def container_spec(self, name: str) -> dict:
        for c in self.inits + self.mains:
            if c.name == name:
                return c.spec
        return {}

    def resource_ref(self, spec: dict, ref: dict) -> str:
        kind, _, res = ref["resource"].partition(".")
        q = ((spec.get("resources") or {}).get(kind) or {}).get(res)
        if q is None:
            q = {"cpu": self.node.cpu, "memory": self.node.memory}.get(res, "0")
        div = parse_quantity(ref.get("divisor", "1"))
        v = parse_quantity(q) / (div or 1)
        return str(int(-(-v // 1)))  # ceil, like the kubelet

    # ---------------------------------------------------------------- status
    def report(self) -> None:
        with self.status_lock:
            if self.killed_event.is_set():
                return
            mains_ready = self.phase == "Running" and all("running" in c.state for c in self.mains) and all(
                "running" in c.state for c in self.inits if c.sidecar)
            t = ts()

            def cond(typ: str, ok: bool, reason: str | None = None) -> dict:
                d = {"type": typ, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": t}
                if reason and not ok:
                    d["reason"] = reason
                return d

            init_done = self.initialized or self.phase in ("Succeeded",)
            status: dict[str, Any] = {
                "phase": self.phase,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": ts(self.start_time),
                "conditions": [
                    cond("PodReadyToStartContainers", True),
                    cond("Initialized", init_done, "ContainersNotInitialized"),
                    cond("ContainersReady", mains_ready, "ContainersNotReady"),
                    cond("Ready", mains_ready, "ContainersNotReady"),
                ],
                "containerStatuses": [c.status() for c in self.mains],
            }
            if self.inits:
                status["initContainerStatuses"] = [c.status() for c in self.inits]
            if self.reason:
                status["reason"] = self.reason
            if self.message:
                status["message"] = self.message
            # keep lastTransitionTime stable for unchanged conditions
            old = {c.get("type"): c for c in (self.pod.get("status") or {}).get("conditions") or []}
            for c in status["conditions"]:
                o = old.get(c["type"])
                if o and o.get("status") == c["status"] and o.get("lastTransitionTime"):
                    c["lastTransitionTime"] = o["lastTransitionTime"]
            try:
                self.agent.core.patch_namespaced_pod_status(self.name, self.ns, {"status": status})
                self.pod["status"] = status
            except ApiException as e:
                if e.status == 404:
                    self.killed_event.set()
                    self.stop_event.set()
                else:
                    log.warning("pod %s status: %s %s %s", self.key, e.status, e.reason, e.body)


def gpu_limit(spec: dict) -> int:
    res = spec.get("resources") or {}
    q = (res.get("limits") or {}).get("nvidia.com/gpu") or (res.get("requests") or {}).get("nvidia.com/gpu")
    return int(parse_quantity(q)) if q else 0


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(s: str, env: dict) -> str:
    """Kubernetes $(VAR) expansion; $$ escapes a dollar; unknown references stay as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, s)


def write_file(path: str, content: str | bytes, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    os.chmod(path, mode)


class NodeAgent:
    def __init__(self, kubeconfig: str, data_dir: str, nodes: list[Node], kubelet_port: int = 0,
                 tls_cert: str | None = None, tls_key: str | None = None, pass_env: list[str] | None = None,
                 client_ca: str | None = None):
        self.kubeconfig, self.data_dir, self.nodes = kubeconfig, os.path.abspath(data_dir), {n.name: n for n in nodes}
        self.kubelet_port, self.tls_cert, self.tls_key = kubelet_port, tls_cert, tls_key
        self.pass_env = pass_env or []
        self.client_ca = client_ca
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        self.api_config = cfg
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.server = cfg.host
        self.api_port = urllib.parse.urlparse(cfg.host).port or 443
        with open(cfg.ssl_ca_cert, "rb") as f:
            self.ca_data = base64.b64encode(f.read()).decode()
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids whose worker has ended: never run them again
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        os.makedirs(self.data_dir, exist_ok=True)

    # ---------------------------------------------------------------- api helpers
    def request_token(self, ns: str, sa: str, pod: str, uid: str, audience: str | None = None,
                      expiration: int | None = None) -> str:
        body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[audience] if audience else [],
            expiration_seconds=expiration or 3600,
            bound_object_ref=client.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod, uid=uid),
        ))
        last: Exception | None = None
        for _ in range(50):  # the ServiceAccount may not exist yet right after namespace creation
            try:
                return self.core.create_namespaced_service_account_token(sa, ns, body).status.token
            except ApiException as e:
                last = e
                if e.status != 404:
                    raise
                time.sleep(0.2)
        raise RuntimeError(f"serviceaccount {ns}/{sa}: {last}")

    def pod_kubeconfig(self, ns: str, token: str) -> str:
        return json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "dial", "cluster": {"server": self.server, "certificate-authority-data": self.ca_data}}],
            "users": [{"name": "pod", "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "dial", "user": "pod", "namespace": ns}}],
            "current-context": "pod",
        }, indent=1)

    def get_configmap(self, ns: str, ref: dict) -> dict | None:
        try:
            return self.core.read_namespaced_config_map(ref.get("name"), ns).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_secret(self, ns: str, name: str | None) -> dict | None:
        try:
            return self.core.read_namespaced_secret(name, ns).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    # ---------------------------------------------------------------- nodes
    def register(self) -> None:
        for n in self.nodes.values():
            body = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "labels": {
                    "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                    "node.dial.dev/agent": "python"}},
                "spec": {},
            }
            try:
                self.core.create_node(body)
            except ApiException as e:
                if e.status != 409:
                    raise
            self.update_node_status(n)
            self.renew_lease(n)

    def update_node_status(self, n: Node) -> None:
        t = ts()
        resources = {"cpu": n.cpu, "memory": n.memory, "pods": str(n.pods), "ephemeral-storage": "100Gi",
                     "nvidia.com/gpu": str(n.gpus)}
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        status = {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": c, "status": s, "reason": r, "message": f"dial node agent: {r}",
                            "lastHeartbeatTime": t, "lastTransitionTime": t} for c, s, r in conds],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": n.name, "systemUUID": n.name, "bootID": str(os.getpid()),
                "kernelVersion": os.uname().release, "osImage": "dial node agent",
                "containerRuntimeVersion": "dial-local://processes", "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }
        old = self.core.read_node_status(n.name)
        olds = {c.type: c for c in (old.status.conditions or [])}
        for c in status["conditions"]:
            o = olds.get(c["type"])
            if o is not None and o.status == c["status"] and o.last_transition_time:
                c["lastTransitionTime"] = ts(o.last_transition_time)
        self.core.patch_node_status(n.name, {"status": status})

    def renew_lease(self, n: Node) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": n.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40, "renewTime": ts_micro()},
        }
        try:
            self.coord.patch_namespaced_lease(n.name, "kube-node-lease", {"spec": body["spec"]})
        except ApiException as e:
            if e.status != 404:
                raise
            node = self.core.read_node(n.name)
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": node.metadata.uid}]
            self.coord.create_namespaced_lease("kube-node-lease", body)

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(10):
            for n in self.nodes.values():
                try:
                    self.renew_lease(n)
                    if time.monotonic() - last_status > 60:
                        self.update_node_status(n)
                except Exception as e:  # keep trying: the apiserver may be restarting
                    log.warning("heartbeat %s: %s", n.name, e)
            if time.monotonic() - last_status > 60:
                last_status = time.monotonic()

    # ---------------------------------------------------------------- pods
    def handle(self, typ: str, pod: dict) -> None:
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        md = pod["metadata"]
        uid = md["uid"]
        with self.lock:
            w = self.workers.get(uid)
            if typ == "DELETED":
                if w:
                    w.kill_now()
                return
            if w is None and uid in self.finished:
                if md.get("deletionTimestamp"):
                    self._final_delete(md)
                return
            if w is None:
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    if md.get("deletionTimestamp"):
                        self._final_delete(md)
                    return
                if md.get("deletionTimestamp") and not (pod.get("status") or {}).get("containerStatuses"):
                    self._final_delete(md)  # never started: nothing to stop
                    return
                w = PodWorker(self, pod, node)
                self.workers[uid] = w
                w.start()
            if md.get("deletionTimestamp"):
                w.request_stop(md.get("deletionGracePeriodSeconds"))

    def _final_delete(self, md: dict) -> None:
        try:
            self.core.delete_namespaced_pod(md["name"], md["namespace"], body=client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=md["uid"])))
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("delete %s/%s: %s", md["namespace"], md["name"], e.reason)

    def container_run(self, ns: str, pod: str, container: str) -> ContainerRun | None:
        """The running pod's container of that name, or None once the pod is gone."""
        with self.lock:
            worker = next((w for w in self.workers.values() if w.ns == ns and w.name == pod), None)
        if worker is None or worker.done.is_set():
            return None
        return next((c for c in worker.inits + worker.mains if c.name == container), None)

    def pod_done(self, w: PodWorker) -> None:
        with self.lock:
            if self.workers.get(w.uid) is w:
                del self.workers[w.uid]
            self.finished.add(w.uid)

    def watch_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                lst = self.core.list_pod_for_all_namespaces(_preload_content=False)
                data = json.loads(lst.data)
                rv = data["metadata"]["resourceVersion"]
                seen = set()
                for p in data.get("items") or []:
                    seen.add(p["metadata"]["uid"])
                    self.handle("ADDED", p)
                with self.lock:
                    gone = [w for uid, w in self.workers.items() if uid not in seen]
                for w in gone:
                    w.kill_now()
                w_ = watch.Watch()
                for ev in w_.stream(self.core.list_pod_for_all_namespaces, resource_version=rv,
                                    timeout_seconds=300, allow_watch_bookmarks=False, _preload_content=False):
                    if self.stopping.is_set():
                        w_.stop()
                        break
                    obj = ev["raw_object"]
                    if ev["type"] == "ERROR":
                        break
                    self.handle(ev["type"], obj)
            except Exception as e:
                if self.stopping.is_set():
                    break
                log.warning("pod watch: %s; relisting", e)
                time.sleep(0.5)

    # ---------------------------------------------------------------- kubelet logs endpoint
    def serve_kubelet(self) -> None:
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet
                log.debug("kubelet http: " + fmt, *args)

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                parts = u.path.strip("/").split("/")
                if u.path == "/healthz":
                    self._send(200, b"ok")
                    return
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self._send(404, b"not found")
                    return
                _, ns, pod, container = parts
                previous = q.get("previous", ["false"])[0] == "true"
                path = os.path.join(agent.data_dir, "logs", ns, pod, f"{container}{'.previous' if previous else ''}.log")
                if not os.path.exists(path):
                    self._send(404, f"container {container} of pod {ns}/{pod} has no log".encode())
                    return
                with open(path, "rb") as f:
                    data = f.read()
                if "tailLines" in q:
                    n = int(q["tailLines"][0])
                    lines = data.splitlines(keepends=True)
                    data = b"".join(lines[-n:]) if n > 0 else b""
                if "limitBytes" in q:
                    data = data[: int(q["limitBytes"][0])]
                follow = q.get("follow", ["false"])[0] == "true"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if not follow:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if follow:
                    self._follow(path, os.path.getsize(path), ns, pod, container)

            def _follow(self, path: str, pos: int, ns: str, pod: str, container: str) -> None:
                """Stream what the container writes until it exits (like the kubelet), not until its pod ends."""
                try:
                    while not agent.stopping.is_set():
                        run = agent.container_run(ns, pod, container)
                        # Read after checking, so the last lines written before the exit still go out.
                        ended = run is None or "terminated" in run.state
                        with open(path, "rb") as f:
                            f.seek(pos)
                            chunk = f.read()
                        if chunk:
                            pos += len(chunk)
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        elif ended:
                            return
                        time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code: int, body: bytes):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        srv = Server(("127.0.0.1", self.kubelet_port), Handler)
        if self.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
            if self.client_ca:  # only the apiserver's kubelet client cert (signed by the cluster CA)
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.client_ca)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.kubelet_server = srv
        threading.Thread(target=srv.serve_forever, daemon=True, name="kubelet-http").start()

    # ---------------------------------------------------------------- main
    def run(self) -> None:
        if self.kubelet_port:
            self.serve_kubelet()
        deadline = time.monotonic() + 120
        while True:  # the apiserver may still be starting
            try:
                self.register()
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for the apiserver: %s", str(e).splitlines()[0][:200])
                time.sleep(0.5)
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        threading.Thread(target=self.watch_loop, daemon=True, name="pods").start()
        log.info("node agent ready: nodes %s", ", ".join(self.nodes))

    def shutdown(self) -> None:
        """Stop every pod's processes (SIGTERM, short grace, SIGKILL)."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.killed_event.set()
            for c in w.mains + w.inits:
                c.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for w in workers:
            for c in w.mains + w.inits:
                c.stop(max(0.0, deadline - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--nodes", type=int, default=1, help="number of nodes")
    p.add_argument("--node-name", default="dial-node", help="node name (prefix when --nodes > 1)")
    p.add_argument("--cpu", default="8")
    p.add_argument("--memory", default="16Gi")
    p.add_argument("--gpus", type=int, default=int(os.environ.get("DIAL_NODE_GPUS", "2")))
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--kubelet-port", type=int, default=0, help="serve the kubelet log endpoint on this loopback port")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca", help="require client certs signed by this CA on the kubelet endpoint")
    p.add_argument("--pass-env", action="append", default=[], help="host env var to pass to containers")
    p.add_argument("--ready-file", help="touched once the nodes are registered")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    names = [a.node_name] if a.nodes == 1 else [f"{a.node_name}-{i}" for i in range(a.nodes)]
    agent = NodeAgent(a.kubeconfig, a.data_dir, [Node(n, a.cpu, a.memory, a.gpus, a.max_pods) for n in names],
                      kubelet_port=a.kubelet_port, tls_cert=a.tls_cert, tls_key=a.tls_key, pass_env=a.pass_env,
                      client_ca=a.client_ca)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.run()
    if a.ready_file:
        write_file(a.ready_file, str(os.getpid()))
    stop.wait()
    log.info("stopping")
    agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
