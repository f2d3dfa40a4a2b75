"""Threshold stopping: stop a trial once a metric crosses a bound (e.g. a diverging loss)."""

from __future__ import annotations

from typing import Sequence

from pydantic import Field, model_validator

from dial.api.trial import Trial
from dial.stopping.base import RuleSettings, StopDecision, StopRule


class ThresholdSettings(RuleSettings):
    metric_name: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    start_step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _a_bound(self) -> "ThresholdSettings":
        if self.min_value is None and self.max_value is None:
            raise ValueError("threshold needs min_value or max_value")
        return self


class Threshold(StopRule):
    """Stop when the latest value of the metric (default: the objective) is below `min_value`
    or above `max_value`, from the `start_step`-th report on."""

    name = "threshold"
    Settings = ThresholdSettings
    settings: ThresholdSettings

    @property
    def metric(self) -> str:
        return self.settings.metric_name or self.objective.primary.metric_name

    def check(self, trial: Trial, others: Sequence[Trial]) -> StopDecision | None:
        metric = self.metric
        obs = trial.status.observation(metric)
        if obs is None or obs.n_points < self.settings.start_step:
            return None
        low, high = self.settings.min_value, self.settings.max_value
        if low is not None and obs.latest < low:
            return StopDecision(self.name, f"{metric} {obs.latest:.6g} fell below min_value {low:g}")
        if high is not None and obs.latest > high:
            return StopDecision(self.name, f"{metric} {obs.latest:.6g} rose above max_value {high:g}")
        return None
