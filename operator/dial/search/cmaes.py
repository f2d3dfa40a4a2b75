"""CMA-ES on the `cmaes` package, its state rebuilt from history on every call.

Finished trials, in index order, form generations of `population_size`; each complete generation
is told to a fresh optimiser, and the proposals are drawn from the resulting distribution. Works
in the unit cube: log scales are log-transformed, ints, discrete lists and categorical values are
unit-interval buckets (categories become an arbitrary order, which CMA-ES handles poorly: prefer
`tpe` or `gp` when categorical parameters matter).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from pydantic import Field

from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.observed import decode


class CmaesSettings(StrategySettings):
    sigma: float = Field(default=1.0 / 3.0, gt=0, le=1, description="Initial step size in the unit cube.")
    population_size: int | None = Field(default=None, ge=2, description="Default 4 + 3 ln(dimensions).")
    random_state: int | None = None


class Cmaes(Strategy):
    name = "cmaes"
    Settings = CmaesSettings
    settings: CmaesSettings

    def validate(self) -> None:
        if len(self.space.dimensions) < 2:
            raise ValueError("cmaes needs at least two parameters; use tpe, gp or grid for one")

    @property
    def population_size(self) -> int:
        n = len(self.space.dimensions)
        return self.settings.population_size or 4 + math.floor(3 * math.log(n))

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        from cmaes import CMA

        self.validate()
        seed = self.settings.random_state if self.settings.random_state is not None else self.seed
        dims = len(self.space.dimensions)
        optimizer = CMA(
            mean=np.full(dims, 0.5), sigma=self.settings.sigma, bounds=np.tile([0.0, 1.0], (dims, 1)),
            population_size=self.population_size,
            seed=int(np.random.SeedSequence([seed, len(history)]).generate_state(1)[0] % (2**31)),
        )
        for generation in self._generations(history):
            optimizer.tell(generation)
        proposals = [decode(self.space, optimizer.ask()) for _ in range(n)]
        return without_duplicates(self.space, history, proposals, self.rng(history))

    def _generations(self, history: Sequence[TrialRecord]) -> list[list[tuple[np.ndarray, float]]]:
        """Finished trials in index order, cut into complete generations; a failed trial counts as
        worse than every finished one so the search moves away from it."""
        finished = [r for r in sorted(history, key=lambda r: r.index) if r.finished]
        losses = [r.loss for r in finished if r.loss is not None and math.isfinite(r.loss)]
        worst = max(losses, default=0.0) + abs(max(losses, default=0.0)) + 1.0
        solutions = [(self.space.to_unit(r.assignment),
                      float(r.loss) if r.loss is not None and math.isfinite(r.loss) else worst) for r in finished]
        size = self.population_size
        return [solutions[i:i + size] for i in range(0, len(solutions) - size + 1, size)]
