"""What `--resume` refuses: a changed space, objective, search or template; budgets may change."""

from __future__ import annotations

from dial.engine.resume import changes

from helpers import experiment


def test_the_same_experiment_has_no_changes() -> None:
    assert changes(experiment(), experiment()) == []


def test_budgets_and_parallelism_may_change() -> None:
    assert changes(experiment(), experiment(maxTrialCount=40, parallelTrialCount=4, maxFailedTrialCount=9)) == []


def test_each_fixed_field_is_named_with_old_and_new_values() -> None:
    base = experiment()
    space = base.spec.model_dump(by_alias=True)["parameters"]
    space[1]["feasibleSpace"]["max"] = 8
    assert changes(base, experiment(parameters=space)) == ["spec.parameters[1].feasibleSpace.max: 4.0 -> 8.0"]
    assert changes(base, experiment(seed=3)) == ["spec.seed: 0 -> 3"]
    assert changes(base, experiment(algorithm={"name": "gp"})) == ["spec.algorithm.name: 'random' -> 'gp'"]
    flipped = changes(base, experiment(objective={"type": "maximize", "metricName": "accuracy"}))
    assert flipped == ["spec.objective.type: 'minimize' -> 'maximize'",
                       "spec.objective.metricName: 'loss' -> 'accuracy'"]
    template = base.spec.trial_template.to_wire()
    template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
    assert changes(base, experiment(trialTemplate=template)) == [
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].image: 'x' -> 'y'"]


def test_a_long_list_of_changes_is_cut_with_a_count() -> None:
    base = experiment()
    other = experiment(seed=1, algorithm={"name": "gp"}, objective={"type": "maximize", "metricName": "acc", "goal": 1},
                       earlyStopping={"name": "threshold"})
    found = changes(base, other, limit=2)
    assert len(found) == 3 and found[-1].startswith("... and ") and found[-1].endswith(" more")
