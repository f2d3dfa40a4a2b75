"""Parameter importance: how much of the objective's variation a random forest attributes to each parameter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from dial.api.space import ParameterValue

if TYPE_CHECKING:
    from dial.report.data import ParameterAxis

MIN_TRIALS = 4
N_TREES = 100
N_REPEATS = 10
METHOD = ("random-forest permutation importance: how much worse the forest predicts the objective "
          "when a parameter's values are shuffled (normalised to sum 1)")


@dataclass(frozen=True)
class Importance:
    """`ranking` is (parameter, share) most important first; empty with a `note` when it cannot be computed."""

    ranking: list[tuple[str, float]] = field(default_factory=list)
    method: str = METHOD
    note: str | None = None
    n_trials: int = 0


def parameter_importance(axes: Sequence[ParameterAxis], scored: Sequence[tuple[dict[str, ParameterValue], float]],
                         *, seed: int = 0) -> Importance:
    """Fit a forest from parameters (log10 on log axes, category index on categorical ones) to the loss, then permute."""
    rows = [(a, loss) for a, loss in scored if math.isfinite(loss)]
    if len(rows) < MIN_TRIALS:
        return Importance(note=f"needs at least {MIN_TRIALS} trials with an objective (have {len(rows)})",
                          n_trials=len(rows))
    y = np.array([loss for _, loss in rows])
    if np.ptp(y) == 0:
        return Importance(note="every trial has the same objective: nothing to attribute", n_trials=len(rows))
    # An inactive conditional parameter is missing (NaN): the forest's trees route missing values.
    X = np.array([[_encode(axis, assignment[axis.name]) if axis.name in assignment else math.nan for axis in axes]
                  for assignment, _ in rows])
    if len(axes) == 1:
        return Importance([(axes[0].name, 1.0)], n_trials=len(rows))
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    forest = RandomForestRegressor(n_estimators=N_TREES, max_features=None, random_state=seed).fit(X, y)
    # Permutation rather than impurity importance: impurity credits parameters the trees split on
    # only to fit leftovers, so an irrelevant parameter got a quarter of the credit in tests.
    drops = permutation_importance(forest, X, y, n_repeats=N_REPEATS, random_state=seed,
                                   scoring="neg_mean_squared_error").importances_mean
    drops = np.clip(drops, 0.0, None)
    if drops.sum() == 0:
        return Importance(note="no parameter explains the objective's variation", n_trials=len(rows))
    shares = drops / drops.sum()
    ranking = sorted(((axis.name, float(s)) for axis, s in zip(axes, shares)), key=lambda item: -item[1])
    return Importance(ranking, n_trials=len(rows))


def _encode(axis: ParameterAxis, value: ParameterValue) -> float:
    position = axis.position(value)
    return math.log10(position) if axis.log and position > 0 else position
