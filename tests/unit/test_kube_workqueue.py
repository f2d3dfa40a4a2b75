"""WorkQueue: bursts coalesce, one run per key at a time, keys do not wait for each other, failures back off."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes.client.rest import ApiException

from dial.kube.backend import worth_writing as _worth_writing
from dial.kube.workqueue import WorkQueue, retry_after_seconds


@pytest.fixture
def started():
    queues: list[WorkQueue] = []

    def start(work, **options) -> WorkQueue:
        queue = WorkQueue(work, **options)
        queue.start()
        queues.append(queue)
        return queue

    yield start
    for queue in queues:
        queue.close()
        queue.join(5)


def test_adds_during_a_run_coalesce_into_one_more_run(started):
    running, release, calls = threading.Event(), threading.Event(), []
    second_done = threading.Event()

    def work(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            running.set()
            release.wait(5)
        else:
            second_done.set()

    queue = started(work, n_workers=4)
    queue.add("a")
    assert running.wait(5)
    for _ in range(10):
        queue.add("a")  # returns at once; "a" is running, so it is run once more afterwards
    release.set()
    assert second_done.wait(5)
    time.sleep(0.1)
    assert calls == ["a", "a"]


def test_a_burst_while_queued_is_one_run(started):
    gate, blocking, calls, done = threading.Event(), threading.Event(), [], threading.Event()

    def work(key: str) -> None:
        if key == "blocker":
            blocking.set()
            gate.wait(5)
            return
        calls.append(key)
        done.set()

    queue = started(work, n_workers=1)
    queue.add("blocker")  # holds the only worker while "a" is added 50 times
    assert blocking.wait(5)
    for _ in range(50):
        queue.add("a")
    assert len(queue) == 1
    gate.set()
    assert done.wait(5)
    time.sleep(0.1)
    assert calls == ["a"]


def test_one_key_never_runs_twice_at_once(started):
    active, overlaps, lock = [0], [], threading.Lock()

    def work(key: str) -> None:
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    queue = started(work, n_workers=8)
    for _ in range(200):
        queue.add("a")
        time.sleep(0.0005)
    time.sleep(0.2)
    assert overlaps and max(overlaps) == 1


def test_keys_do_not_wait_for_each_other(started):
    release, fast_done = threading.Event(), threading.Event()

    def work(key: str) -> None:
        if key == "slow":
            release.wait(5)
        else:
            fast_done.set()

    queue = started(work, n_workers=2)
    queue.add("slow")
    queue.add("fast")
    assert fast_done.wait(2), "a slow reconcile held up another experiment"
    release.set()


def test_failures_are_retried_with_exponential_backoff(started):
    calls: list[float] = []
    done = threading.Event()

    def work(key: str) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("API server unavailable")
        done.set()

    started(work, n_workers=1, min_backoff=0.05, max_backoff=1).add("a")
    assert done.wait(5)
    first_gap, second_gap = calls[1] - calls[0], calls[2] - calls[1]
    assert len(calls) == 3 and first_gap >= 0.05 and second_gap >= 0.1  # 1x, then 2x the minimum backoff


def test_throttled_calls_wait_at_least_the_servers_retry_after(started):
    calls: list[float] = []
    done = threading.Event()

    def work(key: str) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            exc = ApiException(status=429, reason="Too Many Requests")
            exc.headers = {"Retry-After": "0.3"}
            raise exc
        done.set()

    started(work, n_workers=1, min_backoff=0.01).add("a")
    assert done.wait(5)
    assert calls[1] - calls[0] >= 0.3


def test_retry_after_is_read_only_from_throttling_answers():
    throttled = ApiException(status=429)
    throttled.headers = {"Retry-After": "2"}
    conflict = ApiException(status=409)
    conflict.headers = {"Retry-After": "2"}
    assert retry_after_seconds(throttled) == 2.0
    assert retry_after_seconds(conflict) == 0.0
    assert retry_after_seconds(RuntimeError("boom")) == 0.0


def test_closed_queue_runs_nothing_more(started):
    calls = []
    queue = started(calls.append, n_workers=1)
    queue.close()
    queue.join(5)
    queue.add("a")
    time.sleep(0.05)
    assert calls == []


def test_worker_count_must_be_positive():
    with pytest.raises(ValueError, match="got 0"):
        WorkQueue(lambda key: None, n_workers=0)


def test_budget_clock_alone_does_not_rewrite_the_status():
    old = {"phase": "Running", "budget": {"elapsedSeconds": 10.0, "gpuHours": 0.0, "gpusPerTrial": 0.0}}
    assert not _worth_writing({**old, "budget": {**old["budget"], "elapsedSeconds": 12.0}, "bestTrial": None}, old)
    assert _worth_writing({**old, "budget": {**old["budget"], "elapsedSeconds": 40.0}}, old)
    assert _worth_writing({**old, "phase": "Succeeded"}, old)


def test_a_pending_trial_starting_waits_for_the_budget_refresh_but_a_new_or_finished_one_does_not():
    old = {"phase": "Running", "trials": {"pending": 2, "running": 1, "succeeded": 0},
           "budget": {"elapsedSeconds": 10.0, "gpuHours": 0.0, "gpusPerTrial": 0.0}}
    started = {**old, "trials": {"pending": 1, "running": 2, "succeeded": 0}}
    assert not _worth_writing(started, old)
    assert _worth_writing({**started, "budget": {**old["budget"], "elapsedSeconds": 25.0}}, old)
    assert _worth_writing({**old, "trials": {"pending": 3, "running": 1, "succeeded": 0}}, old)
    assert _worth_writing({**old, "trials": {"pending": 2, "running": 0, "succeeded": 1}}, old)
