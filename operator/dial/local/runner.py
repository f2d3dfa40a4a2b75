"""`dial run`: drive the engine with local processes until the experiment finishes."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dial.api.experiment import CollectorKind, Experiment
from dial.api.trial import Trial, TrialPhase
from dial.api.zoom import zoomed_further
from dial.engine import ExperimentError, SpecError, finalize_trial, new_trial, plan, record_points, render_job_spec
from dial.engine import reasons
from dial.engine.plan import Plan
from dial.engine.checkpoints import katib_checkpoints
from dial.engine.template import rendered_primary_container
from dial.engine.trials import mark_running
from dial.local.display import Display
from dial.local.process import TrialProcess, trial_environment
from dial.local.results import save_results
from dial.local.signals import Interrupted, StopRequests
from dial.metrics.exporter import DialMetrics
from dial.metrics.parsing import MetricReader

POLL_SECONDS = 0.1
SAVE_EVERY_SECONDS = 1.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class LocalTrial:
    trial: Trial
    process: TrialProcess
    reader: MetricReader


def local_command(experiment: Experiment, trial_name: str, assignment: dict, *, parent: str | None = None,
                  checkpoint_root: Path | None = None) -> tuple[list[str], dict[str, str], str | None]:
    """The primary container's command, plain env values and workingDir, parameters substituted."""
    template = experiment.spec.trial_template
    job_spec = render_job_spec(experiment, trial_name, assignment, parent=parent,
                               checkpoint_root=str(checkpoint_root) if checkpoint_root is not None else None)
    container = rendered_primary_container(template, job_spec)
    command = [str(c) for c in [*(container.get("command") or []), *(container.get("args") or [])]]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    return command, env, container.get("workingDir")


def check_runnable(experiment: Experiment) -> None:
    """Locally a trial needs an explicit command: there is no image entrypoint to fall back on."""
    template = experiment.spec.trial_template
    if template.config_map is not None:
        source = template.config_map
        raise ExperimentError([SpecError("spec.trialTemplate.configMap",
                                         f"dial run cannot read ConfigMap {source.config_map_name!r}: put the template "
                                         f"({source.template_path}) under spec.trialTemplate.trialSpec")])
    if template.trial_spec is not None and not template.is_job:
        kind = template.manifest.get("kind")
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec",
                                         f"dial run runs a batch/v1 Job's primary container; a {kind} trial runs on "
                                         "Kubernetes, whose controller for it makes the pods")])
    if experiment.spec.metrics_collector.kind in (CollectorKind.tensorflow_event, CollectorKind.none):
        raise ExperimentError([SpecError("spec.metricsCollector.kind",
                                         f"dial run reads metrics from stdout or a file (StdOut or File), not with "
                                         f"{experiment.spec.metrics_collector.kind.value}")])
    if katib_checkpoints(experiment):
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec",
                                         "pbt with Katib's checkpoint convention mounts each trial's own checkpoint "
                                         "directory at suggestion_trial_dir, which only a pod can do; for dial run, pass "
                                         "${trialParameters.checkpointDir} and ${trialParameters.parentCheckpointDir} "
                                         "to the training instead")])
    command, _, _ = local_command(experiment, "check", {p.name: 0 for p in experiment.spec.parameters})
    if not command:
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec.spec.template.spec.containers[].command",
                                         "dial run needs the primary container's command (or args)")])


class LocalRunner:
    def __init__(self, experiment: Experiment, output: Path, *, base_dir: Path, trials: list[Trial] | None = None,
                 display: Display | None = None, grace_seconds: float = 5.0, metrics: DialMetrics | None = None):
        self.experiment = experiment
        self.output = output
        self.base_dir = base_dir
        self.trials: list[Trial] = trials or []
        self.display = display or Display(live=False)
        self.grace_seconds = grace_seconds
        self.plan = metrics.plan if metrics is not None else plan  # same plan; recorded for Prometheus when asked
        self.running: dict[str, LocalTrial] = {}
        self.lingering: list[TrialProcess] = []  # finished trials whose children still run
        # pbt's checkpoints (a shared volume on Kubernetes): kept with the results, so --resume finds them.
        self.checkpoint_root = (output / "checkpoints").resolve()
        self._last_save = 0.0
        self._announced_finish: str | None = None

    def run(self, stops: StopRequests | None = None) -> Experiment:
        """Run to the end; on a stop request (a signal, a closed output pipe) stop every trial and raise Interrupted."""
        self._recover_unfinished()
        try:
            with self.display:
                while True:
                    if (cause := self._stop_cause(stops)) is not None:
                        raise cause
                    current = self.step()
                    if current.finish is not None and not self.running and not self.lingering:
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
        now = utcnow()
        self._collect(now)
        self._reap_lingering()
        current = self.plan(self.experiment, self.trials, now=now)
        for order in current.stop:
            local = self.running.get(order.name)
            if local is None:
                continue
            if local.trial.status.stop_reason is None and not local.process.alive:
                continue  # it has already exited: its own outcome, collected next, is what it ends with
            if local.trial.status.stop_reason is None:
                local.trial.status.stop_reason, local.trial.status.stop_message = order.reason, order.message
                self.display.event(f"stopping {order.name}: {order.reason}: {order.message}")
            local.process.terminate(self.grace_seconds)
        for proposal in current.create:
            trial = new_trial(self.experiment, proposal.index, proposal.assignment, parent=proposal.parent)
            self.trials.append(trial)
            self._start(trial, now)
        if zoomed_further(self.experiment.status.zoom, current.status.zoom):
            self.display.event(f"zoom: {current.status.zoom.describe()}")  # type: ignore[union-attr]
        self.experiment.status = current.status
        if current.finish is not None and self._announced_finish != current.finish.reason:
            self._announced_finish = current.finish.reason
            self.display.event(f"experiment {current.finish.phase.value}: {current.finish.reason}: {current.finish.message}")
        self.display.update(self.experiment, self.trials)
        self.save()
        return current

    def _start(self, trial: Trial, now: datetime) -> None:
        spec = self.experiment.spec
        trial_dir = self.output / "trials" / trial.name
        trial_dir.mkdir(parents=True, exist_ok=True)
        command, env, working_dir = local_command(self.experiment, trial.name, trial.spec.parameter_assignments,
                                                  parent=trial.spec.parent_trial, checkpoint_root=self.checkpoint_root)
        cwd = self.base_dir / working_dir if working_dir else self.base_dir
        metrics_file = None
        if spec.metrics_collector.kind is CollectorKind.file:
            path = Path(render_job_spec_string(self.experiment, trial.name, spec.metrics_collector.path or ""))
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

    def _collect(self, now: datetime) -> None:
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

    def _reap_lingering(self) -> None:
        """Children a finished trial left behind get the same TERM, grace period, KILL as the trial."""
        for process in list(self.lingering):
            process.terminate(self.grace_seconds)
            if not process.group_alive:
                self.lingering.remove(process)

    def interrupt(self, cause: Interrupted | None = None, stops: StopRequests | None = None) -> None:
        """Stop every running trial's process group (SIGTERM, then SIGKILL after the grace period, or at
        once on a second signal), keeping what they reported; the trials end as Interrupted."""
        cause = cause or Interrupted(signal.SIGINT)
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
            self._collect(utcnow())
            self._reap_lingering()
            time.sleep(POLL_SECONDS)
        for process in [*(local.process for local in self.running.values()), *self.lingering]:
            process.kill()  # past the deadline: nothing survives the runner
        reaped_by = time.monotonic() + 2
        while self.running and time.monotonic() < reaped_by:
            self._collect(utcnow())
            time.sleep(POLL_SECONDS)
        if stops is not None:
            stops.on_signal(None)
        # Planned as suspended: nothing new is proposed, and the status says why the run ended.
        suspended = self.experiment.model_copy(deep=True)
        suspended.spec.suspend = True
        self.experiment.status = plan(suspended, self.trials, now=utcnow()).status
        self.experiment.status.conditions[0].reason = reasons.INTERRUPTED
        self.experiment.status.conditions[0].message = (f"interrupted ({cause.why}); "
                                                        "continue with `dial run --resume`")

    def save(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self._last_save >= SAVE_EVERY_SECONDS:
            save_results(self.output, self.experiment, self.trials)
            self._last_save = time.monotonic()


CAUSE_LINES = 5


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


def render_job_spec_string(experiment: Experiment, trial_name: str, text: str) -> str:
    from dial.engine.template import substitute

    return substitute(text, {}, {"Name": trial_name, "Namespace": "default", "Experiment": experiment.name})
