"""What `dial run` shows: a live table on a terminal, one line per event otherwise."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from typing import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dial.api.experiment import Experiment
from dial.api.trial import Trial, TrialPhase
from dial.engine import reasons
from dial.local.signals import silence_stdout

_PHASE_STYLE = {
    TrialPhase.pending: "dim", TrialPhase.running: "cyan", TrialPhase.succeeded: "green",
    TrialPhase.failed: "red", TrialPhase.early_stopped: "yellow", TrialPhase.metrics_unavailable: "magenta",
}
MAX_ROWS = 18
N_BEST_ROWS = 3  # the best trials stay visible however many have run
TABLE_CHROME_LINES = 7  # title, borders, header and caption around the rows


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _trial_seconds(trial: Trial, now: datetime) -> float | None:
    start = trial.status.start_time
    if start is None:
        return None
    return max(((trial.status.completion_time or now) - start).total_seconds(), 0.0)


def eta_seconds(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> float | None:
    """Time left if the remaining budget runs at the finished trials' mean duration, `parallelTrialCount` at once."""
    spec = experiment.spec
    done = [d for t in trials if t.phase.is_terminal and t.status.reason not in reasons.NOT_COUNTED
            and (d := _trial_seconds(t, now)) is not None]
    if not done:
        return None
    mean = sum(done) / len(done)
    left = max(spec.max_trial_count - len(done), 0)
    running = [_trial_seconds(t, now) or 0.0 for t in trials if not t.phase.is_terminal]
    # Running trials finish in about mean - elapsed; the rest run in rounds of parallelTrialCount.
    unstarted = max(left - len(running), 0)
    rounds = math.ceil(unstarted / spec.parallel_trial_count)
    now_part = max([max(mean - r, 0.0) for r in running], default=0.0)
    return now_part + rounds * mean


def shown_trials(experiment: Experiment, trials: Sequence[Trial], max_rows: int) -> list[Trial]:
    """The rows that fit: running trials, then the best few, then the latest finished ones."""
    best = experiment.status.best_trial
    front = {e.name for e in experiment.status.pareto_front or []}
    shown = [t for t in trials if not t.phase.is_terminal]
    objective = experiment.spec.objective
    scored = sorted((t for t in trials if t.phase is TrialPhase.succeeded and t.status.objective is not None),
                    key=lambda t: objective.loss(t.status.objective))  # type: ignore[arg-type]
    leaders = [t for t in trials if (best and t.name == best.name) or t.name in front] + scored[:N_BEST_ROWS]
    for t in [*leaders, *reversed(trials)]:
        if len(shown) >= max(max_rows, 1):
            break
        if t not in shown:
            shown.append(t)
    return sorted(shown, key=lambda t: t.spec.index)


def trial_table(experiment: Experiment, trials: Sequence[Trial], *, now: datetime | None = None,
                max_rows: int = MAX_ROWS) -> Table:
    spec, status = experiment.spec, experiment.status
    now = now or datetime.now(timezone.utc)
    best = status.best_trial
    front = {e.name for e in status.pareto_front or []}
    elapsed = ((status.completion_time or now) - status.start_time).total_seconds() if status.start_time else None
    eta = eta_seconds(experiment, trials, now) if status.phase.value not in ("Succeeded", "Failed") else None
    title = (f"{experiment.name}: {status.phase.value}  {status.progress} done, {status.trials.running} running"
             + (f"  elapsed {_duration(elapsed)}" if elapsed is not None else "")
             + (f"  ETA ~{_duration(eta)}" if eta is not None else "")
             + (f"  best {spec.objective.primary.metric_name}={best.objective:.6g} ({best.name})" if best else "")
             + (f"  Pareto front: {status.pareto_front_size} trials (bold)" if status.pareto_front_size else ""))
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("trial")
    table.add_column("phase")
    for p in spec.parameters:
        table.add_column(p.name, justify="right")
    for m in spec.objective.metric_names:
        table.add_column(m, justify="right")
    table.add_column("steps", justify="right")
    table.add_column("time", justify="right")
    table.add_column("reason")
    shown = shown_trials(experiment, trials, max_rows)
    for t in shown:
        obj = t.status.observation(spec.objective.primary.metric_name)
        style = "bold green" if (best and best.name == t.name) or t.name in front else _PHASE_STYLE[t.phase]
        table.add_row(
            t.name, t.phase.value,
            *[_fmt(t.spec.parameter_assignments.get(p.name)) for p in spec.parameters],
            *[_fmt(o.latest if (o := t.status.observation(m)) else None) for m in spec.objective.metric_names],
            str(obj.n_points if obj else 0), _duration(_trial_seconds(t, now)), t.status.reason or "", style=style)
    hidden = [t for t in trials if t not in shown]
    if hidden:
        counts: dict[str, int] = {}
        for t in hidden:
            counts[t.phase.value] = counts.get(t.phase.value, 0) + 1
        table.caption = f"{len(hidden)} more trials not shown: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    return table


class Display:
    def __init__(self, *, live: bool | None = None):
        self.console = Console()
        self.live_enabled = sys.stdout.isatty() if live is None else live
        self._live: Live | None = None
        self.output_closed = False

    def __enter__(self) -> "Display":
        if self.live_enabled:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, experiment: Experiment, trials: Sequence[Trial]) -> None:
        if self._live is not None:
            rows = min(MAX_ROWS, self.console.height - TABLE_CHROME_LINES)
            self._live.update(trial_table(experiment, trials, max_rows=rows))

    def event(self, message: str) -> None:
        if self.output_closed:
            return
        try:
            if self._live is None:
                print(message, flush=True)
            else:
                self._live.console.print(message, markup=False, highlight=False)
        except BrokenPipeError:
            # `dial run ... | head`: the reader is gone. The runner stops the trials (as for SIGPIPE).
            silence_stdout()
            self.output_closed = True

    @staticmethod
    def notice(message: str) -> None:
        """A line that must be seen even when stdout is closed or piped (the run being stopped)."""
        print(message, file=sys.stderr, flush=True)
