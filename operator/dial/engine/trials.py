"""Pure transitions of one trial: creation, new observations, and its final phase."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from dial.api.experiment import Experiment, ObjectMeta
from dial.api.space import ParameterValue
from dial.api.trial import Trial, TrialPhase, TrialSpec, TrialStatus, trial_name
from dial.engine import reasons
from dial.metrics.observations import record_observations
from dial.metrics.parsing import MetricPoint, ReadSummary

OUTPUT_TAIL_CHARS = 2000


def new_trial(experiment: Experiment, index: int, assignment: dict[str, ParameterValue], *,
              parent: str | None = None) -> Trial:
    return Trial(
        metadata=ObjectMeta(
            name=trial_name(experiment.name, index),
            namespace=experiment.metadata.namespace,
            labels={"dial.dev/experiment": experiment.name},
        ),
        spec=TrialSpec(experiment=experiment.name, index=index, parameter_assignments=assignment, parent_trial=parent),
        status=TrialStatus(phase=TrialPhase.pending),
    )


def record_points(experiment: Experiment, trial: Trial, points: Iterable[MetricPoint]) -> int:
    """Add observations to the trial; the first non-finite objective value is kept aside (the plan
    stops the trial for it and `finalize_trial` fails it).

    Returns how many points were recorded.
    """
    return record_observations(experiment.spec.objective, trial.status, points)


def mark_running(trial: Trial, now: datetime) -> None:
    if trial.status.phase is TrialPhase.pending:
        trial.status.phase = TrialPhase.running
        trial.status.start_time = trial.status.start_time or now


def finalize_trial(experiment: Experiment, trial: Trial, *, exit_code: int | None, now: datetime,
                   output_tail: str = "", failure_reason: str | None = None, ended_on_its_own: bool = False,
                   read: ReadSummary | None = None) -> None:
    """Set the final phase, reason and message from how the run ended and what it reported.

    `ended_on_its_own`: the training exited before the backend signalled it. A stop decided
    meanwhile came too late to change anything, so the trial is judged by its exit code and
    output, not labelled as stopped (a non-finite objective still fails it).
    `read`: what the backend's reader found in the output, said when the objective is missing.
    """
    status = trial.status
    if ended_on_its_own and exit_code == 0 and status.stop_reason not in (None, reasons.OBJECTIVE_NOT_FINITE):
        status.stop_reason = status.stop_message = None
    if status.non_finite_objective is not None and status.stop_reason is None:
        # It ended before the stop the plan orders for it was applied.
        status.stop_reason, status.stop_message = reasons.OBJECTIVE_NOT_FINITE, status.non_finite_objective.describe()
    status.exit_code = exit_code
    status.completion_time = now
    status.start_time = status.start_time or now
    status.update_objective(experiment.spec.objective)
    tail = output_tail[-OUTPUT_TAIL_CHARS:].strip()
    if failure_reason == reasons.JOB_DEADLINE_EXCEEDED and status.stop_reason is None:
        status.stop_reason = reasons.TRIAL_DEADLINE
        limit = experiment.spec.max_trial_seconds
        status.stop_message = ("the trial ran past its activeDeadlineSeconds"
                               + (f" (the backstop of maxTrialSeconds {limit})" if limit is not None else ""))
    if status.stop_reason == reasons.OBJECTIVE_NOT_FINITE:
        status.phase, status.reason, status.message = TrialPhase.failed, status.stop_reason, status.stop_message
    elif status.stop_reason is not None:
        status.phase, status.reason, status.message = TrialPhase.early_stopped, status.stop_reason, status.stop_message
    elif exit_code != 0:
        status.phase = TrialPhase.failed
        status.reason = failure_reason or reasons.TRAINING_FAILED
        code = f"exit code {exit_code}" if exit_code is not None else "no exit code"
        status.message = f"{code}; last output:\n{tail}" if tail else code
    elif missing := status.missing_objectives(experiment.spec.objective):
        status.phase, status.reason = TrialPhase.metrics_unavailable, reasons.METRICS_UNAVAILABLE
        status.message = (f"training exited 0 without reporting {', '.join(missing)}"
                          + (f" ({read.describe()})" if read is not None else "")
                          + (f"; last output:\n{tail}" if tail else ""))
    else:
        status.phase, status.reason, status.message = TrialPhase.succeeded, reasons.TRAINING_SUCCEEDED, None
