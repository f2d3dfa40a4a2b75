"""The Trial resource: one assignment of parameters, its run and what it reported."""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum
from typing import Annotated

from pydantic import Field

from dial.api.base import API_GROUP, API_VERSION, ApiModel
from dial.api.experiment import MetricStrategy, ObjectiveMetric, ObjectiveSpec, ObjectMeta
from dial.api.space import ParameterValue

CURVE_MAX_POINTS = 200


class TrialPhase(str, Enum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    early_stopped = "EarlyStopped"
    metrics_unavailable = "MetricsUnavailable"

    @property
    def is_terminal(self) -> bool:
        return self not in (TrialPhase.pending, TrialPhase.running)


class CurvePoint(ApiModel):
    step: float
    value: float


class MetricObservation(ApiModel):
    """Everything seen of one metric: latest, extremes and a bounded learning curve."""

    name: str
    latest: float
    min: float
    max: float
    n_points: int = 0
    curve: list[CurvePoint] = Field(default_factory=list)

    def record(self, step: float, value: float, *, max_points: int = CURVE_MAX_POINTS) -> None:
        self.latest = value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.n_points += 1
        self.curve.append(CurvePoint(step=step, value=value))
        if len(self.curve) > max_points:
            self.curve = thin_curve(self.curve, max_points)


def thin_curve(curve: list[CurvePoint], max_points: int) -> list[CurvePoint]:
    """Halve the resolution of the older points, always keeping the first and the latest."""
    keep_tail = max_points // 2
    head, tail = curve[:-keep_tail], curve[-keep_tail:]
    return [*head[::2], *tail][-max_points:] if len(head) > 1 else curve[-max_points:]


class NonFinitePoint(ApiModel):
    """The first non-finite value an objective metric reported. JSON has no NaN, so the value is kept as text."""

    metric: str
    step: float
    value: str

    def describe(self) -> str:
        return f"{self.metric} reported {self.value} at step {self.step:g}"


class TrialSpec(ApiModel):
    experiment: str
    index: Annotated[int, Field(ge=0)]
    parameter_assignments: dict[str, ParameterValue]
    # The trial whose checkpoint this one resumes (population based training); absent otherwise.
    parent_trial: str | None = None


class TrialStatus(ApiModel):
    phase: TrialPhase = TrialPhase.pending
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    observations: list[MetricObservation] = Field(default_factory=list)
    objective: float | None = None
    # Multi-objective only: every objective's value by metric name (`objective` is the first's).
    objectives: dict[str, float] | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    # Written by whoever reads the metrics (the collector sidecar, `dial run`); the engine turns it into a
    # stop and a Failed trial.
    non_finite_objective: NonFinitePoint | None = None
    stop_reason: str | None = None
    stop_message: str | None = None

    def observation(self, name: str) -> MetricObservation | None:
        return next((o for o in self.observations if o.name == name), None)

    def record(self, name: str, step: float, value: float) -> None:
        obs = self.observation(name)
        if obs is None:
            obs = MetricObservation(name=name, latest=value, min=value, max=value)
            self.observations.append(obs)
        obs.record(step, value)

    def update_objective(self, objective: ObjectiveSpec) -> None:
        """Derive the trial's objective value(s) from its observations."""
        values = {t.metric_name: v for t in objective.targets
                  if (v := self._objective_value(t, objective.metric_strategy)) is not None}
        self.objective = values.get(objective.primary.metric_name)
        self.objectives = (values or None) if objective.is_multi else None

    def _objective_value(self, target: ObjectiveMetric, strategy: MetricStrategy) -> float | None:
        obs = self.observation(target.metric_name)
        if obs is None or not math.isfinite(obs.latest):
            return None
        if strategy is MetricStrategy.latest:
            return obs.latest
        return obs.min if target.type.value == "minimize" else obs.max

    def missing_objectives(self, objective: ObjectiveSpec) -> list[str]:
        """The objective metrics this trial has no value for."""
        have = self.objectives or ({} if self.objective is None else {objective.primary.metric_name: self.objective})
        return [t.metric_name for t in objective.targets if t.metric_name not in have]


class Trial(ApiModel):
    api_version: str = f"{API_GROUP}/{API_VERSION}"
    kind: str = "Trial"
    metadata: ObjectMeta
    spec: TrialSpec
    status: TrialStatus = Field(default_factory=TrialStatus)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def phase(self) -> TrialPhase:
        return self.status.phase


def trial_name(experiment: str, index: int) -> str:
    """Deterministic, so creating a trial twice is idempotent."""
    return f"{experiment}-{index:04d}" if index < 10000 else f"{experiment}-{index}"
