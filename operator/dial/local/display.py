"""What `dial run` shows: a live table on a terminal, one line per event otherwise."""

from __future__ import annotations

import sys
from typing import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dial.api.experiment import Experiment
from dial.api.trial import Trial, TrialPhase
from dial.local.signals import silence_stdout

_PHASE_STYLE = {
    TrialPhase.pending: "dim", TrialPhase.running: "cyan", TrialPhase.succeeded: "green",
    TrialPhase.failed: "red", TrialPhase.early_stopped: "yellow", TrialPhase.metrics_unavailable: "magenta",
}
MAX_ROWS = 18


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def trial_table(experiment: Experiment, trials: Sequence[Trial]) -> Table:
    spec, status = experiment.spec, experiment.status
    best = status.best_trial
    front = {e.name for e in status.pareto_front or []}
    title = (f"{experiment.name}: {status.phase.value}  {status.progress} done, {status.trials.running} running"
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
    table.add_column("reason")
    shown = [t for t in trials if not t.phase.is_terminal]
    shown += [t for t in reversed(trials) if t.phase.is_terminal][: max(MAX_ROWS - len(shown), 0)]
    for t in sorted(shown, key=lambda t: t.spec.index):
        obj = t.status.observation(spec.objective.primary.metric_name)
        style = "bold green" if (best and best.name == t.name) or t.name in front else _PHASE_STYLE[t.phase]
        table.add_row(
            t.name, t.phase.value,
            *[_fmt(t.spec.parameter_assignments.get(p.name)) for p in spec.parameters],
            *[_fmt(o.latest if (o := t.status.observation(m)) else None) for m in spec.objective.metric_names],
            str(obj.n_points if obj else 0), t.status.reason or "", style=style)
    hidden = len(trials) - len(shown)
    if hidden:
        table.caption = f"{hidden} older trials not shown"
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
            self._live.update(trial_table(experiment, trials))

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
