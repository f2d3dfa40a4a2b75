"""What `kubectl dial` prints, built from API models only (no cluster access): list, status, sparklines."""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Sequence

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from dial.api.experiment import Experiment
from dial.api.trial import Trial, TrialPhase
from dial.engine.budget import usage
from dial.engine.front import front_trials
from dial.engine.plan import best_trial, count
from dial.kubectl.cluster import budget_used

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
N_TOP = 5
N_FRONT = 10
PROGRESS_BAR_WIDTH = 20
PHASE_STYLE = {
    TrialPhase.pending: "dim", TrialPhase.running: "cyan", TrialPhase.succeeded: "green",
    TrialPhase.failed: "red", TrialPhase.early_stopped: "yellow", TrialPhase.metrics_unavailable: "magenta",
}


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """One block character per bucket of the curve (bucket means), lowest value ▁, highest █."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:  # average consecutive runs so the whole curve fits in `width` cells
        edges = [round(i * len(finite) / width) for i in range(width + 1)]
        finite = [sum(finite[a:b]) / (b - a) for a, b in zip(edges, edges[1:])]
    low, high = min(finite), max(finite)
    if high == low:
        return SPARK_BLOCKS[len(SPARK_BLOCKS) // 2] * len(finite)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / (high - low) * top)] for v in finite)


def age(seconds: float | None) -> str:
    """kubectl-style short durations: 42s, 7m, 3h, 12d (7m30s and 2h5m while short)."""
    if seconds is None:
        return ""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3600:
        return f"{s // 60}m"
    if s < 36000:
        return f"{s // 3600}h{(s % 3600) // 60}m" if (s % 3600) // 60 else f"{s // 3600}h"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def experiments_table(experiments: Sequence[Experiment], now: datetime, *, show_namespace: bool = False) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    if show_namespace:
        table.add_column("NAMESPACE")
    for column in ("NAME", "PHASE", "PROGRESS", "RUNNING", "BEST", "ALGORITHM", "AGE"):
        table.add_column(column, justify="right" if column in ("RUNNING", "BEST") else "left")
    for e in experiments:
        status = e.status
        best = f"{status.best_objective:.6g}" if status.best_objective is not None else ""
        if e.spec.objective.is_multi and status.pareto_front_size is not None:
            best = f"front of {status.pareto_front_size}"
        created = e.metadata.model_extra.get("creationTimestamp") if e.metadata.model_extra else None
        row = [e.name, status.phase.value, status.progress, str(status.trials.running), best, e.spec.algorithm.name,
               age((now - _parse_time(created)).total_seconds()) if created else ""]
        table.add_row(*([e.metadata.namespace or ""] if show_namespace else []), *row)
    return table


def status_view(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> Group:
    """The compact view of `kubectl dial status`: header, budget, best trial, top trials, running curves."""
    spec, status = experiment.spec, experiment.status
    objective = spec.objective
    parts: list[RenderableType] = []
    condition = status.conditions[0] if status.conditions else None
    parts.append(Text.assemble(("Experiment ", "bold"), (experiment.name, "bold cyan"),
                               f" ({experiment.metadata.namespace or 'default'})  ", (status.phase.value, "bold")))
    if condition:
        parts.append(Text(f"{condition.reason}: {condition.message}"))
    targets = ", ".join(f"{t.type.value} {t.metric_name}" for t in objective.targets)
    parts.append(Text(f"objective{'s' if objective.is_multi else ''}: {targets}"
                      + (f" (goal {objective.goal:g})" if objective.goal is not None else "")
                      + f" · algorithm {spec.algorithm.name}"
                      + (f" · early stopping {spec.early_stopping.name}" if spec.early_stopping else "")
                      + (" · suspended" if spec.suspend else "")))
    parts.append(Text(_progress_line(experiment, trials)))
    parts.append(Text(_budget_line(experiment, trials, now)))
    if objective.is_multi:
        parts += _front_parts(experiment, trials, now)
        best = None
    elif (best := best_trial(experiment, trials)) is not None:
        parts.append(Text(f"best: {best.name} {objective.metric_name}={best.status.objective:.6g} with "
                          + ", ".join(f"{k}={_fmt(v)}" for k, v in best.spec.parameter_assignments.items()),
                          style="green"))
    elif status.best_trial is not None:
        parts.append(Text(f"best: {status.best_trial.name} {objective.metric_name}={status.best_trial.objective:.6g}",
                          style="green"))
    else:
        parts.append(Text("best: none yet", style="dim"))
    # Finished trials only: a running trial's objective is provisional (it has its own table below).
    scored = [t for t in trials if t.phase.is_terminal and t.status.objective is not None
              and math.isfinite(t.status.objective)]
    top = sorted(scored, key=lambda t: objective.loss(t.status.objective))[:N_TOP]  # type: ignore[arg-type]
    if top and not objective.is_multi:
        parts.append(Text(""))
        parts.append(_trials_table(f"top {len(top)} of {len(scored)} finished trials", experiment, top, now,
                                   best=best.name if best else None))
    running = [t for t in trials if t.phase is TrialPhase.running]
    if running:
        parts.append(Text(""))
        parts.append(_trials_table(f"{len(running)} running", experiment, running, now, curves=True))
    return Group(*parts)


def _front_parts(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> list[RenderableType]:
    """The Pareto front of a multi-objective experiment: from the trials, else from the status."""
    status = experiment.status
    on_front = front_trials(experiment, trials)
    if on_front:
        shown = sorted(on_front, key=lambda t: experiment.spec.objective.loss(t.status.objective))[:N_FRONT]  # type: ignore[arg-type]
        title = f"Pareto front: {len(on_front)} trials" + (f" (first {N_FRONT} shown)" if len(on_front) > N_FRONT else "")
        return [Text(""), _trials_table(title, experiment, shown, now)]
    if status.pareto_front:
        return [Text(f"Pareto front: {status.pareto_front_size} trials: "
                     + ", ".join(e.name for e in status.pareto_front), style="green")]
    return [Text("Pareto front: none yet", style="dim")]


def _progress_line(experiment: Experiment, trials: Sequence[Trial]) -> str:
    # Counted from the trials themselves: the experiment's status lags until the operator's next pass.
    counts = count(trials) if trials else experiment.status.trials
    done, total = counts.done, experiment.spec.max_trial_count
    filled = min(PROGRESS_BAR_WIDTH, round(PROGRESS_BAR_WIDTH * done / total)) if total else 0
    bar = "█" * filled + "░" * (PROGRESS_BAR_WIDTH - filled)
    pieces = [f"{n} {name}" for name, n in (("running", counts.running), ("pending", counts.pending),
                                            ("succeeded", counts.succeeded), ("failed", counts.failed),
                                            ("early stopped", counts.early_stopped),
                                            ("metrics unavailable", counts.metrics_unavailable)) if n]
    return f"progress: {bar} {done}/{total} done" + (f" · {', '.join(pieces)}" if pieces else "")


def _budget_line(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> str:
    """Every budget the experiment has and how much of it is spent (time and GPU-hours as the engine counts them)."""
    spec, status = experiment.spec, experiment.status
    parts = [f"budget: {budget_used(list(trials))} of {spec.max_trial_count} trials started"]
    if spec.max_failed_trial_count is not None:
        counts = count(trials) if trials else status.trials
        failed = counts.failed + counts.metrics_unavailable
        parts.append(f"{failed} of {spec.max_failed_trial_count} failures allowed")
    if status.start_time is not None:
        spent = usage(experiment, trials, status.completion_time or now)
        parts.append(f"elapsed {age(spent.elapsed_seconds)}"
                     + (f" of {age(spec.max_experiment_seconds)}" if spec.max_experiment_seconds else ""))
        if spec.max_gpu_hours is not None or spent.gpus_per_trial:
            parts.append(f"{spent.gpu_hours:.3g} GPU-hours"
                         + (f" of {spec.max_gpu_hours:g}" if spec.max_gpu_hours is not None else ""))
    if spec.max_trial_seconds is not None:
        parts.append(f"{age(spec.max_trial_seconds)} per trial")
    parts.append(f"parallel {spec.parallel_trial_count}")
    return " · ".join(parts)


def _trials_table(title: str, experiment: Experiment, trials: Sequence[Trial], now: datetime, *,
                  best: str | None = None, curves: bool = False) -> Table:
    spec = experiment.spec
    metric = spec.objective.primary.metric_name
    objective_names = [t.metric_name for t in spec.objective.targets]
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    table.add_column("TRIAL")
    table.add_column("PHASE")
    for p in spec.parameters:
        table.add_column(p.name, justify="right")
    for name in ([metric] if curves else objective_names):
        table.add_column(name, justify="right")
    if curves:
        table.add_column("STEPS", justify="right")
        table.add_column("CURVE")
    else:
        table.add_column("DURATION", justify="right")
    for t in trials:
        s = t.status
        observation = s.observation(metric)
        cells = [t.name, t.phase.value, *[_fmt(t.spec.parameter_assignments.get(p.name)) for p in spec.parameters]]
        if curves:
            cells += [_fmt(observation.latest if observation else None),
                      str(observation.n_points if observation else 0),
                      sparkline([p.value for p in observation.curve]) if observation else ""]
        else:
            duration = (s.completion_time or now) - s.start_time if s.start_time else None
            values = s.objectives or {metric: s.objective}
            cells += [*[_fmt(values.get(name)) for name in objective_names],
                      age(duration.total_seconds()) if duration is not None else ""]
        table.add_row(*cells, style="bold green" if t.name == best else PHASE_STYLE[t.phase])
    return table


def render_text(renderable: RenderableType, *, width: int = 120) -> str:
    """Plain text, no colour codes: for tests and for output that is not a terminal."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, legacy_windows=False).print(renderable)
    return out.getvalue()


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
