"""The GP behind `gp`: exact gradients, the grown Cholesky factor, the subsets that bound its cost."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.stats import yeojohnson

from dial.search.gaussian_process import GaussianProcess, Hyper, _neg_log_posterior, rows_to_keep
from dial.search.gp import _standardise, _yeo_johnson, _yeo_johnson_lambda


def data(n: int = 30, d: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = np.sin(5 * x[:, 0]) + x[:, 1]
    return x, (y - y.mean()) / y.std()


def test_marginal_likelihood_gradient_matches_finite_differences() -> None:
    x, y = data()
    theta = np.array([-1.0, 0.2, 0.5, 0.1, -4.0])
    error = check_grad(lambda t: _neg_log_posterior(t, x, y)[0], lambda t: _neg_log_posterior(t, x, y)[1], theta)
    assert error < 1e-4 * np.linalg.norm(_neg_log_posterior(theta, x, y)[1])


def test_batched_input_gradients_match_predict_and_finite_differences() -> None:
    x, y = data()
    gp = GaussianProcess(x, y, Hyper(np.array([0.3, 0.5, 2.0]), 1.2, 1e-3))
    queries = np.random.default_rng(2).random((4, 3))
    mean, var, dmean, dvar = gp.predict_with_gradient(queries)
    plain_mean, plain_var = gp.predict(queries)
    assert np.allclose(mean, plain_mean) and np.allclose(var, plain_var)
    step = 1e-6
    for j in range(3):
        moved = queries.copy()
        moved[:, j] += step
        moved_mean, moved_var = gp.predict(moved)
        assert np.allclose((moved_mean - plain_mean) / step, dmean[:, j], atol=1e-4)
        assert np.allclose((moved_var - plain_var) / step, dvar[:, j], atol=1e-4)


def test_joint_posterior_has_predicts_mean_and_variance_and_is_positive_semidefinite() -> None:
    x, y = data()
    gp = GaussianProcess(x, y, Hyper(np.array([0.3, 0.5, 2.0]), 1.2, 1e-3))
    queries = np.random.default_rng(5).random((40, 3))
    mean, cov = gp.joint(queries)
    plain_mean, plain_var = gp.predict(queries)
    assert np.allclose(mean, plain_mean) and np.allclose(np.diag(cov), plain_var, atol=1e-9)
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > -1e-8


def test_added_observations_grow_the_factor_to_the_full_refactorisation() -> None:
    x, y = data()
    hyper = Hyper(np.array([0.3, 0.5, 2.0]), 1.2, 1e-3)
    extra = np.random.default_rng(3).random((3, 3))
    grown = GaussianProcess(x, y, hyper).with_observations(extra, np.array([0.1, -0.2, 0.3]))
    full = GaussianProcess(np.vstack([x, extra]), np.concatenate([y, [0.1, -0.2, 0.3]]), hyper)
    probe = np.random.default_rng(4).random((5, 3))
    assert np.allclose(grown.chol, full.chol)
    assert np.allclose(grown.predict(probe)[0], full.predict(probe)[0])
    assert np.allclose(grown.predict(probe)[1], full.predict(probe)[1])


def test_a_duplicate_fantasy_point_does_not_break_the_factor() -> None:
    x, y = data()
    gp = GaussianProcess(x, y, Hyper(np.array([0.3, 0.5, 2.0]), 1.0, 1e-6))
    grown = gp.with_observations(x[:2], y[:2])  # exactly on existing points
    assert np.isfinite(grown.predict(x[:5])[0]).all()


def test_kept_rows_are_the_best_share_then_the_farthest_apart() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.random((1000, 2)), rng.random(1000)
    kept = rows_to_keep(x, y, 100, best_share=0.5)
    assert len(kept) == 100 and len(set(kept.tolist())) == 100 and (np.diff(kept) > 0).all()
    assert set(np.argsort(y)[:50]) <= set(kept.tolist())
    # Every dropped point has a kept one near it: no explored region looks unexplored to the model.
    gaps = np.sqrt(((x[:, None, :] - x[None, kept, :]) ** 2).sum(2)).min(1)
    assert gaps.max() < 0.12
    assert rows_to_keep(x, y, 100, best_share=0.5).tolist() == kept.tolist()
    assert rows_to_keep(x[:40], y[:40], 100, best_share=0.5).tolist() == list(range(40))


@pytest.mark.parametrize("seed", range(3))
def test_yeo_johnson_matches_scipy_transform_and_lambda(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for y in (rng.lognormal(0.0, 2.0, 40), -rng.lognormal(0.0, 1.0, 100), rng.normal(size=300)):
        z = _standardise(y)
        transformed, scipy_lambda = yeojohnson(z)
        assert np.allclose(_yeo_johnson(z, np.array([scipy_lambda]))[0], transformed)
        assert _yeo_johnson_lambda(z) == pytest.approx(scipy_lambda, abs=1e-6)
