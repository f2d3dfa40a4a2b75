"""Dial's own Gaussian-process Bayesian optimiser: fast, batch-aware, log-EI.

Numeric parameters are one unit-cube column each (log scales log-transformed, ints and steps
rounded before the model sees them); categorical ones are one-hot columns. The acquisition is
log expected improvement, maximised over quasi-random and near-incumbent candidates and then
polished by L-BFGS on the continuous columns. Running trials and the proposals of the same call
enter as "kriging believer" fantasies at the posterior mean, so parallel proposals spread out.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from pydantic import Field
from scipy.optimize import minimize

from dial.api.space import ParameterType
from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.gaussian_process import GaussianProcess, fit_hyper, log_h, log_h_slope
from dial.search.observed import Observed, decode, snap
from dial.search.sobol import sobol_points


class GpSettings(StrategySettings):
    n_initial_points: int | None = Field(default=None, ge=1,
                                         description="Sobol points before the model is used; default 2 x parameters + 2, at most 10.")
    n_candidates: int = Field(default=1024, ge=16, description="Quasi-random candidates scored per proposal.")
    n_local_candidates: int = Field(default=256, ge=0, description="Candidates drawn around the best trials.")
    n_polish: int = Field(default=3, ge=0, description="Best candidates refined by L-BFGS.")
    n_restarts: int = Field(default=2, ge=1, description="L-BFGS starts when fitting the kernel hyperparameters.")
    xi: float = Field(default=0.0, ge=0, description="Improvement margin, in standard deviations of the losses.")
    warp_losses: bool = Field(default=True, description="Yeo-Johnson transform of the losses before fitting, so a "
                                                        "few huge losses do not flatten the model everywhere else.")


class GpBayesian(Strategy):
    name = "gp"
    Settings = GpSettings
    settings: GpSettings

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        from threadpoolctl import threadpool_limits

        # The matrices are small: threaded BLAS only adds synchronisation, and on a busy node
        # (an operator pod shares its CPUs) it makes each call many times slower.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._propose(history, n)

    def _propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        observed = Observed.from_history(self.space, history)
        n_initial = self.settings.n_initial_points or min(10, 2 * len(self.space.dimensions) + 2)
        if observed.n_done < max(n_initial, 2):
            points = sobol_points(len(self.space.dimensions), self.seed, start=len(history), n=n)
            return without_duplicates(self.space, history, [decode(self.space, p) for p in points], self.rng(history))
        rng = self.rng(history)
        y = _warp(observed.y) if self.settings.warp_losses else _standardise(observed.y)
        features = self._features(observed.x)
        gp = GaussianProcess(features, y, fit_hyper(features, y, rng, n_restarts=self.settings.n_restarts))
        incumbent = float(y.min()) - self.settings.xi
        # Failed trials count as the worst seen; running ones as what the model expects of them.
        if len(observed.failed):
            gp = gp.with_observations(self._features(observed.failed), np.full(len(observed.failed), y.max()))
        if len(observed.running):
            pending = self._features(observed.running)
            gp = gp.with_observations(pending, gp.predict(pending)[0])
        best_raw = observed.x[np.argsort(observed.y)[:5]]
        proposals: list[np.ndarray] = []
        for i in range(n):
            raw = self._maximise(gp, incumbent, best_raw, rng, salt=len(history) + i)
            proposals.append(raw)
            chosen = self._features(raw[None, :])
            believed = gp.predict(chosen)[0]
            gp = gp.with_observations(chosen, believed)
            # The believed value counts as found: otherwise the next proposal lands right beside it.
            incumbent = min(incumbent, float(believed[0]) - self.settings.xi)
        return without_duplicates(self.space, history, [decode(self.space, p) for p in proposals], rng)

    # -- encoding ---------------------------------------------------------------------------

    def _features(self, raw: np.ndarray) -> np.ndarray:
        """Model inputs of unit points: snapped numeric columns, then one-hot categorical columns."""
        continuous = self._continuous()
        if len(continuous) == len(self.space.dimensions):
            snapped = np.clip(raw, 0.0, 1.0)  # nothing to round: skip the per-point decoding
        else:
            snapped = np.array([snap(self.space, p) for p in raw]).reshape(raw.shape)
        columns = []
        for j, dim in enumerate(self.space.dimensions):
            if dim.kind is ParameterType.categorical:
                k = len(dim.choices)
                # Snapped, not raw: an inactive conditional parameter's column holds its one fixed value.
                columns.append(np.eye(k)[np.minimum((snapped[:, j] * k).astype(int), k - 1)])
            else:
                columns.append(snapped[:, j:j + 1])
        return np.hstack(columns)

    def _continuous(self) -> list[int]:
        """Dimensions whose unit value is its own model column (no rounding), so L-BFGS can move them."""
        return [j for j, d in enumerate(self.space.dimensions)
                if d.kind is ParameterType.double and d.step is None and not d.is_choice]

    def _feature_column(self, j: int) -> int:
        col = 0
        for dim in self.space.dimensions[:j]:
            col += len(dim.choices) if dim.kind is ParameterType.categorical else 1
        return col

    # -- acquisition ------------------------------------------------------------------------

    def _log_ei(self, gp: GaussianProcess, incumbent: float, raw: np.ndarray) -> np.ndarray:
        mean, var = gp.predict(self._features(raw))
        sigma = np.sqrt(var)
        return np.log(sigma) + log_h((incumbent - mean) / sigma)

    def _maximise(self, gp: GaussianProcess, incumbent: float, best_raw: np.ndarray, rng: np.random.Generator,
                  *, salt: int) -> np.ndarray:
        dims = len(self.space.dimensions)
        global_points = np.array(sobol_points(dims, self.seed + 7919 * (salt + 1), start=0, n=self.settings.n_candidates))
        n_local = self.settings.n_local_candidates
        centres = best_raw[rng.integers(len(best_raw), size=n_local)]
        local = np.clip(centres + rng.normal(0.0, 0.05, size=centres.shape), 0.0, 1.0)
        # Categorical coordinates jump to another choice now and then rather than drifting.
        jump = rng.random(local.shape) < 0.2
        local = np.where(jump & self._categorical_mask()[None, :], rng.random(local.shape), local)
        candidates = np.vstack([global_points, local])
        scores = self._log_ei(gp, incumbent, candidates)
        order = np.argsort(-scores)
        best_point, best_score = candidates[order[0]], float(scores[order[0]])
        movable = self._continuous()
        if movable:
            for start in candidates[order[: self.settings.n_polish]]:
                point, score = self._polish(gp, incumbent, start, movable)
                if score > best_score:
                    best_point, best_score = point, score
        return best_point

    def _categorical_mask(self) -> np.ndarray:
        return np.array([d.kind is ParameterType.categorical for d in self.space.dimensions])

    def _polish(self, gp: GaussianProcess, incumbent: float, start: np.ndarray, movable: list[int]) -> tuple[np.ndarray, float]:
        base = self._features(start[None, :])[0]
        columns = [self._feature_column(j) for j in movable]

        def negative(values: np.ndarray) -> tuple[float, np.ndarray]:
            x = base.copy()
            x[columns] = values
            mean, var, dmean, dvar = gp.predict_with_gradient(x)
            sigma = math.sqrt(var)
            z = (incumbent - mean) / sigma
            value = math.log(sigma) + float(log_h(np.array([z]))[0])
            dsigma = dvar / (2.0 * sigma)
            dz = (-dmean - z * dsigma) / sigma
            grad = dsigma / sigma + log_h_slope(z) * dz
            return -value, -grad[columns]

        result = minimize(negative, start[movable], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(movable),
                          options={"maxiter": 50})
        point = start.copy()
        point[movable] = np.clip(result.x, 0.0, 1.0)
        return point, float(-result.fun) if np.isfinite(result.fun) else -math.inf


def _warp(y: np.ndarray) -> np.ndarray:
    """Standardised, Yeo-Johnson transformed (order kept, skew removed), standardised again."""
    from scipy.stats import yeojohnson

    z = _standardise(y)
    if len(z) < 4 or float(z.std()) == 0.0:
        return z
    try:
        warped, _ = yeojohnson(z)
    except (ValueError, FloatingPointError, OverflowError):
        return z
    return _standardise(warped) if np.isfinite(warped).all() else z


def _standardise(y: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread; a flat history stays flat instead of dividing by zero."""
    spread = float(y.std())
    return (y - y.mean()) / (spread if spread > 0 else 1.0)
