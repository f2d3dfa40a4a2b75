"""`dial report` of a multi-objective experiment: the Pareto chart is on the page and draws in headless Chromium."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from chromium import chromium_available, render
from report_checks import assert_report_drew

from dial.api import Experiment, Trial, TrialPhase
from dial.engine import finalize_trial, new_trial, plan, record_points
from dial.metrics.parsing import MetricPoint
from dial.report import write_report
from dial.report.palette import DOMINATED_COLOR, FRONT_COLOR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from helpers import NOW, manifest  # noqa: E402

pytestmark = pytest.mark.slow
# (error, speed, lr, layers): four on the front (one a duplicate), three dominated.
RESULTS = [(0.10, 1.0, 0.01, 1), (0.30, 5.0, 0.3, 4), (0.20, 3.0, 0.05, 2), (0.30, 2.0, 0.2, 3),
           (0.20, 3.0, 0.06, 2), (0.25, 1.5, 0.1, 1), (0.40, 4.0, 0.5, 4)]
FRONT = ["exp-0000", "exp-0001", "exp-0002", "exp-0004"]


def multi_objective_run() -> tuple[Experiment, list[Trial]]:
    exp = Experiment.model_validate(manifest(objective={"objectives": [
        {"metricName": "error", "type": "minimize"}, {"metricName": "speed", "type": "maximize"}]}, maxTrialCount=7))
    trials = []
    for i, (error, speed, lr, layers) in enumerate(RESULTS):
        t = new_trial(exp, i, {"lr": lr, "layers": layers})
        t.status.phase = TrialPhase.running
        record_points(exp, t, [MetricPoint("error", 1.0, error + 0.1), MetricPoint("error", 2.0, error),
                               MetricPoint("speed", 2.0, speed)])
        finalize_trial(exp, t, exit_code=0, now=NOW)
        trials.append(t)
    exp.status = plan(exp, trials, now=NOW).status
    return exp, trials


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp, trials = multi_objective_run()
    path = tmp_path_factory.mktemp("pareto") / "report.html"
    files = write_report(exp, trials, path)
    assert files.pngs["pareto"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_the_page_has_the_pareto_chart_first_and_lists_the_front(report: Path) -> None:
    page = report.read_text()
    charts = json.loads(re.search(r"var charts = (\[.*?\]);\n", page, re.S).group(1).replace("<\\/", "</"))
    assert charts[0]["id"] == "pareto"
    series = {s["name"]: s for s in charts[0]["option"]["series"]}
    assert [d["name"] for d in series["Pareto front"]["data"]] == ["exp-0000", "exp-0002", "exp-0004", "exp-0001"]
    assert sorted(d["name"] for d in series["dominated"]["data"]) == ["exp-0003", "exp-0005", "exp-0006"]
    assert "objectives minimize <b>error</b>, maximize <b>speed</b>" in page
    assert "Pareto front <b>4</b> of 7 succeeded trials" in page
    table = page[page.index('<table id="top-trials"'):]
    assert re.findall(r'<td class="text">(exp-\d+)</td>', table) == ["exp-0000", "exp-0002", "exp-0004", "exp-0001"]
    assert "<th>error</th><th>speed</th>" in table


@pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (hack/install-chromium.sh)")
def test_the_pareto_chart_draws_in_headless_chromium(report: Path) -> None:
    exp, trials = multi_objective_run()
    page = render(report, report.parent / "screenshot.png")
    charts = re.search(r'data-charts-drawn="([^"]*)"', page.dom).group(1).split()  # type: ignore[union-attr]
    assert charts[0] == "pareto"
    assert_report_drew(page, exp, trials, charts)
    # One mark per front trial (the line adds one more), one per dominated trial, plus legend symbols.
    assert page.marks("pareto", colours=[FRONT_COLOR.lower()]) >= len(FRONT) + 1
    assert page.marks("pareto", colours=[DOMINATED_COLOR.lower()]) >= len(RESULTS) - len(FRONT)
