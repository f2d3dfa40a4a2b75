"""Multi-objective experiments: the objectives field, trial values, the Pareto front in the status."""

from __future__ import annotations

import pytest
import yaml

from dial.api import Experiment, TrialPhase
from dial.engine import ExperimentError, load_experiment, new_trial, plan, record_points
from dial.engine.front import MAX_PARETO_FRONT, status_front
from dial.engine.plan import history
from dial.engine.trials import finalize_trial
from dial.metrics.parsing import MetricPoint

from helpers import NOW, manifest

TWO = {"objectives": [{"metricName": "error", "type": "minimize"}, {"metricName": "speed", "type": "maximize"}]}


def multi(**spec: object) -> dict:
    return manifest(objective=TWO, **spec)


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load_experiment(yaml.safe_dump(data))
    return [str(e) for e in info.value.errors]


def trial_with(exp: Experiment, index: int, values: dict[str, float], *, exit_code: int = 0):
    trial = new_trial(exp, index, {"lr": 0.01 * (index + 1), "layers": 1 + index % 4})
    trial.status.phase = TrialPhase.running
    record_points(exp, trial, [MetricPoint(name, 1.0, v) for name, v in values.items()])
    finalize_trial(exp, trial, exit_code=exit_code, now=NOW)
    return trial


def two_objective_experiment_with_a_front(namespace: str = "default") -> tuple[Experiment, list]:
    """An experiment with two objectives and two trials, both on its Pareto front."""
    exp = Experiment.model_validate(multi())
    exp.metadata.namespace = namespace
    return exp, [trial_with(exp, 0, {"error": 0.1, "speed": 1.0}), trial_with(exp, 1, {"error": 0.3, "speed": 5.0})]


def test_single_objective_yaml_is_unchanged() -> None:
    exp = load_experiment(yaml.safe_dump(manifest()))
    assert not exp.spec.objective.is_multi
    assert [t.metric_name for t in exp.spec.objective.targets] == ["loss"]
    assert "objectives" not in exp.spec.objective.to_wire()


def test_two_objectives_load_in_order_with_directions() -> None:
    exp = load_experiment(yaml.safe_dump(multi()))
    targets = exp.spec.objective.targets
    assert [(t.metric_name, t.type.value) for t in targets] == [("error", "minimize"), ("speed", "maximize")]
    assert exp.spec.objective.losses({"error": 0.5, "speed": 3.0}) == (0.5, -3.0)
    assert exp.spec.objective.losses({"error": 0.5}) is None
    assert exp.spec.objective.metric_names == ["error", "speed"]


@pytest.mark.parametrize(("objective", "message"), [
    ({**TWO, "type": "minimize"},
     "spec.objective.objectives: give either type and metricName (one objective) or objectives (two or more), not both"),
    ({**TWO, "goal": 0.1}, "spec.objective.goal: only for a single objective (a Pareto front has no one value to reach)"),
    ({"objectives": [{"metricName": "a", "type": "minimize"}, {"metricName": "a", "type": "maximize"}]},
     "spec.objective.objectives[1].metricName: 'a' is named twice"),
    ({"objectives": [{"metricName": "a", "type": "minimize"}]},
     "spec.objective.objectives: List should have at least 2 items after validation, not 1"),
    ({"objectives": [{"metricName": "a", "type": "least"}, {"metricName": "b", "type": "maximize"}]},
     "spec.objective.objectives[0].type: Input should be 'minimize' or 'maximize'"),
    ({"type": "minimize"}, "spec.objective.metricName: required field is missing"),
])
def test_nonsense_objectives_are_refused_naming_the_field(objective: dict, message: str) -> None:
    assert errors_of(manifest(objective=objective)) == [message]


def test_a_single_objective_algorithm_is_refused_naming_spec_algorithm_name() -> None:
    (error,) = errors_of(multi(algorithm={"name": "cmaes"}))
    assert error.startswith("spec.algorithm.name: algorithm 'cmaes' optimises one objective; for 2 objectives use one of")
    assert "tpe" in error and "gp" in error and "random" in error


@pytest.mark.parametrize("rule", ["medianstop", "asha"])
def test_ranking_stop_rules_are_refused_with_several_objectives(rule: str) -> None:
    assert errors_of(multi(earlyStopping={"name": rule})) == [
        f"spec.earlyStopping.name: {rule} compares trials on one objective; with 2 objectives use threshold "
        "or no early stopping"]


def test_threshold_rule_is_allowed_and_defaults_to_the_first_objective() -> None:
    exp = load_experiment(yaml.safe_dump(multi(earlyStopping={"name": "threshold", "settings": {"max_value": 5}})))
    trial = new_trial(exp, 0, {"lr": 0.1, "layers": 1})
    trial.status.phase = TrialPhase.running
    record_points(exp, trial, [MetricPoint("error", 1.0, 9.0), MetricPoint("speed", 1.0, 1.0)])
    (order,) = plan(exp, [trial], now=NOW).stop
    assert order.reason == "threshold" and "error 9 rose above max_value 5" in order.message


def test_trial_records_every_objective_and_needs_all_of_them() -> None:
    exp = Experiment.model_validate(multi())
    done = trial_with(exp, 0, {"error": 0.2, "speed": 10.0})
    assert done.phase is TrialPhase.succeeded
    assert done.status.objectives == {"error": 0.2, "speed": 10.0}
    assert done.status.objective == 0.2  # the first objective, for the printer column
    half = trial_with(exp, 1, {"error": 0.1})
    assert half.phase is TrialPhase.metrics_unavailable
    assert half.status.message == "training exited 0 without reporting speed"


def test_a_non_finite_second_objective_fails_the_trial() -> None:
    exp = Experiment.model_validate(multi())
    trial = trial_with(exp, 0, {"error": 0.2, "speed": float("nan")})
    assert trial.phase is TrialPhase.failed and trial.status.reason == "ObjectiveNotFinite"


def test_best_objective_of_each_curve_follows_its_direction() -> None:
    exp = Experiment.model_validate(multi())
    trial = new_trial(exp, 0, {"lr": 0.1, "layers": 1})
    record_points(exp, trial, [MetricPoint("error", 1.0, 0.5), MetricPoint("error", 2.0, 0.3), MetricPoint("error", 3.0, 0.4),
                               MetricPoint("speed", 1.0, 2.0), MetricPoint("speed", 2.0, 5.0), MetricPoint("speed", 3.0, 4.0)])
    assert trial.status.objectives == {"error": 0.3, "speed": 5.0}


def test_status_has_the_pareto_front_and_no_best_trial() -> None:
    exp = Experiment.model_validate(multi())
    trials = [
        trial_with(exp, 0, {"error": 0.1, "speed": 1.0}),   # front: lowest error
        trial_with(exp, 1, {"error": 0.3, "speed": 5.0}),   # front: fastest
        trial_with(exp, 2, {"error": 0.2, "speed": 3.0}),   # front: in between
        trial_with(exp, 3, {"error": 0.3, "speed": 2.0}),   # dominated by 2
        trial_with(exp, 4, {"error": 0.2, "speed": 3.0}),   # duplicate of 2: on the front too
        trial_with(exp, 5, {"error": 0.01, "speed": 99.0}, exit_code=1),  # failed: never on the front
    ]
    status = plan(exp, trials, now=NOW).status
    assert status.best_trial is None and status.best_objective is None
    assert [e.name for e in status.pareto_front] == ["exp-0000", "exp-0001", "exp-0002", "exp-0004"]
    assert status.pareto_front_size == 4
    entry = status.pareto_front[1]
    assert entry.objectives == {"error": 0.3, "speed": 5.0} and entry.parameters == {"lr": 0.02, "layers": 2}
    wire = status.to_wire()
    assert wire["paretoFront"][0] == {"name": "exp-0000", "parameters": {"lr": 0.01, "layers": 1},
                                      "objectives": {"error": 0.1, "speed": 1.0}}


def test_a_single_objective_status_has_no_front() -> None:
    exp = Experiment.model_validate(manifest())
    trial = new_trial(exp, 0, {"lr": 0.1, "layers": 1})
    record_points(exp, trial, [MetricPoint("loss", 1.0, 0.5)])
    finalize_trial(exp, trial, exit_code=0, now=NOW)
    wire = plan(exp, [trial], now=NOW).status.to_wire()
    assert "paretoFront" not in wire and "paretoFrontSize" not in wire and wire["bestObjective"] == 0.5


def test_the_status_front_is_bounded_and_keeps_both_extremes() -> None:
    exp = Experiment.model_validate(multi(maxTrialCount=200))
    n = MAX_PARETO_FRONT + 30
    trials = [trial_with(exp, i, {"error": i / n, "speed": float(i)}) for i in range(n)]  # all on the front
    entries, size = status_front(exp, trials)
    assert size == n and len(entries) == MAX_PARETO_FRONT
    names = [e.name for e in entries]
    assert names[0] == trials[0].name and names[-1] == trials[-1].name
    assert names == sorted(names)


def test_strategies_see_every_loss_and_failures_without_one() -> None:
    exp = Experiment.model_validate(multi())
    trials = [trial_with(exp, 0, {"error": 0.2, "speed": 3.0}), trial_with(exp, 1, {"error": 0.1})]
    records = history(exp, trials)
    assert records[0].losses == (0.2, -3.0) and records[0].loss == 0.2
    assert records[1].losses is None and records[1].loss is None and records[1].finished


def test_multi_objective_plan_proposes_with_the_default_algorithm() -> None:
    data = multi(parallelTrialCount=3, maxTrialCount=12)
    del data["spec"]["algorithm"]  # gp, through ParEGO
    exp = Experiment.model_validate(data)
    trials = [trial_with(exp, i, {"error": (i - 2) ** 2, "speed": float(i)}) for i in range(6)]
    created = plan(exp, trials, now=NOW).create
    assert [p.index for p in created] == [6, 7, 8]
    assert len({(p.assignment["lr"], p.assignment["layers"]) for p in created}) == 3
    assert created == plan(exp, trials, now=NOW).create


def test_kubectl_dial_shows_the_objectives_and_the_front() -> None:
    from dial.kubectl.views import experiments_table, render_text, status_view

    exp = Experiment.model_validate(multi())
    trials = [trial_with(exp, 0, {"error": 0.1, "speed": 1.0}), trial_with(exp, 1, {"error": 0.3, "speed": 5.0}),
              trial_with(exp, 2, {"error": 0.3, "speed": 2.0})]
    exp.status = plan(exp, trials, now=NOW).status
    text = render_text(status_view(exp, trials, NOW))
    assert "objectives: minimize error, maximize speed" in text
    assert "Pareto front: 2 trials" in text and "best:" not in text
    front_rows = [line.split() for line in text.splitlines() if line.startswith("exp-000")]
    assert [row[0] for row in front_rows] == ["exp-0000", "exp-0001"]
    assert front_rows[1][-3:-1] == ["0.3", "5"]  # error and speed columns, then the duration
    assert "front of 2" in render_text(experiments_table([exp], NOW))


def test_zoom_in_is_refused_with_several_objectives() -> None:
    assert errors_of(multi(algorithm={"name": "tpe", "zoom": {"afterTrials": 5}})) == [
        "spec.algorithm.zoom: zooms in around the best trial; a multi-objective experiment has a Pareto front, "
        "not one best trial"]
