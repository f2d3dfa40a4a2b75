"""Quasi-random search on a scrambled Sobol sequence: covers the space more evenly than random draws."""

from __future__ import annotations

import warnings
from typing import Sequence

from pydantic import Field

from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.observed import decode
from dial.search.space import SearchSpace


class SobolSettings(StrategySettings):
    random_state: int | None = Field(default=None, description="Katib's name for a seed that overrides the experiment's.")


class SobolSearch(Strategy):
    """Point k of the experiment is point k of one Sobol sequence scrambled with the seed, so a
    restarted search continues the same sequence from the length of its history."""

    name = "sobol"
    multi_objective = True  # proposals never read the losses
    Settings = SobolSettings
    settings: SobolSettings

    def __init__(self, space: SearchSpace, settings: SobolSettings | None = None, *, seed: int = 0):
        super().__init__(space, settings, seed=seed)
        if self.settings.random_state is not None:
            self.seed = self.settings.random_state

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        points = sobol_points(len(self.space.dimensions), self.seed, start=len(history), n=n)
        proposals = [decode(self.space, p) for p in points]
        return without_duplicates(self.space, history, proposals, self.rng(history))


def sobol_points(n_dims: int, seed: int, *, start: int, n: int) -> "list[list[float]]":
    """Points start..start+n-1 of the seed's scrambled Sobol sequence in the unit cube."""
    from scipy.stats import qmc

    engine = qmc.Sobol(d=n_dims, scramble=True, seed=seed)
    with warnings.catch_warnings():
        # The balance properties hold for powers of two; other counts are still low-discrepancy.
        warnings.simplefilter("ignore", UserWarning)
        if start:
            engine.fast_forward(start)
        return engine.random(n).tolist()
