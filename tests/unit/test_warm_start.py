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


# -- several objectives ------------------------------------------------------------------------

TWO = {"objectives": [{"metricName": "error", "type": "minimize"}, {"metricName": "speed", "type": "maximize"}]}


def u(a: dict) -> float:
    """lr on [0, 1] as the log scale places it."""
    return (math.log10(a["lr"]) + 3) / 3


def error_and_speed(a: dict) -> dict[str, float]:
    """Conflicting objectives: the Pareto set is u(lr) in [0.3, 0.7] with 2 layers."""
    off = 0.05 * (a["layers"] - 2) ** 2
    return {"error": (u(a) - 0.3) ** 2 + off, "speed": -((u(a) - 0.7) ** 2) - off}


def off_front(a: dict) -> float:
    return max(0.3 - u(a), 0.0, u(a) - 0.7) + 0.1 * abs(a["layers"] - 2)


def reported(exp: Experiment, index: int, assignment: dict, curves: dict[str, list[float]]):
    trial = new_trial(exp, index, assignment)
    trial.status.phase = TrialPhase.running
    record_points(exp, trial, [MetricPoint(name, float(step + 1), v) for name, curve in curves.items()
                               for step, v in enumerate(curve)])
    finalize_trial(exp, trial, exit_code=0, now=NOW)
    return trial


def earlier_multi_trials(n: int) -> list:
    old = earlier(objective=TWO)
    spread = [{"lr": 10 ** (-3 + 3 * ((i * 7) % n) / (n - 1)), "layers": 1 + i % 4} for i in range(n)]
    return [reported(old, i, a, {k: [v] for k, v in error_and_speed(a).items()}) for i, a in enumerate(spread)]


def test_multi_objective_snapshot_takes_every_objective_and_counts_trials_missing_one() -> None:
    old = earlier(objective=TWO)
    both = reported(old, 0, {"lr": 0.01, "layers": 2}, {"error": [0.5, 0.2, 0.3], "speed": [4.0, 9.0, 7.0]})
    # A single-objective run is a source too when its trials also reported the other metric.
    single = earlier("single", objective={"type": "minimize", "metricName": "error", "additionalMetricNames": ["speed"]})
    also_speed = reported(single, 0, {"lr": 0.1, "layers": 3}, {"error": [0.4], "speed": [2.0]})
    error_only = reported(single, 1, {"lr": 0.1, "layers": 1}, {"error": [0.1]})
    speed_only = reported(earlier("fast", objective={"type": "maximize", "metricName": "speed"}), 0,
                          {"lr": 0.5, "layers": 1}, {"speed": [3.0]})
    unreported = reported(old, 1, {"lr": 0.2, "layers": 1}, {"error": [0.3]})  # MetricsUnavailable there
    assert unreported.phase is TrialPhase.metrics_unavailable
    snap = snapshot(experiment(objective=TWO), [("old", [both, unreported]),
                                                ("single", [also_speed, error_only, speed_only])])
    assert [(p.source, p.objective, p.objectives) for p in snap.trials] == [
        ("old/old-0000", 0.2, {"error": 0.2, "speed": 9.0}),  # each objective's best in its own direction
        ("single/single-0000", 0.4, {"error": 0.4, "speed": 2.0})]
    assert snap.skipped == 3
    assert snap.notes == ["old: 1 trials taken, 1 skipped (1 not finished with an objective)",
                          "single: 1 trials taken, 2 skipped (1 without error; 1 without speed)"]
    assert snap.trials[0].to_wire()["objectives"] == {"error": 0.2, "speed": 9.0}
    single_objective = experiment(objective={"type": "minimize", "metricName": "error"})
    assert "objectives" not in snapshot(single_objective, [("old", [both])]).trials[0].to_wire()  # as before


def test_multi_objective_priors_follow_this_experiments_metric_strategy() -> None:
    old = earlier(objective=TWO)
    trial = reported(old, 0, {"lr": 0.01, "layers": 2}, {"error": [0.5, 0.2, 0.3], "speed": [4.0, 9.0, 7.0]})
    latest = experiment(objective={**TWO, "metricStrategy": "latest"})
    assert snapshot(latest, [("old", [trial])]).trials[0].objectives == {"error": 0.3, "speed": 7.0}


def test_multi_objective_prior_records_carry_every_loss_in_this_experiments_order() -> None:
    # This experiment lists speed first: losses follow its order and signs, whatever the source's.
    speed_first = {"objectives": list(reversed(TWO["objectives"]))}
    exp = experiment(objective=speed_first, warmStart={"experiments": ["old"]})
    earlier_ones = earlier_multi_trials(3)
    exp.status.warm_start = snapshot(exp, [("old", earlier_ones)])
    records = prior_records(exp)
    assert [r.index for r in records] == [-3, -2, -1]
    for record, trial in zip(records, earlier_ones):
        values = error_and_speed(trial.spec.parameter_assignments)
        assert record.finished and record.losses == (-values["speed"], values["error"])
        assert record.loss == record.losses[0]


def test_priors_without_this_experiments_objectives_are_not_handed_to_the_strategy() -> None:
    # A snapshot taken before the objectives were edited into several: its priors have one value only.
    single = experiment(warmStart={"experiments": ["old"]})
    snap = snapshot(single, [("old", earlier_trials(earlier(), 3))])
    exp = experiment(objective={"objectives": [{"metricName": "loss", "type": "minimize"},
                                               {"metricName": "speed", "type": "maximize"}]},
                     warmStart={"experiments": ["old"]})
    exp.status.warm_start = snap
    assert prior_records(exp) == []


def warm_multi(n_prior: int, **spec: object) -> Experiment:
    exp = experiment(objective=TWO, warmStart={"experiments": ["old"]}, **spec)
    exp.status.warm_start = snapshot(exp, [("old", earlier_multi_trials(n_prior))])
    assert len(exp.status.warm_start.trials) == n_prior
    return exp


@pytest.mark.parametrize(("name", "settings"), [("tpe", {"n_startup_trials": 8}),
                                                ("multivariate-tpe", {"n_startup_trials": 8}),
                                                ("gp", {"n_initial_points": 8}),
                                                ("bayesian", {"n_initial_points": 8})])
def test_multi_objective_strategies_propose_near_the_front_the_priors_show(name: str, settings: dict) -> None:
    spec = {"algorithm": {"name": name, "settings": settings}, "parallelTrialCount": 4, "maxTrialCount": 4}
    seeded = plan(warm_multi(24, **spec), [], now=NOW)
    cold = plan(experiment(objective=TWO, **spec), [], now=NOW)
    assert [p.index for p in seeded.create] == [0, 1, 2, 3]
    assert [p.assignment for p in seeded.create] == [p.assignment for p in plan(warm_multi(24, **spec), [], now=NOW).create]
    # 24 priors replace the initial design: the proposals are already near the Pareto set (with
    # maximise read as minimise, a wrong sign would put it at u(lr) < 0.3), the cold ones anywhere.
    warm_off = [off_front(p.assignment) for p in seeded.create]
    cold_off = [off_front(p.assignment) for p in cold.create]
    assert sum(warm_off) / 4 < 0.06 and sum(warm_off) < sum(cold_off) / 2, (warm_off, cold_off)
    # Every objective counts, not the first alone (whose optimum is u = 0.3): one proposal lies in
    # the half of the front where speed wins.
    assert max(u(p.assignment) for p in seeded.create) > 0.5
    assert seeded.status.pareto_front == [] and seeded.status.pareto_front_size == 0  # the priors are not its trials


@pytest.mark.parametrize("name", ["random", "sobol"])
def test_multi_objective_space_fillers_continue_past_the_priors(name: str) -> None:
    spec = {"algorithm": {"name": name}, "parallelTrialCount": 3, "maxTrialCount": 3}
    seeded = plan(warm_multi(6, **spec), [], now=NOW).create
    cold = plan(experiment(objective=TWO, **spec), [], now=NOW).create
    assert len(seeded) == 3 and [p.assignment for p in seeded] != [p.assignment for p in cold]


def test_multi_objective_grid_never_proposes_a_prior_again() -> None:
    discrete = [{"name": "lr", "type": "discrete", "feasibleSpace": {"list": [0.001, 0.01, 0.1, 1]}},
                {"name": "layers", "type": "int", "feasibleSpace": {"min": 1, "max": 2}}]
    old = earlier(objective=TWO, parameters=discrete)
    priors = [reported(old, i, {"lr": lr, "layers": 1}, {k: [v] for k, v in error_and_speed({"lr": lr, "layers": 1}).items()})
              for i, lr in enumerate([0.001, 0.01, 0.1, 1])]
    exp = experiment(objective=TWO, parameters=discrete, algorithm={"name": "grid"}, parallelTrialCount=8,
                     maxTrialCount=8, warmStart={"experiments": ["old"]})
    exp.status.warm_start = snapshot(exp, [("old", priors)])
    proposed = [p.assignment for p in plan(exp, [], now=NOW).create]
    assert sorted((a["lr"], a["layers"]) for a in proposed) == [(0.001, 2), (0.01, 2), (0.1, 2), (1, 2)]


def test_warm_start_is_accepted_with_several_objectives() -> None:
    exp = load_experiment(yaml.safe_dump(manifest(objective=TWO, algorithm={"name": "tpe"},
                                                  warmStart={"experiments": ["old"]})))
    assert exp.spec.warm_start is not None and exp.spec.objective.is_multi
