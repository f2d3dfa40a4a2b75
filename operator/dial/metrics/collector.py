"""`dial collect`: the sidecar that follows a trial's output or metrics file and reports its observations.

It re-reads the file from the start whenever it (re)starts, so the status it writes is rebuilt
from the same lines every time: a restarted collector neither loses nor doubles a point. A refused
write (API server restarting, throttled, RBAC revoked) is retried with capped backoff for as long
as the pod lives, also after SIGTERM, so a trial that ends during an outage keeps its points. It
writes only `observations` and `objective` (plus `objectives` for several objectives and
`nonFiniteObjective` for the first NaN or infinite objective value): the operator owns every other
status field, and decides what a non-finite objective means (the trial is stopped and Failed).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from dial.api.experiment import ObjectiveSpec
from dial.api.trial import TrialStatus
from dial.metrics.observations import record_observations
from dial.metrics.parsing import MetricReader

log = logging.getLogger("dial.collect")

Publish = Callable[[dict[str, Any]], None]
POLL_SECONDS = 0.2
RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0  # an outage costs at most this much delay after it ends
MAX_READ_BYTES = 1 << 20


class LineSource(Protocol):
    """Where a collector's lines come from: a followed file, or event files turned into JSON lines."""

    def read_lines(self, *, final: bool = False) -> list[str]: ...


class FileFollower:
    """Complete lines appended to a file that may not exist yet."""

    def __init__(self, path: Path):
        self.path = path
        self._position = 0
        self._partial = b""

    def read_lines(self, *, final: bool = False) -> list[str]:
        chunks = []
        try:
            with self.path.open("rb") as f:
                f.seek(self._position)
                while chunk := f.read(MAX_READ_BYTES):
                    chunks.append(chunk)
                self._position = f.tell()
        except FileNotFoundError:
            pass
        data = self._partial + b"".join(chunks)
        *complete, self._partial = data.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in complete]


class Collector:
    """Turns followed lines into a TrialStatus and publishes it at most once per `interval` seconds."""

    def __init__(self, follower: LineSource, reader: MetricReader, objective: ObjectiveSpec, publish: Publish,
                 *, interval: float = 1.0, retry_min: float = RETRY_MIN_SECONDS, retry_max: float = RETRY_MAX_SECONDS):
        self.follower = follower
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.reader = reader
        self.objective = objective
        self.publish = publish
        self.interval = interval
        self.status = TrialStatus()
        self._dirty = False
        self._last_publish = float("-inf")
        self._n_failures = 0
        self._retry_at = float("-inf")

    def poll(self, *, final: bool = False) -> None:
        points = self.reader.feed(self.follower.read_lines(final=final))
        non_finite = self.status.non_finite_objective
        if record_observations(self.objective, self.status, points) or self.status.non_finite_objective != non_finite:
            self._dirty = True

    def patch(self) -> dict[str, Any]:
        wire = self.status.model_dump(mode="json", by_alias=True)
        patch = {"observations": wire["observations"], "objective": wire["objective"]}
        if self.objective.is_multi:
            patch["objectives"] = wire["objectives"]
        if self.status.non_finite_objective is not None:
            patch["nonFiniteObjective"] = wire["nonFiniteObjective"]
        return patch

    def retry_delay(self) -> float:
        """Seconds to wait after the latest failed write: doubling from `retry_min`, at most `retry_max`."""
        return min(self.retry_max, self.retry_min * 2 ** max(0, self._n_failures - 1))

    def flush(self, *, force: bool = False) -> bool:
        """Publish if something changed and the interval and any retry backoff have passed (or `force`);
        False while something is left unpublished."""
        if not self._dirty:
            return True
        now = time.monotonic()
        if not force and (now - self._last_publish < self.interval or now < self._retry_at):
            return False
        try:
            self.publish(self.patch())
        except Exception as exc:  # noqa: BLE001 - kept dirty, published with a later batch
            self._n_failures += 1
            self._retry_at = time.monotonic() + self.retry_delay()
            log.warning("cannot report observations (retrying in %.1fs): %s", self.retry_delay(), exc)
            return False
        self._dirty = False
        self._n_failures = 0
        self._last_publish = time.monotonic()
        return True

    def run(self, stop: threading.Event, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Follow until `stop` is set (SIGTERM: the training has ended), then read the rest and flush,
        retrying until it is written: the kubelet's SIGKILL after the grace period is the only limit."""
        while not stop.is_set():
            self.poll()
            self.flush()
            stop.wait(POLL_SECONDS)
        self.poll(final=True)
        while not self.flush(force=True):
            sleep(self.retry_delay())
