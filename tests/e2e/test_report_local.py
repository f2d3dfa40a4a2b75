"""`dial report` on a real local run (scikit-learn digits, with early-stopped trials), opened in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import chromium_available, render
from report_checks import PHASE_PAINTS, assert_report_drew

from dial.api.trial import TrialPhase
from dial.local.results import load_results
from dial.report.palette import PHASE_COLORS

REPO = Path(__file__).resolve().parents[2]
DIAL = [sys.executable, "-m", "dial.cli"]
CHARTS = ["history-index", "history-time", "curves", "importance", "slice-C", "slice-gamma", "parallel"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `dial run` of examples/sklearn-digits (12 SVMs, median stop rule; about 10 s)."""
    output = tmp_path_factory.mktemp("digits") / "run"
    done = subprocess.run([*DIAL, "run", str(REPO / "examples/sklearn-digits/experiment.yaml"), "--output", str(output),
                           "--no-live"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return output


@pytest.fixture(scope="module")
def report(digits_run: Path) -> Path:
    done = subprocess.run([*DIAL, "report", str(digits_run)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {digits_run / 'report.html'} (12 trials)" in done.stdout
    return digits_run / "report.html"


def test_report_writes_page_and_every_png(report: Path) -> None:
    for chart in ("history", "curves", "importance", "slices", "parallel"):
        png = report.parent / f"report-{chart}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png
    page = report.read_text()
    for chart in CHARTS:
        assert f'id="{chart}"' in page
    charts = json.loads(re.search(r"var charts = (\[.*?\]);\n", page, re.S).group(1).replace("<\\/", "</"))
    assert [c["id"] for c in charts] == CHARTS


@pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (hack/install-chromium.sh)")
def test_every_chart_draws_in_headless_chromium(report: Path, digits_run: Path) -> None:
    experiment, trials = load_results(digits_run)
    stopped = [t for t in trials if t.phase is TrialPhase.early_stopped]
    assert stopped, "the digits example should early-stop some trials; the cut markers are part of what is checked"
    page = render(report, digits_run / "report-screenshot.png")
    assert_report_drew(page, experiment, trials, CHARTS)
    assert page.screenshot.stat().st_size > 50_000


@pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (hack/install-chromium.sh)")
def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The check above can fail: a page with a script error and an empty chart is reported as such."""
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><div id="curves" class="chart"></div>'
                      '<script>console.error("chart failed"); notAFunction();</script></body></html>')
    page = render(broken, tmp_path / "broken.png")
    assert any("chart failed" in line for line in page.console)
    assert any("notAFunction" in line for line in page.console)
    assert "<svg" not in page.element("curves")
    assert page.marks("curves", colours=PHASE_PAINTS) == 0


FAILING_HALF = """\
apiVersion: dial.dev/v1alpha1
kind: Experiment
metadata: {name: half-failing}
spec:
  objective: {type: minimize, metricName: loss}
  algorithm: {name: random}
  parallelTrialCount: 2
  maxTrialCount: 6
  maxFailedTrialCount: 6
  seed: 3
  parameters:
    - {name: x, type: double, feasibleSpace: {min: 0, max: 1}}
  trialTemplate:
    primaryContainerName: training
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training
                image: dial-worker:0.1.0
                # A real function of x; half of the space is refused, as a crashing training script would be.
                command: [python, -c, "import sys; x = float(sys.argv[1]); sys.exit('x too large') if x > 0.5 else print(f'loss={(x - 0.2) ** 2}')", "${trialParameters.x}"]
"""


@pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (hack/install-chromium.sh)")
def test_failed_trials_are_drawn_on_the_history_charts(tmp_path: Path) -> None:
    spec = tmp_path / "half-failing.yaml"
    spec.write_text(FAILING_HALF)
    run = subprocess.run([*DIAL, "run", str(spec), "--output", str(tmp_path / "run"), "--no-live"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    experiment, trials = load_results(tmp_path / "run")
    failed = [t for t in trials if t.phase is TrialPhase.failed]
    assert failed and len(failed) < len(trials), [t.phase for t in trials]
    done = subprocess.run([*DIAL, "report", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    charts = ["history-index", "history-time", "importance", "slice-x", "parallel"]
    page = render(tmp_path / "run" / "report.html", tmp_path / "screenshot.png")
    assert_report_drew(page, experiment, trials, charts)
    failed_paint = [PHASE_COLORS[TrialPhase.failed].lower()]
    for chart in ("history-index", "history-time"):  # one mark per failure plus its legend symbol
        assert page.marks(chart, colours=failed_paint) >= len(failed), chart
