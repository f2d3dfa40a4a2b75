"""The strategies that accept several objectives: the shared checks, and a better front than random.

Adding a multi-objective strategy means adding it to MULTI_OBJECTIVE_CASES.
"""

from __future__ import annotations

import numpy as np
import pytest

from dial.search import STRATEGIES, SearchSpace, TrialRecord, make_strategy, multi_objective_names
from dial.search.base import Assignment
from dial.search.parego import RHO, _scalarise
from dial.search.pareto import pareto_front

from test_strategies import MIXED, SMALL, case_id, loss, space

MULTI_OBJECTIVE_CASES: list[tuple[str, dict]] = [
    ("random", {}),
    ("sobol", {}),
    ("tpe", {"n_startup_trials": 4}),
    ("multivariate-tpe", {"n_startup_trials": 4}),
    ("gp", {"n_initial_points": 3}),
    ("bayesian", {"n_initial_points": 3}),
]
MODEL_BASED = [("tpe", {"n_startup_trials": 8}), ("gp", {"n_initial_points": 8})]


def two_losses(assignment: Assignment) -> tuple[float, float]:
    """The suite's loss against a conflicting one (small learning rates against large ones)."""
    return loss(assignment), abs(np.log10(assignment["lr"]) + 1.5) + assignment["dropout"]


def run(name: str, settings: dict, sp: SearchSpace, objectives, *, seed: int, rounds: int, batch: int) -> list[TrialRecord]:
    strategy = make_strategy(name, settings, sp, seed=seed, n_objectives=2)
    history: list[TrialRecord] = []
    for _ in range(rounds):
        for a in strategy.propose(history, batch):
            losses = objectives(a)
            history.append(TrialRecord(len(history), a, losses[0], True, losses))
    return history


@pytest.mark.parametrize("case", MULTI_OBJECTIVE_CASES, ids=case_id)
def test_proposals_are_inside_the_space_and_deterministic(case: tuple[str, dict]) -> None:
    first = run(*case, MIXED, two_losses, seed=5, rounds=3, batch=2)
    assert len(first) == 6 and all(MIXED.contains(r.assignment) for r in first)
    assert all(type(r.assignment["lr"]) is float and type(r.assignment["optimizer"]) is str for r in first)
    second = run(*case, MIXED, two_losses, seed=5, rounds=3, batch=2)
    assert [r.assignment for r in first] == [r.assignment for r in second]


@pytest.mark.parametrize("case", [("grid", {}), *MULTI_OBJECTIVE_CASES], ids=case_id)
def test_concurrent_proposals_never_collide(case: tuple[str, dict]) -> None:
    history = run(*case, SMALL, lambda a: (float(a["a"]), float(a["b"] == "x")), seed=0, rounds=2, batch=2)
    strategy = make_strategy(*case, SMALL, seed=0, n_objectives=2)
    running = strategy.propose(history, 2)
    keys = [SMALL.key(r.assignment) for r in history] + [SMALL.key(a) for a in running]
    assert len(keys) == 6 and len(set(keys)) == 6


def test_single_objective_strategies_are_refused_and_the_rest_listed() -> None:
    names = multi_objective_names()
    for name, cls in STRATEGIES.items():
        if name in names:
            continue
        with pytest.raises(ValueError, match=f"algorithm '{name}' optimises one objective; for 3 objectives use one of"):
            make_strategy(name, {}, MIXED, seed=0, n_objectives=3)
    assert {"random", "sobol", "grid", "tpe", "multivariate-tpe", "gp", "bayesian"} <= set(names)
    assert "cmaes" not in names and "hyperband" not in names


BOX = space({"name": "x", "type": "double", "feasibleSpace": {"min": -3, "max": 3}},
            {"name": "y", "type": "double", "feasibleSpace": {"min": -3, "max": 3}})


def two_circles(a: Assignment) -> tuple[float, float]:
    """Distances to two points: the front is the segment between them."""
    return (a["x"] + 1) ** 2 + a["y"] ** 2, (a["x"] - 1) ** 2 + (a["y"] - 1) ** 2


def hypervolume(losses: list[tuple[float, float]], reference: tuple[float, float] = (10.0, 10.0)) -> float:
    """The area the front dominates inside the reference box (two objectives)."""
    area, ceiling = 0.0, reference[1]
    for first, second in sorted(losses[i] for i in pareto_front(losses)):
        if first < reference[0] and second < ceiling:
            area += (reference[0] - first) * (ceiling - second)
            ceiling = second
    return area


def test_hypervolume_of_a_known_front() -> None:
    assert hypervolume([(1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]) == 8 * 9 + 1 * 8


@pytest.mark.parametrize("case", MODEL_BASED, ids=case_id)
def test_model_based_strategies_find_a_better_front_than_random(case: tuple[str, dict]) -> None:
    # Measured: random 77-85, tpe 87-91, gp 93-94 over seeds 0-3 (24 trials, 2 at a time).
    for seed in range(3):
        model = hypervolume([r.losses for r in run(*case, BOX, two_circles, seed=seed, rounds=12, batch=2)])
        random = hypervolume([r.losses for r in run("random", {}, BOX, two_circles, seed=seed, rounds=12, batch=2)])
        assert model > random + 3, (seed, model, random)


def test_parego_normalises_each_objective_and_adds_the_augmentation_term() -> None:
    bounds = (np.array([0.0, 10.0]), np.array([2.0, 10.0]))  # first spans 0-2, second 10-20
    record = TrialRecord(0, {}, 1.0, True, (1.0, 20.0))  # normalised: (0.5, 1.0)
    weights = np.array([0.5, 0.5])
    assert _scalarise(record, weights, bounds) == pytest.approx(0.5 + RHO * 0.75)
    assert _scalarise(TrialRecord(1, {}, None, True, None), weights, bounds) is None
    assert _scalarise(TrialRecord(2, {}), weights, bounds) is None  # running


def test_parego_batches_spread_over_the_front() -> None:
    history = run("gp", {"n_initial_points": 6}, BOX, two_circles, seed=1, rounds=5, batch=2)
    batch = make_strategy("gp", {"n_initial_points": 6}, BOX, seed=1, n_objectives=2).propose(history, 4)
    points = np.array([[a["x"], a["y"]] for a in batch])
    assert len(batch) == 4 and np.min(np.linalg.norm(points[:, None] - points[None], axis=2) + np.eye(4) * 9) > 1e-3
