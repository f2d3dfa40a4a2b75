"""A small exact Gaussian process in numpy/scipy: Matern 5/2 ARD kernel, hyperparameters by MAP.

Inputs live in the unit cube; targets are standardised inside. Everything a Bayesian optimiser
needs and nothing more: fit, add fantasy observations, predict (with input gradients), log-EI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr

SQRT5 = math.sqrt(5.0)
LOG_LENGTH_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_SIGNAL_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(0.5))
MAX_FIT_POINTS = 256


def matern52(x1: np.ndarray, x2: np.ndarray, lengths: np.ndarray, signal: float) -> np.ndarray:
    r = _distance(x1 / lengths, x2 / lengths)
    return signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * np.exp(-SQRT5 * r)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


@dataclass(frozen=True)
class Hyper:
    lengths: np.ndarray
    signal: float
    noise: float

    @property
    def vector(self) -> np.ndarray:
        return np.concatenate([np.log(self.lengths), [math.log(self.signal), math.log(self.noise)]])

    @classmethod
    def from_vector(cls, theta: np.ndarray) -> "Hyper":
        return cls(np.exp(theta[:-2]), float(math.exp(theta[-2])), float(math.exp(theta[-1])))


def _log_prior(theta: np.ndarray, n_dims: int) -> tuple[float, np.ndarray]:
    """Log-normal priors: length scales grow with the dimension (Hvarfner et al. 2024), the signal
    variance is near 1 on standardised targets, the noise is small but free to grow."""
    centre = np.concatenate([np.full(n_dims, math.sqrt(2) + 0.5 * math.log(n_dims)), [0.0, math.log(1e-3)]])
    scale = np.concatenate([np.full(n_dims, math.sqrt(3)), [1.0, 3.0]])
    z = (theta - centre) / scale
    return float(-0.5 * (z**2).sum()), -z / scale


def _neg_log_posterior(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    n, d = x.shape
    hyper = Hyper.from_vector(theta)
    scaled = x / hyper.lengths
    r = _distance(scaled, scaled)
    e = np.exp(-SQRT5 * r)
    m = (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * e
    k = hyper.signal * m + (hyper.noise + 1e-8) * np.eye(n)
    try:
        chol = cholesky(k, lower=True)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y)
    log_lik = -0.5 * y @ alpha - np.log(np.diag(chol)).sum() - 0.5 * n * math.log(2 * math.pi)
    w = np.outer(alpha, alpha) - cho_solve((chol, True), np.eye(n))
    # d k / d log(length_j) = signal * 5/3 (1 + sqrt5 r) e^{-sqrt5 r} * (x_aj - x_bj)^2 / length_j^2
    wa = w * (hyper.signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e)
    row = wa.sum(1)
    grad_lengths = ((row @ scaled**2) - (scaled * (wa @ scaled)).sum(0))  # 0.5 * 2 * (...)
    grad_signal = 0.5 * float((w * (hyper.signal * m)).sum())
    grad_noise = 0.5 * hyper.noise * float(np.trace(w))
    grad = np.concatenate([grad_lengths, [grad_signal, grad_noise]])
    prior, prior_grad = _log_prior(theta, d)
    return -(log_lik + prior), -(grad + prior_grad)


def fit_hyper(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, n_restarts: int = 2) -> Hyper:
    """MAP hyperparameters from a few L-BFGS starts; large histories are subsampled (best kept)."""
    n, d = x.shape
    if n > MAX_FIT_POINTS:
        keep_best = np.argsort(y)[: MAX_FIT_POINTS // 4]
        rest = np.setdiff1d(np.arange(n), keep_best)
        chosen = np.concatenate([keep_best, rng.choice(rest, MAX_FIT_POINTS - len(keep_best), replace=False)])
        x, y = x[chosen], y[chosen]
    bounds = [LOG_LENGTH_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
    starts = [np.concatenate([np.full(d, math.log(0.5 * math.sqrt(d))), [0.0, math.log(1e-3)]])]
    for _ in range(n_restarts - 1):
        starts.append(np.concatenate([rng.uniform(math.log(0.05), math.log(2.0 * math.sqrt(d)), d),
                                      [rng.uniform(-1, 1), rng.uniform(math.log(1e-5), math.log(1e-1))]]))
    best_value, best_theta = math.inf, starts[0]
    for start in starts:
        result = minimize(_neg_log_posterior, start, args=(x, y), jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": 100})
        if result.fun < best_value:
            best_value, best_theta = float(result.fun), result.x
    return Hyper.from_vector(best_theta)


class GaussianProcess:
    """The posterior of a zero-mean GP on standardised targets, for fixed hyperparameters."""

    def __init__(self, x: np.ndarray, y: np.ndarray, hyper: Hyper):
        self.x, self.y, self.hyper = x, y, hyper
        k = matern52(x, x, hyper.lengths, hyper.signal) + (hyper.noise + 1e-8) * np.eye(len(x))
        self.chol = cholesky(k, lower=True)
        self.alpha = cho_solve((self.chol, True), y)

    def with_observations(self, x: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        return GaussianProcess(np.vstack([self.x, x]), np.concatenate([self.y, y]), self.hyper)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (of the latent function) at each row of `xq`."""
        kq = matern52(self.x, xq, self.hyper.lengths, self.hyper.signal)
        v = solve_triangular(self.chol, kq, lower=True)
        return kq.T @ self.alpha, np.maximum(self.hyper.signal - (v**2).sum(0), 1e-12)

    def predict_with_gradient(self, xq: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients with respect to one input point."""
        lengths, signal = self.hyper.lengths, self.hyper.signal
        diff = (xq[None, :] - self.x) / lengths**2  # (n, d)
        r = np.sqrt(np.maximum((((xq[None, :] - self.x) / lengths) ** 2).sum(1), 0.0))
        e = np.exp(-SQRT5 * r)
        k = signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * e
        jac = -(signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e)[:, None] * diff  # dk/dx, (n, d)
        v = solve_triangular(self.chol, k, lower=True)
        kinv_k = solve_triangular(self.chol.T, v, lower=False)
        mean = float(k @ self.alpha)
        var = max(signal - float(v @ v), 1e-12)
        return mean, var, jac.T @ self.alpha, -2.0 * jac.T @ kinv_k


def log_h(z: np.ndarray) -> np.ndarray:
    """log(z Phi(z) + phi(z)), accurate far into the left tail (the log-EI of Ament et al. 2023)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    right = z > -1.0
    zr = z[right]
    out[right] = np.log(zr * np.exp(log_ndtr(zr)) + np.exp(-0.5 * zr**2) / math.sqrt(2 * math.pi))
    zl = z[~right]
    # phi(z) (1 + z Phi(z)/phi(z)) with the Mills ratio Phi(z)/phi(z) = sqrt(pi/2) erfcx(-z/sqrt2).
    inner = np.maximum(1.0 + zl * math.sqrt(math.pi / 2) * erfcx(-zl / math.sqrt(2)), 1e-300)
    out[~right] = -0.5 * zl**2 - 0.5 * math.log(2 * math.pi) + np.log(inner)
    return out


def log_h_slope(z: float) -> float:
    """d log h / dz = Phi(z) / h(z)."""
    return float(math.exp(float(log_ndtr(z)) - float(log_h(np.array([z]))[0])))
