"""A work queue of keys for a fixed pool of worker threads: bursts coalesce, one run per key at a time, failures back off.

The semantics of client-go's workqueue: a key added while it waits is not queued twice; a key added
while a worker runs it is queued again once that run ends (so no change is missed and two runs for
one key never overlap); a run that raises is retried after a per-key exponential backoff, or after
the API server's Retry-After when it answered 429, whichever is longer. Adding never blocks, so kopf's
handlers only enqueue and return.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Callable, Generic, Hashable, TypeVar

from kubernetes.client.rest import ApiException

log = logging.getLogger("dial.operator")

Key = TypeVar("Key", bound=Hashable)


class RetryLater(Exception):
    """A run that did what it could and reported why it is stuck: retried with backoff, logged without a traceback."""


def retry_after_seconds(exc: Exception) -> float:
    """The API server's Retry-After (429 throttling, 503 shutting down), or 0 when it gave none."""
    if not isinstance(exc, ApiException) or exc.status not in (429, 503):
        return 0.0
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0  # an HTTP date: not sent by kube-apiserver


class WorkQueue(Generic[Key]):
    """`add(key)` returns at once; `n_workers` threads run `work(key)` for queued keys in order."""

    def __init__(self, work: Callable[[Key], None], *, n_workers: int = 4, min_backoff: float = 0.5,
                 max_backoff: float = 60.0, on_failure: Callable[[Exception], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1 (got {n_workers})")
        self.work = work
        self.n_workers = n_workers
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.on_failure = on_failure  # e.g. DialMetrics.reconcile_failed
        self.clock = clock
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._dirty: set[Key] = set()  # queued, or to be queued again when its run ends
        self._processing: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._delayed: list[tuple[float, int, Key]] = []  # (due, tie-breaker, key): a heap
        self._sequence = itertools.count()
        self._closed = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.n_workers):
            thread = threading.Thread(target=self._worker, name=f"dial-reconcile-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def add(self, key: Key) -> None:
        with self._cond:
            if self._closed or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._delayed, (self.clock() + delay, next(self._sequence), key))
            self._cond.notify()

    def close(self) -> None:
        """Workers finish their current run and exit; queued and delayed keys are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def __len__(self) -> int:
        """Keys waiting for a worker (not those running or delayed)."""
        with self._cond:
            return len(self._queue)

    # -- workers
    def _next(self) -> Key | None:
        with self._cond:
            while not self._closed:
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                timeout = self._delayed[0][0] - self.clock() if self._delayed else None
                self._cond.wait(timeout)
            return None

    def _promote_due(self) -> None:
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)

    def _done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._closed:
                self._queue.append(key)
                self._cond.notify()

    def _worker(self) -> None:
        while (key := self._next()) is not None:
            try:
                self.work(key)
            except Exception as exc:  # noqa: BLE001 - any failure is retried; the workers keep serving other keys
                self._retry_later(key, exc)
            else:
                with self._cond:
                    self._failures.pop(key, None)
            finally:
                self._done(key)

    def _retry_later(self, key: Key, exc: Exception) -> None:
        with self._cond:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
        if self.on_failure is not None:
            self.on_failure(exc)
        delay = max(min(self.max_backoff, self.min_backoff * 2 ** (failures - 1)), retry_after_seconds(exc))
        if isinstance(exc, ApiException):
            log.warning("%s: API error %s %s; retrying in %.1fs", key, exc.status, exc.reason, delay)
        elif isinstance(exc, RetryLater):
            log.warning("%s: %s; retrying in %.1fs", key, exc, delay)
        else:
            log.exception("%s: reconcile failed; retrying in %.1fs", key, delay)
        self.add_after(key, delay)
