"""The exporter's budget gauges: wall time and GPU-hours an experiment has spent, as its status says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dial.metrics.exporter import DialMetrics
from helpers import NOW, experiment, running_trial


def scraped(metrics: DialMetrics, name: str) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.labels["namespace"], s.labels["experiment"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


def test_budget_gauges_follow_the_plans_usage() -> None:
    metrics = DialMetrics(started_at=NOW)
    exp = experiment(maxGpuHours=1.0, maxTrialCount=4)
    exp.spec.trial_template.job_spec["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": 2}}
    exp.status.start_time = NOW - timedelta(minutes=10)
    trial = running_trial(exp, 0, [1.0])
    trial.status.start_time = NOW - timedelta(minutes=6)
    result = metrics.plan(exp, [trial], now=NOW)
    assert scraped(metrics, "dial_experiment_elapsed_seconds") == {("default", "exp"): 600.0}
    # 2 GPUs x 6 minutes
    assert scraped(metrics, "dial_experiment_gpu_hours") == {("default", "exp"): pytest.approx(0.2)}
    assert result.status.budget.gpu_hours == pytest.approx(0.2)
    metrics.forget("default", "exp")
    assert scraped(metrics, "dial_experiment_gpu_hours") == {}
