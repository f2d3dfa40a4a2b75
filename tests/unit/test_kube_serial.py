"""SerialRunner: one run per key at a time, bursts coalesced, failures retried with backoff."""

from __future__ import annotations

import threading
import time

from dial.kube.reconcile import _worth_writing
from dial.kube.serial import SerialRunner


def test_requests_during_a_run_coalesce_into_one_more_run():
    started, release, calls = threading.Event(), threading.Event(), []

    def work(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            started.set()
            release.wait(5)

    runner = SerialRunner(work)
    first = threading.Thread(target=runner.request, args=("a",))
    first.start()
    started.wait(5)
    for _ in range(10):
        runner.request("a")  # returns at once: a run for "a" is in progress
    release.set()
    first.join(5)
    assert calls == ["a", "a"]


def test_keys_do_not_wait_for_each_other():
    release, calls = threading.Event(), []

    def work(key: str) -> None:
        calls.append(key)
        if key == "slow":
            release.wait(5)

    runner = SerialRunner(work)
    slow = threading.Thread(target=runner.request, args=("slow",))
    slow.start()
    runner.request("fast")
    assert "fast" in calls
    release.set()
    slow.join(5)


def test_failures_are_retried_with_backoff():
    calls: list[float] = []
    done = threading.Event()

    def work(key: str) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("API server unavailable")
        done.set()

    runner = SerialRunner(work, min_backoff=0.05, max_backoff=1)
    runner.request("a")
    assert done.wait(5)
    first_gap, second_gap = calls[1] - calls[0], calls[2] - calls[1]
    assert len(calls) == 3 and first_gap >= 0.05 and second_gap >= 0.1  # 1x, then 2x the minimum backoff
    runner.close()


def test_budget_clock_alone_does_not_rewrite_the_status():
    old = {"phase": "Running", "budget": {"elapsedSeconds": 10.0, "gpuHours": 0.0, "gpusPerTrial": 0.0}}
    assert not _worth_writing({**old, "budget": {**old["budget"], "elapsedSeconds": 12.0}, "bestTrial": None}, old)
    assert _worth_writing({**old, "budget": {**old["budget"], "elapsedSeconds": 40.0}}, old)
    assert _worth_writing({**old, "phase": "Succeeded"}, old)
