"""The planning step: proposals up to the parallelism and budget, stops, and why an experiment ends."""

from __future__ import annotations

import pytest

from dial.api import ExperimentPhase, TrialPhase
from dial.engine import plan
from dial.engine import reasons
from dial.engine.trials import finalize_trial
from dial.metrics.parsing import MetricPoint
from dial.engine import record_points

from helpers import NOW, apply, experiment, finished_trial, running_trial


def test_first_plan_fills_the_parallel_slots_with_distinct_named_trials() -> None:
    exp = experiment(parallelTrialCount=3, maxTrialCount=10)
    p = plan(exp, [], now=NOW)
    assert [c.name for c in p.create] == ["exp-0000", "exp-0001", "exp-0002"]
    assert len({tuple(c.assignment.items()) for c in p.create}) == 3
    assert p.finish is None and p.stop == []
    assert p.status.phase is ExperimentPhase.running and p.status.trials.pending == 3
    assert p.status.start_time == NOW


def test_plan_is_deterministic_for_the_same_history() -> None:
    exp = experiment(parallelTrialCount=2, maxTrialCount=6)
    trials = [finished_trial(exp, 0, [0.5], assignment={"lr": 0.01, "layers": 2})]
    assert plan(exp, trials, now=NOW).create == plan(exp, trials, now=NOW).create


def test_no_proposals_while_slots_are_busy_or_budget_is_used() -> None:
    exp = experiment(parallelTrialCount=2, maxTrialCount=3)
    trials = apply(exp, [])
    assert len(trials) == 2 and plan(exp, trials, now=NOW).create == []
    trials = [finished_trial(exp, 0, [1.0]), trials[1]]
    p = plan(exp, trials, now=NOW)
    assert [c.index for c in p.create] == [2]
    trials = apply(exp, trials)
    trials = [t if t.phase.is_terminal else finished_trial(exp, t.spec.index, [2.0]) for t in trials]
    p = plan(exp, trials, now=NOW)
    assert p.create == [] and p.finish is not None and p.finish.reason == reasons.MAX_TRIALS_REACHED
    assert p.status.phase is ExperimentPhase.succeeded and p.status.progress == "3/3"
    assert p.status.best_trial is not None and p.status.best_trial.name == "exp-0000"


def test_budget_reached_waits_for_running_trials_before_finishing() -> None:
    exp = experiment(parallelTrialCount=2, maxTrialCount=2)
    trials = [finished_trial(exp, 0, [1.0]), running_trial(exp, 1, [1.0])]
    p = plan(exp, trials, now=NOW)
    assert p.finish is None and p.create == [] and p.stop == []


def test_raising_max_trial_count_resumes_a_finished_experiment() -> None:
    trials = [finished_trial(experiment(), i, [1.0 + i]) for i in range(2)]
    assert plan(experiment(maxTrialCount=2), trials, now=NOW).finish is not None
    p = plan(experiment(maxTrialCount=4), trials, now=NOW)
    assert p.finish is None and [c.index for c in p.create] == [2, 3]


def test_goal_reached_finishes_and_stops_running_trials() -> None:
    exp = experiment(objective={"type": "minimize", "metricName": "loss", "goal": 0.1}, maxTrialCount=10)
    trials = [finished_trial(exp, 0, [0.5, 0.05]), running_trial(exp, 1, [0.7])]
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.reason == reasons.GOAL_REACHED and "exp-0000" in p.finish.message
    assert [(s.name, s.reason) for s in p.stop] == [("exp-0001", reasons.EXPERIMENT_FINISHED)]
    assert p.create == []


def test_too_many_failures_fail_the_experiment() -> None:
    exp = experiment(maxFailedTrialCount=1, maxTrialCount=10)
    trials = [finished_trial(exp, 0, [], phase=TrialPhase.failed)]
    assert plan(exp, trials, now=NOW).finish is None
    trials.append(finished_trial(exp, 1, [], phase=TrialPhase.failed))
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.phase is ExperimentPhase.failed
    assert p.finish.reason == reasons.MAX_FAILED_REACHED
    assert p.status.conditions[0].type == "Failed" and "more than maxFailedTrialCount 1" in p.status.conditions[0].message


def test_early_stopping_rule_orders_a_stop_once_and_keeps_it() -> None:
    exp = experiment(maxTrialCount=10, parallelTrialCount=1,
                     earlyStopping={"name": "threshold", "settings": {"max_value": 5}})
    trials = [running_trial(exp, 0, [1.0, 9.0])]
    p = plan(exp, trials, now=NOW)
    assert [(s.name, s.reason) for s in p.stop] == [("exp-0000", "threshold")]
    trials[0].status.stop_reason, trials[0].status.stop_message = p.stop[0].reason, p.stop[0].message
    # Applying the same plan again (a backend restarted) re-issues the same stop.
    assert [(s.name, s.reason) for s in plan(exp, trials, now=NOW).stop] == [("exp-0000", "threshold")]
    finalize_trial(exp, trials[0], exit_code=-15, now=NOW)
    assert trials[0].phase is TrialPhase.early_stopped and trials[0].status.reason == "threshold"
    assert trials[0].status.objective == 1.0  # what it observed is kept


def test_non_finite_objective_fails_the_trial_with_a_reason() -> None:
    exp = experiment()
    trial = running_trial(exp, 0, [1.0])
    record_points(exp, trial, [MetricPoint("loss", 2.0, float("nan")), MetricPoint("loss", 3.0, float("inf"))])
    assert trial.status.stop_reason is None  # the reader reports what it saw; the plan decides
    assert trial.status.non_finite_objective.describe() == "loss reported nan at step 2"
    [order] = plan(exp, [trial], now=NOW).stop
    assert (order.reason, order.message) == (reasons.OBJECTIVE_NOT_FINITE, "loss reported nan at step 2")
    trial.status.stop_reason, trial.status.stop_message = order.reason, order.message  # a backend applies it
    finalize_trial(exp, trial, exit_code=-15, now=NOW)
    assert trial.phase is TrialPhase.failed and "loss reported nan at step 2" in trial.status.message
    assert trial.status.observation("loss").curve[-1].value == 1.0  # earlier points kept, NaN not stored


def test_a_trial_that_exits_after_a_non_finite_objective_before_its_stop_lands_still_fails() -> None:
    exp = experiment(earlyStopping={"name": "medianstop"})
    trial = running_trial(exp, 0, [1.0])
    record_points(exp, trial, [MetricPoint("loss", 2.0, float("nan"))])
    finalize_trial(exp, trial, exit_code=0, now=NOW, ended_on_its_own=True)
    assert trial.phase is TrialPhase.failed and trial.status.reason == reasons.OBJECTIVE_NOT_FINITE
    assert trial.status.message == "loss reported nan at step 2"


def test_crash_and_missing_metrics_phases() -> None:
    exp = experiment()
    crashed = running_trial(exp, 0, [])
    finalize_trial(exp, crashed, exit_code=3, now=NOW, output_tail="Traceback\nZeroDivisionError: boom")
    assert crashed.phase is TrialPhase.failed and crashed.status.exit_code == 3
    assert "exit code 3" in crashed.status.message and "ZeroDivisionError: boom" in crashed.status.message
    silent = running_trial(exp, 1, [])
    finalize_trial(exp, silent, exit_code=0, now=NOW, output_tail="done")
    assert silent.phase is TrialPhase.metrics_unavailable and "without reporting loss" in silent.status.message


def test_suspend_stops_running_trials_and_they_do_not_use_the_budget() -> None:
    exp = experiment(suspend=True, maxTrialCount=2, parallelTrialCount=2)
    trials = [running_trial(exp, 0, [1.0]), running_trial(exp, 1, [])]
    p = plan(exp, trials, now=NOW)
    assert {s.reason for s in p.stop} == {reasons.SUSPENDED} and len(p.stop) == 2 and p.create == []
    assert p.status.phase is ExperimentPhase.suspended
    for trial, order in zip(trials, p.stop):
        trial.status.stop_reason = order.reason
        finalize_trial(exp, trial, exit_code=-15, now=NOW)
    resumed = plan(experiment(maxTrialCount=2, parallelTrialCount=2), trials, now=NOW)
    assert [c.index for c in resumed.create] == [2, 3]


def test_exhausted_grid_finishes_the_experiment() -> None:
    params = [{"name": "lr", "type": "discrete", "feasibleSpace": {"list": [0.1, 0.2]}},
              {"name": "layers", "type": "discrete", "feasibleSpace": {"list": [1]}}]
    exp = experiment(parameters=params, algorithm={"name": "grid"}, maxTrialCount=10)
    trials = apply(exp, [])
    assert len(trials) == 2
    trials = [finished_trial(exp, t.spec.index, [1.0], assignment=t.spec.parameter_assignments) for t in trials]
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.reason == reasons.SPACE_EXHAUSTED


def test_learning_curve_stays_bounded_and_keeps_latest() -> None:
    exp = experiment()
    trial = running_trial(exp, 0, [float(i) for i in range(1000)])
    obs = trial.status.observation("loss")
    assert len(obs.curve) <= 200 and obs.n_points == 1000
    assert obs.curve[0].step == 1.0 and obs.curve[-1].value == 999.0 and obs.min == 0.0


def gpu_experiment(**spec: object):
    exp = experiment(**spec)
    container = exp.spec.trial_template.job_spec["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 2}}
    return exp


def test_trial_past_max_trial_seconds_is_stopped_with_the_reason() -> None:
    from datetime import timedelta

    exp = experiment(maxTrialSeconds=60, maxTrialCount=5, parallelTrialCount=1)
    trial = running_trial(exp, 0, [1.0])
    trial.status.start_time = NOW - timedelta(seconds=61)
    p = plan(exp, [trial], now=NOW)
    assert [(s.name, s.reason) for s in p.stop] == [("exp-0000", reasons.TRIAL_DEADLINE)]
    trial.status.start_time = NOW - timedelta(seconds=59)
    assert plan(exp, [trial], now=NOW).stop == []


def test_max_trial_seconds_is_rendered_as_a_job_deadline_backstop() -> None:
    from dial.engine import render_job_spec

    exp = experiment(maxTrialSeconds=600)
    spec = render_job_spec(exp, "exp-0000", {"lr": 0.01, "layers": 2})
    assert spec["activeDeadlineSeconds"] == 630
    assert spec["template"]["spec"]["containers"][0]["command"][2:] == ["--lr=0.01", "--layers=2"]
    crashed = running_trial(exp, 0, [0.5])
    finalize_trial(exp, crashed, exit_code=None, now=NOW, failure_reason="DeadlineExceeded")
    assert crashed.phase is TrialPhase.early_stopped and crashed.status.reason == reasons.TRIAL_DEADLINE


def test_gpu_hours_and_wall_time_budgets_end_the_experiment() -> None:
    from datetime import timedelta

    exp = gpu_experiment(maxGpuHours=1.0, maxTrialCount=10)
    exp.status.start_time = NOW - timedelta(hours=2)
    done = finished_trial(exp, 0, [1.0])
    done.status.start_time, done.status.completion_time = NOW - timedelta(minutes=100), NOW - timedelta(minutes=80)
    running = running_trial(exp, 1, [2.0])
    running.status.start_time = NOW - timedelta(minutes=5)
    p = plan(exp, [done, running], now=NOW)
    # 2 GPUs x (20 + 5) minutes = 0.833 GPU-hours: still within budget.
    assert p.finish is None and p.status.budget.gpu_hours == pytest.approx(2 * 25 / 60, rel=1e-6)
    assert p.status.budget.gpus_per_trial == 2 and p.status.budget.elapsed_seconds == 7200
    running.status.start_time = NOW - timedelta(minutes=11)
    p = plan(exp, [done, running], now=NOW)
    assert p.finish is not None and p.finish.reason == "MaxGpuHoursReached"
    assert [s.name for s in p.stop] == ["exp-0001"] and p.create == []

    timed = experiment(maxExperimentSeconds=3600, maxTrialCount=10)
    timed.status.start_time = NOW - timedelta(seconds=3600)
    p = plan(timed, [], now=NOW)
    assert p.finish is not None and p.finish.reason == "MaxExperimentSecondsReached" and p.create == []


def test_a_finished_experiments_wall_clock_stops_at_its_completion() -> None:
    from datetime import timedelta

    from dial.api.experiment import ExperimentPhase

    exp = experiment(maxExperimentSeconds=60, maxTrialCount=10)
    exp.status.start_time = NOW - timedelta(seconds=60)
    finished = plan(exp, [], now=NOW)
    assert finished.finish is not None and finished.status.budget.elapsed_seconds == 60
    exp.status = finished.status
    assert exp.status.phase is ExperimentPhase.succeeded
    later = plan(exp, [], now=NOW + timedelta(hours=1))
    # Unchanged an hour later: the operator has nothing to rewrite on every resync.
    assert later.status.budget.elapsed_seconds == 60 and later.status == finished.status


def test_without_max_failed_trial_count_the_first_failures_fail_the_experiment() -> None:
    from dial.engine.plan import DEFAULT_FIRST_FAILURES

    exp = experiment(maxTrialCount=10, parallelTrialCount=1)
    trials = [finished_trial(exp, i, [], phase=TrialPhase.failed) for i in range(DEFAULT_FIRST_FAILURES - 1)]
    assert plan(exp, trials, now=NOW).finish is None
    trials.append(finished_trial(exp, DEFAULT_FIRST_FAILURES - 1, [], phase=TrialPhase.failed))
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.phase is ExperimentPhase.failed
    assert p.finish.reason == reasons.FIRST_TRIALS_FAILED and "maxFailedTrialCount" in p.finish.message
    assert p.status.phase is ExperimentPhase.failed and p.status.conditions[0].type == "Failed"


def test_failures_after_a_success_are_not_limited_by_default() -> None:
    exp = experiment(maxTrialCount=10, parallelTrialCount=1)
    trials = [finished_trial(exp, 0, [1.0])] + [finished_trial(exp, i, [], phase=TrialPhase.failed) for i in range(1, 6)]
    p = plan(exp, trials, now=NOW)
    assert p.finish is None and len(p.create) == 1


def test_an_experiment_whose_trials_all_failed_ends_failed_not_succeeded() -> None:
    # maxFailedTrialCount set high enough that the budget, not the failures, ends the run.
    exp = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=5)
    trials = [finished_trial(exp, 0, [], phase=TrialPhase.failed), finished_trial(exp, 1, [])]
    trials[1].status.phase = TrialPhase.metrics_unavailable  # exited 0 without the objective
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.phase is ExperimentPhase.failed
    assert p.finish.reason == reasons.NO_TRIAL_SUCCEEDED
    assert "no trial succeeded" in p.finish.message and reasons.MAX_TRIALS_REACHED in p.finish.message
    assert p.status.phase is ExperimentPhase.failed and p.status.conditions[0].reason == reasons.NO_TRIAL_SUCCEEDED


def test_one_success_among_failures_ends_succeeded() -> None:
    exp = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=5)
    trials = [finished_trial(exp, 0, [], phase=TrialPhase.failed), finished_trial(exp, 1, [0.5])]
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.phase is ExperimentPhase.succeeded


def test_a_trial_that_reported_the_final_step_is_not_stopped_by_a_rule() -> None:
    exp = experiment(maxTrialCount=10, parallelTrialCount=1,
                     earlyStopping={"name": "medianstop", "settings": {"min_trials_required": 2, "start_step": 2}})
    done = [finished_trial(exp, i, [1.0, 0.9, 0.8, 0.7]) for i in range(2)]
    worse = [5.0, 5.0, 5.0]
    assert [s.reason for s in plan(exp, [*done, running_trial(exp, 2, worse)], now=NOW).stop] == ["medianstop"]
    # Its fourth point is the succeeded trials' last step: it has finished training, whatever its value.
    at_end = running_trial(exp, 2, [*worse, 5.0])
    assert plan(exp, [*done, at_end], now=NOW).stop == []
    # The same history gives the same decision every time.
    assert plan(exp, [*done, at_end], now=NOW).stop == plan(exp, [*done, at_end], now=NOW).stop


def test_a_trial_that_exited_on_its_own_before_a_stop_reached_it_is_judged_by_its_output() -> None:
    exp = experiment()
    late = running_trial(exp, 0, [1.0, 0.5])
    late.status.stop_reason, late.status.stop_message = "threshold", "loss rose above max_value"
    finalize_trial(exp, late, exit_code=0, now=NOW, ended_on_its_own=True)
    assert late.phase is TrialPhase.succeeded and late.status.reason == reasons.TRAINING_SUCCEEDED
    stopped = running_trial(exp, 1, [1.0, 0.5])
    stopped.status.stop_reason = "threshold"
    finalize_trial(exp, stopped, exit_code=0, now=NOW)  # signalled, then exited 0: the stop did it
    assert stopped.phase is TrialPhase.early_stopped
    diverged = running_trial(exp, 2, [1.0])
    record_points(exp, diverged, [MetricPoint("loss", 2.0, float("inf"))])
    finalize_trial(exp, diverged, exit_code=0, now=NOW, ended_on_its_own=True)
    assert diverged.phase is TrialPhase.failed and diverged.status.reason == reasons.OBJECTIVE_NOT_FINITE


def test_a_missing_objective_says_what_the_output_held() -> None:
    from dial.metrics.parsing import MetricReader

    exp = experiment()
    reader = MetricReader(["loss"])
    reader.feed(["acc=0.9", "done"])
    silent = running_trial(exp, 0, [])
    finalize_trial(exp, silent, exit_code=0, now=NOW, output_tail="done", read=reader.summary())
    assert silent.status.message == ("training exited 0 without reporting loss (metrics seen: acc; 1 of 2 output "
                                     "lines held no metric); last output:\ndone")


def test_the_finish_names_objective_and_rule_metrics_no_trial_reported() -> None:
    exp = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=5,
                     objective={"type": "minimize", "metricName": "loss", "additionalMetricNames": ["val_loss"]},
                     earlyStopping={"name": "threshold", "settings": {"metric_name": "val_loss", "max_value": 9}})
    trials = [finished_trial(exp, i, [1.0]) for i in range(2)]
    p = plan(exp, trials, now=NOW)
    assert p.finish is not None and p.finish.message.endswith(
        "; no trial reported val_loss (earlyStopping threshold); metrics reported: loss")
    assert p.status.conditions[0].message == p.finish.message
    silent = [finished_trial(exp, i, []) for i in range(2)]
    p = plan(exp, silent, now=NOW)
    assert p.finish is not None and p.finish.message.endswith(
        "no trial reported loss (objective), val_loss (earlyStopping threshold); no metric was reported at all")


def test_a_threshold_on_a_metric_that_is_not_collected_is_refused() -> None:
    from dial.engine import validate_experiment

    exp = experiment(earlyStopping={"name": "threshold", "settings": {"metricName": "val_loss", "max_value": 9}})
    [error] = [str(e) for e in validate_experiment(exp)]
    assert error.startswith("spec.earlyStopping.settings.metric_name: 'val_loss' is not collected, so the rule "
                            "would never fire: add it to spec.objective.additionalMetricNames")
