"""What the API server holds for one experiment (its Trials, Jobs and pods), and the trial phases that follow from their Jobs.

Read fresh (LISTs, consistent reads) or from the watch-fed cache; a cached trial about to be finalised is
read fresh, because its Job's end and the collector's last patch are events of two different objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dial.api.experiment import Experiment, ExperimentStatus
from dial.api.trial import Trial, TrialPhase, TrialStatus
from dial.engine import finalize_trial
from dial.engine.template import primary_container
from dial.engine.trials import mark_running
from dial.kube.client import KubeClient
from dial.kube.jobs import TRIAL_LABEL
from dial.kube.outcomes import RunState, job_outcome

log = logging.getLogger("dial.operator")

# The operator's share of a Trial's status; the collector owns observations (and, while the
# trial runs, objective). Patching only these keys never overwrites the collector's writes.
OPERATOR_TRIAL_FIELDS = ("phase", "reason", "message", "exitCode", "startTime", "completionTime",
                         "stopReason", "stopMessage", "objective", "objectives")
JOB_DELETED = "JobDeleted"
TERMINAL_PHASES = frozenset(p.value for p in TrialPhase if p.is_terminal)


@dataclass
class World:
    """What the API server holds for one experiment, read in an order that keeps it consistent."""

    jobs: dict[str, dict[str, Any]]
    pods: dict[str, list[dict[str, Any]]]
    trials: list[dict[str, Any]]
    fresh: bool = True  # read from the API server now, not from the cache
    by_name: dict[str, Trial] = field(default_factory=dict)


def read_world(kube: KubeClient, namespace: str, name: str) -> World:
    # Jobs and pods first: a Job seen finished implies its collector's last patch is already
    # in the Trial we list after it.
    if kube.cache is not None:
        kube.cache.read_fresh(namespace, name)  # before the LISTs: what changes during them is re-read
    jobs, pods, trials = (kube.list_jobs(namespace, name), kube.list_pods(namespace, name),
                          kube.list_trials(namespace, name))
    if kube.cache is not None:
        for kind, items in (("jobs", jobs), ("pods", pods), ("trials", trials)):
            kube.cache.replace(kind, namespace, name, items)  # type: ignore[arg-type]
    return _world(jobs, pods, trials, fresh=True)


def cached_world(kube: KubeClient, namespace: str, name: str) -> World:
    cache = kube.cache
    assert cache is not None
    return _world(cache.list("jobs", namespace, name), cache.list("pods", namespace, name),
                  cache.list("trials", namespace, name), fresh=False)


def status_wire(status: TrialStatus | ExperimentStatus, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Status fields for a merge patch: None becomes null, which removes the field."""
    wire = status.model_dump(mode="json", by_alias=True)
    return {k: wire[k] for k in keys} if keys is not None else wire


def primary_name(experiment: Experiment) -> str:
    template = experiment.spec.trial_template
    return primary_container(template.job_spec, template.primary_container_name).get("name", "")


def sync_trials(kube: KubeClient, experiment: Experiment, world: World, now: datetime) -> list[Trial]:
    """Every Trial, its phase moved on to what its Job shows; what changed is patched (the operator's fields only)."""
    trials = []
    for raw in world.trials:
        if not world.fresh and _may_end(experiment, raw, world):
            # Its Job's end and the collector's last patch are two objects' events: the cache may have
            # the first without the second. Finalise from what the API server holds.
            raw = kube.get_trial(raw["metadata"]["namespace"], raw["metadata"]["name"]) or raw
        trial = Trial.model_validate({**raw, "status": raw.get("status") or {}})
        world.by_name[trial.name] = trial
        trials.append(trial)
        if trial.phase.is_terminal:
            continue
        before = status_wire(trial.status, OPERATOR_TRIAL_FIELDS)
        _follow_job(kube, experiment, trial, world, now)
        after = status_wire(trial.status, OPERATOR_TRIAL_FIELDS)
        changed = {k: v for k, v in after.items() if before[k] != v}
        if changed:
            kube.patch_trial_status(raw["metadata"]["namespace"], trial.name, changed)
            if trial.phase.is_terminal:
                objective = f" objective={trial.status.objective:.6g}" if trial.status.objective is not None else ""
                log.info("%s: %s (%s)%s", trial.name, trial.phase.value, trial.status.reason, objective)
    return trials


def _may_end(experiment: Experiment, raw: dict[str, Any], world: World) -> bool:
    """Whether `_follow_job` would finalise this (cached) trial now."""
    name, status = raw["metadata"]["name"], raw.get("status") or {}
    phase = status.get("phase") or TrialPhase.pending.value
    if phase in TERMINAL_PHASES:
        return False
    job = world.jobs.get(name)
    if job is None:
        return not world.pods.get(name) and (phase == TrialPhase.running.value or bool(status.get("stopReason")))
    return job_outcome(job, world.pods.get(name, []), primary_name(experiment)).state.is_terminal


def _follow_job(kube: KubeClient, experiment: Experiment, trial: Trial, world: World, now: datetime) -> None:
    job, pods = world.jobs.get(trial.name), world.pods.get(trial.name, [])
    container = primary_name(experiment)
    if job is None:
        if pods:
            return  # deleted, its pods still stopping: their last observations may be on the way
        if trial.status.stop_reason is not None:
            finalize_trial(experiment, trial, exit_code=None, now=now)
        elif trial.phase is TrialPhase.running:
            finalize_trial(experiment, trial, exit_code=None, now=now, failure_reason=JOB_DELETED,
                           output_tail="the trial's Job was deleted before it finished")
        return
    outcome = job_outcome(job, pods, container)
    if outcome.state.is_terminal:
        tail = ""
        if outcome.pod and (outcome.state is RunState.failed or trial.status.objective is None):
            tail = kube.pod_log_tail(trial.metadata.namespace or "default", outcome.pod, container)
        if outcome.message and outcome.message not in tail:
            tail = f"{tail}\n{outcome.message}" if tail else outcome.message
        finalize_trial(experiment, trial, exit_code=outcome.exit_code, now=now, output_tail=tail,
                       failure_reason=outcome.reason)
    elif outcome.state is RunState.running:
        mark_running(trial, outcome.started_at or now)
    elif outcome.reason and trial.status.reason != outcome.reason:
        # Still pending, but say why (ErrImagePull, Unschedulable, ...).
        trial.status.reason, trial.status.message = outcome.reason, outcome.message


def _world(jobs: list[dict[str, Any]], pods: list[dict[str, Any]], trials: list[dict[str, Any]], *,
           fresh: bool) -> World:
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        trial = (pod["metadata"].get("labels") or {}).get(TRIAL_LABEL)
        if trial:
            by_trial.setdefault(trial, []).append(pod)
    return World(jobs={j["metadata"]["name"]: j for j in jobs}, pods=by_trial, trials=trials, fresh=fresh)
