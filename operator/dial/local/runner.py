"""`dial run`: drive the engine with local processes until the experiment finishes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from dial.api.experiment import Experiment
from dial.api.trial import Trial
from dial.engine import finalize_trial, plan
from dial.engine import reasons
from dial.engine.driver import drive
from dial.engine.plan import Plan
from dial.local.backend import POLL_SECONDS, LocalBackend, utcnow
from dial.local.commands import check_runnable, local_command
from dial.local.display import Display
from dial.local.results import save_results
from dial.local.signals import Interrupted, StopRequests
from dial.metrics.exporter import DialMetrics

__all__ = ["LocalRunner", "check_runnable", "local_command", "utcnow"]

SAVE_EVERY_SECONDS = 1.0


class LocalRunner:
    def __init__(self, experiment: Experiment, output: Path, *, base_dir: Path, trials: list[Trial] | None = None,
                 display: Display | None = None, grace_seconds: float = 5.0, metrics: DialMetrics | None = None):
        self.experiment = experiment
        self.output = output
        self.trials: list[Trial] = trials or []
        self.display = display or Display(live=False)
        self.backend = LocalBackend(experiment=experiment, output=output, base_dir=base_dir, trials=self.trials,
                                    display=self.display, grace_seconds=grace_seconds)
        self.plan = metrics.plan if metrics is not None else plan  # same plan; recorded for Prometheus when asked
        self._last_save = 0.0

    def run(self, stops: StopRequests | None = None) -> Experiment:
        """Run to the end; on a stop request (a signal, a closed output pipe) stop every trial and raise Interrupted."""
        self._recover_unfinished()
        try:
            with self.display:
                while True:
                    if (cause := self._stop_cause(stops)) is not None:
                        raise cause
                    current = self.step()
                    if current.finish is not None and not self.backend.busy:
                        break
                    time.sleep(POLL_SECONDS)
        except Interrupted as cause:
            self.interrupt(cause, stops)
            raise
        except KeyboardInterrupt:  # no StopRequests installed: Python's own SIGINT
            cause = Interrupted(signal.SIGINT)
            self.interrupt(cause, stops)
            raise cause from None
        finally:
            self.save(force=True)
        return self.experiment

    def _stop_cause(self, stops: StopRequests | None) -> Interrupted | None:
        if stops is not None and (cause := stops.pending()) is not None:
            return cause
        return Interrupted(signal.SIGPIPE) if self.display.output_closed else None

    def _recover_unfinished(self) -> None:
        """Trials left running by a process that died are kept as interrupted (their observations too)."""
        for trial in self.trials:
            if not trial.phase.is_terminal:
                trial.status.stop_reason = reasons.INTERRUPTED
                trial.status.stop_message = "the runner stopped before this trial finished"
                finalize_trial(self.experiment, trial, exit_code=None, now=utcnow())

    def step(self) -> Plan:
        applied = drive(self.experiment, self.backend, now=utcnow(), planner=self.plan)
        self.display.update(self.experiment, self.trials)
        self.save()
        return applied.plan

    def interrupt(self, cause: Interrupted | None = None, stops: StopRequests | None = None) -> None:
        """Stop every trial's processes, keeping what they reported (the trials end as Interrupted), and
        say in the status why the run ended."""
        cause = cause or Interrupted(signal.SIGINT)
        self.backend.interrupt(cause, stops)
        self.experiment.status = plan(self.experiment, self.trials, now=utcnow(),
                                      interrupted=f"interrupted ({cause.why}); continue with `dial run --resume`").status

    def save(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self._last_save >= SAVE_EVERY_SECONDS:
            save_results(self.output, self.experiment, self.trials)
            self._last_save = time.monotonic()
