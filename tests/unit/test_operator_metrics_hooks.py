"""The operator's metrics hooks: failed reconciles reach the exporter's counters."""

from __future__ import annotations

import threading
from typing import Callable

from kubernetes.client.rest import ApiException
from prometheus_client import generate_latest

from dial.kube.workqueue import WorkQueue
from dial.metrics.exporter import DialMetrics


def _fail_once(work: Callable[[str], None], on_failure: Callable[[Exception], None] | None) -> None:
    """One run of `work` that raises; returns once the failure was reported (its retry is a minute away)."""
    reported = threading.Event()

    def hook(exc: Exception) -> None:
        if on_failure is not None:
            on_failure(exc)
        reported.set()

    queue: WorkQueue[str] = WorkQueue(work, n_workers=1, min_backoff=60, on_failure=hook)
    queue.start()
    try:
        queue.add("ns/exp")
        assert reported.wait(5)
    finally:
        queue.close()
        queue.join(5)


def test_a_failed_reconcile_counts_as_a_reconcile_error_and_an_api_retry():
    metrics = DialMetrics()
    _fail_once(lambda key: (_ for _ in ()).throw(ApiException(status=429)), metrics.reconcile_failed)
    text = generate_latest(metrics.registry).decode()
    assert 'dial_reconcile_errors_total{kind="api"} 1.0' in text
    assert 'dial_api_retries_total{reason="throttled"} 1.0' in text


def test_without_a_metrics_hook_the_queue_still_retries_quietly():
    calls: list[str] = []
    _fail_once(lambda key: calls.append(key) or (_ for _ in ()).throw(KeyError(key)), None)
    assert calls == ["ns/exp"]
