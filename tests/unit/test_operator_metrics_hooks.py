"""The operator's metrics hooks: failed reconciles reach the exporter's counters."""

from __future__ import annotations

from kubernetes.client.rest import ApiException
from prometheus_client import generate_latest

from dial.kube.serial import SerialRunner
from dial.metrics.exporter import DialMetrics


def test_a_failed_reconcile_counts_as_a_reconcile_error_and_an_api_retry():
    metrics = DialMetrics()
    runner: SerialRunner[str] = SerialRunner(lambda key: (_ for _ in ()).throw(ApiException(status=429)),
                                             min_backoff=60, on_failure=metrics.reconcile_failed)
    try:
        runner.request("ns/exp")
    finally:
        runner.close()
    text = generate_latest(metrics.registry).decode()
    assert 'dial_reconcile_errors_total{kind="api"} 1.0' in text
    assert 'dial_api_retries_total{reason="throttled"} 1.0' in text


def test_without_a_hook_the_runner_still_retries_quietly():
    calls = []
    runner: SerialRunner[str] = SerialRunner(lambda key: calls.append(key) or (_ for _ in ()).throw(KeyError(key)),
                                             min_backoff=60)
    try:
        runner.request("ns/exp")
    finally:
        runner.close()
    assert calls == ["ns/exp"]
