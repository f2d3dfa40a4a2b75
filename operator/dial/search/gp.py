"""Dial's own Gaussian-process Bayesian optimiser: fast, batch-aware, log-EI.

Numeric parameters are one unit-cube column each (log scales log-transformed, ints and steps
rounded before the model sees them); categorical ones are one-hot columns. The acquisition is
log expected improvement, scored on quasi-random and near-incumbent candidates at once, the best
few then polished by L-BFGS on the continuous columns. Running trials and the
proposals of the same call enter as "kriging believer" fantasies at the posterior mean, so
parallel proposals spread out. The cost of a proposal is bounded: past `max_model_points` trials
the model conditions on the best of them, the latest and a far-apart selection of the rest, and the kernel
hyperparameters are fitted on at most `max_fit_points`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from pydantic import Field
from scipy.optimize import minimize

from dial.api.space import ParameterType
from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates
from dial.search.gaussian_process import GaussianProcess, fit_hyper, log_h, log_h_slope, rows_to_keep
from dial.search.observed import Observed, decode, snap
from dial.search.sobol import sobol_points


class GpSettings(StrategySettings):
    n_initial_points: int | None = Field(default=None, ge=1,
                                         description="Sobol points before the model is used; default 2 x parameters + 2, at most 10.")
    n_candidates: int = Field(default=1024, ge=16, description="Quasi-random candidates scored per proposal.")
    n_local_candidates: int = Field(default=256, ge=0, description="Candidates drawn around the best trials.")
    n_polish: int = Field(default=3, ge=0, description="Best candidates refined by L-BFGS.")
    n_restarts: int = Field(default=2, ge=1, description="L-BFGS starts when fitting the kernel hyperparameters.")
    max_fit_points: int = Field(default=64, ge=8, description="Most trials the kernel hyperparameters are fitted on "
                                                               "(the best quarter, then the rest farthest apart first).")
    max_model_points: int = Field(default=128, ge=8, description="Most finished trials the model conditions on: the "
                                                                 "best half, the latest quarter, then the rest "
                                                                 "farthest apart first.")
    xi: float = Field(default=0.0, ge=0, description="Improvement margin, in standard deviations of the losses.")
    warp_losses: bool = Field(default=True, description="Yeo-Johnson transform of the losses before fitting, so a "
                                                        "few huge losses do not flatten the model everywhere else.")


class GpBayesian(Strategy):
    name = "gp"
    Settings = GpSettings
    settings: GpSettings

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        # The matrices are small: threaded BLAS only adds synchronisation, and on a busy node
        # (an operator pod shares its CPUs) it makes each call many times slower.
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._propose(history, n)

    def _propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        observed = Observed.from_history(self.space, history)
        n_initial = self.settings.n_initial_points or min(10, 2 * len(self.space.dimensions) + 2)
        if observed.n_done < max(n_initial, 2):
            points = sobol_points(len(self.space.dimensions), self.seed, start=len(history), n=n)
            return without_duplicates(self.space, history, [decode(self.space, p) for p in points], self.rng(history))
        rng = self.rng(history)
        y_all = _warp(observed.y) if self.settings.warp_losses else _standardise(observed.y)
        all_features = self._features(observed.x)
        kept = rows_to_keep(all_features, y_all, self.settings.max_model_points, best_share=0.5, recent_share=0.25)
        x_raw, y, features = observed.x[kept], y_all[kept], all_features[kept]
        hyper = fit_hyper(features, y, rng, n_restarts=self.settings.n_restarts, max_points=self.settings.max_fit_points)
        gp = GaussianProcess(features, y, hyper)
        incumbent = float(y.min()) - self.settings.xi
        # Failed trials count as the worst seen; running ones as what the model expects of them.
        if len(observed.failed):
            failed = observed.failed[-self.settings.max_model_points // 4:]
            gp = gp.with_observations(self._features(failed), np.full(len(failed), y_all.max()))
        if len(observed.running):
            pending = self._features(observed.running)
            gp = gp.with_observations(pending, gp.predict(pending)[0])
        best_raw = x_raw[np.argsort(y, kind="stable")[:5]]
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
        raw = np.clip(raw, 0.0, 1.0)
        conditional = bool(self.space.conditions)
        if conditional:
            # An inactive parameter's fixed value depends on the whole point: snap point by point.
            raw = np.array([snap(self.space, p) for p in raw]).reshape(raw.shape)
        continuous = set(self._continuous())
        columns = []
        for j, dim in enumerate(self.space.dimensions):
            if dim.kind is ParameterType.categorical:
                k = len(dim.choices)
                columns.append(np.eye(k)[np.minimum((raw[:, j] * k).astype(int), k - 1)])
            elif j in continuous or conditional:
                columns.append(raw[:, j:j + 1])
            else:
                # Column by column, the unit value of what the point decodes to (ints, steps, lists).
                columns.append(np.array([dim.to_unit(dim.from_unit(u)) for u in raw[:, j]]).reshape(-1, 1))
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
        order = np.argsort(-scores, kind="stable")
        best_point, best_score = candidates[order[0]], float(scores[order[0]])
        movable = self._continuous()
        for start in candidates[order[: self.settings.n_polish]] if movable else []:
            point, score = self._polish(gp, incumbent, start, movable)
            if score > best_score:
                best_point, best_score = point, score
        return best_point

    def _categorical_mask(self) -> np.ndarray:
        return np.array([d.kind is ParameterType.categorical for d in self.space.dimensions])

    def _polish(self, gp: GaussianProcess, incumbent: float, start: np.ndarray, movable: list[int]) -> tuple[np.ndarray, float]:
        """A local maximum of log-EI from `start`, moving only the continuous coordinates."""
        base = self._features(start[None, :])
        columns = [self._feature_column(j) for j in movable]

        def negative(values: np.ndarray) -> tuple[float, np.ndarray]:
            x = base.copy()
            x[0, columns] = values
            mean, var, dmean, dvar = gp.predict_with_gradient(x)
            sigma = np.sqrt(var)
            z = (incumbent - mean) / sigma
            value = float((np.log(sigma) + log_h(z))[0])
            dsigma = dvar[0] / (2.0 * sigma[0])
            dz = (-dmean[0] - z[0] * dsigma) / sigma[0]
            grad = dsigma / sigma[0] + float(log_h_slope(z)[0]) * dz
            return -value, -grad[columns]

        result = minimize(negative, start[movable], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(movable),
                          options={"maxiter": 50})
        point = start.copy()
        point[movable] = np.clip(result.x, 0.0, 1.0)
        return point, float(-result.fun) if np.isfinite(result.fun) else -math.inf


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """One inspection of the loaded BLAS libraries per process (each inspection costs about a millisecond)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _warp(y: np.ndarray) -> np.ndarray:
    """Standardised, Yeo-Johnson transformed (order kept, skew removed), standardised again."""
    z = _standardise(y)
    if len(z) < 4 or float(z.std()) == 0.0:
        return z
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        warped = _yeo_johnson(z, np.array([_yeo_johnson_lambda(z)]))[0]
    return _standardise(warped) if np.isfinite(warped).all() else z


def _yeo_johnson(z: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Row i: the Yeo-Johnson transform of `z` with `lambdas[i]`."""
    lam = lambdas[:, None]
    positive = z >= 0
    log_pos = np.log1p(np.where(positive, z, 0.0))[None, :]
    log_neg = np.log1p(np.where(positive, 0.0, -z))[None, :]
    near_zero, near_two = np.abs(lam) < 1e-12, np.abs(2.0 - lam) < 1e-12
    pos_part = np.where(near_zero, log_pos, np.expm1(lam * log_pos) / np.where(near_zero, 1.0, lam))
    neg_part = -np.where(near_two, log_neg, np.expm1((2.0 - lam) * log_neg) / np.where(near_two, 1.0, 2.0 - lam))
    return np.where(positive[None, :], pos_part, neg_part)


def _yeo_johnson_lambda(z: np.ndarray) -> float:
    """The maximum-likelihood lambda, found as scipy's yeojohnson_normmax finds it.

    The same bounded Brent search over the same overflow-safe bounds, on a vectorised likelihood
    instead of scipy's (whose per-call overhead costs tens of milliseconds per proposal).
    """
    from scipy.optimize import fminbound

    if not z.any():
        return 1.0
    # Bounds that keep the transform of up to 20x the largest value within half the float range.
    log1p_max = math.log1p(20.0 * float(np.abs(z).max()))
    eps, info = np.finfo(float).eps, np.finfo(float)
    low = (math.log(info.tiny) - math.log(eps)) / 2 / log1p_max
    high = (math.log(info.max) + math.log(eps)) / 2 / log1p_max
    if (z < 0).all():
        low, high = 2 - high, 2 - low
    elif (z < 0).any():
        low, high = max(2 - high, low), min(2 - low, high)
    jacobian = float((np.sign(z) * np.log1p(np.abs(z))).sum())

    def negative_llf(lam: float) -> float:
        variance = float(_yeo_johnson(z, np.array([lam]))[0].var())
        llf = -0.5 * len(z) * math.log(variance) + (lam - 1.0) * jacobian if variance > 0 else -math.inf
        return -llf if math.isfinite(llf) else math.inf

    return float(fminbound(negative_llf, low, high, xtol=1.48e-08))


def _standardise(y: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread; a flat history stays flat instead of dividing by zero."""
    spread = float(y.std())
    return (y - y.mean()) / (spread if spread > 0 else 1.0)
