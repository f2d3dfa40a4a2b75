"""Bayesian optimisation on scikit-optimize (GP, RF, ET or GBRT surrogates), rebuilt from history each call."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from dial.api.space import ParameterType
from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.space import Dimension


class BayesianSettings(StrategySettings):
    base_estimator: Literal["GP", "RF", "ET", "GBRT"] = "GP"
    acq_func: Literal["EI", "PI", "LCB", "gp_hedge"] = "gp_hedge"
    acq_optimizer: Literal["auto", "sampling", "lbfgs"] = "auto"
    n_initial_points: int = Field(default=10, ge=1)
    # What running trials are assumed to have scored: the model's prediction ("kb", kriging
    # believer) or a constant liar. On peaks with 3 in parallel and 25 trials, kb reached the
    # basin in 8 of 10 seeds, cl_max 7, cl_min (skopt's default) 6; serial runs 10 of 10.
    parallel_strategy: Literal["kb", "cl_min", "cl_mean", "cl_max"] = "kb"
    initial_point_generator: Literal["random", "sobol", "halton", "hammersly", "lhs", "grid"] = "random"
    random_state: int | None = Field(default=None, ge=0, le=2**32 - 1)
    xi: float = Field(default=0.01, ge=0)
    kappa: float = Field(default=1.96, ge=0)


def _regressor_gbrt(random_state: int) -> Any:
    """skopt's GBRT surrogate, made to work with current scikit-learn and numpy.

    skopt 0.10.2 checks `is_regressor`, which scikit-learn >= 1.6 answers from
    `__sklearn_tags__` (skopt's class predates it), and its `predict(return_std=True)`
    calls `np.in1d`, removed in numpy 2.4.
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from skopt.learning import GradientBoostingQuantileRegressor

    class TaggedGBRT(GradientBoostingQuantileRegressor):
        def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
            tags = super().__sklearn_tags__()
            tags.estimator_type = "regressor"
            return tags

        def predict(self, X, return_std=False, return_quantiles=False):  # type: ignore[no-untyped-def]
            if not return_std or return_quantiles:
                return super().predict(X, return_std=False, return_quantiles=return_quantiles)
            by_quantile = {q: r for q, r in zip(self.quantiles, self.regressors_)}
            low, mean, high = (by_quantile[q].predict(X) for q in (0.16, 0.5, 0.84))
            return mean, (high - low) / 2.0

    base = GradientBoostingRegressor(n_estimators=30, loss="quantile")
    return TaggedGBRT(base_estimator=base, random_state=random_state)


class BayesianOptimization(Strategy):
    name = "bayesian"
    aliases = ("bayesianoptimization", "skopt")
    Settings = BayesianSettings
    settings: BayesianSettings

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        from skopt import Optimizer
        from skopt.space import Categorical, Integer, Real

        seed = self.settings.random_state if self.settings.random_state is not None else self.seed
        random_state = int(np.random.SeedSequence([seed, len(history)]).generate_state(1)[0] % (2**31))
        free = [d for d in self.space.dimensions if d.n_values != 1]
        fixed = {d.name: (d.grid()[0]) for d in self.space.dimensions if d.n_values == 1}
        if not free:
            return without_duplicates(self.space, history, [dict(fixed)] * n, self.rng(history))

        def skopt_dim(d: Dimension) -> Any:
            prior = "log-uniform" if d.log else "uniform"
            if d.is_choice:
                return Categorical(list(d.choices), name=d.name)
            if d.kind is ParameterType.int:
                return Integer(int(d.low), int(d.high), prior=prior, name=d.name)
            return Real(d.low, d.high, prior=prior, name=d.name)

        estimator: Any = self.settings.base_estimator
        if estimator == "GBRT":
            estimator = _regressor_gbrt(random_state)
        optimizer = Optimizer(
            [skopt_dim(d) for d in free],
            base_estimator=estimator,
            acq_func=self.settings.acq_func,
            acq_optimizer=self.settings.acq_optimizer,
            n_initial_points=self.settings.n_initial_points,
            initial_point_generator=self.settings.initial_point_generator,
            acq_func_kwargs={"xi": self.settings.xi, "kappa": self.settings.kappa},
            # skopt's defaults (10k candidates, 5 restarts) cost seconds per proposal for no
            # measurable gain on spaces of a few dimensions.
            acq_optimizer_kwargs={"n_points": 2000, "n_restarts_optimizer": 2, "n_jobs": 1},
            random_state=random_state,
        )
        told = [r for r in history if r.finished and r.loss is not None and np.isfinite(r.loss)]
        running = [r for r in history if r.running]
        xs = [[r.assignment[d.name] for d in free] for r in told]
        ys = [float(r.loss) for r in told]  # type: ignore[arg-type]
        running_xs = [[r.assignment[d.name] for d in free] for r in running]
        if xs:
            optimizer.tell(xs, ys)
        if running_xs and ys:
            # Pretend running trials already scored, so new proposals go elsewhere: the model's own
            # prediction there (kriging believer) or a constant (liar).
            if self.settings.parallel_strategy == "kb" and optimizer.models:
                lies = [float(v) for v in optimizer.models[-1].predict(optimizer.space.transform(running_xs))]
            else:
                lie = {"cl_min": min, "cl_mean": lambda v: sum(v) / len(v), "cl_max": max, "kb": min}[
                    self.settings.parallel_strategy](ys)
                lies = [lie] * len(running_xs)
            optimizer.tell(running_xs, lies)
        batch_lie = "cl_max" if self.settings.parallel_strategy == "kb" else self.settings.parallel_strategy
        points = optimizer.ask(n_points=n, strategy=batch_lie) if n > 1 else [optimizer.ask()]
        proposals = [
            {**fixed, **{d.name: _plain(d, v) for d, v in zip(free, point)}} for point in points
        ]
        ordered = [{name: p[name] for name in self.space.names} for p in proposals]
        return without_duplicates(self.space, history, ordered, self.rng(history, salt=1))


def _plain(dim: Dimension, value: Any) -> Any:
    if dim.is_choice:
        return dim.choices[dim.index_of(value.item() if hasattr(value, "item") else value)]
    return dim.cast(float(value))
