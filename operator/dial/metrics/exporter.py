"""Prometheus metrics of experiments and trials, fed from the engine's objects by either backend.

Both backends replace their call to `engine.plan` with `DialMetrics.plan` (same arguments, same
result): it times the planning step and records what the experiment, its trials and the plan say.
State is kept per experiment and turned into gauges when Prometheus scrapes, so the series of an
experiment or a trial disappear once it is forgotten (deleted, or finished longer than the
retention ago). Label values are bounded: phases, rule and strategy names come from the code,
and per-trial series exist only for running trials and those finished within the retention.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dial.api.experiment import BudgetUsage, Experiment, ExperimentPhase
from dial.api.trial import Trial, TrialPhase
from dial.engine import reasons
from dial.engine.plan import Plan, plan as engine_plan

TRIAL_RETENTION_SECONDS = 300.0
# Experiment-level stops (suspend, finish, Ctrl-C) are not a rule's decision.
NOT_RULE_STOPS = frozenset({reasons.SUSPENDED, reasons.EXPERIMENT_FINISHED, reasons.INTERRUPTED})
TRIAL_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
PROPOSAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Categories of failed API calls: fixed, so every series exists (at 0) from the start.
API_ERROR_REASONS = ("conflict", "throttled", "unavailable", "other")
RECONCILE_ERROR_KINDS = ("api", "internal")

# Every metric this module exports, as a scrape shows them (histograms by their base name).
METRIC_NAMES = (
    "dial_experiments",
    "dial_trials",
    "dial_experiment_best_objective",
    "dial_experiment_pareto_front",
    "dial_trial_metric_latest",
    "dial_trials_early_stopped_total",
    "dial_trial_duration_seconds",
    "dial_proposal_duration_seconds",
    "dial_reconcile_errors_total",
    "dial_api_retries_total",
    "dial_experiment_elapsed_seconds",
    "dial_experiment_gpu_hours",
    "dial_operator_leader",
)


@dataclass
class _TrialSeries:
    experiment: str
    latest: dict[str, float]
    finished_at: float | None  # monotonic seconds; None while running


@dataclass
class _ExperimentState:
    phase: ExperimentPhase
    trial_counts: dict[TrialPhase, int] = field(default_factory=dict)
    objective_metric: str = ""
    best_objective: float | None = None
    pareto_front: dict[str, dict[str, float]] = field(default_factory=dict)  # trial -> objective -> value
    budget: BudgetUsage | None = None
    trials: dict[str, _TrialSeries] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)  # finished trials already in the counters


def api_error_reason(exc: BaseException) -> str | None:
    """The retry category of a failed API call, or None when `exc` is not an API or connection error."""
    status = getattr(exc, "status", None)
    if type(exc).__name__ == "ApiException" and status:
        if status == 409:
            return "conflict"
        if status == 429:
            return "throttled"
        return "unavailable" if status >= 500 else "other"
    if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.startswith("urllib3"):
        return "unavailable"
    return None


class DialMetrics(Collector):
    """The exporter: call `plan` (or `observe`) from a backend, serve `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 trial_retention_seconds: float = TRIAL_RETENTION_SECONDS,
                 clock: Callable[[], float] = time.monotonic, started_at: datetime | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.retention = trial_retention_seconds
        self.clock = clock
        # Trials that finished before this process started were counted by an earlier one.
        self.started_at = started_at or datetime.now(timezone.utc)
        self._lock = threading.Lock()
        self._experiments: dict[tuple[str, str], _ExperimentState] = {}
        self.early_stops = Counter(
            "dial_trials_early_stopped", "Trials stopped early by a stop rule.",
            ["namespace", "experiment", "rule"], registry=self.registry)
        self.trial_duration = Histogram(
            "dial_trial_duration_seconds", "Wall time of finished trials, from start to completion.",
            ["namespace", "phase"], buckets=TRIAL_DURATION_BUCKETS, registry=self.registry)
        self.proposal_duration = Histogram(
            "dial_proposal_duration_seconds", "Time of a planning step that proposed new trials, by strategy.",
            ["strategy"], buckets=PROPOSAL_BUCKETS, registry=self.registry)
        self.reconcile_errors = Counter(
            "dial_reconcile_errors", "Reconciles (planning and applying a plan) that failed and will be retried.",
            ["kind"], registry=self.registry)
        self.api_retries = Counter(
            "dial_api_retries", "Kubernetes API calls that failed and are retried, by cause.",
            ["reason"], registry=self.registry)
        self.watch_events = Counter(
            "dial_watch_events", "Watch events the operator received, by kind and whether they queued a reconcile "
            "(dropped: nothing the reconcile reads changed).", ["kind", "outcome"], registry=self.registry)
        self.leader = Gauge(
            "dial_operator_leader", "1 on the operator replica that holds the leader Lease and reconciles, "
            "0 on a standby (a single replica without leader election always reports 1).", registry=self.registry)
        self.leader.set(1.0)
        for kind in RECONCILE_ERROR_KINDS:
            self.reconcile_errors.labels(kind)
        for reason in API_ERROR_REASONS:
            self.api_retries.labels(reason)
        self.registry.register(self)

    # -- feeding
    def plan(self, experiment: Experiment, trials: Sequence[Trial], *, now: datetime) -> Plan:
        """`engine.plan`, timed and recorded."""
        started = time.perf_counter()
        result = engine_plan(experiment, trials, now=now)
        seconds = time.perf_counter() - started
        if result.create:
            self.proposal_duration.labels(experiment.spec.algorithm.name).observe(seconds)
        self.observe(experiment, trials, result)
        return result

    def observe(self, experiment: Experiment, trials: Sequence[Trial], plan: Plan) -> None:
        """Record the experiment as the plan leaves it, and its trials as they are now."""
        namespace, name = _namespace(experiment), experiment.name
        counts = plan.status.trials
        rule = experiment.spec.early_stopping.name if experiment.spec.early_stopping else None
        if rule is not None:
            self.early_stops.labels(namespace, name, rule)  # the series exists (at 0) before the first stop
        with self._lock:
            state = self._experiments.setdefault((namespace, name), _ExperimentState(plan.status.phase))
            state.phase = plan.status.phase
            state.trial_counts = {phase: getattr(counts, field_name) for phase, field_name in _COUNT_FIELDS}
            state.objective_metric = experiment.spec.objective.primary.metric_name
            state.best_objective = plan.status.best_objective
            state.pareto_front = {entry.name: dict(entry.objectives) for entry in plan.status.pareto_front or []}
            state.budget = plan.status.budget
            seen = set()
            for trial in trials:
                seen.add(trial.name)
                self._observe_trial(namespace, name, state, trial)
            for gone in set(state.trials) - seen:
                del state.trials[gone]

    def _observe_trial(self, namespace: str, experiment: str, state: _ExperimentState, trial: Trial) -> None:
        status = trial.status
        latest = {o.name: o.latest for o in status.observations}
        series = state.trials.get(trial.name)
        if not trial.phase.is_terminal:
            if latest:
                state.trials[trial.name] = _TrialSeries(experiment, latest, None)
            return
        if series is not None:
            series.latest = latest or series.latest
            if series.finished_at is None:
                series.finished_at = self.clock()
        if trial.name in state.counted:
            return
        state.counted.add(trial.name)
        completed = status.completion_time
        if completed is None or completed < self.started_at:
            return
        if status.start_time is not None:
            self.trial_duration.labels(namespace, trial.phase.value).observe(
                max(0.0, (completed - status.start_time).total_seconds()))
        if trial.phase is TrialPhase.early_stopped and status.reason and status.reason not in NOT_RULE_STOPS:
            self.early_stops.labels(namespace, experiment, status.reason).inc()

    def set_phase(self, namespace: str, name: str, phase: ExperimentPhase) -> None:
        """For experiments the engine never plans (an invalid spec is Failed before planning)."""
        with self._lock:
            self._experiments.setdefault((namespace, name), _ExperimentState(phase)).phase = phase

    def forget(self, namespace: str, name: str) -> None:
        """The experiment was deleted: drop its series."""
        with self._lock:
            self._experiments.pop((namespace, name), None)
        for labels in list(_child_labels(self.early_stops)):
            if labels[:2] == (namespace, name):
                self.early_stops.remove(*labels)

    def reconcile_failed(self, exc: BaseException) -> None:
        """A reconcile raised and will be retried; an API or connection error also counts as an API retry."""
        reason = api_error_reason(exc)
        self.reconcile_errors.labels("api" if reason else "internal").inc()
        if reason is not None:
            self.api_retries.labels(reason).inc()

    # -- scraping
    def collect(self) -> Iterator[Metric]:
        experiments = GaugeMetricFamily("dial_experiments", "Experiments by phase.", labels=["namespace", "phase"])
        trials = GaugeMetricFamily("dial_trials", "Trials of an experiment by phase.",
                                   labels=["namespace", "experiment", "phase"])
        best = GaugeMetricFamily("dial_experiment_best_objective", "Objective value of the experiment's best trial.",
                                 labels=["namespace", "experiment", "metric"])
        front = GaugeMetricFamily(
            "dial_experiment_pareto_front",
            "Each objective of each trial on a multi-objective experiment's Pareto front (status.paretoFront).",
            labels=["namespace", "experiment", "trial", "metric"])
        latest = GaugeMetricFamily(
            "dial_trial_metric_latest",
            "Latest value of each metric a trial reported (running trials, and finished ones for a while).",
            labels=["namespace", "experiment", "trial", "metric"])
        elapsed = GaugeMetricFamily("dial_experiment_elapsed_seconds",
                                    "Wall time the experiment has run (its maxExperimentSeconds budget is spent on this).",
                                    labels=["namespace", "experiment"])
        gpu_hours = GaugeMetricFamily("dial_experiment_gpu_hours",
                                      "GPU-hours the experiment's trials used: requested GPUs x running time (maxGpuHours).",
                                      labels=["namespace", "experiment"])
        now = self.clock()
        with self._lock:
            by_namespace: dict[str, dict[ExperimentPhase, int]] = {}
            for (namespace, name), state in sorted(self._experiments.items()):
                phases = by_namespace.setdefault(namespace, dict.fromkeys(ExperimentPhase, 0))
                phases[state.phase] += 1
                for phase in TrialPhase:
                    trials.add_metric([namespace, name, phase.value], state.trial_counts.get(phase, 0))
                if state.best_objective is not None:
                    best.add_metric([namespace, name, state.objective_metric], state.best_objective)
                for trial_name, objectives in sorted(state.pareto_front.items()):
                    for metric, value in objectives.items():
                        front.add_metric([namespace, name, trial_name, metric], value)
                if state.budget is not None:
                    elapsed.add_metric([namespace, name], state.budget.elapsed_seconds)
                    gpu_hours.add_metric([namespace, name], state.budget.gpu_hours)
                for trial_name, series in list(state.trials.items()):
                    if series.finished_at is not None and now - series.finished_at > self.retention:
                        del state.trials[trial_name]
                        continue
                    for metric, value in sorted(series.latest.items()):
                        latest.add_metric([namespace, name, trial_name, metric], value)
            for namespace, phases in by_namespace.items():
                for phase, n in phases.items():
                    experiments.add_metric([namespace, phase.value], n)
        yield from (experiments, trials, best, front, latest, elapsed, gpu_hours)

    def describe(self) -> Iterable[Metric]:
        return []  # the families above are built at scrape time


_COUNT_FIELDS = (
    (TrialPhase.pending, "pending"),
    (TrialPhase.running, "running"),
    (TrialPhase.succeeded, "succeeded"),
    (TrialPhase.failed, "failed"),
    (TrialPhase.early_stopped, "early_stopped"),
    (TrialPhase.metrics_unavailable, "metrics_unavailable"),
)


def _namespace(experiment: Experiment) -> str:
    return experiment.metadata.namespace or "default"


def _child_labels(metric: Counter) -> Iterable[tuple[str, ...]]:
    # prometheus_client has no public listing of a metric's children; a collect() names them.
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                yield tuple(sample.labels[k] for k in ("namespace", "experiment", "rule"))


def serve_metrics(port: int, address: str = "0.0.0.0", *,
                  trial_retention_seconds: float = TRIAL_RETENTION_SECONDS) -> DialMetrics:
    """A DialMetrics whose registry is served at http://address:port/metrics (a daemon thread)."""
    metrics = DialMetrics(trial_retention_seconds=trial_retention_seconds)
    start_http_server(port, addr=address, registry=metrics.registry)
    return metrics
