"""The report's charts as PNG images, drawn with matplotlib (headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dial.api.trial import TrialPhase  # noqa: E402
from dial.report.data import NO_OBJECTIVE_LABEL, ReportData  # noqa: E402
from dial.report.palette import (BEST_COLOR, CUT_MARKER_COLOR, DOMINATED_COLOR, FRONT_COLOR,  # noqa: E402
                                 OBJECTIVE_SCALE, PHASE_COLORS)

DPI = 110
_OBJECTIVE_CMAP = LinearSegmentedColormap.from_list("dial-objective", OBJECTIVE_SCALE)


def write_pngs(data: ReportData, directory: Path, stem: str) -> dict[str, Path]:
    """Chart name -> PNG written; charts without data to show (e.g. importance of 2 trials) are left out."""
    directory.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[[ReportData], Figure | None]] = {
        "pareto": pareto_figure, "history": history_figure, "curves": curves_figure, "importance": importance_figure,
        "slices": slices_figure, "parallel": parallel_figure,
    }
    written = {}
    for name, draw in drawers.items():
        figure = draw(data)
        if figure is None:
            continue
        path = directory / f"{stem}-{name}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(figure)
        written[name] = path
    return written


def _phase_legend(ax: plt.Axes, phases: set[TrialPhase]) -> None:
    for phase in TrialPhase:
        if phase in phases:
            ax.scatter([], [], color=PHASE_COLORS[phase], label=phase.value)


MAX_REASON_LABELS = 30


def history_figure(data: ReportData) -> Figure | None:
    if not data.history_by_index and not data.history_marks:
        return None
    figure, (by_index, by_time) = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, points, x_of, xlabel in (
        (by_index, data.history_by_index, lambda p: p.index, "trial index"),
        (by_time, data.history_by_time, lambda p: p.elapsed_s, "seconds since the experiment started"),
    ):
        ax.scatter([x_of(p) for p in points], [p.objective for p in points],
                   c=[PHASE_COLORS[p.phase] for p in points], s=28, zorder=3)
        marks = [m for m in data.history_marks if x_of(m) is not None]
        floor = ax.get_xaxis_transform()  # x in data, y in axes coordinates: no objective, so no y
        if marks:
            ax.scatter([x_of(m) for m in marks], [0.03] * len(marks), transform=floor, marker="x",
                       c=[PHASE_COLORS[m.phase] for m in marks], s=40, zorder=3, label=NO_OBJECTIVE_LABEL)
        stopped = [p for p in points if p.reason]
        if len(marks) + len(stopped) <= MAX_REASON_LABELS:  # beyond that the labels hide the points
            for m in marks:
                ax.annotate(m.reason or m.phase.value, (x_of(m), 0.03), xycoords=floor, xytext=(3, 4),
                            textcoords="offset points", fontsize=7, rotation=90, color=PHASE_COLORS[m.phase])
            for p in stopped:
                ax.annotate(p.reason, (x_of(p), p.objective), xytext=(4, 3), textcoords="offset points", fontsize=7,
                            color=PHASE_COLORS[p.phase])
        best = [(x_of(p), p.best_so_far) for p in points if p.best_so_far is not None]
        if best:
            ax.step([x for x, _ in best], [b for _, b in best], where="post", color=BEST_COLOR, label="best so far")
        if data.goal is not None:
            ax.axhline(data.goal, color="#888", linestyle=":", label=f"goal {data.goal:g}")
        _phase_legend(ax, {p.phase for p in points})
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{data.metric} ({data.direction})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    by_index.set_title("Optimisation history by trial")
    by_time.set_title("Optimisation history by time")
    return figure


def pareto_figure(data: ReportData) -> Figure | None:
    """The first two objectives of the succeeded trials, the front joined and highlighted."""
    if not data.pareto:
        return None
    (x_name, x_dir), (y_name, y_dir) = data.objectives[:2]
    figure, ax = plt.subplots(figsize=(7.5, 5))
    dominated = [p.values for p in data.pareto if not p.on_front]
    if dominated:
        ax.scatter([v[0] for v in dominated], [v[1] for v in dominated], s=26, color=DOMINATED_COLOR, label="dominated")
    front = sorted((p.values for p in data.pareto_front), key=lambda v: (v[0], v[1]))
    ax.plot([v[0] for v in front], [v[1] for v in front], "--o", color=FRONT_COLOR, markersize=7,
            label=f"Pareto front ({len(front)} trials)")
    ax.set_xlabel(f"{x_name} ({x_dir})")
    ax.set_ylabel(f"{y_name} ({y_dir})")
    ax.set_title(f"Pareto front: {y_name} against {x_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def curves_figure(data: ReportData) -> Figure | None:
    if not data.curves:
        return None
    figure, ax = plt.subplots(figsize=(12, 4.8))
    for curve in data.curves:
        ax.plot(curve.steps, curve.values, color=PHASE_COLORS[curve.phase], alpha=0.75, linewidth=1.3)
        if curve.cut:
            ax.scatter([curve.steps[-1]], [curve.values[-1]], marker="x", s=60, color=CUT_MARKER_COLOR, zorder=4)
    for phase in TrialPhase:
        if any(c.phase is phase for c in data.curves):
            ax.plot([], [], color=PHASE_COLORS[phase], label=phase.value)
    if any(c.cut for c in data.curves):
        ax.scatter([], [], marker="x", color=CUT_MARKER_COLOR, label="cut by the stop rule")
    if data.curves_on_log_scale:
        ax.set_yscale("log")
    ax.set_title(f"Learning curves ({len(data.curves)} trials)")
    ax.set_xlabel("step")
    ax.set_ylabel(data.metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def importance_figure(data: ReportData) -> Figure | None:
    ranking = data.importance.ranking
    if not ranking:
        return None
    figure, ax = plt.subplots(figsize=(8, 0.6 + 0.45 * len(ranking)))
    names, shares = [n for n, _ in reversed(ranking)], [s for _, s in reversed(ranking)]
    ax.barh(names, shares, color=OBJECTIVE_SCALE[2])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of {data.metric}'s variation ({data.importance.n_trials} trials)")
    ax.set_title("Parameter importance")
    ax.grid(axis="x", alpha=0.3)
    return figure


def slices_figure(data: ReportData) -> Figure | None:
    scored = data.scored_trials
    if not scored or not data.slice_parameters:
        return None
    n = len(data.slice_parameters)
    figure, axes = plt.subplots(1, n, figsize=(4.6 * n, 4), squeeze=False)
    for ax, name in zip(axes[0], data.slice_parameters):
        axis = data.axis(name)
        xs = [axis.position(t.parameters[name]) for t in scored if name in t.parameters]
        ys = [t.objective for t in scored if name in t.parameters]
        ax.scatter(xs, ys, c=[PHASE_COLORS[t.phase] for t in scored if name in t.parameters], s=28)
        if axis.log:
            ax.set_xscale("log")
        if not axis.numeric:
            ax.set_xticks(range(len(axis.categories)), axis.categories, rotation=30)
        ax.set_xlabel(name + (" (log)" if axis.log else ""))
        ax.set_ylabel(data.metric)
        ax.grid(alpha=0.3)
    figure.suptitle(f"{data.metric} against the most important parameters")
    return figure


def parallel_figure(data: ReportData) -> Figure | None:
    """Each axis scaled to [0, 1] (in log space for log parameters); line colour is the objective."""
    scored = data.scored_trials
    if not scored:
        return None
    columns, labels = [], []
    for axis in data.parameters:
        values = np.array([axis.position(t.parameters.get(axis.name, float("nan"))) for t in scored], dtype=float)
        columns.append(np.log10(values) if axis.log else values)
        labels.append(axis.name + (" (log)" if axis.log else ""))
    objective = np.array([t.objective for t in scored], dtype=float)
    columns.append(objective)
    labels.append(data.metric)
    matrix = np.column_stack(columns)
    low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
    scaled = (matrix - low) / np.where(high > low, high - low, 1.0)
    goodness = objective if data.direction == "maximize" else -objective
    norm = Normalize(goodness.min(), goodness.max() if goodness.max() > goodness.min() else goodness.min() + 1)
    figure, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(labels)), 4.6))
    order = np.argsort(goodness)  # best drawn last, on top
    for i in order:
        ax.plot(range(len(labels)), scaled[i], color=_OBJECTIVE_CMAP(norm(goodness[i])), alpha=0.85)
    for x, (lo, hi) in enumerate(zip(low, high)):
        ax.axvline(x, color="#444", linewidth=0.8)
        ax.annotate(_axis_value(data, x, lo), (x, -0.04), ha="center", va="top", fontsize=8)
        ax.annotate(_axis_value(data, x, hi), (x, 1.04), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    colours = plt.cm.ScalarMappable(norm=norm, cmap=_OBJECTIVE_CMAP)
    bar = figure.colorbar(colours, ax=ax, pad=0.02)
    bar.set_label(f"{data.metric}" + ("" if data.direction == "maximize" else " (negated: higher is better)"))
    ax.set_title("Parallel coordinates (colour: better is brighter)", pad=18)
    return figure


def _axis_value(data: ReportData, column: int, value: float) -> str:
    if column < len(data.parameters):
        axis = data.parameters[column]
        if not axis.numeric:
            return axis.categories[int(value)] if axis.categories else ""
        if axis.log:
            return f"{10 ** value:.3g}"
    return f"{value:.4g}"
