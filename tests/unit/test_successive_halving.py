"""Hyperband's schedule and promotions, and the ASHA stop rule, on hand-made trials."""

from __future__ import annotations

import math

import pytest

from dial.search import TrialRecord, make_strategy
from dial.stopping import make_rule
from dial.engine import plan
from helpers import NOW, experiment, finished_trial, running_trial
from test_strategies import space

SPACE = space({"name": "lr", "type": "double", "feasibleSpace": {"min": 1e-4, "max": 1, "scale": "log"}},
              {"name": "epochs", "type": "int", "feasibleSpace": {"min": 1, "max": 27}})
SETTINGS = {"resource_name": "epochs", "max_resource": 27, "reduction_factor": 3}


def loss(a: dict) -> float:
    return (math.log10(a["lr"]) + 2) ** 2 + 1.0 / a["epochs"]


def test_hyperband_first_bracket_halves_by_eta_and_promotes_the_best() -> None:
    hb = make_strategy("hyperband", SETTINGS, SPACE, seed=0)
    history: list[TrialRecord] = []
    rung0 = hb.propose(history, 30)
    # Bracket s=3 of max_resource 27, eta 3: 27 configurations at 1 epoch, then 9 at 3, 3 at 9, 1 at 27.
    assert len(rung0) == 27 and {a["epochs"] for a in rung0} == {1}
    history += [TrialRecord(i, a) for i, a in enumerate(rung0)]
    assert hb.propose(history, 5) == []  # rung 0 still running: wait
    history = [TrialRecord(r.index, r.assignment, loss(r.assignment), True) for r in history]
    rung1 = hb.propose(history, 20)
    assert len(rung1) == 9 and {a["epochs"] for a in rung1} == {3}
    best9 = sorted(history, key=lambda r: r.loss)[:9]  # type: ignore[arg-type,return-value]
    assert [a["lr"] for a in rung1] == [r.assignment["lr"] for r in best9]
    history += [TrialRecord(27 + i, a, loss(a), True) for i, a in enumerate(rung1)]
    rung2 = hb.propose(history, 20)
    assert [a["epochs"] for a in rung2] == [9, 9, 9]
    history += [TrialRecord(36 + i, a, loss(a), True) for i, a in enumerate(rung2)]
    last = hb.propose(history, 1)
    assert last[0]["epochs"] == 27 and last[0]["lr"] == min(rung2, key=loss)["lr"]
    # Then the next bracket (s=2) starts with fresh configurations at 3 epochs.
    history += [TrialRecord(39, last[0], loss(last[0]), True)]
    nxt = hb.propose(history, 12)
    assert len(nxt) == 12 and {a["epochs"] for a in nxt} == {3}


def test_hyperband_failed_trials_are_never_promoted() -> None:
    hb = make_strategy("hyperband", SETTINGS, SPACE, seed=1)
    rung0 = hb.propose([], 27)
    history = [TrialRecord(i, a, None if i < 20 else loss(a), True) for i, a in enumerate(rung0)]
    promoted = {a["lr"] for a in hb.propose(history, 9)}
    assert {a["lr"] for a in rung0[20:]} <= promoted  # all 7 succeeded ones go up, failures fill the rest


@pytest.mark.parametrize("settings, message", [
    ({"resource_name": "steps", "max_resource": 27}, "'steps' is not a parameter"),
    ({"resource_name": "epochs", "max_resource": 81}, "must lie within"),
    ({"resource_name": "epochs", "max_resource": 2, "reduction_factor": 1.2}, "repeat after rounding"),
])
def test_hyperband_rejects_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_strategy("hyperband", settings, SPACE, seed=0)


def test_hyperband_accepts_katib_setting_names() -> None:
    hb = make_strategy("hyperband", {"resource_name": "epochs", "r_l": 9, "eta": 3}, SPACE, seed=0)
    assert {a["epochs"] for a in hb.propose([], 9)} == {1}


def asha(**settings: float):
    exp = experiment(earlyStopping={"name": "asha", "settings": settings})
    return exp, make_rule("asha", settings, exp.spec.objective)


def test_asha_stops_a_trial_outside_the_top_third_at_its_rung() -> None:
    exp, rule = asha(min_resource=1, reduction_factor=3)
    finished = [finished_trial(exp, i, curve) for i, curve in
                enumerate([[0.9, 0.5, 0.4, 0.3], [0.8, 0.6, 0.5, 0.45], [1.0, 0.7, 0.6, 0.5], [0.7, 0.4, 0.35, 0.2],
                           [1.1, 0.9, 0.8, 0.7]])]
    # At rung 3 (step 3) the finished values are 0.4, 0.5, 0.6, 0.35, 0.8; with one more, 6 values keep 2.
    decision = rule.check(running_trial(exp, 5, [0.9, 0.6, 0.45]), finished)
    assert decision is not None and decision.rule == "asha" and "rung step 3" in decision.message
    assert rule.check(running_trial(exp, 6, [0.9, 0.6, 0.36]), finished) is None  # second best: goes on
    # Between rungs the latest rung reached (1) decides: 0.75 is the 2nd best of 6 values there.
    assert rule.check(running_trial(exp, 7, [0.75]), finished) is None


def test_asha_lets_the_first_trials_run_and_respects_maximize() -> None:
    exp, rule = asha(min_resource=1, reduction_factor=3)
    one = [finished_trial(exp, 0, [0.1, 0.1])]
    assert rule.check(running_trial(exp, 1, [5.0, 5.0]), one) is None  # 2 values: nothing to judge
    exp = experiment(objective={"type": "maximize", "metricName": "loss"},
                     earlyStopping={"name": "asha", "settings": {}})
    rule = make_rule("asha", {}, exp.spec.objective)
    finished = [finished_trial(exp, i, [v]) for i, v in enumerate([0.9, 0.8, 0.7])]
    assert rule.check(running_trial(exp, 3, [0.95]), finished) is None
    assert rule.check(running_trial(exp, 4, [0.5]), finished) is not None


def test_asha_has_no_rung_at_max_resource() -> None:
    exp, rule = asha(min_resource=1, reduction_factor=2, max_resource=4)
    assert rule.rungs_up_to(10) == [1, 2]  # type: ignore[attr-defined]


def test_an_experiment_plans_hyperband_trials_and_waits_for_the_rung() -> None:
    from dial.engine.plan import plan
    from helpers import NOW, apply

    exp = experiment(
        algorithm={"name": "hyperband", "settings": {"resourceName": "layers", "maxResource": 4, "reductionFactor": 2}},
        parallelTrialCount=10, maxTrialCount=50)
    trials = apply(exp, [])
    # Bracket s=2 of resources 1, 2, 4: 4 configurations at layers=1 first.
    assert [t.spec.parameter_assignments["layers"] for t in trials] == [1, 1, 1, 1]
    assert plan(exp, trials, now=NOW).create == []  # they are pending: nothing more to start


def test_asha_ranks_against_running_trials_at_the_rung() -> None:
    exp, rule = asha(min_resource=1, reduction_factor=3)
    # Nothing has finished: three trials still running have all passed rung 1 (step 1).
    running = [running_trial(exp, i, curve) for i, curve in enumerate([[0.2, 0.1], [0.3, 0.2], [0.9]])]
    decision = rule.check(running[2], running[:2])
    assert decision is not None and "ranks 3 of 3" in decision.message
    assert rule.check(running[0], running[1:]) is None


def test_engine_keeps_only_the_best_third_of_running_trials_under_asha() -> None:
    exp = experiment(earlyStopping={"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 3}},
                     parallelTrialCount=3, maxTrialCount=3)
    trials = [running_trial(exp, i, curve) for i, curve in enumerate([[0.2, 0.1], [0.3, 0.2], [0.9]])]
    orders = plan(exp, trials, now=NOW).stop
    # At rung 1 the values are 0.2, 0.3, 0.9: with reduction_factor 3 only the best one goes on.
    assert [(o.name, o.reason) for o in orders] == [(trials[1].name, "asha"), (trials[2].name, "asha")]
