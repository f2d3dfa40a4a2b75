"""Asynchronous successive halving (ASHA): at each rung, stop a trial outside the top 1/eta.

Rungs are at steps `min_resource * reduction_factor**k` (the step a trial reports is the
resource it has used: epochs, batches). When a running trial has reached a rung, its value
there is ranked against every other trial that also reached that rung, whether it is still
running, finished or was stopped there; unless it is in the best `floor(n / reduction_factor)`
of those `n` values, it stops. With fewer than `reduction_factor` values at a rung there is
nothing to judge yet and the trial goes on, so the first trials always run to the end.
"""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import Field

from dial.api.trial import MetricObservation, Trial
from dial.stopping.base import RuleSettings, StopDecision, StopRule


class AshaSettings(RuleSettings):
    min_resource: float = Field(default=1.0, gt=0, description="Step of the first rung.")
    reduction_factor: float = Field(default=3.0, gt=1, description="Keep the best 1/reduction_factor at each rung.")
    max_resource: float | None = Field(default=None, gt=0, description="No rung at or beyond this step.")


class Asha(StopRule):
    name = "asha"
    Settings = AshaSettings
    settings: AshaSettings

    def rungs_up_to(self, step: float) -> list[float]:
        s = self.settings
        rungs: list[float] = []
        k = 0
        while (r := s.min_resource * s.reduction_factor**k) <= step + 1e-9:
            if s.max_resource is not None and r >= s.max_resource:
                break
            rungs.append(r)
            k += 1
        return rungs

    def check(self, trial: Trial, others: Sequence[Trial]) -> StopDecision | None:
        metric = self.objective.metric_name
        obs = trial.status.observation(metric)
        if obs is None or not obs.curve:
            return None
        rungs = self.rungs_up_to(obs.curve[-1].step)
        if not rungs:
            return None
        rung = rungs[-1]
        mine = self._loss_at(obs, rung)
        others_at_rung = [v for t in others if (o := t.status.observation(metric)) is not None and o.curve
                  and o.curve[-1].step >= rung - 1e-9 and (v := self._loss_at(o, rung)) is not None]
        n = len(others_at_rung) + 1
        n_kept = int(math.floor(n / self.settings.reduction_factor))
        if mine is None or n_kept == 0:
            return None
        rank = 1 + sum(v < mine for v in others_at_rung)
        if rank <= n_kept:
            return None
        value = self.objective.loss(mine)  # back from loss to the metric's own sign
        return StopDecision(self.name, f"{metric} {value:.6g} at rung step {rung:g} ranks {rank} of {n}; "
                                       f"only the best {n_kept} go on")

    def _loss_at(self, obs: MetricObservation, rung: float) -> float | None:
        """The objective as a loss at the last report at or before the rung's step."""
        points = [p for p in obs.curve if p.step <= rung + 1e-9]
        if not points:
            return None
        return self.objective.loss(points[-1].value)
