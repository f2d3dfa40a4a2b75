"""Reconcile one Experiment: read it and its Trials, Jobs and pods, plan, apply the plan idempotently.

Crash-only: nothing is remembered between calls but a cache of what the watches delivered
(`dial.kube.cache`), and that is only ever a copy. An experiment not read fresh lately (at start,
after a failed reconcile, every resync) is read from the API server (LISTs are consistent reads);
otherwise from the cache, except a trial about to be finalised, which is read fresh. Names are
deterministic and a create that finds its object already there (409) runs the stored one, so a
restart at any point, or a cache that lags, neither loses nor repeats work.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import yaml
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from dial.api.experiment import Condition, Experiment, ExperimentPhase, ExperimentStatus
from dial.api.trial import Trial, TrialPhase, TrialStatus
from dial.api.zoom import ZoomStatus, zoomed_further
from dial.engine import SpecError, experiment_warnings, finalize_trial, new_trial, plan, validate_experiment
from dial.engine import reasons
from dial.engine.plan import Plan, StopOrder, TrialProposal
from dial.engine.trials import mark_running
from dial.engine.template import primary_container
from dial.engine.validation import ExperimentError, parse_experiment
from dial.engine.warm_start import snapshot as warm_start_snapshot
from dial.kube.client import Kube
from dial.kube.jobs import TRIAL_LABEL, CollectorSettings, kube_spec_errors, trial_body, trial_job
from dial.kube.outcomes import RunState, job_outcome, training_ended
from dial.kube.workqueue import RetryLater
from dial.metrics.exporter import DialMetrics

log = logging.getLogger("dial.operator")

# The operator's share of a Trial's status; the collector owns observations (and, while the
# trial runs, objective). Patching only these keys never overwrites the collector's writes.
OPERATOR_TRIAL_FIELDS = ("phase", "reason", "message", "exitCode", "startTime", "completionTime",
                         "stopReason", "stopMessage", "objective", "objectives")
JOB_DELETED = "JobDeleted"
TERMINAL_PHASES = frozenset(p.value for p in TrialPhase if p.is_terminal)
# Budget figures that grow with the clock alone; refreshed this often at most when nothing else changed.
CLOCK_DRIVEN = ("elapsedSeconds", "gpuHours")
BUDGET_REFRESH_SECONDS = 15.0
# Answers that refuse the request itself (quota, admission, validation, RBAC): retrying at once will not help.
REFUSED = frozenset({400, 403, 422})
BLOCKED = "TrialsBlocked"  # the Experiment condition naming why trials cannot run
JOB_REFUSED = "JobRefused"
SERVICE_ACCOUNT_MISSING = "ServiceAccountMissing"
# A Job with no pod for this long has its pods' ServiceAccount looked up (the Job controller only
# posts events when the pod is refused).
PODLESS_SECONDS = 10.0


@dataclass(frozen=True)
class Blocker:
    reason: str
    message: str


class TrialsBlocked(RetryLater):
    """Trials cannot run for a reason now named on the Experiment; the work queue retries with backoff."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class World:
    """What the API server holds for one experiment, read in an order that keeps it consistent."""

    jobs: dict[str, dict[str, Any]]
    pods: dict[str, list[dict[str, Any]]]
    trials: list[dict[str, Any]]
    fresh: bool = True  # read from the API server now, not from the cache
    by_name: dict[str, Trial] = field(default_factory=dict)


def read_experiment(raw: dict[str, Any], config_maps: ConfigMaps | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """The Experiment as stored, or the problems that stop it from running (field paths included).

    A trial template kept in a ConfigMap (`trialTemplate.configMap`) is read in through `config_maps`, and
    checked like one given inline.
    """
    manifest = {key: raw[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in raw}
    try:
        experiment = parse_experiment(manifest)
    except ExperimentError as exc:
        return None, exc.errors
    if experiment.spec.trial_template.config_map is not None and config_maps is not None:
        if (error := read_config_map_template(experiment, config_maps)) is not None:
            return None, [error]
    try:
        experiment.status = ExperimentStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        experiment.status = ExperimentStatus()  # rewritten whole below; a damaged status must not block
    return experiment, [*validate_experiment(experiment), *kube_spec_errors(experiment)]


ConfigMaps = Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> the ConfigMap, or None


def read_config_map_template(experiment: Experiment, config_maps: ConfigMaps) -> SpecError | None:
    """Put the trial template from its ConfigMap under trialSpec (as Katib does), or say why it cannot be read."""
    template = experiment.spec.trial_template
    source = template.config_map
    assert source is not None
    namespace = source.config_map_namespace or experiment.metadata.namespace or "default"
    where = f"ConfigMap {namespace}/{source.config_map_name}"
    config_map = config_maps(namespace, source.config_map_name)
    if config_map is None:
        return SpecError("spec.trialTemplate.configMap", f"{where} does not exist")
    text = (config_map.get("data") or {}).get(source.template_path)
    if text is None:
        keys = ", ".join(sorted(config_map.get("data") or {})) or "none"
        return SpecError("spec.trialTemplate.configMap.templatePath",
                         f"{where} has no key {source.template_path!r} (keys: {keys})")
    try:
        trial_spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return SpecError("spec.trialTemplate.configMap.templatePath", f"{where} {source.template_path}: not YAML ({exc})")
    if not isinstance(trial_spec, dict):
        return SpecError("spec.trialTemplate.configMap.templatePath",
                         f"{where} {source.template_path}: expected a workload manifest, got {type(trial_spec).__name__}")
    experiment.spec.trial_template = template.model_copy(update={"trial_spec": trial_spec, "config_map": None})
    return None


def status_wire(status: TrialStatus | ExperimentStatus, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Status fields for a merge patch: None becomes null, which removes the field."""
    wire = status.model_dump(mode="json", by_alias=True)
    return {k: wire[k] for k in keys} if keys is not None else wire


class Reconciler:
    def __init__(self, kube: Kube, collector: CollectorSettings, *, clock: Callable[[], datetime] = utcnow,
                 metrics: DialMetrics | None = None):
        self.kube = kube
        self.cache = kube.cache
        self.metrics = metrics
        self.plan = metrics.plan if metrics is not None else plan  # same plan; recorded for Prometheus
        self.collector = collector
        self.clock = clock

    def reconcile(self, namespace: str, name: str) -> None:
        fresh = self.cache is None or self.cache.needs_fresh_read(namespace, name)
        try:
            self._reconcile(namespace, name, fresh)
        except BaseException:
            if self.cache is not None:
                self.cache.distrust(namespace, name)  # the retry reads fresh: the cache may be why it failed
            raise

    def _reconcile(self, namespace: str, name: str, fresh: bool) -> None:
        raw = None if fresh else self.cache.get("experiments", namespace, name)  # type: ignore[union-attr]
        if raw is None:
            fresh = True
            raw = self.kube.get_experiment(namespace, name)
        if raw is None or raw["metadata"].get("deletionTimestamp"):
            if self.metrics is not None:
                self.metrics.forget(namespace, name)
            return  # the garbage collector removes Trials and Jobs through their owner references
        experiment, errors = read_experiment(raw, self.kube.get_config_map)
        now = self.clock()
        world = self._read_world(namespace, name) if fresh else self._cached_world(namespace, name)
        if errors or experiment is None:
            self._reject(raw, world, errors, now)
            return
        if experiment.status.start_time is None:  # once, before the first trial: not on every reconcile
            self._warn(raw, experiment)
        if experiment.spec.warm_start is not None and experiment.status.warm_start is None:
            self._snapshot_warm_start(raw, experiment)
        trials = self._sync_trials(experiment, world, now)
        current = self.plan(experiment, trials, now=now)
        self._stop(raw, world, current.stop, self._primary_name(experiment))
        blockers: list[Blocker] = []
        self._create(raw, experiment, current.create, blockers)
        self._ensure_jobs(experiment, world, trials, blockers)
        blockers += self._podless_jobs(world, trials, now)
        self._publish(raw, experiment, current, blockers)
        if blockers:
            raise TrialsBlocked("; ".join(b.message for b in blockers))

    # -- reading
    def _read_world(self, namespace: str, name: str) -> World:
        # Jobs and pods first: a Job seen finished implies its collector's last patch is already
        # in the Trial we list after it.
        if self.cache is not None:
            self.cache.read_fresh(namespace, name)  # before the LISTs: what changes during them is re-read
        jobs, pods, trials = (self.kube.list_jobs(namespace, name), self.kube.list_pods(namespace, name),
                              self.kube.list_trials(namespace, name))
        if self.cache is not None:
            for kind, items in (("jobs", jobs), ("pods", pods), ("trials", trials)):
                self.cache.replace(kind, namespace, name, items)
        return _world(jobs, pods, trials, fresh=True)

    def _cached_world(self, namespace: str, name: str) -> World:
        cache = self.cache
        assert cache is not None
        return _world(cache.list("jobs", namespace, name), cache.list("pods", namespace, name),
                      cache.list("trials", namespace, name), fresh=False)

    def _snapshot_warm_start(self, raw: dict[str, Any], experiment: Experiment) -> None:
        """Read the earlier experiments' Trials once and store them in the status before any trial
        is planned: later reconciles (and restarts) plan from that snapshot, never from a re-read."""
        namespace = raw["metadata"]["namespace"]
        sources: list[tuple[str, list[Trial] | None]] = []
        for name in experiment.spec.warm_start.experiments:  # type: ignore[union-attr]
            if self.kube.get_experiment(namespace, name) is None:
                sources.append((name, None))
                continue
            sources.append((name, [Trial.model_validate({**t, "status": t.get("status") or {}})
                                   for t in self.kube.list_trials(namespace, name)]))
        snap = warm_start_snapshot(experiment, sources)
        self.kube.patch_experiment_status(namespace, experiment.name, {"warmStart": snap.to_wire()})
        experiment.status.warm_start = snap
        self.kube.post_event(raw, "WarmStarted", f"{len(snap.trials)} earlier trials seed the search: "
                                                 + "; ".join(snap.notes))
        log.info("%s/%s: warm start: %s", namespace, experiment.name, "; ".join(snap.notes))

    # -- trial phases follow their Jobs
    def _sync_trials(self, experiment: Experiment, world: World, now: datetime) -> list[Trial]:
        trials = []
        for raw in world.trials:
            if not world.fresh and self._may_end(experiment, raw, world):
                # Its Job's end and the collector's last patch are two objects' events: the cache may have
                # the first without the second. Finalise from what the API server holds.
                raw = self.kube.get_trial(raw["metadata"]["namespace"], raw["metadata"]["name"]) or raw
            trial = Trial.model_validate({**raw, "status": raw.get("status") or {}})
            world.by_name[trial.name] = trial
            trials.append(trial)
            if trial.phase.is_terminal:
                continue
            before = status_wire(trial.status, OPERATOR_TRIAL_FIELDS)
            self._follow_job(experiment, trial, world, now)
            after = status_wire(trial.status, OPERATOR_TRIAL_FIELDS)
            changed = {k: v for k, v in after.items() if before[k] != v}
            if changed:
                self.kube.patch_trial_status(raw["metadata"]["namespace"], trial.name, changed)
                if trial.phase.is_terminal:
                    objective = f" objective={trial.status.objective:.6g}" if trial.status.objective is not None else ""
                    log.info("%s: %s (%s)%s", trial.name, trial.phase.value, trial.status.reason, objective)
        return trials

    def _may_end(self, experiment: Experiment, raw: dict[str, Any], world: World) -> bool:
        """Whether `_follow_job` would finalise this (cached) trial now."""
        name, status = raw["metadata"]["name"], raw.get("status") or {}
        phase = status.get("phase") or TrialPhase.pending.value
        if phase in TERMINAL_PHASES:
            return False
        job = world.jobs.get(name)
        if job is None:
            return not world.pods.get(name) and (phase == TrialPhase.running.value or bool(status.get("stopReason")))
        return job_outcome(job, world.pods.get(name, []), self._primary_name(experiment)).state.is_terminal

    def _follow_job(self, experiment: Experiment, trial: Trial, world: World, now: datetime) -> None:
        job, pods = world.jobs.get(trial.name), world.pods.get(trial.name, [])
        container = self._primary_name(experiment)
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
                tail = self.kube.pod_log_tail(trial.metadata.namespace or "default", outcome.pod, container)
            if outcome.message and outcome.message not in tail:
                tail = f"{tail}\n{outcome.message}" if tail else outcome.message
            finalize_trial(experiment, trial, exit_code=outcome.exit_code, now=now, output_tail=tail,
                           failure_reason=outcome.reason)
        elif outcome.state is RunState.running:
            mark_running(trial, outcome.started_at or now)
        elif outcome.reason and trial.status.reason != outcome.reason:
            # Still pending, but say why (ErrImagePull, Unschedulable, ...).
            trial.status.reason, trial.status.message = outcome.reason, outcome.message

    @staticmethod
    def _primary_name(experiment: Experiment) -> str:
        template = experiment.spec.trial_template
        return primary_container(template.job_spec, template.primary_container_name).get("name", "")

    # -- applying the plan
    def _stop(self, experiment_raw: dict[str, Any], world: World, orders: list[StopOrder], container: str) -> None:
        namespace = experiment_raw["metadata"]["namespace"]
        for order in orders:
            trial = world.by_name[order.name]
            if trial.status.stop_reason is None and training_ended(world.pods.get(order.name, []), container):
                # Its training has already exited: nothing is left to stop, and its outcome (not
                # the rule's verdict on a complete curve) is what the trial ends with.
                continue
            if trial.status.stop_reason is None:
                # Recorded before the Job goes, so a crash in between still ends as EarlyStopped.
                trial.status.stop_reason, trial.status.stop_message = order.reason, order.message
                self.kube.patch_trial_status(namespace, order.name,
                                             {"stopReason": order.reason, "stopMessage": order.message})
            if order.name in world.jobs and self.kube.delete_job(namespace, order.name):
                # A stop rule's verdict is an early stop; suspending, finishing or a diverged metric are not.
                early = order.reason not in (reasons.SUSPENDED, reasons.EXPERIMENT_FINISHED, reasons.OBJECTIVE_NOT_FINITE)
                self.kube.post_event(experiment_raw, "TrialEarlyStopped" if early else "TrialStopped",
                                     f"{order.name}: {order.reason}: {order.message}")
                log.info("%s/%s: stopped %s: %s: %s", namespace, experiment_raw["metadata"]["name"],
                         order.name, order.reason, order.message)

    def _create(self, experiment_raw: dict[str, Any], experiment: Experiment, proposals: list[TrialProposal],
                blockers: list[Blocker]) -> None:
        namespace = experiment_raw["metadata"]["namespace"]
        for proposal in proposals:
            trial = new_trial(experiment, proposal.index, proposal.assignment, parent=proposal.parent)
            created = self.kube.create_trial(namespace, trial_body(trial, experiment_raw))
            if created is None:
                # Someone (an earlier run of this operator) created it: run what is stored, not our proposal.
                stored = self.kube.get_trial(namespace, proposal.name)
                if stored is None:
                    continue
                self._create_job(namespace, trial_job(experiment, stored, self.collector), blockers)
                continue
            # The Job first: the status and the event only inform people. A Trial with no status reads
            # as Pending, so a crash before the patch changes nothing but what kubectl shows meanwhile.
            self._create_job(namespace, trial_job(experiment, created, self.collector), blockers)
            self.kube.patch_trial_status(namespace, proposal.name, {"phase": TrialPhase.pending.value})
            params = ", ".join(f"{k}={v}" for k, v in proposal.assignment.items())
            params += f" (from {proposal.parent})" if proposal.parent else ""
            self.kube.post_event(experiment_raw, "TrialCreated", f"{proposal.name}: {params}")
            log.info("%s/%s: created %s: %s", namespace, experiment.name, proposal.name, params)

    def _ensure_jobs(self, experiment: Experiment, world: World, trials: list[Trial], blockers: list[Blocker]) -> None:
        """A Trial created by a run that crashed (or was refused) before its Job: create the Job now."""
        raws = {t["metadata"]["name"]: t for t in world.trials}
        for trial in trials:
            if (trial.phase is TrialPhase.pending and trial.status.stop_reason is None
                    and trial.name not in world.jobs and not world.pods.get(trial.name)):
                self._create_job(trial.metadata.namespace or "default",
                                 trial_job(experiment, raws[trial.name], self.collector), blockers)

    def _create_job(self, namespace: str, job: dict[str, Any], blockers: list[Blocker]) -> None:
        try:
            self.kube.create_job(namespace, job)
        except ApiException as exc:
            if exc.status not in REFUSED:
                raise  # throttled, conflict, unavailable: the work queue retries
            blockers.append(Blocker(JOB_REFUSED, f"the API server refused Job {job['metadata']['name']} "
                                                 f"({exc.status}): {api_message(exc)}"))

    def _podless_jobs(self, world: World, trials: list[Trial], now: datetime) -> list[Blocker]:
        """Pending trials whose Job has had no pod for a while because its ServiceAccount does not exist."""
        waiting: dict[tuple[str, str], list[str]] = {}
        for trial in trials:
            job = world.jobs.get(trial.name)
            if trial.phase is not TrialPhase.pending or job is None or world.pods.get(trial.name):
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

    def _publish(self, experiment_raw: dict[str, Any], experiment: Experiment, current: Plan,
                 blockers: list[Blocker]) -> None:
        previous = experiment_raw.get("status") or {}
        blocked = _blocked_condition(blockers, previous, self.clock())
        if blocked is not None:
            current.status.conditions.append(blocked)
        status = status_wire(current.status)
        if not _worth_writing(status, previous):
            return
        metadata = experiment_raw["metadata"]
        self.kube.patch_experiment_status(metadata["namespace"], metadata["name"], status)
        if blocked is not None and _condition(previous, BLOCKED).get("message") != blocked.message:
            self.kube.post_event(experiment_raw, blocked.reason, blocked.message, warning=True)
            log.warning("%s/%s: %s: %s", metadata["namespace"], metadata["name"], blocked.reason, blocked.message)
        zoom = current.status.zoom
        if zoom is not None and zoomed_further(_zoom_of(previous), zoom):
            self.kube.post_event(experiment_raw, "Zoomed", zoom.describe())
        if current.finish is not None and previous.get("phase") != current.finish.phase.value:
            self.kube.post_event(experiment_raw, f"Experiment{current.finish.phase.value}",
                                 f"{current.finish.reason}: {current.finish.message}",
                                 warning=current.finish.phase is ExperimentPhase.failed)
            log.info("%s/%s: %s: %s: %s", metadata["namespace"], metadata["name"], current.finish.phase.value,
                     current.finish.reason, current.finish.message)

    # -- invalid specs
    def _warn(self, raw: dict[str, Any], experiment: Experiment) -> None:
        """What the spec says that Dial accepts but does not act on, as Warning events (never silently)."""
        for warning in experiment_warnings(experiment):
            self.kube.post_event(raw, reasons.SPEC_WARNING, str(warning), warning=True)

    def _reject(self, raw: dict[str, Any], world: World, errors: list[SpecError], now: datetime) -> None:
        """Failed with a condition naming the fields; running trials stopped; no retry until the spec changes."""
        message = "; ".join(str(e) for e in errors)
        previous = raw.get("status") or {}
        namespace = raw["metadata"]["namespace"]
        if self.metrics is not None:
            self.metrics.set_phase(namespace, raw["metadata"]["name"], ExperimentPhase.failed)
        for trial_raw in world.trials:
            status = trial_raw.get("status") or {}
            name = trial_raw["metadata"]["name"]
            if status.get("phase") in (None, TrialPhase.pending.value, TrialPhase.running.value):
                if not status.get("stopReason"):
                    self.kube.patch_trial_status(namespace, name, {
                        "stopReason": reasons.EXPERIMENT_FINISHED, "stopMessage": f"experiment spec is invalid: {message}"})
                if name in world.jobs:
                    self.kube.delete_job(namespace, name)
        conditions = previous.get("conditions") or []
        if previous.get("phase") == ExperimentPhase.failed.value and conditions and \
                conditions[0].get("reason") == reasons.INVALID_SPEC and conditions[0].get("message") == message:
            return
        condition = Condition(type=ExperimentPhase.failed.value, reason=reasons.INVALID_SPEC, message=message,
                              last_transition_time=now)
        self.kube.patch_experiment_status(namespace, raw["metadata"]["name"], {
            "phase": ExperimentPhase.failed.value, "conditions": [condition.to_wire()],
            "completionTime": condition.to_wire()["lastTransitionTime"]})
        self.kube.post_event(raw, reasons.INVALID_SPEC, message, warning=True)
        log.warning("%s/%s: invalid spec: %s", namespace, raw["metadata"]["name"], message)


def _world(jobs: list[dict[str, Any]], pods: list[dict[str, Any]], trials: list[dict[str, Any]], *,
           fresh: bool) -> World:
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        trial = (pod["metadata"].get("labels") or {}).get(TRIAL_LABEL)
        if trial:
            by_trial.setdefault(trial, []).append(pod)
    return World(jobs={j["metadata"]["name"]: j for j in jobs}, pods=by_trial, trials=trials, fresh=fresh)


def api_message(exc: ApiException) -> str:
    """The API server's own message (quota exceeded, field invalid, forbidden), else its reason phrase."""
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


def _zoom_of(status: dict[str, Any]) -> ZoomStatus | None:
    try:
        return ZoomStatus.model_validate(status["zoom"]) if status.get("zoom") else None
    except ValidationError:
        return None  # an unreadable old value: treat the current zoom as news


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _blocked_condition(blockers: list[Blocker], previous: dict[str, Any], now: datetime) -> Condition | None:
    if not blockers:
        return None
    reason, message = blockers[0].reason, "; ".join(b.message for b in blockers)
    before = _condition(previous, BLOCKED)
    since = before.get("lastTransitionTime") if before.get("reason") == reason else None
    return Condition(type=BLOCKED, reason=reason, message=message,
                     last_transition_time=datetime.fromisoformat(since.replace("Z", "+00:00")) if since else now)


def _worth_writing(status: dict[str, Any], previous: dict[str, Any]) -> bool:
    """A status differs from the stored one in more than the clock-driven budget figures, or those
    are stale: writing on every reconcile would trigger the next one, forever."""
    def solid(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v is not None and k != "budget"}

    if solid(status) != solid(previous):
        return True
    new, old = status.get("budget") or {}, previous.get("budget") or {}
    if {k: v for k, v in new.items() if k not in CLOCK_DRIVEN} != {k: v for k, v in old.items() if k not in CLOCK_DRIVEN}:
        return True
    return abs((new.get("elapsedSeconds") or 0) - (old.get("elapsedSeconds") or 0)) >= BUDGET_REFRESH_SECONDS
