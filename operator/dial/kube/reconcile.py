"""Reconcile one Experiment: read it and its Trials, Jobs and pods, and let the driver plan and apply the plan.

Crash-only: nothing is remembered between calls but a cache of what the watches delivered
(`dial.kube.cache`), and that is only ever a copy. An experiment not read fresh lately (at start,
after a failed reconcile, every resync) is read from the API server (LISTs are consistent reads);
otherwise from the cache, except a trial about to be finalised, which is read fresh. Names are
deterministic and a create that finds its object already there (409) runs the stored one, so a
restart at any point, or a cache that lags, neither loses nor repeats work.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

from dial.api.experiment import Condition, Experiment, ExperimentPhase
from dial.api.trial import Trial
from dial.engine import SpecError, experiment_warnings, plan
from dial.engine import reasons
from dial.engine.driver import drive, stop_trial
from dial.engine.plan import StopOrder
from dial.engine.warm_start import snapshot as warm_start_snapshot
from dial.kube.backend import InvalidSpecStops, KubeBackend
from dial.kube.client import KubeClient, StaleRead
from dial.kube.jobs import CollectorSettings
from dial.kube.spec import read_experiment
from dial.kube.workqueue import RetryLater
from dial.kube.world import World, cached_world, read_world
from dial.metrics.exporter import DialMetrics

log = logging.getLogger("dial.operator")


class TrialsBlocked(RetryLater):
    """Trials cannot run for a reason now named on the Experiment; the work queue retries with backoff."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Reconciler:
    def __init__(self, kube: KubeClient, collector: CollectorSettings, *, clock: Callable[[], datetime] = utcnow,
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
            try:
                self._reconcile(namespace, name, fresh)
            except StaleRead:
                # A write that conflicts re-reads: the experiment changed since it was read (a user's edit, or
                # a cached copy behind our own last write). Plan again from what the API server holds now.
                self._reconcile(namespace, name, True)
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
        world = read_world(self.kube, namespace, name) if fresh else cached_world(self.kube, namespace, name)
        if errors or experiment is None:
            self._reject(raw, world, errors, now)
            return
        if experiment.status.start_time is None:  # once, before the first trial: not on every reconcile
            self._warn(raw, experiment)
        if experiment.spec.warm_start is not None and experiment.status.warm_start is None:
            raw = self._snapshot_warm_start(raw, experiment)
        applied = drive(experiment, KubeBackend(self.kube, raw, experiment, world, self.collector), now=now,
                        planner=self.plan)
        if applied.blockers:
            raise TrialsBlocked("; ".join(b.message for b in applied.blockers))

    def _snapshot_warm_start(self, raw: dict[str, Any], experiment: Experiment) -> dict[str, Any]:
        """Read the earlier experiments' Trials once and store them in the status before any trial
        is planned: later reconciles (and restarts) plan from that snapshot, never from a re-read.
        Returns `raw` at the version that write made (a copy: `raw` may be the cache's own)."""
        namespace = raw["metadata"]["namespace"]
        sources: list[tuple[str, list[Trial] | None]] = []
        for name in experiment.spec.warm_start.experiments:  # type: ignore[union-attr]
            if self.kube.get_experiment(namespace, name) is None:
                sources.append((name, None))
                continue
            sources.append((name, [Trial.model_validate({**t, "status": t.get("status") or {}})
                                   for t in self.kube.list_trials(namespace, name)]))
        snap = warm_start_snapshot(experiment, sources)
        version = self.kube.patch_experiment_status(namespace, experiment.name, {"warmStart": snap.to_wire()},
                                                    resource_version=raw["metadata"].get("resourceVersion"))
        experiment.status.warm_start = snap
        self.kube.post_event(raw, "WarmStarted", f"{len(snap.trials)} earlier trials seed the search: "
                                                 + "; ".join(snap.notes))
        log.info("%s/%s: warm start: %s", namespace, experiment.name, "; ".join(snap.notes))
        return {**raw, "metadata": {**raw["metadata"], "resourceVersion": version}}

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
        stops = InvalidSpecStops(self.kube, namespace, world)
        for trial_raw in world.trials:
            trial = Trial.model_validate({**trial_raw, "status": trial_raw.get("status") or {}})
            if not trial.phase.is_terminal:
                stop_trial(trial, StopOrder(trial.name, reasons.EXPERIMENT_FINISHED,
                                            f"experiment spec is invalid: {message}"), stops)
        conditions = previous.get("conditions") or []
        if previous.get("phase") == ExperimentPhase.failed.value and conditions and \
                conditions[0].get("reason") == reasons.INVALID_SPEC and conditions[0].get("message") == message:
            return
        condition = Condition(type=ExperimentPhase.failed.value, reason=reasons.INVALID_SPEC, message=message,
                              last_transition_time=now)
        self.kube.patch_experiment_status(namespace, raw["metadata"]["name"], {
            "phase": ExperimentPhase.failed.value, "conditions": [condition.to_wire()],
            "completionTime": condition.to_wire()["lastTransitionTime"]},
            resource_version=raw["metadata"].get("resourceVersion"))
        self.kube.post_event(raw, reasons.INVALID_SPEC, message, warning=True)
        log.warning("%s/%s: invalid spec: %s", namespace, raw["metadata"]["name"], message)

