"""`dial report`: an experiment's results as a self-contained HTML page with PNG charts beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from dial.api.experiment import Experiment
from dial.api.trial import Trial
from dial.report.data import ReportData, build_report_data


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: dict[str, Path] = field(default_factory=dict)


def write_report(experiment: Experiment, trials: Sequence[Trial], html_path: Path) -> ReportFiles:
    """Write the page to `html_path` and its charts as `<stem>-<chart>.png` in the same directory."""
    from dial.report.html import render_html
    from dial.report.pngs import write_pngs

    data = build_report_data(experiment, trials, seed=experiment.spec.seed)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(data), encoding="utf-8")
    return ReportFiles(html_path, write_pngs(data, html_path.parent, html_path.stem))


__all__ = ["ReportData", "ReportFiles", "build_report_data", "write_report"]
