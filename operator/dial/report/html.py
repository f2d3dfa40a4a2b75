"""The self-contained HTML page: summary, interactive ECharts charts (vendored, inline) and the top-trials table."""

from __future__ import annotations

import html
import json
from importlib import resources
from string import Template

from dial.report.data import ReportData, TrialRow
from dial.report.echarts_options import ChartSpec, chart_specs

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dial report">
<title>$title</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 16px; margin: 28px 0 6px; }
.summary { color: #444; }
.summary b { color: #111; }
.note { color: #777; font-style: italic; }
.chart { width: 100%; border: 1px solid #e4e4e4; border-radius: 4px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f6f6f6; }
td.text, th.text { text-align: left; }
tr.best td { font-weight: 600; background: #f1faf1; }
#report-errors { color: #b00; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="summary">$summary</p>
$sections
<h2>$table_title</h2>
$table
$unscored
<pre id="report-errors"></pre>
<script>
// Any script error is shown on the page (and counted by the headless-browser test).
window.addEventListener("error", function (e) {
  document.getElementById("report-errors").textContent += "error: " + e.message + "\\n";
});
</script>
<script>$echarts</script>
<script>
(function () {
  var charts = $charts;
  var drawn = [];
  charts.forEach(function (c) {
    try {
      var chart = echarts.init(document.getElementById(c.id), null, {renderer: "svg"});
      chart.setOption(c.option);
      window.addEventListener("resize", function () { chart.resize(); });
      drawn.push(c.id);
    } catch (err) {
      document.getElementById("report-errors").textContent += c.id + ": " + err + "\\n";
      console.error("dial report: chart " + c.id + " failed: " + err);
    }
  });
  document.body.setAttribute("data-charts-drawn", drawn.join(" "));
})();
</script>
</body>
</html>
""")


def render_html(data: ReportData) -> str:
    """The whole page as one string; it loads nothing from the network."""
    specs = chart_specs(data)
    charts_json = json.dumps([{"id": s.id, "option": s.option} for s in specs], allow_nan=False)
    return _PAGE.substitute(
        title=html.escape(f"Dial report: {data.experiment}"),
        summary=_summary(data),
        sections="\n".join(_section(s) for s in specs) + _notes(data),
        table_title="Pareto front" if data.objectives else "Top trials",
        table=top_trials_table(data),
        unscored=unscored_trials_table(data),
        echarts=_echarts_source(),
        charts=charts_json.replace("</", "<\\/"),  # keep `</script>` in a trial name from ending the script
    )


def _echarts_source() -> str:
    return resources.files("dial.report").joinpath("assets/echarts.min.js").read_text(encoding="utf-8")


def _section(spec: ChartSpec) -> str:
    return (f'<h2>{html.escape(spec.title)}</h2>\n'
            f'<div class="chart" id="{html.escape(spec.id)}" style="height:{spec.height}px"></div>')


def _notes(data: ReportData) -> str:
    notes = []
    if data.importance.note:
        notes.append(f"Parameter importance not shown: {data.importance.note}.")
    elif data.importance.ranking:
        notes.append(f"Parameter importance: {data.importance.method}, from {data.importance.n_trials} trials.")
    if len(data.objectives) > 2:
        notes.append(f"The Pareto chart shows the first two of {len(data.objectives)} objectives; "
                     "a trial is on the front by all of them.")
    if not data.curves:
        notes.append(f"No learning curves: no trial reported {data.metric} more than once.")
    return "".join(f'\n<p class="note">{html.escape(n)}</p>' for n in notes)


def _summary(data: ReportData) -> str:
    parts = [
        f"<b>{html.escape(data.phase)}</b>" + (f" ({html.escape(data.condition)})" if data.condition else ""),
        f"progress <b>{html.escape(data.progress)}</b>",
        _objective_summary(data),
        f"algorithm <b>{html.escape(data.algorithm)}</b>",
    ]
    if data.early_stopping:
        parts.append(f"early stopping <b>{html.escape(data.early_stopping)}</b>")
    if data.phase_counts:
        parts.append(", ".join(f"{n} {html.escape(k)}" for k, n in data.phase_counts.items()))
    if data.objectives:
        parts.append(f"Pareto front <b>{len(data.pareto_front)}</b> of {len(data.pareto)} succeeded trials")
    if data.best is not None:
        parts.append(f"best <b>{html.escape(data.best.name)}</b>: {data.metric}={data.best.objective:.6g} "
                     f"with {html.escape(_params(data.best))}")
    if data.namespace:
        parts.insert(0, f"namespace <b>{html.escape(data.namespace)}</b>")
    return " · ".join(parts)


def _objective_summary(data: ReportData) -> str:
    if data.objectives:
        return "objectives " + ", ".join(f"{d} <b>{html.escape(m)}</b>" for m, d in data.objectives)
    return f"{data.direction} <b>{html.escape(data.metric)}</b>" + (f", goal {data.goal:g}" if data.goal is not None else "")


def _params(row: TrialRow) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in row.parameters.items())


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def top_trials_table(data: ReportData) -> str:
    """The best trials first (by objective, whatever their phase), with parameters, duration and phase."""
    if not data.top_trials:
        why = f" The experiment ended {data.phase}: {data.condition}." if data.phase in ("Failed", "Succeeded") else ""
        return f'<p class="note" id="no-objective">No trial has an objective yet.{html.escape(why)}</p>'
    names = [a.name for a in data.parameters]
    metrics = [m for m, _ in data.objectives] or [data.metric]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*names, *metrics, "seconds"])
    rows = []
    for rank, t in enumerate(data.top_trials, start=1):
        best = ' class="best"' if data.best is not None and t.name == data.best.name else ""
        values = t.objectives or {data.metric: t.objective}
        cells = [*[_fmt(t.parameters.get(n)) for n in names], *[_fmt(values.get(m)) for m in metrics],
                 "" if t.duration_s is None else f"{t.duration_s:.1f}"]
        rows.append(f'<tr{best}><td>{rank}</td><td class="text">{html.escape(t.name)}</td>'
                    + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + f'<td class="text">{html.escape(t.phase.value)}</td>'
                    + f'<td class="text">{html.escape(t.reason or "")}</td></tr>')
    return (f'<table id="top-trials"><thead><tr><th>#</th><th class="text">trial</th>{head}<th class="text">phase</th>'
            f'<th class="text">reason</th></tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table>")


def unscored_trials_table(data: ReportData) -> str:
    """Failed trials, and trials stopped before reporting, with why (the first line of their message)."""
    rows = data.unscored_trials
    if not rows:
        return ""
    body = "\n".join(
        f'<tr><td class="text">{html.escape(t.name)}</td><td class="text">{html.escape(t.phase.value)}</td>'
        f'<td class="text">{html.escape(t.reason or "")}</td>'
        f'<td class="text">{html.escape((t.message or "").splitlines()[0] if t.message else "")}</td></tr>'
        for t in rows)
    return (f"<h2>Trials without a result ({len(rows)})</h2>\n"
            '<table id="unscored-trials"><thead><tr><th class="text">trial</th><th class="text">phase</th>'
            '<th class="text">reason</th><th class="text">why</th></tr></thead>\n<tbody>\n'
            f"{body}\n</tbody></table>")
