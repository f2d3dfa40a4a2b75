"""`kubectl dial` rendering on model objects: sparklines, durations, list and status views, flag parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import NOW, experiment, finished_trial, running_trial

from dial.api import Experiment, TrialPhase
from dial.engine import plan
from dial.engine.trials import finalize_trial
from dial.kubectl.cluster import budget_used
from dial.kubectl.main import build_parser
from dial.kubectl.views import SPARK_BLOCKS, age, experiments_table, render_text, sparkline, status_view


def test_sparkline_rises_with_a_rising_curve() -> None:
    line = sparkline([1, 2, 3, 4, 5, 6, 7, 8])
    assert line == SPARK_BLOCKS
    assert sparkline([8, 1]) == "█▁"


def test_sparkline_fits_a_long_curve_into_its_width() -> None:
    line = sparkline([float(i) for i in range(1000)], width=10)
    assert len(line) == 10 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)


@pytest.mark.parametrize("values, expected", [([], ""), ([3.0, 3.0, 3.0], "▅▅▅"), ([float("nan"), 1.0, 2.0], "▁█")])
def test_sparkline_edge_cases(values: list[float], expected: str) -> None:
    assert sparkline(values) == expected


@pytest.mark.parametrize("seconds, expected", [(None, ""), (5, "5s"), (90, "1m30s"), (120, "2m"), (1800, "30m"),
                                               (3900, "1h5m"), (86400, "24h"), (86400 * 3, "3d")])
def test_age_is_kubectl_style(seconds: float | None, expected: str) -> None:
    assert age(seconds) == expected


def _experiment_with_trials() -> tuple[Experiment, list]:
    exp = experiment(maxTrialCount=8, maxFailedTrialCount=2, parallelTrialCount=2)
    exp.metadata.namespace = "team-a"
    exp.status.start_time = NOW
    losses = [0.9, 0.4, 0.7, 0.2, 0.6, 0.8]
    trials = [finished_trial(exp, i, [1.0, v], assignment={"lr": 0.001 * (i + 1), "layers": i % 4 + 1})
              for i, v in enumerate(losses)]
    stopped = running_trial(exp, 6, [0.95, 0.93], assignment={"lr": 0.5, "layers": 1})
    stopped.status.stop_reason = "medianstop"
    finalize_trial(exp, stopped, exit_code=None, now=NOW)
    trials.append(stopped)
    trials.append(running_trial(exp, 7, [1.0, 0.8, 0.6, 0.5, 0.45], assignment={"lr": 0.05, "layers": 3}))
    exp.status = plan(exp, trials, now=NOW + timedelta(minutes=3)).status
    return exp, trials


def test_status_shows_phase_budget_best_top_trials_and_running_curves() -> None:
    exp, trials = _experiment_with_trials()
    text = render_text(status_view(exp, trials, NOW + timedelta(minutes=3)), width=140)
    assert "Experiment exp (team-a)  Running" in text
    assert "7/8 done" in text and "1 running" in text and "6 succeeded" in text and "1 early stopped" in text
    assert "budget: 8 of 8 trials started · 0 of 2 failures allowed · elapsed 3m · parallel 2" in text
    assert "best: exp-0003 loss=0.2 with lr=0.004, layers=4" in text
    top = text.split("top 5 of 7 finished trials")[1].split("1 running")[0]
    assert [line.split()[0] for line in top.strip().splitlines()[1:]] == [
        "exp-0003", "exp-0001", "exp-0004", "exp-0002", "exp-0005"]
    running = text.split("1 running\n")[-1]
    assert "exp-0007" in running and sparkline([1.0, 0.8, 0.6, 0.5, 0.45]) in running
    assert "exp-0006" not in running  # finished (EarlyStopped) trials have no live curve


def test_status_shows_time_and_gpu_budgets_when_set() -> None:
    exp, trials = _experiment_with_trials()
    exp.spec.max_experiment_seconds, exp.spec.max_gpu_hours, exp.spec.max_trial_seconds = 3600, 2.0, 600
    exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": 2}}
    for t in trials:
        t.status.start_time = NOW
        t.status.completion_time = NOW + timedelta(minutes=3) if t.phase.is_terminal else None
    text = render_text(status_view(exp, trials, NOW + timedelta(minutes=3)), width=160)
    # 8 trials x 3 minutes x 2 GPUs = 0.8 GPU-hours
    assert "elapsed 3m of 1h · 0.8 GPU-hours of 2 · 10m per trial · parallel 2" in text


def test_status_before_any_result_says_so() -> None:
    exp = experiment()
    text = render_text(status_view(exp, [], NOW))
    assert "Pending" in text and "best: none yet" in text and "top" not in text


def test_list_shows_each_experiment_with_its_namespace() -> None:
    a, _ = _experiment_with_trials()
    b = experiment()
    b.metadata.name, b.metadata.namespace = "other", "team-b"
    text = render_text(experiments_table([a, b], NOW, show_namespace=True))
    header, row_a, row_b = text.strip().splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PHASE", "PROGRESS", "RUNNING", "BEST", "ALGORITHM", "AGE"]
    assert row_a.split()[:6] == ["team-a", "exp", "Running", "7/8", "1", "0.2"]
    assert row_b.split()[:4] == ["team-b", "other", "Pending", "0/0"]


def test_budget_does_not_count_trials_cut_by_suspension() -> None:
    exp, trials = _experiment_with_trials()
    trials[-1].status.phase, trials[-1].status.reason = TrialPhase.early_stopped, "Suspended"
    assert budget_used(trials) == 7


@pytest.mark.parametrize("argv", [["-n", "ns1", "status", "x"], ["status", "x", "-n", "ns1"],
                                  ["status", "-n", "ns1", "x"]])
def test_namespace_flag_works_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.name, args.namespace) == ("status", "x", "ns1")


def test_flags_default_to_none_without_them() -> None:
    args = build_parser().parse_args(["logs", "exp-0001", "--tail", "5"])
    assert (args.namespace, args.kubeconfig, args.context, args.tail, args.follow) == (None, None, None, 5, False)


def test_the_plugin_executable_is_installed_with_the_package() -> None:
    from importlib.metadata import entry_points

    [script] = [e for e in entry_points(group="console_scripts") if e.name == "kubectl-dial"]
    assert script.value == "dial.kubectl.main:main"
    assert script.load() is __import__("dial.kubectl.main", fromlist=["main"]).main
