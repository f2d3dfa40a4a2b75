"""Read where a trial's run stands from its Job and pods (plain dicts as the API returns them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

# Container reasons too generic to be a trial's failure reason: "exit code N" says more.
GENERIC_REASONS = frozenset({"Error", "Completed"})
# Job and pod failure reasons that say more than the container's exit: activeDeadlineSeconds passed
# (the Job's: the Job controller stops the pods; the pod's: the kubelet stops its containers).
JOB_SPECIFIC_REASONS = frozenset({"DeadlineExceeded"})
# The kubelet's reason for a container whose process could not be started (exec failed).
START_ERROR = "StartError"
NO_SHELL_HINT = ("the image has no `sh`: the stdout metrics collector runs the training command under a POSIX "
                 "shell (with mkfifo and tee) to copy its output for the collector; use an image that has "
                 "them, or a File metrics collector on a training container without a command")


class RunState(str, Enum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.succeeded, RunState.failed)


@dataclass(frozen=True)
class RunOutcome:
    state: RunState
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    pod: str | None = None


def job_outcome(job: dict[str, Any], pods: list[dict[str, Any]], container: str) -> RunOutcome:
    """The run's state: terminal only once the Job says so (its pods, and so the collector, are done)."""
    latest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
    pod_name = latest["metadata"]["name"] if latest else None
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    terminated = _container_state(latest, container, "terminated")
    if "Complete" in conditions:
        code = terminated.get("exitCode", 0) if terminated else 0
        return RunOutcome(RunState.succeeded, exit_code=code, pod=pod_name)
    if "Failed" in conditions:
        job_condition = conditions["Failed"]
        if terminated:
            reason, message = terminated.get("reason"), terminated.get("message") or job_condition.get("message")
            if reason in GENERIC_REASONS:
                # A deadline kill looks like any exit to the container; the Job or the pod knows better.
                pod_reason = ((latest or {}).get("status") or {}).get("reason")
                reason = next((r for r in (job_condition.get("reason"), pod_reason) if r in JOB_SPECIFIC_REASONS), None)
            if reason == START_ERROR and message and '"sh"' in message and "not found" in message:
                message = f"{message}: {NO_SHELL_HINT}"
            return RunOutcome(RunState.failed, exit_code=terminated.get("exitCode"), reason=reason,
                              message=message, pod=pod_name)
        return RunOutcome(RunState.failed, reason=job_condition.get("reason"), message=job_condition.get("message"),
                          pod=pod_name)
    running = _container_state(latest, container, "running")
    if running or terminated:
        started = (running or terminated).get("startedAt")
        return RunOutcome(RunState.running, started_at=_time(started), pod=pod_name)
    waiting = _container_state(latest, container, "waiting")
    return RunOutcome(RunState.pending, reason=waiting.get("reason") if waiting else None,
                      message=waiting.get("message") if waiting else None, pod=pod_name)


def training_ended(pods: list[dict[str, Any]], container: str) -> bool:
    """The training container of the latest pod has exited (the Job may still wait for its sidecar)."""
    latest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
    return _container_state(latest, container, "terminated") is not None


def _container_state(pod: dict[str, Any] | None, container: str, state: str) -> dict[str, Any] | None:
    if pod is None:
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return (status.get("state") or {}).get(state)
    return None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
