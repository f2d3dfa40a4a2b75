"""Run work for a key one call at a time, coalesce the requests that arrive meanwhile, retry failures with backoff."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from kubernetes.client.rest import ApiException

log = logging.getLogger("dial.operator")

Key = TypeVar("Key", bound=Hashable)


@dataclass
class _KeyState:
    running: bool = False
    pending: bool = False
    failures: int = 0
    retry: threading.Timer | None = None


class SerialRunner(Generic[Key]):
    """`request(key)` runs `work(key)` now in the caller's thread, or, if a run for that key is in
    progress, makes it run once more afterwards: a burst of events costs one or two runs, and
    two runs for one key never overlap. A run that raises is requested again after a backoff
    (1 s, 2 s, 4 s ... `max_backoff`); other keys are not held up."""

    def __init__(self, work: Callable[[Key], None], *, min_backoff: float = 1.0, max_backoff: float = 60.0,
                 on_failure: Callable[[Exception], None] | None = None):
        self.work = work
        self.on_failure = on_failure  # e.g. DialMetrics.reconcile_failed
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._states: dict[Key, _KeyState] = {}
        self._lock = threading.Lock()
        self._closed = False

    def request(self, key: Key) -> None:
        with self._lock:
            if self._closed:
                return
            state = self._states.setdefault(key, _KeyState())
            state.pending = True
            if state.running:
                return
            state.running = True
        while True:
            with self._lock:
                if not state.pending or self._closed:
                    state.running = False
                    return
                state.pending = False
            try:
                self.work(key)
            except Exception as exc:  # noqa: BLE001 - any failure is retried; the operator keeps serving other keys
                self._schedule_retry(key, state, exc)
            else:
                state.failures = 0

    def _schedule_retry(self, key: Key, state: _KeyState, exc: Exception) -> None:
        state.failures += 1
        if self.on_failure is not None:
            self.on_failure(exc)
        delay = min(self.max_backoff, self.min_backoff * 2 ** (state.failures - 1))
        if isinstance(exc, ApiException):
            log.warning("%s: API error %s %s; retrying in %.1fs", key, exc.status, exc.reason, delay)
        else:
            log.exception("%s: reconcile failed; retrying in %.1fs", key, delay)
        with self._lock:
            if state.retry is not None:
                state.retry.cancel()
            state.retry = threading.Timer(delay, self.request, args=(key,))
            state.retry.daemon = True
            state.retry.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for state in self._states.values():
                if state.retry is not None:
                    state.retry.cancel()
