"""Tree-structured Parzen Estimator (TPE): sample where good trials are dense and bad ones sparse.

Follows Optuna's Parzen estimators: numeric parameters are truncated Gaussian mixtures in the
unit cube (so log scales are log-transformed and ints/discrete lists rounded on the way out),
categorical ones are smoothed frequency tables, with a prior component in both. `multivariate`
scores candidates with a joint mixture instead of one per parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import Field
from scipy.special import log_ndtr, logsumexp, ndtr, ndtri

from dial.api.space import ParameterType
from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.observed import Observed, decode
from dial.search.pareto import crowding_distance, non_domination_ranks
from dial.search.sobol import sobol_points
from dial.search.space import SearchSpace


class TpeSettings(StrategySettings):
    n_startup_trials: int = Field(default=10, ge=1, description="Trials drawn quasi-randomly before the model is used.")
    n_ei_candidates: int = Field(default=24, ge=1, description="Candidates drawn from the good-trials density per proposal.")
    gamma: float = Field(default=0.1, gt=0, le=1, description="Fraction of trials counted as good (at most `max_good`).")
    max_good: int = Field(default=25, ge=1)
    prior_weight: float = Field(default=1.0, gt=0)
    multivariate: bool = False
    constant_liar: bool = Field(default=True, description="Count running trials as bad, so parallel trials spread out.")
    random_state: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Katib's name for a seed that overrides the experiment's.")


@dataclass(frozen=True)
class Parzen:
    """A mixture over the unit cube: component weights, per-dimension centres and widths, and
    per-categorical-dimension probability tables."""

    weights: np.ndarray  # (k,)
    mus: np.ndarray  # (k, n_numeric)
    sigmas: np.ndarray  # (k, n_numeric)
    tables: list[np.ndarray]  # one (k, n_choices) per categorical dimension

    def sample(self, rng: np.random.Generator, n: int, *, joint: bool) -> tuple[np.ndarray, np.ndarray]:
        """n points: numeric unit values and categorical choice indices."""
        k, n_num = self.mus.shape
        n_cat = len(self.tables)
        shape = (n, 1) if joint else (n, n_num + n_cat)
        comps = rng.choice(k, size=shape, p=self.weights)
        comps = np.broadcast_to(comps, (n, n_num + n_cat))
        cols = np.arange(n_num)
        mu = self.mus[comps[:, :n_num], cols]
        sigma = self.sigmas[comps[:, :n_num], cols]
        lo, hi = ndtr((0 - mu) / sigma), ndtr((1 - mu) / sigma)
        u = lo + rng.random(mu.shape) * (hi - lo)
        numeric = np.clip(mu + sigma * ndtri(np.clip(u, 1e-12, 1 - 1e-12)), 0.0, 1.0)
        cats = np.empty((n, n_cat), dtype=int)
        for j, table in enumerate(self.tables):
            cum = np.cumsum(table[comps[:, n_num + j]], axis=1)
            cats[:, j] = np.minimum((rng.random((n, 1)) * cum[:, -1:] > cum).sum(axis=1), table.shape[1] - 1)
        return numeric, cats

    def log_pdf(self, numeric: np.ndarray, cats: np.ndarray, *, joint: bool) -> np.ndarray:
        """Log density of each point: a joint mixture, or a product of per-dimension mixtures."""
        z = (numeric[:, None, :] - self.mus[None]) / self.sigmas[None]
        norm = np.log(ndtr((1 - self.mus) / self.sigmas) - ndtr(-self.mus / self.sigmas) + 1e-300)
        per_dim = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - np.log(self.sigmas)[None] - norm[None]  # (m, k, n_num)
        if self.tables:
            cat_terms = np.stack([np.log(t[:, cats[:, j]].T) for j, t in enumerate(self.tables)], axis=2)
            per_dim = np.concatenate([per_dim, cat_terms], axis=2)
        log_w = np.log(self.weights)[None, :]
        if joint:
            return logsumexp(log_w + per_dim.sum(axis=2), axis=1)
        return logsumexp(log_w[:, :, None] + per_dim, axis=1).sum(axis=1)


class TreeParzen(Strategy):
    name = "tpe"
    Settings = TpeSettings
    multi_objective = True  # MOTPE: good trials by non-domination rank
    settings: TpeSettings

    def __init__(self, space: SearchSpace, settings: TpeSettings | None = None, *, seed: int = 0):
        super().__init__(space, settings, seed=seed)
        if self.settings.random_state is not None:
            self.seed = self.settings.random_state

    @property
    def multivariate(self) -> bool:
        return self.settings.multivariate

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        observed = Observed.from_history(self.space, history)
        if observed.n_done < self.settings.n_startup_trials:
            points = sobol_points(len(self.space.dimensions), self.seed, start=len(history), n=n)
            return without_duplicates(self.space, history, [decode(self.space, p) for p in points], self.rng(history))
        rng = self.rng(history)
        good, bad = self._split(observed)
        proposals: list[np.ndarray] = []
        for _ in range(n):
            extra_bad = np.array(proposals).reshape(len(proposals), observed.x.shape[1])
            point = self._one(rng, good, np.vstack([bad, extra_bad]))
            proposals.append(point)
        return without_duplicates(self.space, history, [decode(self.space, p) for p in proposals], rng)

    def _split(self, observed: Observed) -> tuple[np.ndarray, np.ndarray]:
        """Good and bad unit points; failed (and, with constant liar, running) trials count as bad."""
        order = _multi_objective_order(observed.losses) if observed.losses.shape[1] > 1 else np.argsort(observed.y, kind="stable")
        n_good = min(math.ceil(self.settings.gamma * observed.n_done), self.settings.max_good)
        is_good = np.zeros(observed.n_done, dtype=bool)
        is_good[order[:n_good]] = True
        bad = [observed.x[~is_good], observed.failed]
        if self.settings.constant_liar:
            bad.append(observed.running)
        return observed.x[is_good], np.vstack(bad)

    def _one(self, rng: np.random.Generator, good: np.ndarray, bad: np.ndarray) -> np.ndarray:
        l_est, g_est = self._parzen(good), self._parzen(bad)
        numeric, cats = l_est.sample(rng, self.settings.n_ei_candidates, joint=self.multivariate)
        score = l_est.log_pdf(numeric, cats, joint=self.multivariate) - g_est.log_pdf(numeric, cats, joint=self.multivariate)
        best = int(np.argmax(score))
        return self._to_unit(numeric[best], cats[best])

    # -- estimators -------------------------------------------------------------------------

    def _numeric_columns(self) -> list[int]:
        return [i for i, d in enumerate(self.space.dimensions) if d.kind is not ParameterType.categorical]

    def _categorical_columns(self) -> list[int]:
        return [i for i, d in enumerate(self.space.dimensions) if d.kind is ParameterType.categorical]

    def _parzen(self, points: np.ndarray) -> Parzen:
        n = len(points)
        weights = np.append(_age_weights(n), self.settings.prior_weight)
        weights = weights / weights.sum()
        num_cols, cat_cols = self._numeric_columns(), self._categorical_columns()
        mus = np.vstack([points[:, num_cols], np.full((1, len(num_cols)), 0.5)])
        if self.multivariate:
            # One width for all points (Scott-like rule, as Optuna), so joint components stay comparable.
            sigma = 0.2 * (n + 1) ** (-1.0 / (len(num_cols) + len(cat_cols) + 4))
            sigmas = np.full((n, len(num_cols)), max(sigma, 1.0 / min(100.0, 2.0 + n)))
        else:
            sigmas = np.vstack([_bandwidths(points[:, j], n) for j in num_cols]).T if num_cols else np.empty((n, 0))
        sigmas = np.vstack([sigmas, np.ones((1, len(num_cols)))])
        tables = []
        for j in cat_cols:
            n_choices = len(self.space.dimensions[j].choices)
            table = np.full((n + 1, n_choices), self.settings.prior_weight / (n + 1))
            table[np.arange(n), _choice_index(points[:, j], n_choices)] += 1.0
            table[n] = 1.0
            tables.append(table / table.sum(axis=1, keepdims=True))
        return Parzen(weights, mus, sigmas, tables)

    def _to_unit(self, numeric: np.ndarray, cats: np.ndarray) -> np.ndarray:
        point = np.empty(len(self.space.dimensions))
        point[self._numeric_columns()] = numeric
        for c, j in zip(cats, self._categorical_columns()):
            point[j] = (c + 0.5) / len(self.space.dimensions[j].choices)
        return point


class MultivariateTpeSettings(TpeSettings):
    multivariate: bool = True


class MultivariateTreeParzen(TreeParzen):
    """Katib's `multivariate-tpe`: TPE scoring candidates with joint densities."""

    name = "multivariate-tpe"
    Settings = MultivariateTpeSettings


def _multi_objective_order(losses: np.ndarray) -> np.ndarray:
    """MOTPE's order (Ozaki et al. 2020): by non-domination rank, then the roomier points of a rank
    first (crowding distance, where Optuna uses hypervolume contributions), then by index."""
    ranks = non_domination_ranks(losses)
    crowding = np.zeros(len(losses))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(losses[members])
    return np.lexsort((np.arange(len(losses)), -crowding, ranks))


def _age_weights(n: int) -> np.ndarray:
    """Optuna's default: the 25 newest trials weigh 1, older ones ramp down towards 1/n."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - 25), np.ones(25)])


def _bandwidths(values: np.ndarray, n: int) -> np.ndarray:
    """Each point's width is the larger gap to its sorted neighbours (the prior's centre counts
    as a neighbour, the bounds do not), clipped to a sane range, as in Optuna."""
    if n == 0:
        return np.empty(0)
    with_prior = np.append(values, 0.5)
    order = np.argsort(with_prior)
    padded = np.concatenate([[0.0], with_prior[order], [1.0]])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if len(padded) >= 4:
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    sigma = np.empty(n + 1)
    sigma[order] = gaps
    return np.clip(sigma[:n], 1.0 / min(100.0, 2.0 + n), 1.0)


def _choice_index(unit: np.ndarray, n_choices: int) -> np.ndarray:
    return np.minimum((unit * n_choices).astype(int), n_choices - 1)
