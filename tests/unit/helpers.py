"""Builders for experiments and trials used across unit tests."""

from __future__ import annotations

import copy
from typing import Any

from dial.api import Experiment, Trial, TrialPhase
from dial.engine import new_trial, record_points
from dial.engine.trials import finalize_trial
from dial.engine.plan import plan
from dial.metrics.parsing import MetricPoint
from datetime import datetime, timezone

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

BASE: dict[str, Any] = {
    "apiVersion": "dial.dev/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "exp"},
    "spec": {
        "objective": {"type": "minimize", "metricName": "loss"},
        "algorithm": {"name": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 4,
        "parameters": [
            {"name": "lr", "type": "double", "feasibleSpace": {"min": 0.001, "max": 1, "scale": "log"}},
            {"name": "layers", "type": "int", "feasibleSpace": {"min": 1, "max": 4}},
        ],
        "trialTemplate": {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "training", "image": "x",
                            "command": ["python", "train.py", "--lr=${trialParameters.lr}",
                                        "--layers=${trialParameters.layers}"]}]}}}}},
    },
}


def manifest(**spec_overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["spec"].update(spec_overrides)
    return data


def experiment(**spec_overrides: Any) -> Experiment:
    return Experiment.model_validate(manifest(**spec_overrides))


def finished_trial(exp: Experiment, index: int, curve: list[float], *, phase: TrialPhase = TrialPhase.succeeded,
                   assignment: dict | None = None) -> Trial:
    trial = new_trial(exp, index, assignment or {"lr": 0.01, "layers": 2})
    trial.status.phase = TrialPhase.running
    record_points(exp, trial, [MetricPoint(exp.spec.objective.metric_name, float(i + 1), v) for i, v in enumerate(curve)])
    exit_code = 0 if phase is not TrialPhase.failed else 1
    finalize_trial(exp, trial, exit_code=exit_code, now=NOW)
    return trial


def running_trial(exp: Experiment, index: int, curve: list[float], assignment: dict | None = None) -> Trial:
    trial = new_trial(exp, index, assignment or {"lr": 0.1, "layers": 1})
    trial.status.phase = TrialPhase.running
    record_points(exp, trial, [MetricPoint(exp.spec.objective.metric_name, float(i + 1), v) for i, v in enumerate(curve)])
    return trial


def apply(exp: Experiment, trials: list[Trial]) -> list[Trial]:
    """Apply one plan's creations as pending trials (what a backend does), return the trials."""
    p = plan(exp, trials, now=NOW)
    for proposal in p.create:
        trials.append(new_trial(exp, proposal.index, proposal.assignment, parent=proposal.parent))
    return trials
