"""The Pareto front of a multi-objective experiment, as it appears in `status.paretoFront`."""

from __future__ import annotations

from typing import Sequence

from dial.api.experiment import Experiment, ParetoTrial
from dial.api.trial import Trial, TrialPhase
from dial.search.pareto import pareto_front, spread_subset

# Bounds the status object (and each write of it); a larger front is thinned evenly along its
# length, keeping every objective's extremes. `paretoFrontSize` tells the whole count.
MAX_PARETO_FRONT = 50


def front_trials(experiment: Experiment, trials: Sequence[Trial]) -> list[Trial]:
    """The succeeded trials no other succeeded trial dominates, in index order (all of them)."""
    objective = experiment.spec.objective
    scored: list[tuple[Trial, tuple[float, ...]]] = []
    for t in sorted(trials, key=lambda t: t.spec.index):
        losses = objective.losses(t.status.objectives or {}) if t.phase is TrialPhase.succeeded else None
        if losses is not None:
            scored.append((t, losses))
    return [scored[i][0] for i in pareto_front([losses for _, losses in scored])]


def status_front(experiment: Experiment, trials: Sequence[Trial]) -> tuple[list[ParetoTrial], int]:
    """At most MAX_PARETO_FRONT front trials for the status, and the front's full size."""
    objective = experiment.spec.objective
    front = front_trials(experiment, trials)
    keep = spread_subset([objective.losses(t.status.objectives or {}) for t in front], MAX_PARETO_FRONT)  # type: ignore[misc]
    entries = [ParetoTrial(name=front[i].name, parameters=dict(front[i].spec.parameter_assignments),
                           objectives=dict(front[i].status.objectives or {})) for i in keep]
    return entries, len(front)
