"""What a rendered `dial report` page must show, checked on the DOM that headless Chromium produced."""

from __future__ import annotations

import re
from typing import Sequence

from chromium import RenderedPage

from dial.api import Experiment, Trial, TrialPhase
from dial.report.palette import CUT_MARKER_COLOR, OBJECTIVE_SCALE, PHASE_COLORS

PHASE_PAINTS = [c.lower() for c in PHASE_COLORS.values()]


def assert_report_drew(page: RenderedPage, experiment: Experiment, trials: Sequence[Trial], charts: list[str]) -> None:
    """No console output or caught error; every chart drew an SVG with one data mark per trial it shows."""
    assert page.console == [], f"console output while rendering: {page.console}"
    assert '<pre id="report-errors"></pre>' in page.dom, "the page caught a script error"
    drawn = re.search(r'data-charts-drawn="([^"]*)"', page.dom)
    assert drawn is not None and drawn.group(1).split() == charts
    for chart in charts:
        assert "<svg" in page.element(chart), f"{chart}: no SVG drawn"
    scored = [t for t in trials if t.status.objective is not None]
    stopped = [t for t in trials if t.phase is TrialPhase.early_stopped]
    n_phases = len({t.phase for t in scored})  # each phase also has one legend symbol
    for chart in charts:
        if chart.startswith("history-") or chart.startswith("slice-"):
            assert page.marks(chart, colours=PHASE_PAINTS) >= len(scored) + n_phases, chart
    if "curves" in charts:
        with_curves = [t for t in trials if (o := t.status.observation(experiment.spec.objective.metric_name))
                       and len(o.curve) > 1]
        assert page.marks("curves", colours=PHASE_PAINTS) >= len(with_curves)
        assert page.marks("curves", colours=[CUT_MARKER_COLOR.lower()]) >= len(stopped)
    if "importance" in charts:
        assert page.marks("importance", colours=[OBJECTIVE_SCALE[2].lower()]) == len(experiment.spec.parameters)
    if "parallel" in charts:
        assert page.marks("parallel", colour_prefix="rgb(") >= len(scored)
