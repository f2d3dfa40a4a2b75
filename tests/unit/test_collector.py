"""The collector sidecar: follows a file, batches status writes, flushes at the end, rebuilds after a restart."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from dial.api.experiment import MetricsFormat, ObjectiveSpec
from dial.metrics.collector import Collector, FileFollower
from dial.metrics.parsing import MetricReader

OBJECTIVE = ObjectiveSpec.model_validate({"type": "minimize", "metricName": "loss"})


def make(path: Path, writes: list[dict], interval: float = 3600.0) -> Collector:
    return Collector(FileFollower(path), MetricReader(OBJECTIVE.metric_names, MetricsFormat.text), OBJECTIVE,
                     writes.append, interval=interval)


def test_follower_returns_complete_lines_and_waits_for_the_rest(tmp_path):
    path = tmp_path / "out.log"
    follower = FileFollower(path)
    assert follower.read_lines() == []  # not there yet
    path.write_text("a=1\nb=")
    assert follower.read_lines() == ["a=1"]
    with path.open("a") as f:
        f.write("2\nc=3")
    assert follower.read_lines() == ["b=2"]
    assert follower.read_lines(final=True) == ["c=3"]


def test_writes_are_batched_by_interval(tmp_path):
    path, writes = tmp_path / "out.log", []
    collector = make(path, writes)
    path.write_text("epoch=1 loss=0.9\n")
    collector.poll()
    collector.flush()  # first write goes out at once
    with path.open("a") as f:
        f.write("epoch=2 loss=0.5\nepoch=3 loss=0.7\n")
    collector.poll()
    collector.flush()  # within the interval: held back
    assert len(writes) == 1 and writes[0]["observations"][0]["nPoints"] == 1
    collector.flush(force=True)
    assert len(writes) == 2
    assert writes[1]["objective"] == 0.5
    [loss] = writes[1]["observations"]
    assert [p["value"] for p in loss["curve"]] == [0.9, 0.5, 0.7] and loss["latest"] == 0.7
    assert set(writes[1]) == {"observations", "objective"}  # never the operator's fields


def test_nothing_new_means_no_write(tmp_path):
    path, writes = tmp_path / "out.log", []
    path.write_text("no metrics here\n")
    collector = make(path, writes, interval=0)
    collector.poll()
    collector.flush()
    assert writes == []


def test_a_non_finite_objective_is_reported_as_an_observation_not_as_a_stop(tmp_path):
    path, writes = tmp_path / "out.log", []
    path.write_text("epoch=1 loss=2.5\nepoch=2 loss=nan\nepoch=3 loss=inf\n")
    collector = make(path, writes, interval=0)
    collector.poll()
    collector.flush()
    # The first non-finite value only; what it means (stop, Failed) is the operator's to decide.
    assert writes[-1]["nonFiniteObjective"] == {"metric": "loss", "step": 2.0, "value": "nan"}
    assert writes[-1]["objective"] == 2.5
    assert not {"stopReason", "stopMessage", "phase", "reason"} & set(writes[-1])


def test_stop_reads_the_last_partial_line_and_flushes(tmp_path):
    path, writes = tmp_path / "out.log", []
    path.write_text("epoch=1 loss=0.4\nepoch=2 loss=0.3")  # no trailing newline
    stop = threading.Event()
    stop.set()
    make(path, writes).run(stop)
    assert writes[-1]["objective"] == 0.3 and writes[-1]["observations"][0]["nPoints"] == 2


def test_failed_publish_is_retried_with_the_next_batch(tmp_path):
    path, sent = tmp_path / "out.log", []
    failures = iter([True, False])

    def publish(patch):
        if next(failures):
            raise ConnectionError("api server restarting")
        sent.append(patch)

    collector = Collector(FileFollower(path), MetricReader(["loss"]), OBJECTIVE, publish, interval=0, retry_min=0.05)
    path.write_text("loss=1.5\n")
    collector.poll()
    assert collector.flush() is False
    assert collector.flush() is False and sent == []  # backing off: not hammering a struggling API server
    time.sleep(0.06)
    assert collector.flush() is True and sent[0]["objective"] == 1.5


def test_the_last_flush_after_sigterm_retries_with_capped_backoff_until_written(tmp_path):
    path, sent, delays = tmp_path / "out.log", [], []
    n_refusals = 12  # a minute-long outage at the cap: well past any fixed number of attempts

    def publish(patch):
        if len(delays) < n_refusals:
            raise ConnectionError("connection refused")
        sent.append(patch)

    path.write_text("epoch=1 loss=0.4\nepoch=2 loss=0.3\n")
    stop = threading.Event()
    stop.set()  # SIGTERM: the training has ended
    collector = Collector(FileFollower(path), MetricReader(["loss"]), OBJECTIVE, publish, retry_min=0.2, retry_max=5.0)
    collector.run(stop, sleep=delays.append)
    assert sent and sent[-1]["observations"][0]["nPoints"] == 2 and sent[-1]["objective"] == 0.3
    assert delays[:6] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0] and set(delays[6:]) == {5.0} and len(delays) == n_refusals


def test_a_restarted_collector_rebuilds_the_same_status(tmp_path):
    path = tmp_path / "out.log"
    path.write_text("".join(f"epoch={i} loss={1 / i}\n" for i in range(1, 30)))
    first, second = [], []
    for writes in (first, second):
        collector = make(path, writes, interval=0)
        collector.poll()
        collector.flush()
    assert first == second and first[0]["observations"][0]["nPoints"] == 29


def test_the_sidecar_imports_neither_the_engine_nor_scipy() -> None:
    """`dial collect` starts in every trial pod before the training may: the planner and the strategies (scipy)
    would cost it about half a second of CPU and of every trial's start. The bad objective ends the command
    right after its imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dial.cli", "collect", "--namespace", "n",
                           "--trial", "t", "--source", "/dev/null", "--objective", "{"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--objective: not an objective spec" in done.stderr, done.stderr[-2000:]
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, re.M))
    assert {"dial.metrics.collector", "dial.kube.client"} <= imported  # what the sidecar runs on
    heavy = sorted(m for m in imported if m.split(".")[0] in ("scipy", "sklearn", "skopt") or m.startswith("dial.engine"))
    assert heavy == [], heavy
