"""`dial report`: data shaping, importance, chart options and the page, on hand-built trials."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from helpers import NOW, experiment

from dial.api import Experiment, Trial, TrialPhase
from dial.cli import main as dial_main
from dial.engine import finalize_trial, new_trial, record_points
from dial.metrics.parsing import MetricPoint
from dial.report import build_report_data, write_report
from dial.report.echarts_options import chart_specs
from dial.report.html import render_html

ASSETS = Path(__file__).resolve().parents[2] / "operator" / "dial" / "report" / "assets"


def trial(exp: Experiment, index: int, curve: list[float], *, assignment: dict, stopped: bool = False,
          failed: bool = False, start_s: float = 0.0, seconds: float = 10.0) -> Trial:
    """A finished trial whose curve was reported step by step; `stopped` as a stop rule would cut it."""
    t = new_trial(exp, index, assignment)
    t.status.phase = TrialPhase.running
    t.status.start_time = NOW + timedelta(seconds=start_s)
    metric = exp.spec.objective.metric_name
    record_points(exp, t, [MetricPoint(metric, float(i + 1), v) for i, v in enumerate(curve)])
    if stopped:
        t.status.stop_reason, t.status.stop_message = "medianstop", "below the median"
    finalize_trial(exp, t, exit_code=1 if failed else 0, now=NOW + timedelta(seconds=start_s + seconds))
    return t


def minimize_experiment() -> Experiment:
    exp = experiment()
    exp.status.start_time = NOW
    return exp


def test_best_so_far_counts_succeeded_trials_only() -> None:
    exp = minimize_experiment()
    trials = [
        trial(exp, 0, [0.9, 0.5], assignment={"lr": 0.01, "layers": 1}),
        trial(exp, 1, [0.1], assignment={"lr": 0.1, "layers": 2}, stopped=True),
        trial(exp, 2, [0.8, 0.3], assignment={"lr": 0.2, "layers": 3}),
    ]
    data = build_report_data(exp, trials)
    assert [p.objective for p in data.history_by_index] == [0.5, 0.1, 0.3]
    assert [p.best_so_far for p in data.history_by_index] == [0.5, 0.5, 0.3]
    assert data.best is not None and data.best.name == "exp-0002"


def test_history_by_time_follows_completion_order() -> None:
    exp = minimize_experiment()
    trials = [
        trial(exp, 0, [0.4], assignment={"lr": 0.01, "layers": 1}, start_s=0, seconds=30),
        trial(exp, 1, [0.6], assignment={"lr": 0.1, "layers": 2}, start_s=0, seconds=5),
    ]
    data = build_report_data(exp, trials)
    assert [(p.trial, p.elapsed_s, p.best_so_far) for p in data.history_by_time] == [
        ("exp-0001", 5.0, 0.6), ("exp-0000", 30.0, 0.4)]


def test_curves_mark_early_stopped_trials_as_cut() -> None:
    exp = minimize_experiment()
    trials = [trial(exp, 0, [0.9, 0.7, 0.5], assignment={"lr": 0.01, "layers": 1}),
              trial(exp, 1, [0.95, 0.9], assignment={"lr": 0.5, "layers": 4}, stopped=True)]
    curves = {c.trial: c for c in build_report_data(exp, trials).curves}
    assert curves["exp-0000"].steps == [1.0, 2.0, 3.0] and not curves["exp-0000"].cut
    assert curves["exp-0001"].cut and curves["exp-0001"].reason == "medianstop"
    option = next(s.option for s in chart_specs(build_report_data(exp, trials)) if s.id == "curves")
    [cut_series] = [s for s in option["series"] if s["name"] == "cut by the stop rule"]
    assert [d["value"] for d in cut_series["data"]] == [[2.0, 0.9]]


def test_importance_ranks_the_parameter_the_objective_depends_on() -> None:
    exp = minimize_experiment()
    rng = np.random.default_rng(0)
    trials = []
    for i in range(24):
        lr, layers = float(10 ** rng.uniform(-3, 0)), int(rng.integers(1, 5))
        trials.append(trial(exp, i, [(np.log10(lr) + 1.5) ** 2], assignment={"lr": lr, "layers": layers}))
    data = build_report_data(exp, trials)
    ranking = dict(data.importance.ranking)
    assert ranking["lr"] > 0.8 > ranking["layers"]
    assert data.slice_parameters[0] == "lr"
    assert abs(sum(ranking.values()) - 1) < 1e-9


def test_importance_explains_why_it_is_missing_with_few_trials() -> None:
    exp = minimize_experiment()
    data = build_report_data(exp, [trial(exp, 0, [0.5], assignment={"lr": 0.01, "layers": 1})])
    assert data.importance.ranking == []
    assert "at least 4 trials" in (data.importance.note or "")
    assert "Parameter importance not shown: needs at least 4 trials" in render_html(data)


def test_top_trials_put_the_best_first_for_maximize() -> None:
    exp = experiment(objective={"type": "maximize", "metricName": "loss"})
    trials = [trial(exp, i, [v], assignment={"lr": 0.01 * (i + 1), "layers": 1}) for i, v in enumerate([0.2, 0.9, 0.5])]
    trials.append(trial(exp, 3, [], assignment={"lr": 0.5, "layers": 2}, failed=True))
    data = build_report_data(exp, trials)
    assert [t.name for t in data.top_trials] == ["exp-0001", "exp-0002", "exp-0000"]
    top = render_html(data).split('id="top-trials"')[1].split("</table>")[0]
    assert re.findall(r'<td class="text">(exp-\d+)</td>', top) == ["exp-0001", "exp-0002", "exp-0000"]


def test_log_parameters_get_log_axes_and_categories_a_category_axis() -> None:
    exp = experiment(parameters=[
        {"name": "lr", "type": "double", "feasibleSpace": {"min": 0.001, "max": 1, "scale": "log"}},
        {"name": "opt", "type": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
    ])
    trials = [trial(exp, i, [0.1 * (i + 1)], assignment={"lr": 0.001 * 10 ** (i % 3), "opt": ["adam", "sgd"][i % 2]})
              for i in range(6)]
    specs = {s.id: s.option for s in chart_specs(build_report_data(exp, trials))}
    assert specs["slice-lr"]["xAxis"]["type"] == "log"
    assert specs["slice-opt"]["xAxis"] == {**specs["slice-opt"]["xAxis"], "type": "category", "data": ["adam", "sgd"]}
    axes = {a["name"]: a for a in specs["parallel"]["parallelAxis"]}
    assert axes["lr"]["type"] == "log" and axes["opt"]["type"] == "category" and axes["loss"]["type"] == "value"
    assert [row["value"][1] for row in specs["parallel"]["series"][0]["data"]] == ["adam", "sgd"] * 3


def test_page_is_self_contained(tmp_path: Path) -> None:
    exp = minimize_experiment()
    trials = [trial(exp, i, [0.5 - 0.05 * i], assignment={"lr": 0.01 * (i + 1), "layers": i % 4 + 1}) for i in range(5)]
    page = render_html(build_report_data(exp, trials))
    echarts = (ASSETS / "echarts.min.js").read_text()
    assert echarts in page and len(echarts) > 1_000_000
    ours = page.replace(echarts, "")
    assert not re.search(r"<(script|img|link|iframe)\b[^>]*\b(src|href)=", ours), "the page must load nothing"
    assert ours.count("<script>") == 3 and "echarts.init" in ours


def test_write_report_writes_the_page_and_pngs_beside_it(tmp_path: Path) -> None:
    exp = minimize_experiment()
    trials = [trial(exp, i, [0.9, 0.5 - 0.05 * i], assignment={"lr": 0.01 * (i + 1), "layers": i % 4 + 1},
                    stopped=i == 3) for i in range(6)]
    files = write_report(exp, trials, tmp_path / "out" / "r.html")
    assert files.html.read_text().startswith("<!DOCTYPE html>")
    assert set(files.pngs) == {"history", "curves", "importance", "slices", "parallel"}
    for name, path in files.pngs.items():
        assert path == tmp_path / "out" / f"r-{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_report_of_trials_without_any_objective_draws_only_their_history(tmp_path: Path) -> None:
    exp = minimize_experiment()
    trials = [trial(exp, i, [], assignment={"lr": 0.1, "layers": 1}, failed=True) for i in range(2)]
    files = write_report(exp, trials, tmp_path / "r.html")
    assert set(files.pngs) == {"history"}  # the failures, where they happened; nothing to rank or slice
    assert "No trial has an objective yet." in files.html.read_text()


def test_vendored_echarts_matches_the_recorded_checksum() -> None:
    recorded = re.search(r"sha256 of `echarts.min.js`: `([0-9a-f]{64})`", (ASSETS / "README.md").read_text())
    assert recorded is not None
    assert hashlib.sha256((ASSETS / "echarts.min.js").read_bytes()).hexdigest() == recorded.group(1)
    assert (ASSETS / "ECHARTS_LICENSE").read_text().startswith("\n                                 Apache License") or \
        "Apache License" in (ASSETS / "ECHARTS_LICENSE").read_text()[:400]


@pytest.mark.parametrize("argv, message", [
    (["report"], "give a results directory or --experiment NAME"),
    (["report", "somewhere", "--experiment", "x"], "give a results directory or --experiment NAME"),
    (["report", "/nonexistent-dir"], "no results.json"),
])
def test_report_command_rejects_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dial_main(argv) == 2
    assert message in capsys.readouterr().err


def test_trials_reporting_one_value_have_no_learning_curve() -> None:
    exp = minimize_experiment()
    trials = [trial(exp, i, [0.5 + i], assignment={"lr": 0.01, "layers": 1}) for i in range(3)]
    data = build_report_data(exp, trials)
    assert data.curves == [] and len(data.history_by_index) == 3
    assert "curves" not in {s.id for s in chart_specs(data)}
    assert "No learning curves: no trial reported loss more than once." in render_html(data)


def test_curves_spanning_decades_get_a_log_axis() -> None:
    exp = minimize_experiment()
    falling = [trial(exp, 0, [30.0, 3.0, 0.3, 0.01], assignment={"lr": 0.05, "layers": 1})]
    data = build_report_data(exp, falling)
    assert data.curves_on_log_scale
    assert next(s.option for s in chart_specs(data) if s.id == "curves")["yAxis"]["type"] == "log"
    flat = build_report_data(exp, [trial(exp, 0, [0.9, 0.5], assignment={"lr": 0.05, "layers": 1})])
    assert not flat.curves_on_log_scale
    assert next(s.option for s in chart_specs(flat) if s.id == "curves")["yAxis"]["type"] == "value"


def test_an_all_failed_runs_report_says_why_and_lists_each_failure(tmp_path: Path) -> None:
    from dial.engine import plan

    exp = minimize_experiment()
    trials = [trial(exp, i, [], assignment={"lr": 0.1, "layers": 1}, failed=True) for i in range(3)]
    trials[0].status.message = "exit code 1; last output:\nCUDA out of memory"
    exp.status = plan(exp, trials, now=NOW).status
    page = write_report(exp, trials, tmp_path / "r.html").html.read_text()
    assert "No trial has an objective yet. The experiment ended Failed: FirstTrialsFailed: 3 trials failed" in page
    assert "<h2>Trials without a result (3)</h2>" in page
    assert ('<tr><td class="text">exp-0000</td><td class="text">Failed</td><td class="text">TrainingFailed</td>'
            '<td class="text">exit code 1; last output:</td></tr>') in page


def test_trials_with_results_are_not_listed_as_without(tmp_path: Path) -> None:
    exp = minimize_experiment()
    trials = [trial(exp, 0, [0.5, 0.4], assignment={"lr": 0.1, "layers": 1}, stopped=True),
              trial(exp, 1, [0.3], assignment={"lr": 0.2, "layers": 2})]
    assert "Trials without a result" not in render_html(build_report_data(exp, trials))


def test_history_charts_mark_failed_and_early_stopped_trials_with_their_reasons(tmp_path: Path) -> None:
    exp = minimize_experiment()
    trials = [trial(exp, 0, [0.9, 0.5], assignment={"lr": 0.01, "layers": 1}, seconds=10),
              trial(exp, 1, [0.95, 0.9], assignment={"lr": 0.5, "layers": 4}, stopped=True, seconds=20),
              trial(exp, 2, [], assignment={"lr": 0.2, "layers": 2}, failed=True, seconds=30)]
    trials[2].status.message = "exit code 3; last output:\nValueError: bad lr"
    data = build_report_data(exp, trials)
    assert [(m.trial, m.phase, m.reason, m.message, m.elapsed_s) for m in data.history_marks] == [
        ("exp-0002", TrialPhase.failed, "TrainingFailed", "exit code 3; last output:", 30.0)]
    stopped = next(p for p in data.history_by_index if p.trial == "exp-0001")
    assert stopped.phase is TrialPhase.early_stopped and stopped.reason == "medianstop"
    specs = {s.id: s.option for s in chart_specs(data)}
    for chart, x in (("history-index", 2), ("history-time", 30.0)):
        series = {s["name"]: s for s in specs[chart]["series"]}
        [mark] = series["no objective (failed or stopped before reporting)"]["data"]
        assert mark["name"] == "exp-0002 (Failed; TrainingFailed; exit code 3; last output:)"
        assert mark["value"] == [x, 0.03]
        assert [d["name"] for d in series["EarlyStopped"]["data"]] == ["exp-0001 (medianstop)"]
        assert [d["name"] for d in series["Succeeded"]["data"]] == ["exp-0000"]
    from dial.report.pngs import history_figure
    figure = history_figure(data)
    assert figure is not None
    by_index, by_time = figure.axes
    labels = {c.get_label() for c in by_index.collections}
    assert "no objective (failed or stopped before reporting)" in labels
    assert sorted(t.get_text() for t in by_index.texts) == ["TrainingFailed", "medianstop"]


def test_an_all_failed_runs_history_chart_shows_every_failure() -> None:
    exp = minimize_experiment()
    trials = [trial(exp, i, [], assignment={"lr": 0.1, "layers": 1}, failed=True) for i in range(3)]
    data = build_report_data(exp, trials)
    assert data.history_by_index == []
    option = next(s.option for s in chart_specs(data) if s.id == "history-index")
    [marks] = option["series"]
    assert [d["value"][0] for d in marks["data"]] == [0, 1, 2]
