"""Metric points into a trial's status: shared by the engine and the collector sidecar.

Outside `dial.engine` on purpose: importing anything under that package imports the planner and every
strategy (scipy among them), about half a second of CPU that the sidecar would pay in every trial pod.
"""

from __future__ import annotations

import math
from typing import Iterable

from dial.api.experiment import ObjectiveSpec
from dial.api.trial import NonFinitePoint, TrialStatus
from dial.metrics.parsing import MetricPoint


def record_observations(objective: ObjectiveSpec, status: TrialStatus, points: Iterable[MetricPoint]) -> int:
    """`record_points` on a bare status: the metrics collector sidecar knows the objective, not the experiment."""
    n = 0
    objective_names = {t.metric_name for t in objective.targets}
    for point in points:
        if not math.isfinite(point.value):
            if point.name in objective_names and status.non_finite_objective is None:
                status.non_finite_objective = NonFinitePoint(
                    metric=point.name, step=point.step if point.step is not None else 0.0, value=str(point.value))
            continue
        status.record(point.name, point.step if point.step is not None else 0.0, point.value)
        n += 1
    status.update_objective(objective)
    return n
