"""The operator's kopf settings and event handlers: Dial posts its own events; handlers only queue reconciles."""

from __future__ import annotations

import asyncio
import threading

import kopf
from prometheus_client import generate_latest

from dial.kube import handlers
from dial.kube.cache import ObjectCache
from dial.kube.leadership import Leadership
from dial.kube.relevance import ChangeFilter, job_fingerprint, pod_fingerprint, experiment_fingerprint
from dial.metrics.exporter import DialMetrics


class RecordingQueue:
    def __init__(self) -> None:
        self.added: list[tuple[str, str]] = []
        self.started = self.closed = False

    def add(self, key: tuple[str, str]) -> None:
        self.added.append(key)

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True


def _memo(leadership: Leadership | None = None) -> kopf.Memo:
    filters = {"experiments": ChangeFilter(experiment_fingerprint), "jobs": ChangeFilter(job_fingerprint),
               "pods": ChangeFilter(pod_fingerprint)}
    return kopf.Memo(resync_seconds=3600.0, namespaces=[], kube=None, queue=RecordingQueue(), filters=filters,
                     metrics=DialMetrics(), leadership=leadership or Leadership.always(), resync_now=threading.Event(),
                     cache=ObjectCache())


def test_startup_starts_the_queue_and_the_resync_and_cleanup_stops_them() -> None:
    settings = kopf.OperatorSettings()
    memo = _memo()
    handlers.configure(settings=settings, memo=memo)
    assert settings.posting.enabled is False
    assert memo.queue.started and not memo.resync_stop.is_set()
    handlers.shutdown(memo=memo)
    assert memo.queue.closed and memo.resync_stop.is_set()


def test_pod_status_noise_queues_nothing_and_a_container_ending_queues_its_experiment() -> None:
    memo = _memo()
    labels = {"dial.dev/experiment": "peaks"}

    def pod(rv: str, state: dict, **status) -> dict:
        return {"metadata": {"uid": "u1", "resourceVersion": rv, "name": "peaks-0000-x", "namespace": "ns",
                             "labels": labels},
                "status": {"phase": "Running", "containerStatuses": [{"name": "training", "state": state}], **status}}

    def event(body: dict) -> None:
        asyncio.run(handlers.pod_changed(type="MODIFIED", body=body, namespace="ns", labels=labels, memo=memo))

    running = {"running": {"startedAt": "2026-11-25T00:00:00Z"}}
    event(pod("1", running))
    event(pod("2", running, podIP="10.0.0.7"))  # an IP, a condition, a probe: nothing the reconcile reads
    # dropped as a trigger, but the cache (for --cached-reads) keeps every event's object
    assert memo.cache.get("pods", "ns", "peaks-0000-x")["status"]["podIP"] == "10.0.0.7"
    event(pod("3", {"terminated": {"exitCode": 0, "reason": "Completed"}}))
    assert [p["metadata"]["resourceVersion"] for p in memo.cache.list("pods", "ns", "peaks")] == ["3"]
    assert memo.queue.added == [("ns", "peaks"), ("ns", "peaks")]
    text = generate_latest(memo.metrics.registry).decode()
    assert 'dial_watch_events_total{kind="pods",outcome="queued"} 2.0' in text
    assert 'dial_watch_events_total{kind="pods",outcome="dropped"} 1.0' in text


def test_an_experiment_status_echo_is_dropped_but_a_spec_edit_and_a_deletion_are_not() -> None:
    memo = _memo()

    def event(kind: str, generation: int, status: dict) -> None:
        body = {"metadata": {"uid": "e1", "generation": generation, "name": "peaks", "namespace": "ns"},
                "status": status}
        asyncio.run(handlers.experiment_changed(type=kind, body=body, namespace="ns", name="peaks", memo=memo))

    event("ADDED", 1, {})
    event("MODIFIED", 1, {"phase": "Running"})  # the operator's own status write
    event("MODIFIED", 2, {"phase": "Running"})  # maxTrialCount raised
    event("DELETED", 2, {"phase": "Running"})   # its Prometheus series are dropped by the reconcile
    assert memo.queue.added == [("ns", "peaks")] * 3
