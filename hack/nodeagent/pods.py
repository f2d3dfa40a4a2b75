"""One pod on the node: a thread that runs its init containers, sidecars and main containers,
restarts them per ``restartPolicy``, enforces ``activeDeadlineSeconds``, handles deletion and
reports the pod's status, as the kubelet's pod worker does."""
from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from .common import log, now, ts
from .containers import ContainerRun
from .nodes import Node
from .volumes import PodSetup

if TYPE_CHECKING:
    from .agent import NodeAgent


STATUS_RETRY_SECONDS = 1.0  # between writes of a status the API server did not take


def api_unreachable(e: Exception) -> bool:
    """The API server is down, restarting or overloaded: worth trying again, unlike a refusal."""
    if isinstance(e, ApiException):
        return e.status in (0, 429) or e.status >= 500
    return isinstance(e, (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError))


class PodWorker(PodSetup, threading.Thread):
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
        # The last status could not be written (API server down or refusing): retried until it is,
        # as the kubelet's status manager does; otherwise a pod that ended during an outage would
        # stay Running in the API for ever and its Job would never finish.
        self.status_unsent = False
        self.status_retry_at = 0.0

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
            self._setup()
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
            else:
                self.retry_status()
            time.sleep(0.05)

        # deletion requested
        self.terminate_all(self.grace)
        if self.phase not in ("Succeeded", "Failed"):
            ok = self.initialized and all(c.exit_code == 0 for c in self.mains)
            self.phase = "Succeeded" if ok else "Failed"
        self.report()
        self.finalize_deletion()

    def _setup(self) -> None:
        """setup(), tried again while the API server cannot answer (tokens, configMaps and secrets
        come from it): a kubelet keeps such a pod in ContainerCreating rather than failing it."""
        while True:
            try:
                self.setup()
                return
            except Exception as e:
                if not api_unreachable(e) or self.stop_event.is_set():
                    raise
                log.warning("pod %s setup: %s; will retry", self.key, e)
                self.node.gpu_pool.give(self.gpu_ids)  # setup takes them again
                self.gpu_ids = []
                self.stop_event.wait(STATUS_RETRY_SECONDS)

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
        while not self.stop_event.wait(STATUS_RETRY_SECONDS):
            self.retry_status()
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
                self.status_unsent = False
            except ApiException as e:
                if e.status == 404:
                    self.killed_event.set()
                    self.stop_event.set()
                else:
                    log.warning("pod %s status: %s %s %s; will retry", self.key, e.status, e.reason, e.body)
                    self._unsent()
            except Exception as e:  # the API server unreachable (urllib3 errors, resets)
                log.warning("pod %s status: %s; will retry", self.key, e)
                self._unsent()

    def _unsent(self) -> None:
        self.status_unsent = True
        self.status_retry_at = time.monotonic() + STATUS_RETRY_SECONDS

    def retry_status(self) -> None:
        if self.status_unsent and time.monotonic() >= self.status_retry_at:
            self.report()
