"""Warm start: the snapshot of earlier trials, the records it gives the strategy, and how plans use them."""

from __future__ import annotations

import math

import pytest
import yaml

from dial.api import Experiment, TrialPhase
from dial.engine import ExperimentError, load_experiment, new_trial, plan, record_points
from dial.engine.trials import finalize_trial
from dial.engine.warm_start import prior_records, snapshot
from dial.metrics.parsing import MetricPoint

from helpers import NOW, experiment, finished_trial, manifest


def earlier(name: str = "old", **spec: object) -> Experiment:
    data = manifest(**spec)
    data["metadata"]["name"] = name
    return Experiment.model_validate(data)


def bowl(a: dict) -> float:
    return (math.log10(a["lr"]) + 2) ** 2 + 0.1 * (a["layers"] - 3) ** 2


def earlier_trials(old: Experiment, n: int) -> list:
    grid = [{"lr": 10 ** (-3 + 3 * i / (n - 1)), "layers": 1 + i % 4} for i in range(n)]
    return [finished_trial(old, i, [bowl(a) + 1.0, bowl(a)], assignment=a) for i, a in enumerate(grid)]


def test_snapshot_takes_usable_trials_and_notes_the_rest() -> None:
    old = earlier()
    usable = earlier_trials(old, 3)
    failed = finished_trial(old, 3, [0.5], phase=TrialPhase.failed)
    outside = finished_trial(old, 4, [0.5], assignment={"lr": 5.0, "layers": 2})
    extra = finished_trial(old, 5, [0.5], assignment={"lr": 0.1, "layers": 2, "dropout": 0.1})
    missing = finished_trial(old, 6, [0.5], assignment={"lr": 0.1})
    accuracy = earlier(objective={"type": "maximize", "metricName": "accuracy"})
    other_metric = new_trial(accuracy, 7, {"lr": 0.1, "layers": 2})
    record_points(accuracy, other_metric, [MetricPoint("accuracy", 1.0, 0.9)])
    finalize_trial(accuracy, other_metric, exit_code=0, now=NOW)
    running = new_trial(old, 8, {"lr": 0.1, "layers": 2})
    snap = snapshot(experiment(), [("old", [*usable, failed, outside, extra, missing, other_metric, running]),
                                   ("gone", None)])
    assert [p.source for p in snap.trials] == ["old/old-0000", "old/old-0001", "old/old-0002"]
    assert [p.objective for p in snap.trials] == [min(bowl(t.spec.parameter_assignments) + 1.0,
                                                      bowl(t.spec.parameter_assignments)) for t in usable]
    assert snap.skipped == 6
    assert snap.notes == [
        "old: 3 trials taken, 6 skipped (1 not finished with an objective; 1 still running; "
        "1 with 'lr' outside this experiment's feasibleSpace; 1 with parameter 'dropout' that this experiment "
        "does not have; 1 without loss; 1 without parameter 'layers')",
        "gone: not found; no trials from it"]


def test_objective_is_recomputed_by_this_experiments_metric_strategy() -> None:
    old = earlier()
    trial = finished_trial(old, 0, [3.0, 1.0, 2.0])
    best = snapshot(experiment(), [("old", [trial])]).trials[0].objective
    latest = snapshot(experiment(objective={"type": "minimize", "metricName": "loss", "metricStrategy": "latest"}),
                      [("old", [trial])]).trials[0].objective
    assert (best, latest) == (1.0, 2.0)


def warm(n_prior: int, **spec: object) -> Experiment:
    exp = experiment(warmStart={"experiments": ["old"]}, **spec)
    exp.status.warm_start = snapshot(exp, [("old", earlier_trials(earlier(), n_prior))])
    return exp


def test_prior_records_sort_before_and_never_collide_with_own_trials() -> None:
    records = prior_records(warm(5))
    assert [r.index for r in records] == [-5, -4, -3, -2, -1]
    assert all(r.finished and r.loss is not None for r in records)


def test_priors_seed_proposals_deterministically_but_are_not_this_experiments_trials() -> None:
    spec = {"algorithm": {"name": "gp", "settings": {"n_initial_points": 4}}, "maxTrialCount": 2, "parallelTrialCount": 2}
    seeded = plan(warm(12, **spec), [], now=NOW)
    again = plan(warm(12, **spec), [], now=NOW)
    cold = plan(experiment(**spec), [], now=NOW)
    assert [p.assignment for p in seeded.create] == [p.assignment for p in again.create]
    assert [p.assignment for p in seeded.create] != [p.assignment for p in cold.create]
    assert [p.index for p in seeded.create] == [0, 1]  # maxTrialCount 2: the priors do not count
    assert seeded.status.trials_created == 2 and seeded.status.best_trial is None
    assert seeded.status.warm_start is not None and len(seeded.status.warm_start.trials) == 12
    # With 12 priors the model is already fitted: the first proposal is a good one.
    assert bowl(seeded.create[0].assignment) < sorted(p.objective for p in seeded.status.warm_start.trials)[6]


def test_finished_experiment_with_priors_reports_only_its_own_best() -> None:
    exp = warm(4, maxTrialCount=1, parallelTrialCount=1)
    own = finished_trial(exp, 0, [5.0])
    result = plan(exp, [own], now=NOW)
    assert result.finish is not None and result.status.best_trial.name == own.name  # type: ignore[union-attr]


def load_errors(data: dict) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load_experiment(yaml.safe_dump(data))
    return [str(e) for e in info.value.errors]


def test_warm_start_from_itself_or_with_hyperband_is_refused() -> None:
    assert load_errors(manifest(warmStart={"experiments": ["other", "exp"]})) == [
        "spec.warmStart.experiments[1]: an experiment cannot warm start from itself"]
    hyperband = manifest(warmStart={"experiments": ["old"]},
                         algorithm={"name": "hyperband", "settings": {"resource_name": "layers", "max_resource": 4,
                                                                      "reduction_factor": 2}})
    assert load_errors(hyperband) == [
        "spec.warmStart: hyperband's brackets are made of this experiment's own trials; it cannot be warm started"]
