"""ParEGO: a single-objective model-based strategy on a random Chebyshev scalarisation of the losses.

Knowles (2006). Each proposal draws weights uniformly from the simplex (seeded by the experiment
seed, how far the search has come and the proposal's position in the batch), normalises every
objective to [0, 1] over the finished trials and hands the inner strategy the augmented
Chebyshev scalarisation `max(w * f) + rho * sum(w * f)` as its loss. Different weights per
proposal cover the whole front; the proposals of one batch are passed on as running trials so
the inner strategy spreads them as it spreads any parallel proposals.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from dial.search.base import Assignment, Strategy, TrialRecord, next_index

RHO = 0.05  # the augmentation term: ties of the max are broken towards the better sum (ParEGO's value)
_SALT = 0x9A4E60  # keeps the weight draws apart from the inner strategy's own random numbers


class ParEgo(Strategy):
    """Wraps a single-objective strategy (`gp`, `bayesian`) for multi-objective experiments."""

    multi_objective = True

    def __init__(self, inner: Strategy):
        super().__init__(inner.space, inner.settings, seed=inner.seed)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # reported as the strategy the user named

    def validate(self) -> None:
        self.inner.validate()

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        scored = [r.losses for r in history if r.finished and r.losses is not None and np.all(np.isfinite(r.losses))]
        bounds = _bounds(np.array(scored, dtype=float)) if scored else None
        records = list(history)
        proposals: list[Assignment] = []
        for position in range(n):
            rng = np.random.default_rng([self.seed, len(history), position, _SALT])
            weights = rng.dirichlet(np.ones(_n_objectives(history)))
            scalarised = [dataclasses.replace(r, loss=_scalarise(r, weights, bounds), losses=None) for r in records]
            proposed = self.inner.propose(scalarised, 1)
            if not proposed:
                break
            proposals.append(proposed[0])
            records.append(TrialRecord(next_index(records), proposed[0]))
        return proposals


def _n_objectives(history: Sequence[TrialRecord]) -> int:
    return next((len(r.losses) for r in history if r.losses is not None), 2)


def _bounds(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low, high = losses.min(axis=0), losses.max(axis=0)
    return low, np.where(high > low, high - low, 1.0)


def _scalarise(record: TrialRecord, weights: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    if record.losses is None or bounds is None:
        return record.loss if record.losses is None else None
    values = np.asarray(record.losses, dtype=float)
    if not np.all(np.isfinite(values)):
        return None
    low, span = bounds
    normalised = (values - low) / span
    weighted = weights * normalised
    return float(weighted.max() + RHO * weighted.sum())
