"""The driver's Backend on the Kubernetes API: a trial is a Trial object and a Job; stopping deletes the Job."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Sequence

from kubernetes.client.rest import ApiException

from dial.api.experiment import Condition, Experiment, ExperimentPhase, ExperimentStatus
from dial.api.trial import Trial, TrialPhase
from dial.engine import new_trial
from dial.api.zoom import ZoomStatus
from dial.engine.driver import Blocker, Event
from dial.engine.plan import Finish, StopOrder, TrialProposal
from dial.kube.claims import (CLAIM_CREATED, CLAIM_NOT_OURS, claim_body, creates_claim, describe_claim, foreign_claim,
                              operator_claim_name, template_container)
from dial.kube.client import KubeClient
from dial.kube.jobs import EXPERIMENT_LABEL, CollectorSettings, owner_reference, trial_body, trial_job
from dial.kube.outcomes import training_ended
from dial.kube.world import World, primary_name, status_wire, sync_trials

log = logging.getLogger("dial.operator")

# Budget figures that grow with the clock alone; refreshed this often at most when nothing else changed.
CLOCK_DRIVEN = ("elapsedSeconds", "gpuHours")
BUDGET_REFRESH_SECONDS = 15.0
# Trial counts whose split alone (a pending trial's pod started) waits for that refresh too: one status write per
# trial start would be a third of the operator's Experiment writes, and only `kubectl get`'s RUNNING column shows it.
ACTIVE_COUNTS = ("pending", "running")
# Answers that refuse the request itself (quota, admission, validation, RBAC): retrying at once will not help.
REFUSED = frozenset({400, 403, 422})
JOB_REFUSED = "JobRefused"
SERVICE_ACCOUNT_MISSING = "ServiceAccountMissing"
# A Job with no pod for this long has its pods' ServiceAccount looked up (the Job controller only
# posts events when the pod is refused).
PODLESS_SECONDS = 10.0


class TrialStops:
    """Stopping trials on the API server: the reason patched onto the Trial, then its Job deleted."""

    def __init__(self, kube: KubeClient, namespace: str, world: World):
        self.kube = kube
        self.namespace = namespace
        self.world = world

    def record_stop(self, trial: Trial) -> None:
        self.kube.patch_trial_status(self.namespace, trial.name, {"stopReason": trial.status.stop_reason,
                                                                  "stopMessage": trial.status.stop_message})

    def terminate(self, trial: Trial) -> bool:
        return trial.name in self.world.jobs and self.kube.delete_job(self.namespace, trial.name)


class InvalidSpecStops(TrialStops):
    """The trials of an experiment whose spec became invalid: every unfinished one stops, whatever its training did."""

    def has_exited(self, trial: Trial) -> bool:
        return False

    def emit(self, event: Event) -> None:
        """Nothing per trial: the InvalidSpec event says why they all stopped."""


class KubeBackend(TrialStops):
    """One reconcile's Backend: the experiment as read (`raw`) and what the API server holds for it (`world`)."""

    def __init__(self, kube: KubeClient, raw: dict[str, Any], experiment: Experiment, world: World,
                 collector: CollectorSettings):
        super().__init__(kube, raw["metadata"]["namespace"], world)
        self.raw = raw
        self.experiment = experiment
        self.collector = collector
        self.container = primary_name(experiment)
        self.claim_ready = False  # the operator's checkpoint claim was found or created in this reconcile

    def read_trials(self, now: datetime) -> list[Trial]:
        return sync_trials(self.kube, self.experiment, self.world, now)

    def has_exited(self, trial: Trial) -> bool:
        return training_ended(self.world.pods.get(trial.name, []), self.container)

    def start(self, proposal: TrialProposal, now: datetime) -> list[Blocker]:
        trial = new_trial(self.experiment, proposal.index, proposal.assignment, parent=proposal.parent)
        created = self.kube.create_trial(self.namespace, trial_body(trial, self.raw))
        if created is None:
            # Someone (an earlier run of this operator) created it: run what is stored, not our proposal, and
            # only if it still waits for its Job (a cache that had not seen it may propose an ended trial again).
            stored = self.kube.get_trial(self.namespace, proposal.name)
            if stored is None or not waits_for_job(Trial.model_validate({**stored, "status": stored.get("status") or {}})):
                return []
            return self._create_job(stored)
        # The Job first: the status and the event only inform people. A Trial with no status reads
        # as Pending, so a crash before the patch changes nothing but what kubectl shows meanwhile.
        blockers = self._create_job(created)
        self.kube.patch_trial_status(self.namespace, proposal.name, {"phase": TrialPhase.pending.value})
        params = ", ".join(f"{k}={v}" for k, v in proposal.assignment.items())
        params += f" (from {proposal.parent})" if proposal.parent else ""
        self.kube.post_event(self.raw, "TrialCreated", f"{proposal.name}: {params}")
        log.info("%s/%s: created %s: %s", self.namespace, self.experiment.name, proposal.name, params)
        return blockers

    def unblock(self, trials: Sequence[Trial], now: datetime) -> list[Blocker]:
        return [*self._ensure_jobs(trials), *self._podless_jobs(trials, now)]

    def publish(self, status: ExperimentStatus) -> bool:
        wire = status_wire(status)
        if not worth_writing(wire, self.raw.get("status") or {}):
            return False
        # Onto the version this status was computed from: one computed from a stale copy (its start time, its
        # finish already announced) is refused, and the reconcile is redone from a fresh read.
        self.kube.patch_experiment_status(self.namespace, self.experiment.name, wire,
                                          resource_version=self.raw["metadata"].get("resourceVersion"))
        return True

    def emit(self, event: Event) -> None:
        where = f"{self.namespace}/{self.experiment.name}"
        if isinstance(event, StopOrder):
            self.kube.post_event(self.raw, "TrialEarlyStopped" if event.is_early_stop else "TrialStopped",
                                 f"{event.name}: {event.reason}: {event.message}")
            log.info("%s: stopped %s: %s: %s", where, event.name, event.reason, event.message)
        elif isinstance(event, Condition):
            self.kube.post_event(self.raw, event.reason, event.message, warning=True)
            log.warning("%s: %s: %s", where, event.reason, event.message)
        elif isinstance(event, ZoomStatus):
            self.kube.post_event(self.raw, "Zoomed", event.describe())
        elif isinstance(event, Finish):
            self.kube.post_event(self.raw, f"Experiment{event.phase.value}", f"{event.reason}: {event.message}",
                                 warning=event.phase is ExperimentPhase.failed)
            log.info("%s: %s: %s: %s", where, event.phase.value, event.reason, event.message)

    def _ensure_jobs(self, trials: Sequence[Trial]) -> list[Blocker]:
        """A Trial created by a run that crashed (or was refused) before its Job: create the Job now."""
        raws = {t["metadata"]["name"]: t for t in self.world.trials}
        blockers: list[Blocker] = []
        for trial in trials:
            if waits_for_job(trial) and trial.name not in self.world.jobs and not self.world.pods.get(trial.name):
                blockers += self._create_job(raws[trial.name])
        return blockers

    def _ensure_claim(self) -> list[Blocker]:
        """pbt naming no checkpoint claim: create the operator's (`dial.kube.claims`) before any Job mounts it.

        Before every Job, once per reconcile: a GET, and a create when it is missing (409 means another run of the
        operator made it), so a crash between the claim and the Job, or a claim deleted meanwhile, heals on the next
        reconcile. A claim of that name that is not this Experiment's blocks the trials rather than mixing them into
        it.
        """
        if self.claim_ready or not creates_claim(self.experiment, template_container(self.experiment)):
            return []
        name = operator_claim_name(self.experiment)
        stored = self.kube.get_claim(self.namespace, name)
        if stored is None:
            body = claim_body(self.experiment, self.namespace, owner=owner_reference(self.raw),
                              labels={EXPERIMENT_LABEL: self.experiment.name})
            stored = self.kube.create_claim(self.namespace, body)
            if stored is not None:
                self.kube.post_event(self.raw, CLAIM_CREATED, f"PersistentVolumeClaim {name} ({describe_claim(body)}) "
                                     f"keeps the trials' checkpoints; it is deleted with the Experiment")
                log.info("%s/%s: created checkpoint claim %s", self.namespace, self.experiment.name, name)
            else:
                stored = self.kube.get_claim(self.namespace, name)
        problem = foreign_claim(stored, self.raw["metadata"]["uid"]) if stored is not None else None
        if problem is not None:
            return [Blocker(CLAIM_NOT_OURS, problem)]
        self.claim_ready = stored is not None
        return []

    def _create_job(self, trial_raw: dict[str, Any]) -> list[Blocker]:
        if blockers := self._ensure_claim():
            return blockers  # the trial stays Pending without a Job; unblock() tries again
        job = trial_job(self.experiment, trial_raw, self.collector)
        try:
            self.kube.create_job(self.namespace, job)
        except ApiException as exc:
            if exc.status not in REFUSED:
                raise  # throttled, conflict, unavailable: the work queue retries
            return [Blocker(JOB_REFUSED, f"the API server refused Job {job['metadata']['name']} "
                                         f"({exc.status}): {api_message(exc)}")]
        return []

    def _podless_jobs(self, trials: Sequence[Trial], now: datetime) -> list[Blocker]:
        """Pending trials whose Job has had no pod for a while because its ServiceAccount does not exist."""
        waiting: dict[tuple[str, str], list[str]] = {}
        for trial in trials:
            job = self.world.jobs.get(trial.name)
            if trial.phase is not TrialPhase.pending or job is None or self.world.pods.get(trial.name):
                continue
            created = job["metadata"].get("creationTimestamp")
            if created and (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds() < PODLESS_SECONDS:
                continue
            pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
            account = pod_spec.get("serviceAccountName") or "default"
            waiting.setdefault((job["metadata"]["namespace"], account), []).append(trial.name)
        return [Blocker(SERVICE_ACCOUNT_MISSING,
                        f"ServiceAccount {account} not found in namespace {namespace}: the Job controller cannot "
                        f"create the pods of {', '.join(names)}; create it with the collector's Role and RoleBinding "
                        f"(Helm: collector.serviceAccount.create, collector.namespaces)")
                for (namespace, account), names in waiting.items()
                if not self.kube.service_account_exists(namespace, account)]


def waits_for_job(trial: Trial) -> bool:
    """Created, neither started nor stopped: its Job is still to be made."""
    return trial.phase is TrialPhase.pending and trial.status.stop_reason is None


def api_message(exc: ApiException) -> str:
    """The API server's own message (quota exceeded, field invalid, forbidden), else its reason phrase."""
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


def worth_writing(status: dict[str, Any], previous: dict[str, Any]) -> bool:
    """A status differs from the stored one in more than the clock-driven budget figures and the split of
    active trials into pending and running, or those are stale: writing on every reconcile would trigger the
    next one, forever."""
    def solid(d: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in d.items() if v is not None and k != "budget"}
        if isinstance(counts := kept.get("trials"), dict):
            kept["trials"] = {k: v for k, v in counts.items() if k not in ACTIVE_COUNTS}
            kept["trials"]["active"] = sum(counts.get(k) or 0 for k in ACTIVE_COUNTS)
        return kept

    if solid(status) != solid(previous):
        return True
    new, old = status.get("budget") or {}, previous.get("budget") or {}
    if {k: v for k, v in new.items() if k not in CLOCK_DRIVEN} != {k: v for k, v in old.items() if k not in CLOCK_DRIVEN}:
        return True
    return abs((new.get("elapsedSeconds") or 0) - (old.get("elapsedSeconds") or 0)) >= BUDGET_REFRESH_SECONDS
