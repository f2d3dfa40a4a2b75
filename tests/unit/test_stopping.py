"""Stop rules on hand-made learning curves."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dial.stopping import make_rule

from helpers import experiment, finished_trial, running_trial


def medianstop(**settings: int):
    exp = experiment(earlyStopping={"name": "medianstop", "settings": settings})
    return exp, make_rule("medianstop", settings, exp.spec.objective)


def test_medianstop_stops_a_trial_worse_than_the_median_of_running_averages() -> None:
    exp, rule = medianstop(min_trials_required=3, start_step=2)
    finished = [finished_trial(exp, i, curve) for i, curve in enumerate([[1.0, 0.8, 0.6], [0.9, 0.7, 0.5], [2.0, 1.5, 1.0]])]
    # Running averages at step 2: 0.9, 0.8, 1.75 -> median 0.9. Best so far 0.95 > 0.9: stop.
    decision = rule.check(running_trial(exp, 3, [1.2, 0.95]), finished)
    assert decision is not None and decision.rule == "medianstop"
    assert "0.95" in decision.message and "median 0.9" in decision.message
    # Best so far 0.85 beats the median: keep going.
    assert rule.check(running_trial(exp, 4, [1.2, 0.85]), finished) is None


def test_medianstop_waits_for_start_step_and_enough_finished_trials() -> None:
    exp, rule = medianstop(min_trials_required=3, start_step=3)
    finished = [finished_trial(exp, i, [0.1, 0.1, 0.1]) for i in range(3)]
    assert rule.check(running_trial(exp, 3, [5.0, 5.0]), finished) is None  # step 2 < start_step 3
    assert rule.check(running_trial(exp, 3, [5.0, 5.0, 5.0]), finished) is not None
    assert rule.check(running_trial(exp, 3, [5.0, 5.0, 5.0]), finished[:2]) is None  # 2 < min_trials_required


def test_medianstop_ignores_failed_trials_and_respects_maximize() -> None:
    exp = experiment(objective={"type": "maximize", "metricName": "loss"})
    rule = make_rule("medianstop", {"min_trials_required": 2, "start_step": 1}, exp.spec.objective)
    from dial.api import TrialPhase
    finished = [finished_trial(exp, 0, [0.9]), finished_trial(exp, 1, [0.8]),
                finished_trial(exp, 2, [0.0], phase=TrialPhase.failed)]
    assert finished[2].phase is TrialPhase.failed
    assert rule.check(running_trial(exp, 3, [0.5]), finished) is not None
    assert rule.check(running_trial(exp, 3, [0.95]), finished) is None


def test_threshold_stops_on_either_bound() -> None:
    exp = experiment()
    rule = make_rule("threshold", {"max_value": 10, "start_step": 2}, exp.spec.objective)
    assert rule.check(running_trial(exp, 0, [50.0]), []) is None  # before start_step
    decision = rule.check(running_trial(exp, 0, [1.0, 50.0]), [])
    assert decision is not None and "rose above max_value 10" in decision.message
    low = make_rule("threshold", {"min_value": 0.5}, exp.spec.objective)
    assert low.check(running_trial(exp, 0, [0.4]), []) is not None
    assert low.check(running_trial(exp, 0, [0.6]), []) is None


def test_threshold_needs_a_bound_and_rejects_unknown_settings() -> None:
    exp = experiment()
    with pytest.raises(ValidationError, match="min_value or max_value"):
        make_rule("threshold", {}, exp.spec.objective)
    with pytest.raises(ValidationError):
        make_rule("medianstop", {"min_trials": 3}, exp.spec.objective)
