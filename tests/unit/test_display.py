"""The live table of `dial run`: elapsed time, ETA, durations, and the rows that fit the terminal."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from dial.engine import plan
from dial.local.display import eta_seconds, shown_trials, trial_table

from helpers import NOW, experiment, finished_trial, running_trial


def timed(trial, start_s: float, end_s: float | None):  # type: ignore[no-untyped-def]
    trial.status.start_time = NOW + timedelta(seconds=start_s)
    trial.status.completion_time = NOW + timedelta(seconds=end_s) if end_s is not None else None
    return trial


def test_eta_is_the_mean_trial_duration_times_the_rounds_left() -> None:
    exp = experiment(maxTrialCount=6, parallelTrialCount=2)
    trials = [timed(finished_trial(exp, 0, [1.0]), 0, 60), timed(finished_trial(exp, 1, [2.0]), 0, 120),
              timed(running_trial(exp, 2, [1.0]), 120, None)]
    # mean 90 s; the running trial has 60 s to go (30 s in); 3 unstarted trials at 2 at once: 2 rounds.
    assert eta_seconds(exp, trials, NOW + timedelta(seconds=150)) == 60 + 2 * 90
    assert eta_seconds(exp, [], NOW) is None


def test_running_and_best_trials_stay_visible_and_the_rest_are_summarised() -> None:
    exp = experiment(maxTrialCount=30, parallelTrialCount=2)
    trials = [finished_trial(exp, i, [float(i)]) for i in range(20)] + [running_trial(exp, 20, [5.0])]
    exp.status = plan(exp, trials, now=NOW).status
    shown = [t.name for t in shown_trials(exp, trials, max_rows=6)]
    assert shown == ["exp-0000", "exp-0001", "exp-0002", "exp-0018", "exp-0019", "exp-0020"]
    table = trial_table(exp, trials, now=NOW + timedelta(seconds=90), max_rows=6)
    assert table.caption == "15 more trials not shown: 15 Succeeded"
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "elapsed 1m30s" in text and "best loss=0" in text and " time " in text
