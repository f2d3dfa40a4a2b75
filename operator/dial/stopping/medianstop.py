"""Median stopping (Katib's `medianstop`): stop a trial doing worse than the median of finished ones."""

from __future__ import annotations

import statistics
from typing import Sequence

from pydantic import Field

from dial.api.trial import Trial, TrialPhase
from dial.stopping.base import RuleSettings, StopDecision, StopRule


class MedianStopSettings(RuleSettings):
    min_trials_required: int = Field(default=3, ge=1)
    start_step: int = Field(default=4, ge=1)


class MedianStop(StopRule):
    """From `start_step` on, once `min_trials_required` trials succeeded, stop a trial whose best
    value so far is worse than the median of the succeeded trials' running averages at that step."""

    name = "medianstop"
    Settings = MedianStopSettings
    settings: MedianStopSettings

    def check(self, trial: Trial, others: Sequence[Trial]) -> StopDecision | None:
        metric = self.objective.metric_name
        obs = trial.status.observation(metric)
        if obs is None or obs.n_points < self.settings.start_step:
            return None
        completed = [t for t in others if t.phase is TrialPhase.succeeded and t.status.observation(metric)]
        if len(completed) < self.settings.min_trials_required:
            return None
        step = obs.curve[-1].step
        averages = []
        for other in completed:
            points = [p.value for p in other.status.observation(metric).curve if p.step <= step]  # type: ignore[union-attr]
            if points:
                averages.append(sum(points) / len(points))
        if len(averages) < self.settings.min_trials_required:
            return None
        median = statistics.median(averages)
        best = obs.min if self.objective.type.value == "minimize" else obs.max
        if self.objective.is_better(median, best):
            return StopDecision(self.name, f"best {metric} {best:.6g} by step {step:g} is worse than the median "
                                           f"{median:.6g} of {len(averages)} finished trials' running averages")
        return None
