"""Behaviour particular to sobol, tpe, cmaes and gp (the generic checks are in test_strategies.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dial.search import SearchSpace, TrialRecord, make_strategy
from dial.search.gaussian_process import GaussianProcess, fit_hyper, log_h
from dial.search.gp import _FITS, refit_checkpoint
from dial.search.sobol import sobol_points
from test_strategies import run, space

PLANE = space({"name": "x", "type": "double", "feasibleSpace": {"min": -5, "max": 5}},
              {"name": "y", "type": "double", "feasibleSpace": {"min": -5, "max": 5}})


def bowl(a: dict) -> float:
    return (a["x"] - 1.3) ** 2 + (a["y"] + 0.7) ** 2


def test_sobol_continues_one_sequence_whatever_the_batch_sizes() -> None:
    one_by_one = run("sobol", {}, PLANE, seed=5, rounds=8, batch=1, objective=bowl)
    in_batches = run("sobol", {}, PLANE, seed=5, rounds=2, batch=4, objective=bowl)
    assert [r.assignment for r in one_by_one] == [r.assignment for r in in_batches]
    units = np.array([PLANE.to_unit(r.assignment) for r in one_by_one])
    # The first 8 points of a scrambled Sobol sequence put one point in each eighth of each axis.
    assert sorted(np.floor(units[:, 0] * 8).astype(int)) == list(range(8))


def test_cmaes_converges_on_a_bowl_over_generations() -> None:
    best = [min(r.loss for r in run("cmaes", {}, PLANE, seed=s, rounds=10, batch=6, objective=bowl)) for s in range(3)]
    best_random = [min(r.loss for r in run("random", {}, PLANE, seed=s, rounds=10, batch=6, objective=bowl))
                   for s in range(3)]
    assert np.mean(best) < 0.2 * np.mean(best_random)


def test_cmaes_refuses_a_single_parameter() -> None:
    sp = space({"name": "x", "type": "double", "feasibleSpace": {"min": 0, "max": 1}})
    with pytest.raises(ValueError, match="cmaes needs at least two parameters"):
        make_strategy("cmaes", {}, sp, seed=0)


@pytest.mark.parametrize("name", ["tpe", "multivariate-tpe", "gp"])
def test_model_finds_the_good_category_and_decade(name: str) -> None:
    sp = space({"name": "lr", "type": "double", "feasibleSpace": {"min": 1e-6, "max": 1, "scale": "log"}},
               {"name": "opt", "type": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "rmsprop", "adagrad"]}})

    def loss(a: dict) -> float:
        return (math.log10(a["lr"]) + 3) ** 2 + 3.0 * (a["opt"] != "rmsprop")

    history = run(name, {}, sp, seed=1, rounds=30, batch=1, objective=loss)
    late = history[-10:]
    assert sum(r.assignment["opt"] == "rmsprop" for r in late) >= 6
    assert min(r.loss for r in history) < 0.25


def test_katib_names_resolve() -> None:
    for name in ("tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "random"):
        assert make_strategy(name, {}, PLANE, seed=0).propose([], 1)


def test_multivariate_tpe_is_tpe_with_joint_densities() -> None:
    assert make_strategy("multivariate-tpe", {}, PLANE, seed=0).settings.multivariate is True  # type: ignore[attr-defined]
    assert make_strategy("tpe", {"multivariate": True}, PLANE, seed=0).settings.multivariate is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["tpe", "gp"])
def test_running_trials_push_new_proposals_elsewhere(name: str) -> None:
    strategy = make_strategy(name, {}, PLANE, seed=2)
    # Early, while the model is unsure: once converged, EI rightly keeps even parallel points close.
    history = run(name, {}, PLANE, seed=2, rounds=8, batch=1, objective=bowl)
    alone = strategy.propose(history, 1)[0]
    beside_running = strategy.propose([*history, TrialRecord(len(history), alone)], 1)[0]
    batch = strategy.propose(history, 4)
    units = np.array([PLANE.to_unit(a) for a in batch])
    assert np.linalg.norm(PLANE.to_unit(alone) - PLANE.to_unit(beside_running)) > 1e-3
    assert min(np.linalg.norm(units[i] - units[j]) for i in range(4) for j in range(i)) > 1e-4


def test_gp_fits_length_scales_that_tell_relevant_inputs_apart() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    y = np.sin(6 * x[:, 0])  # only the first input matters
    y = (y - y.mean()) / y.std()
    hyper = fit_hyper(x, y, rng)
    assert hyper.lengths[0] < 0.2 * min(hyper.lengths[1], hyper.lengths[2])
    mean, var = GaussianProcess(x, y, hyper).predict(x[:5])
    assert np.allclose(mean, y[:5], atol=0.05) and (var < 0.01).all()


def test_log_ei_stays_finite_and_monotone_far_in_the_tail() -> None:
    z = np.array([-200.0, -40.0, -5.0, -1.0, 0.0, 2.0])
    values = log_h(z)
    assert np.isfinite(values).all() and (np.diff(values) > 0).all()
    assert values[-1] == pytest.approx(math.log(2.0 * 0.9772498680518208 + math.exp(-2.0) / math.sqrt(2 * math.pi)))


def test_gp_beats_random_on_hartmann_like_ridge_in_4d() -> None:
    sp = space(*({"name": f"x{i}", "type": "double", "feasibleSpace": {"min": 0, "max": 1}} for i in range(4)))

    def ridge(a: dict) -> float:
        v = np.array([a[f"x{i}"] for i in range(4)])
        return float(((v - 0.3) ** 2).sum() + 0.5 * (v[0] - v[1]) ** 2)

    best = min(r.loss for r in run("gp", {}, sp, seed=0, rounds=25, batch=1, objective=ridge))
    best_random = np.median([min(r.loss for r in run("random", {}, sp, seed=s, rounds=25, batch=1, objective=ridge))
                             for s in range(5)])
    assert best < 0.1 * best_random


def test_sobol_points_are_deterministic_per_seed() -> None:
    assert sobol_points(3, 4, start=5, n=3) == sobol_points(3, 4, start=5, n=3)
    assert sobol_points(3, 4, start=5, n=3) != sobol_points(3, 5, start=5, n=3)


@pytest.mark.parametrize("name", ["tpe", "sobol"])
def test_katib_random_state_overrides_the_experiment_seed(name: str) -> None:
    with_setting = make_strategy(name, {"random_state": 9}, PLANE, seed=0).propose([], 3)
    assert with_setting == make_strategy(name, {}, PLANE, seed=9).propose([], 3)


def test_gp_loss_warping_keeps_the_order_and_removes_skew() -> None:
    from scipy.stats import skew

    from dial.search.gp import _standardise, _warp

    y = np.random.default_rng(0).lognormal(0.0, 2.0, 40)  # heavy right tail, like losses far from the optimum
    warped = _warp(y)
    assert (np.argsort(warped) == np.argsort(y)).all()
    assert abs(skew(warped)) < 0.3 * skew(_standardise(y))  # 0.62 vs 2.56 for this sample
    assert _warp(np.ones(5)).tolist() == [0.0] * 5  # a flat history stays flat


def test_gp_past_its_model_cap_is_deterministic_in_bounds_and_spreads_a_batch_beside_running_and_failed_trials() -> None:
    from test_strategies import MIXED, loss

    settings = {"max_model_points": 16, "max_fit_points": 8}
    rng = np.random.default_rng(0)
    finished = [TrialRecord(i, a, loss(a), True) for i, a in enumerate(MIXED.sample(rng) for _ in range(40))]
    failed = [TrialRecord(40 + i, MIXED.sample(rng), None, True) for i in range(3)]
    history = [*finished, *failed, TrialRecord(43, MIXED.sample(rng)), TrialRecord(44, MIXED.sample(rng))]
    first = make_strategy("gp", settings, MIXED, seed=3).propose(history, 3)
    again = make_strategy("gp", settings, MIXED, seed=3).propose(history, 3)
    assert first == again
    assert all(MIXED.contains(a) for a in first)
    keys = {MIXED.key(a) for a in first} | {MIXED.key(r.assignment) for r in history}
    assert len(keys) == len(first) + len(history)


def test_gp_with_a_capped_model_still_closes_in_on_the_bowl() -> None:
    capped = run("gp", {"max_model_points": 12, "max_fit_points": 8}, PLANE, seed=1, rounds=30, batch=1, objective=bowl)
    assert min(r.loss for r in capped) < 0.05  # random search: about 1 in 30 draws


def test_gp_refits_on_every_trial_at_first_then_once_the_trials_grow_by_a_fifth() -> None:
    checkpoints = [refit_checkpoint(n, 20, 0.2) for n in range(1, 60)]
    assert checkpoints[:20] == list(range(1, 21))
    assert sorted(set(checkpoints[19:])) == [20, 24, 28, 33, 39, 46, 55]
    assert all(c <= n for n, c in zip(range(1, 60), checkpoints))
    assert refit_checkpoint(1000, 20, 0.0) == 1000  # growth 0: a fit per proposal


def test_gp_proposes_the_same_from_a_cold_process_as_from_one_that_remembers_its_fits() -> None:
    from test_strategies import MIXED, loss

    rng = np.random.default_rng(4)
    history = [TrialRecord(i, a, loss(a), True) for i, a in enumerate(MIXED.sample(rng) for _ in range(30))]
    history.append(TrialRecord(30, MIXED.sample(rng)))  # running
    _FITS.clear()
    cold = make_strategy("gp", {}, MIXED, seed=5).propose(history, 2)
    assert len(_FITS) == 1
    warm = make_strategy("gp", {}, MIXED, seed=5).propose(history, 2)
    assert warm == cold and len(_FITS) == 1
    # 30 and 31 finished trials share a checkpoint (the first 28 of them): one fit serves both.
    more = [*history[:-1], TrialRecord(30, history[-1].assignment, loss(history[-1].assignment), True)]
    make_strategy("gp", {}, MIXED, seed=5).propose(more, 1)
    assert len(_FITS) == 1
    _FITS.clear()
    assert make_strategy("gp", {}, MIXED, seed=5).propose(history, 2) == cold


def test_unit_rows_are_to_unit_bit_for_bit() -> None:
    from test_strategies import MIXED

    rng = np.random.default_rng(6)
    assignments = [MIXED.sample(rng) for _ in range(200)]
    rows = MIXED.to_unit_rows(assignments)
    assert rows.shape == (200, len(MIXED.dimensions))
    assert all((MIXED.to_unit(a) == row).all() for a, row in zip(assignments, rows))
    assert MIXED.to_unit_rows([]).shape == (0, len(MIXED.dimensions))


def flat_history(n: int) -> list[TrialRecord]:
    """Trials that all score the same: CMA-ES sees no progress and, after enough generations, stops."""
    rng = np.random.default_rng(0)
    return [TrialRecord(i, {"x": float(rng.uniform(-5, 5)), "y": float(rng.uniform(-5, 5))}, 1.0, True) for i in range(n)]


@pytest.mark.parametrize(("strategy", "population", "restarts"), [("none", 6, 0), ("ipop", 12, 1)])
def test_cmaes_restart_strategy_restarts_a_stalled_search_with_a_larger_population(
        strategy: str, population: int, restarts: int) -> None:
    cmaes = make_strategy("cmaes", {"restart_strategy": strategy}, PLANE, seed=2)
    regime, _ = cmaes.replay(flat_history(6 * 40))  # type: ignore[attr-defined]
    assert (regime.population, regime.restarts) == (population, restarts)


def test_cmaes_bipop_alternates_large_and_small_populations_deterministically() -> None:
    cmaes = make_strategy("cmaes", {"restart_strategy": "bipop"}, PLANE, seed=2)
    regime, _ = cmaes.replay(flat_history(6 * 200))  # type: ignore[attr-defined]
    assert regime.restarts >= 2 and regime.large_restarts >= 1 and regime.small_budget > 0
    again, _ = make_strategy("cmaes", {"restart_strategy": "bipop"}, PLANE, seed=2).replay(flat_history(6 * 200))  # type: ignore[attr-defined]
    assert again == regime


def test_cmaes_restart_strategy_is_checked() -> None:
    with pytest.raises(ValueError, match="restart_strategy"):
        make_strategy("cmaes", {"restart_strategy": "sometimes"}, PLANE, seed=0)
