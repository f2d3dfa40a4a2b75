"""Time and GPU budgets: what an experiment has spent, and which trials ran past their deadline."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from dial.api.experiment import BudgetUsage, Experiment, ExperimentPhase
from dial.api.trial import Trial

GPU_RESOURCE = "nvidia.com/gpu"


def gpus_per_trial(experiment: Experiment) -> float:
    """GPUs one trial's pod asks for: the sum over its containers of limits (else requests)."""
    pod = experiment.spec.trial_template.job_spec.get("template", {}).get("spec", {})
    total = 0.0
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        resources: dict[str, Any] = container.get("resources") or {}
        amount = (resources.get("limits") or {}).get(GPU_RESOURCE, (resources.get("requests") or {}).get(GPU_RESOURCE, 0))
        try:
            total += float(amount)
        except (TypeError, ValueError):
            continue
    return total


def trial_seconds(trial: Trial, now: datetime) -> float:
    start = trial.status.start_time
    if start is None:
        return 0.0
    end = trial.status.completion_time or now
    return max((end - start).total_seconds(), 0.0)


def usage(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> BudgetUsage:
    status = experiment.status
    start = status.start_time or now
    stopped = now
    if status.phase in (ExperimentPhase.succeeded, ExperimentPhase.failed) and status.completion_time is not None:
        # A finished experiment's clock stops: else its status would change (and be rewritten) forever.
        stopped = status.completion_time
    gpus = gpus_per_trial(experiment)
    return BudgetUsage(
        elapsed_seconds=round(max((stopped - start).total_seconds(), 0.0), 3),
        gpu_hours=round(gpus * sum(trial_seconds(t, now) for t in trials) / 3600.0, 6),
        gpus_per_trial=gpus,
    )


def overdue(experiment: Experiment, trials: Sequence[Trial], now: datetime) -> list[Trial]:
    """Running trials that have run longer than `maxTrialSeconds`."""
    limit = experiment.spec.max_trial_seconds
    if limit is None:
        return []
    return [t for t in trials if not t.phase.is_terminal and t.status.start_time is not None
            and trial_seconds(t, now) > limit]


def exhausted(experiment: Experiment, spent: BudgetUsage) -> tuple[str, str] | None:
    """(reason, message) when the experiment's wall-time or GPU-hour budget is used up."""
    spec = experiment.spec
    if spec.max_experiment_seconds is not None and spent.elapsed_seconds >= spec.max_experiment_seconds:
        return ("MaxExperimentSecondsReached",
                f"ran {spent.elapsed_seconds:.0f}s of maxExperimentSeconds {spec.max_experiment_seconds}")
    if spec.max_gpu_hours is not None and spent.gpu_hours >= spec.max_gpu_hours:
        return ("MaxGpuHoursReached", f"used {spent.gpu_hours:.3f} GPU-hours of maxGpuHours {spec.max_gpu_hours:g}")
    return None
