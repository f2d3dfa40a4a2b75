"""One container as a local process: starting it (at low CPU priority), signals, exit codes,
restarts and the container status, kept apart from the pod logic that decides when to do each."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from .common import log, now, ts

if TYPE_CHECKING:
    from .pods import PodWorker

POD_NICENESS = int(os.environ.get("DIAL_POD_NICE", "19"))
NICE = shutil.which("nice") or "nice"


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
