"""The driver's Backend for `dial run`: a trial is a process group on this machine, its metrics read from its output."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from dial.api.experiment import CollectorKind, Condition, Experiment, ExperimentStatus
from dial.api.trial import Trial, TrialPhase
from dial.engine import finalize_trial, new_trial, record_points
from dial.engine import reasons
from dial.api.zoom import ZoomStatus
from dial.engine.checkpoints import katib_checkpoints
from dial.engine.driver import Blocker, Event
from dial.engine.plan import Finish, StopOrder, TrialProposal
from dial.engine.trials import mark_running
from dial.local.commands import local_command, substitute_trial_fields
from dial.local.display import Display
from dial.local.process import TrialProcess, trial_environment
from dial.local.signals import Interrupted, StopRequests
from dial.metrics.parsing import MetricReader

POLL_SECONDS = 0.1
CAUSE_LINES = 5


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class LocalTrial:
    trial: Trial
    process: TrialProcess
    reader: MetricReader


@dataclass(kw_only=True)
class LocalBackend:
    """The processes of one `dial run`: `trials` is every trial of the experiment, `running` those with a live process."""

    experiment: Experiment
    output: Path  # results.json, trials/<name>/ (the output log, DIAL_TRIAL_DIR) and checkpoints/
    base_dir: Path  # the training's working directory (a relative workingDir is below it)
    trials: list[Trial]
    display: Display
    grace_seconds: float  # between SIGTERM and SIGKILL
    running: dict[str, LocalTrial] = field(default_factory=dict)
    lingering: list[TrialProcess] = field(default_factory=list)  # finished trials whose children still run

    @property
    def checkpoint_root(self) -> Path:
        """Checkpoint directories (a shared volume on Kubernetes): kept with the results, so --resume finds them."""
        return (self.output / "checkpoints").resolve()

    @property
    def busy(self) -> bool:
        """Whether any process of a trial still runs (a trial's, or a child one left behind)."""
        return bool(self.running or self.lingering)

    def read_trials(self, now: datetime) -> list[Trial]:
        self.collect(now)
        self.reap_lingering()
        return self.trials

    def has_exited(self, trial: Trial) -> bool:
        local = self.running.get(trial.name)
        return local is None or not local.process.alive

    def record_stop(self, trial: Trial) -> None:
        """Nothing to write now: the reason is saved with the results, and a crashed run's trials end as interrupted."""

    def terminate(self, trial: Trial) -> bool:
        local = self.running.get(trial.name)
        if local is None:
            return False
        first = not local.process.signalled
        local.process.terminate(self.grace_seconds)  # SIGTERM now, SIGKILL once the grace period has passed
        return first

    def start(self, proposal: TrialProposal, now: datetime) -> list[Blocker]:
        trial = new_trial(self.experiment, proposal.index, proposal.assignment, parent=proposal.parent)
        self.trials.append(trial)
        self._start(trial, now)
        return []

    def unblock(self, trials: Sequence[Trial], now: datetime) -> list[Blocker]:
        return []  # a local process has nothing to wait for

    def publish(self, status: ExperimentStatus) -> bool:
        self.experiment.status = status
        return True

    def emit(self, event: Event) -> None:
        if isinstance(event, StopOrder):
            self.display.event(f"stopping {event.name}: {event.reason}: {event.message}")
        elif isinstance(event, ZoomStatus):
            self.display.event(f"zoom: {event.describe()}")
        elif isinstance(event, Finish):
            self.display.event(f"experiment {event.phase.value}: {event.reason}: {event.message}")
        elif isinstance(event, Condition):
            self.display.event(f"{event.reason}: {event.message}")

    def _start(self, trial: Trial, now: datetime) -> None:
        spec = self.experiment.spec
        trial_dir = self.output / "trials" / trial.name
        trial_dir.mkdir(parents=True, exist_ok=True)
        if katib_checkpoints(self.experiment):
            own_checkpoint(self.checkpoint_root, trial.name, trial.spec.parent_trial)
        command, env, working_dir = local_command(self.experiment, trial.name, trial.spec.parameter_assignments,
                                                  parent=trial.spec.parent_trial, checkpoint_root=self.checkpoint_root)
        cwd = self.base_dir / working_dir if working_dir else self.base_dir
        metrics_file = None
        if spec.metrics_collector.kind is CollectorKind.file:
            path = Path(substitute_trial_fields(self.experiment, trial.name, spec.metrics_collector.path or ""))
            metrics_file = path if path.is_absolute() else cwd / path
            metrics_file.unlink(missing_ok=True)
        env.update({"DIAL_TRIAL_NAME": trial.name, "DIAL_EXPERIMENT": self.experiment.name,
                    "DIAL_TRIAL_DIR": str(trial_dir.resolve())})
        process = TrialProcess(command, env=trial_environment(env), cwd=cwd, log_path=trial_dir / "output.log",
                               metrics_file=metrics_file)
        mark_running(trial, now)
        reader = MetricReader(spec.objective.metric_names, spec.metrics_collector.format,
                              patterns=spec.metrics_collector.metrics_format)
        self.running[trial.name] = LocalTrial(trial, process, reader)
        params = " ".join(f"{k}={v}" for k, v in trial.spec.parameter_assignments.items())
        origin = f" (from {trial.spec.parent_trial})" if trial.spec.parent_trial else ""
        self.display.event(f"started {trial.name}: {params}{origin}")

    def collect(self, now: datetime) -> None:
        """Fold in what each running trial printed; finalise those whose process has exited."""
        for name, local in list(self.running.items()):
            exit_code = local.process.poll()
            record_points(self.experiment, local.trial, local.reader.feed(local.process.drain()))
            if exit_code is None:
                continue
            # Output still buffered after the exit is read by poll(); take it too.
            record_points(self.experiment, local.trial, local.reader.feed(local.process.drain()))
            tail = local.process.start_error or "\n".join(local.process.tail)
            failure = "StartFailed" if local.process.start_error else None
            finalize_trial(self.experiment, local.trial, exit_code=exit_code, now=now, output_tail=tail,
                           failure_reason=failure, ended_on_its_own=not local.process.signalled,
                           read=local.reader.summary())
            del self.running[name]
            if local.process.group_alive:
                self.lingering.append(local.process)
            s = local.trial.status
            values = s.objectives or ({} if s.objective is None else {self.experiment.spec.objective.primary.metric_name: s.objective})
            objective = "".join(f" {name}={value:.6g}" for name, value in values.items())
            self.display.event(outcome_line(local.trial, objective, local.process))

    def reap_lingering(self) -> None:
        """Children a finished trial left behind get the same TERM, grace period, KILL as the trial."""
        for process in list(self.lingering):
            process.terminate(self.grace_seconds)
            if not process.group_alive:
                self.lingering.remove(process)

    def interrupt(self, cause: Interrupted, stops: StopRequests | None = None) -> None:
        """Stop every running trial's process group (SIGTERM, then SIGKILL after the grace period, or at
        once on a second signal), keeping what they reported; the trials end as Interrupted."""
        for local in self.running.values():
            local.trial.status.stop_reason = reasons.INTERRUPTED
            local.trial.status.stop_message = f"interrupted: {cause.why}"
        again: list[int] = []
        if stops is not None:
            stops.on_signal(again.append)
        n = len(self.running) + len(self.lingering)
        if n:
            self.display.notice(f"{cause.why}: stopping {n} running trial{'s' if n != 1 else ''} (SIGTERM sent; "
                                f"SIGKILL in {self.grace_seconds:g}s; press Ctrl-C again to kill now)")
        deadline = time.monotonic() + self.grace_seconds + 5
        killed = False
        while (self.running or self.lingering) and time.monotonic() < deadline:
            if again and not killed:
                killed = True
                self.display.notice(f"{Interrupted(again[0]).why} again: killing the trials' processes now")
            for process in [*(local.process for local in self.running.values()), *self.lingering]:
                if killed:
                    process.kill()
                else:
                    process.terminate(self.grace_seconds)
            self.collect(utcnow())
            self.reap_lingering()
            time.sleep(POLL_SECONDS)
        for process in [*(local.process for local in self.running.values()), *self.lingering]:
            process.kill()  # past the deadline: nothing survives the runner
        reaped_by = time.monotonic() + 2
        while self.running and time.monotonic() < reaped_by:
            self.collect(utcnow())
            time.sleep(POLL_SECONDS)
        if stops is not None:
            stops.on_signal(None)


def outcome_line(trial: Trial, objective: str, process: TrialProcess) -> str:
    """`succeeded NAME loss=0.3`, or for a failure why: the reason, exit code, last output lines and the log."""
    s = trial.status
    line = f"{s.phase.value.lower()} {trial.name}{objective}"
    if s.phase is TrialPhase.succeeded:
        return line
    head, _, _ = (s.message or "").partition("; last output:")
    line += f" ({s.reason}: {head.splitlines()[0] if head else ''})"
    if s.phase not in (TrialPhase.failed, TrialPhase.metrics_unavailable):
        return line
    tail = [t for t in ([process.start_error] if process.start_error else list(process.tail)) if t.strip()]
    if tail and not process.start_error:
        line += f"\n  last {min(len(tail), CAUSE_LINES)} lines of output:"
    line += "".join(f"\n  | {t}" for t in tail[-CAUSE_LINES:])
    if process.popen is not None:
        line += f"\n  full log: {process.log_path}"
    return line


def own_checkpoint(root: Path, trial: str, parent: str | None) -> Path:
    """Katib's convention: the trial's own checkpoint directory, a fresh copy of its parent's (empty in generation 0),
    as Katib's pbt suggestion prepares it (`shutil.copytree`) and the operator's init container does in a pod. What
    an earlier, interrupted run of the same trial left there goes first."""
    own = root / trial
    shutil.rmtree(own, ignore_errors=True)
    source = root / parent if parent else None
    if source is not None and source.is_dir():
        shutil.copytree(source, own, symlinks=True)
    else:
        own.mkdir(parents=True)
    return own
