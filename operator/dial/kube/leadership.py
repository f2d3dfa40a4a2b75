"""Leader election over a `coordination.k8s.io/v1` Lease, so two operator replicas never both write.

The election itself is the kubernetes client's `leaderelection` module (client-go's algorithm: a
candidate takes the Lease when its holder has not renewed it for `lease_duration`; the holder
renews every `retry_period` and gives up when it could not renew for `renew_deadline`). Dial adds
the part that keeps a paused or partitioned leader from writing: `Leadership.is_held()` is true only
while the latest successful renewal, timed from *before* its request was sent, is younger than the
renew deadline. Since the deadline is shorter than the lease duration, a leader stops writing before
any standby can take the Lease, also when the process was frozen (SIGSTOP, a stalled node) and
wakes up later: its monotonic clock has moved on and every write is refused at once. A leader that
lost the Lease exits (as client-go controllers do): the Deployment restarts it as a standby with
nothing in memory, which is all a crash-only operator needs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kubernetes import client as k8s
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger("dial.leadership")
LOST_LEADERSHIP_EXIT_CODE = 3


class NotLeader(RuntimeError):
    """A write was attempted by a replica that does not (or no longer surely) hold the Lease."""


@dataclass(frozen=True)
class LeaseSettings:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    namespace: str
    identity: str
    name: str = "dial-operator"
    lease_duration_s: int = 15
    renew_deadline_s: int = 10
    retry_period_s: int = 2

    def __post_init__(self) -> None:
        # The kubernetes client exits the process on a bad config; say what is wrong instead.
        if not self.lease_duration_s > self.renew_deadline_s > 1.2 * self.retry_period_s >= 1.2:
            raise ValueError("leader election needs lease duration > renew deadline > 1.2 x retry period >= 1.2 s, "
                             f"got {self.lease_duration_s}, {self.renew_deadline_s}, {self.retry_period_s}")


def default_identity() -> str:
    """The pod's name (the chart sets POD_NAME from the downward API), else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class Leadership:
    """Whether this replica may write now. `always()` is the single-replica operator: it always may."""

    def __init__(self, renew_deadline_s: float | None, *, clock: Callable[[], float] = time.monotonic):
        self._deadline = renew_deadline_s
        self._clock = clock
        self._renewed_at: float | None = None
        self._lost = False
        self._lock = threading.Lock()

    @classmethod
    def always(cls) -> Leadership:
        return cls(None)

    def renewed(self, sent_at: float) -> None:
        """The Lease was taken or renewed by a request sent at `sent_at` (this clock)."""
        with self._lock:
            if not self._lost:
                self._renewed_at = sent_at if self._renewed_at is None else max(self._renewed_at, sent_at)

    def lose(self) -> None:
        with self._lock:
            self._lost = True

    def is_held(self) -> bool:
        if self._deadline is None:
            return True
        with self._lock:
            return (not self._lost and self._renewed_at is not None
                    and self._clock() - self._renewed_at < self._deadline)

    def check(self) -> None:
        """Raise NotLeader unless this replica may write now (called right before every write)."""
        if not self.is_held():
            raise NotLeader("this operator replica does not hold the leader Lease: write refused")


class _Election(leaderelection.LeaderElection):
    """The client's election, recording each successful renewal and surviving API errors."""

    def __init__(self, config: electionconfig.Config, leadership: Leadership):
        super().__init__(config)
        self.leadership = leadership

    def try_acquire_or_renew(self) -> bool:
        sent_at = time.monotonic()
        try:
            succeeded = bool(super().try_acquire_or_renew())
        except Exception as exc:  # noqa: BLE001 - a connection error is a failed attempt, not the end of the thread
            log.warning("leader election: cannot reach the Lease: %s", exc)
            return False
        if succeeded:
            self.leadership.renewed(sent_at)
        return succeeded


def start_election(api: k8s.ApiClient, settings: LeaseSettings, *, on_started_leading: Callable[[], None],
                   on_stopped_leading: Callable[[], None]) -> Leadership:
    """Campaign for the Lease in a daemon thread; the returned Leadership tells the writers whether they may write.

    `on_started_leading` runs once this replica holds the Lease; `on_stopped_leading` once it lost it
    (after `Leadership.lose()`, so no write goes out any more)."""
    leadership = Leadership(settings.renew_deadline_s)
    lock = LeaseLock(settings.name, settings.namespace, settings.identity)
    lock.api_instance = k8s.CoordinationV1Api(api)  # the operator's credentials, not the client's global default

    def stopped() -> None:
        leadership.lose()
        on_stopped_leading()

    config = electionconfig.Config(lock, settings.lease_duration_s, settings.renew_deadline_s,
                                   settings.retry_period_s, on_started_leading, stopped)
    election = _Election(config, leadership)
    threading.Thread(target=election.run, name="dial-leader-election", daemon=True).start()
    log.info("leader election: %s campaigns for Lease %s/%s", settings.identity, settings.namespace, settings.name)
    return leadership
