"""CMA-ES on the `cmaes` package, its state rebuilt from history on every call.

Finished trials, in index order, form generations of `population_size`; each complete generation
is told to a fresh optimiser, and the proposals are drawn from the resulting distribution. Works
in the unit cube: log scales are log-transformed, ints, discrete lists and categorical values are
unit-interval buckets (categories become an arbitrary order, which CMA-ES handles poorly: prefer
`tpe` or `gp` when categorical parameters matter).

`restart_strategy` (Katib's setting) restarts a converged search from a random mean: `ipop` doubles the
population each time, `bipop` alternates that with small populations and step sizes, spending about the
same number of trials on each regime (Hansen 2009). Restarts are replayed from the history like the
generations, so they are pure functions of it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.observed import decode


class CmaesSettings(StrategySettings):
    sigma: float = Field(default=1.0 / 3.0, gt=0, le=1, description="Initial step size in the unit cube.")
    population_size: int | None = Field(default=None, ge=2, description="Default 4 + 3 ln(dimensions).")
    random_state: int | None = None
    restart_strategy: Literal["none", "ipop", "bipop"] = Field(
        default="none", description="Restart a converged search: ipop with a doubled population, bipop alternating "
                                    "large and small populations (Katib's setting).")
    inc_popsize: int = Field(default=2, ge=2, description="Population growth factor at each ipop restart.")


@dataclass
class _Regime:
    """Where a replay of the history stands: the current optimiser's population and start, and what was spent."""

    population: int
    sigma: float
    restarts: int = 0
    large_restarts: int = 0
    large_budget: int = 0  # trials told to the default and enlarged populations
    small_budget: int = 0  # trials told to bipop's small populations
    small: bool = False


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
        regime, optimizer = self.replay(history)
        proposals = [decode(self.space, optimizer.ask()) for _ in range(n)]
        return without_duplicates(self.space, history, proposals, self.rng(history))

    def replay(self, history: Sequence[TrialRecord]) -> tuple[_Regime, Any]:
        """The optimiser after telling it every complete generation of the history (restarting where the
        restart strategy says), and the regime it is in."""
        seed = self.settings.random_state if self.settings.random_state is not None else self.seed
        solutions = self._solutions(history)
        regime = _Regime(self.population_size, self.settings.sigma)
        optimizer = self._optimizer(regime, seed, draw_seed=len(history))
        done = 0
        while done + regime.population <= len(solutions):
            optimizer.tell(solutions[done:done + regime.population])
            done += regime.population
            if regime.small:
                regime.small_budget += regime.population
            else:
                regime.large_budget += regime.population
            if self.settings.restart_strategy != "none" and optimizer.should_stop():
                self._restart(regime, seed)
                optimizer = self._optimizer(regime, seed, draw_seed=len(history))
        return regime, optimizer

    def _optimizer(self, regime: _Regime, seed: int, *, draw_seed: int) -> Any:
        from cmaes import CMA

        dims = len(self.space.dimensions)
        # The first search starts in the middle; a restart from a mean drawn from (seed, restart number), so
        # every replay of the history restarts at the same place.
        mean = (np.full(dims, 0.5) if regime.restarts == 0
                else np.random.default_rng([seed, regime.restarts]).uniform(0.0, 1.0, dims))
        return CMA(mean=mean, sigma=regime.sigma, bounds=np.tile([0.0, 1.0], (dims, 1)),
                   population_size=regime.population,
                   seed=int(np.random.SeedSequence([seed, draw_seed, regime.restarts]).generate_state(1)[0] % (2**31)))

    def _restart(self, regime: _Regime, seed: int) -> None:
        """The next regime after a converged run (Hansen 2009's IPOP and BIPOP)."""
        regime.restarts += 1
        base, grow = self.population_size, self.settings.inc_popsize
        if self.settings.restart_strategy == "ipop" or regime.small_budget >= regime.large_budget:
            regime.large_restarts += 1
            regime.population, regime.sigma, regime.small = base * grow ** regime.large_restarts, self.settings.sigma, False
            return
        u = float(np.random.default_rng([seed, regime.restarts, 1]).uniform())
        large = base * grow ** regime.large_restarts
        regime.population = max(2, int(math.floor(base * (0.5 * large / base) ** (u ** 2))))
        regime.sigma, regime.small = self.settings.sigma * 10 ** (-2 * u), True

    def _solutions(self, history: Sequence[TrialRecord]) -> list[tuple[np.ndarray, float]]:
        """Finished trials in index order; a failed trial counts as worse than every finished one so the
        search moves away from it."""
        finished = [r for r in sorted(history, key=lambda r: r.index) if r.finished]
        losses = [r.loss for r in finished if r.loss is not None and math.isfinite(r.loss)]
        worst = max(losses, default=0.0) + abs(max(losses, default=0.0)) + 1.0
        return [(self.space.to_unit(r.assignment),
                 float(r.loss) if r.loss is not None and math.isfinite(r.loss) else worst) for r in finished]
