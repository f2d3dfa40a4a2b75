"""A small exact Gaussian process in numpy/scipy: Matern 5/2 ARD kernel, hyperparameters by MAP.

Inputs live in the unit cube; targets are standardised by the caller. Everything a Bayesian
optimiser needs and nothing more: fit, add fantasy observations, predict (with input gradients
for a batch of points), log-EI. LAPACK is called directly without finiteness checks: the inputs
are built here, and the checks cost more than the small factorisations themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr

SQRT5 = math.sqrt(5.0)
LOG_LENGTH_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_SIGNAL_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(0.5))
JITTER = 1e-8


def matern52(x1: np.ndarray, x2: np.ndarray, lengths: np.ndarray, signal: float) -> np.ndarray:
    # In place on one (n1, n2) buffer: the temporaries of the plain formula cost more than its arithmetic.
    s = _distance(x1 / lengths, x2 / lengths)
    s *= SQRT5
    e = np.exp(-s)
    k = s * s
    k *= 1.0 / 3.0
    k += s
    k += 1.0
    k *= e
    k *= signal
    return k  # signal * (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = a @ b.T
    sq *= -2.0
    sq += (a * a).sum(1)[:, None]
    sq += (b * b).sum(1)[None, :]
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq, out=sq)


def _cholesky(k: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor, or None when `k` is not numerically positive definite."""
    chol, info = lapack.dpotrf(k, lower=1, clean=1)
    return chol if info == 0 else None


def _robust_cholesky(k: np.ndarray) -> np.ndarray:
    """Cholesky factor, adding growing jitter to the diagonal until it succeeds (duplicate inputs)."""
    scale = float(np.mean(np.diag(k))) if len(k) else 1.0
    for jitter in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):
        chol = _cholesky(k + jitter * scale * np.eye(len(k)) if jitter else k)
        if chol is not None:
            return chol
    raise np.linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def _cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    return lapack.dpotrs(chol, b, lower=1)[0]


@dataclass(frozen=True)
class Hyper:
    lengths: np.ndarray
    signal: float
    noise: float

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
    k = hyper.signal * m
    k[np.diag_indices(n)] += hyper.noise + JITTER
    chol = _cholesky(k)
    if chol is None:
        return 1e10, np.zeros_like(theta)
    alpha = _cho_solve(chol, y)
    log_lik = -0.5 * y @ alpha - np.log(np.diag(chol)).sum() - 0.5 * n * math.log(2 * math.pi)
    # The inverse from the factor (dpotri fills the lower triangle only).
    # The inverse from the factor: dpotri fills the lower triangle, the upper one stays zero.
    lower_inverse, info = lapack.dpotri(chol, lower=1)
    if info != 0:
        return 1e10, np.zeros_like(theta)
    inverse = lower_inverse + lower_inverse.T
    inverse[np.diag_indices(n)] *= 0.5
    w = np.outer(alpha, alpha) - inverse
    # d k / d log(length_j) = signal * 5/3 (1 + sqrt5 r) e^{-sqrt5 r} * (x_aj - x_bj)^2 / length_j^2
    wa = w * (hyper.signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e)
    row = wa.sum(1)
    grad_lengths = (row @ scaled**2) - (scaled * (wa @ scaled)).sum(0)  # 0.5 * 2 * (...)
    grad_signal = 0.5 * float((w * k).sum() - (hyper.noise + JITTER) * np.trace(w))
    grad_noise = 0.5 * hyper.noise * float(np.trace(w))
    grad = np.concatenate([grad_lengths, [grad_signal, grad_noise]])
    prior, prior_grad = _log_prior(theta, d)
    return -(log_lik + prior), -(grad + prior_grad)


def rows_to_keep(x: np.ndarray, y: np.ndarray, cap: int, *, best_share: float, recent_share: float = 0.0) -> np.ndarray:
    """Indices (sorted) of at most `cap` rows: the best `best_share` of them by target, the latest
    `recent_share` (rows are in trial order), then the rest one by one as the row farthest from all
    chosen so far.

    The recent rows keep the model from proposing again where it just looked; the far-first ones
    leave no explored region without a point. Deterministic: the same history gives the same model.
    """
    n = len(y)
    if n <= cap:
        return np.arange(n)
    order = np.argsort(y, kind="stable")
    chosen = list(dict.fromkeys([*order[: int(cap * best_share)], *range(n - int(cap * recent_share), n)]))
    gap = _distance(x, x[chosen]).min(axis=1) ** 2 if chosen else np.full(n, np.inf)
    while len(chosen) < cap:
        far = int(np.argmax(gap))
        chosen.append(far)
        gap = np.minimum(gap, ((x - x[far]) ** 2).sum(1))
    return np.sort(np.array(chosen))


def fit_hyper(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, n_restarts: int = 2,
              max_points: int = 64, max_iterations: int = 100) -> Hyper:
    """MAP hyperparameters from a few L-BFGS starts on at most `max_points` rows (best kept)."""
    chosen = rows_to_keep(x, y, max_points, best_share=0.25)
    x, y = x[chosen], y[chosen]
    d = x.shape[1]
    bounds = [LOG_LENGTH_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
    starts = [np.concatenate([np.full(d, math.log(0.5 * math.sqrt(d))), [0.0, math.log(1e-3)]])]
    for _ in range(n_restarts - 1):
        starts.append(np.concatenate([rng.uniform(math.log(0.05), math.log(2.0 * math.sqrt(d)), d),
                                      [rng.uniform(-1, 1), rng.uniform(math.log(1e-5), math.log(1e-1))]]))
    best_value, best_theta = math.inf, starts[0]
    for start in starts:
        result = minimize(_neg_log_posterior, start, args=(x, y), jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": max_iterations})
        if result.fun < best_value:
            best_value, best_theta = float(result.fun), result.x
    return Hyper.from_vector(best_theta)


class GaussianProcess:
    """The posterior of a zero-mean GP on standardised targets, for fixed hyperparameters.

    Keeps the inverse of the Cholesky factor too: scoring thousands of candidates is then one
    matrix product instead of a triangular solve, and a grown model grows it by one block.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, hyper: Hyper, *,
                 factors: tuple[np.ndarray, np.ndarray] | None = None):
        self.x, self.y, self.hyper = x, y, hyper
        if factors is None:
            k = matern52(x, x, hyper.lengths, hyper.signal)
            k[np.diag_indices(len(x))] += hyper.noise + JITTER
            chol = _robust_cholesky(k)
            factors = chol, _triangular_inverse(chol)
        self.chol, self.inverse_chol = factors
        self.alpha = self.inverse_chol.T @ (self.inverse_chol @ y)

    def with_observations(self, x: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        """The posterior with more points; both factors grow by one block instead of being redone."""
        lengths, signal = self.hyper.lengths, self.hyper.signal
        cross = self.inverse_chol @ matern52(self.x, x, lengths, signal)  # (n, k)
        corner = matern52(x, x, lengths, signal) - cross.T @ cross
        corner[np.diag_indices(len(x))] += self.hyper.noise + JITTER
        corner_chol = _robust_cholesky(corner)
        corner_inverse = _triangular_inverse(corner_chol)
        n, k = len(self.x), len(x)
        chol, inverse = np.zeros((n + k, n + k)), np.zeros((n + k, n + k))
        chol[:n, :n], chol[n:, :n], chol[n:, n:] = self.chol, cross.T, corner_chol
        # [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]]
        inverse[:n, :n], inverse[n:, n:] = self.inverse_chol, corner_inverse
        inverse[n:, :n] = -corner_inverse @ (cross.T @ self.inverse_chol)
        return GaussianProcess(np.vstack([self.x, x]), np.concatenate([self.y, y]), self.hyper,
                               factors=(chol, inverse))

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (of the latent function) at each row of `xq`."""
        kq = matern52(self.x, xq, self.hyper.lengths, self.hyper.signal)
        v = self.inverse_chol @ kq
        v *= v
        return kq.T @ self.alpha, np.maximum(self.hyper.signal - v.sum(0), 1e-12)

    def joint(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and covariance (of the latent function) of the rows of `xq` jointly."""
        kq = matern52(self.x, xq, self.hyper.lengths, self.hyper.signal)
        v = self.inverse_chol @ kq
        return kq.T @ self.alpha, matern52(xq, xq, self.hyper.lengths, self.hyper.signal) - v.T @ v

    def predict_with_gradient(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean and variance at each row of `xq` (q, d), and their gradients (q, d) with respect to it."""
        lengths, signal = self.hyper.lengths, self.hyper.signal
        delta = xq[:, None, :] - self.x[None, :, :]  # (q, n, d)
        r = np.sqrt(((delta / lengths) ** 2).sum(2))
        e = np.exp(-SQRT5 * r)
        k = signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * e  # (q, n)
        jac = -(signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e)[:, :, None] * (delta / lengths**2)  # dk/dx, (q, n, d)
        v = self.inverse_chol @ k.T  # (n, q)
        kinv_k = self.inverse_chol.T @ v
        mean = k @ self.alpha
        var = np.maximum(signal - (v**2).sum(0), 1e-12)
        dmean = np.einsum("qnd,n->qd", jac, self.alpha)
        dvar = -2.0 * np.einsum("qnd,nq->qd", jac, kinv_k)
        return mean, var, dmean, dvar


def _triangular_inverse(chol: np.ndarray) -> np.ndarray:
    inverse, info = lapack.dtrtri(chol, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("Cholesky factor is singular")
    return np.tril(inverse)


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


def log_h_with_slope(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log h(z) and its derivative d log h / dz = Phi(z) / h(z)."""
    value = log_h(z)
    return value, np.exp(log_ndtr(np.asarray(z, dtype=float)) - value)
