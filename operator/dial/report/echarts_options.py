"""The report's interactive charts as Apache ECharts option objects (plain JSON-able dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from dial.api.trial import TrialPhase
from dial.report.data import NO_OBJECTIVE_LABEL, HistoryMark, HistoryPoint, ReportData
from dial.report.palette import (BEST_COLOR, CUT_MARKER_COLOR, DOMINATED_COLOR, FRONT_COLOR, OBJECTIVE_SCALE,
                                 PHASE_COLORS)

Option = dict[str, Any]
Point = tuple[str, TrialPhase, "float | str", float]  # trial, phase, x, y


@dataclass(frozen=True)
class ChartSpec:
    """One chart on the page: its element id, heading, ECharts option and height in pixels."""

    id: str
    title: str
    option: Option
    height: int = 380


def chart_specs(data: ReportData) -> list[ChartSpec]:
    """Every chart the data can fill, in page order; charts without data are left out."""
    specs: list[ChartSpec] = []
    if data.pareto:
        (x_name, _), (y_name, _) = data.objectives[:2]
        specs.append(ChartSpec("pareto", f"Pareto front: {y_name} against {x_name}", _pareto(data), height=420))
    if data.history_by_index or data.history_marks:
        specs.append(ChartSpec("history-index", "Optimisation history by trial",
                               _history(data, data.history_by_index, data.history_marks, "index", "trial index")))
    timed_marks = [m for m in data.history_marks if m.elapsed_s is not None]
    if data.history_by_time or timed_marks:
        specs.append(ChartSpec("history-time", "Optimisation history by time",
                               _history(data, data.history_by_time, timed_marks, "elapsed_s", "seconds since start")))
    if data.curves:
        specs.append(ChartSpec("curves", "Learning curves", _curves(data), height=440))
    if data.importance.ranking:
        specs.append(ChartSpec("importance", "Parameter importance", _importance(data),
                               height=120 + 36 * len(data.importance.ranking)))
    if data.scored_trials:
        for name in data.slice_parameters:
            specs.append(ChartSpec(f"slice-{name}", f"{data.metric} against {name}", _slice(data, name), height=340))
        specs.append(ChartSpec("parallel", "Parallel coordinates", _parallel(data), height=420))
    return specs


def _base(x_name: str, y_name: str, *, x_type: str = "value", y_type: str = "value") -> Option:
    return {
        "animation": False,
        "grid": {"left": 70, "right": 30, "top": 50, "bottom": 55},
        "tooltip": {"trigger": "item"},
        "legend": {"top": 5},
        "xAxis": {"type": x_type, "name": x_name, "nameLocation": "middle", "nameGap": 30, "scale": True},
        "yAxis": {"type": y_type, "name": y_name, "nameLocation": "middle", "nameGap": 50, "scale": True},
        "series": [],
    }


def _phase_scatter(points: Sequence[Point]) -> list[Option]:
    series = []
    for phase in TrialPhase:
        items = [{"name": name, "value": [x, y]} for name, p, x, y in points if p is phase]
        if items:
            series.append({"name": phase.value, "type": "scatter", "symbolSize": 9, "data": items,
                           "itemStyle": {"color": PHASE_COLORS[phase]}})
    return series


def _history(data: ReportData, points: Sequence[HistoryPoint], marks: Sequence[HistoryMark], x_field: str,
             x_name: str) -> Option:
    option = _base(x_name, f"{data.metric} ({data.direction})")
    option["series"] = _phase_scatter([(_labelled(p.trial, p.reason), p.phase, getattr(p, x_field), p.objective)
                                       for p in points])
    if marks:
        # Trials without an objective have no y: they sit on the floor of a hidden 0..1 axis, one diamond each,
        # coloured by phase, with the reason and the first line of the message in the tooltip.
        option["yAxis"] = [option["yAxis"], {"type": "value", "min": 0, "max": 1, "show": False}]
        option["series"].append({
            "name": NO_OBJECTIVE_LABEL, "type": "scatter", "yAxisIndex": 1, "symbol": "diamond", "symbolSize": 12,
            "data": [{"name": _labelled(m.trial, "; ".join(x for x in (m.phase.value, m.reason, m.message) if x)),
                      "value": [getattr(m, x_field), 0.03], "itemStyle": {"color": PHASE_COLORS[m.phase]}}
                     for m in marks],
            "itemStyle": {"color": CUT_MARKER_COLOR}})
    best = [[getattr(p, x_field), p.best_so_far] for p in points if p.best_so_far is not None]
    if best:
        option["series"].append({"name": "best so far", "type": "line", "step": "end", "showSymbol": False,
                                 "data": best, "lineStyle": {"color": BEST_COLOR, "width": 2},
                                 "itemStyle": {"color": BEST_COLOR}})
    if data.goal is not None:
        option["series"].append({"name": "goal", "type": "line", "data": [], "itemStyle": {"color": "#888"},
                                 "markLine": {"symbol": "none", "data": [{"yAxis": data.goal}],
                                              "lineStyle": {"type": "dotted", "color": "#888"}}})
    return option


def _labelled(trial: str, reason: str | None) -> str:
    return f"{trial} ({reason})" if reason else trial


def _pareto(data: ReportData) -> Option:
    """Succeeded trials on the first two objectives; the front joined as a line (best end of each axis marked)."""
    (x_name, x_dir), (y_name, y_dir) = data.objectives[:2]
    option = _base(f"{x_name} ({x_dir})", f"{y_name} ({y_dir})")
    dominated = [{"name": p.trial, "value": [p.values[0], p.values[1]]} for p in data.pareto if not p.on_front]
    front = sorted(data.pareto_front, key=lambda p: (p.values[0], p.values[1]))
    if dominated:
        option["series"].append({"name": "dominated", "type": "scatter", "symbolSize": 8, "data": dominated,
                                 "itemStyle": {"color": DOMINATED_COLOR}})
    option["series"].append({"name": "Pareto front", "type": "line", "symbolSize": 11, "showSymbol": True,
                             "data": [{"name": p.trial, "value": [p.values[0], p.values[1]]} for p in front],
                             "lineStyle": {"color": FRONT_COLOR, "width": 1.5, "type": "dashed"},
                             "itemStyle": {"color": FRONT_COLOR}})
    return option


def _curves(data: ReportData) -> Option:
    option = _base("step", data.metric + (" (log scale)" if data.curves_on_log_scale else ""),
                   y_type="log" if data.curves_on_log_scale else "value")
    for curve in data.curves:
        # Series named after the phase share one legend entry, so a click hides a whole phase.
        option["series"].append({
            "name": curve.phase.value, "type": "line", "showSymbol": False, "emphasis": {"focus": "series"},
            "data": [{"name": curve.trial, "value": [s, v]} for s, v in zip(curve.steps, curve.values)],
            "lineStyle": {"color": PHASE_COLORS[curve.phase], "width": 1.4, "opacity": 0.8},
            "itemStyle": {"color": PHASE_COLORS[curve.phase]},
        })
    cuts = [{"name": f"{c.trial} ({c.reason or 'stopped'})", "value": [c.steps[-1], c.values[-1]]}
            for c in data.curves if c.cut]
    if cuts:
        option["series"].append({"name": "cut by the stop rule", "type": "scatter", "symbol": "triangle",
                                 "symbolSize": 12, "data": cuts, "itemStyle": {"color": CUT_MARKER_COLOR}})
    return option


def _importance(data: ReportData) -> Option:
    ranking = list(reversed(data.importance.ranking))  # ECharts draws category 0 at the bottom
    return {
        "animation": False,
        "grid": {"left": 120, "right": 40, "top": 20, "bottom": 45},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "min": 0, "max": 1, "name": "share of the objective's variation",
                  "nameLocation": "middle", "nameGap": 28},
        "yAxis": {"type": "category", "data": [name for name, _ in ranking]},
        "series": [{"name": "importance", "type": "bar", "data": [round(share, 4) for _, share in ranking],
                    "itemStyle": {"color": OBJECTIVE_SCALE[2]},
                    "label": {"show": True, "position": "right", "formatter": "{c}"}}],
    }


def _slice(data: ReportData, name: str) -> Option:
    axis = data.axis(name)
    scored = [t for t in data.scored_trials if name in t.parameters]
    if axis.numeric:
        option = _base(name + (" (log scale)" if axis.log else ""), data.metric, x_type="log" if axis.log else "value")
        points: list[Point] = [(t.name, t.phase, float(t.parameters[name]), t.score) for t in scored]
    else:
        option = _base(name, data.metric, x_type="category")
        option["xAxis"]["data"] = list(axis.categories)
        points = [(t.name, t.phase, str(t.parameters[name]), t.score) for t in scored]
    option["series"] = _phase_scatter(points)
    return option


def _parallel(data: ReportData) -> Option:
    axes: list[Option] = []
    for i, axis in enumerate(data.parameters):
        if axis.numeric:
            axes.append({"dim": i, "name": axis.name, "type": "log" if axis.log else "value", "scale": True})
        else:
            axes.append({"dim": i, "name": axis.name, "type": "category", "data": list(axis.categories)})
    objective_dim = len(data.parameters)
    axes.append({"dim": objective_dim, "name": data.metric, "type": "value", "scale": True})
    scored = data.scored_trials
    rows = [{"name": t.name, "value": [
        (t.parameters.get(a.name) if a.numeric or a.name not in t.parameters else str(t.parameters[a.name]))
        for a in data.parameters  # an inactive conditional parameter is a gap in the line
    ] + [t.score]} for t in scored]
    values = [t.score for t in scored]
    low, high = min(values), max(values)
    scale = OBJECTIVE_SCALE if data.direction == "maximize" else list(reversed(OBJECTIVE_SCALE))
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "parallel": {"left": 60, "right": 150, "top": 50, "bottom": 40},
        "parallelAxis": axes,
        "visualMap": {"type": "continuous", "dimension": objective_dim, "min": low, "max": high if high > low else low + 1,
                      "inRange": {"color": scale}, "right": 10, "top": "middle", "calculable": True, "precision": 3,
                      "text": [data.metric, ""]},
        "series": [{"name": "trials", "type": "parallel", "lineStyle": {"width": 2, "opacity": 0.8}, "data": rows}],
    }
