"""Search strategies behind one small interface, looked up by name."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dial.search.base import Assignment, Proposal, Strategy, StrategySettings, TrialRecord, propose_active, propose_active_trials
from dial.search.bayesian import BayesianOptimization
from dial.search.cmaes import Cmaes
from dial.search.gp import GpBayesian, preload
from dial.search.grid import GridSearch
from dial.search.hyperband import Hyperband
from dial.search.parego import ParEgo
from dial.search.pbt import PopulationBasedTraining
from dial.search.random import RandomSearch
from dial.search.sobol import SobolSearch
from dial.search.space import Dimension, SearchSpace
from dial.search.tpe import MultivariateTreeParzen, TreeParzen

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    for name in (cls.name, *cls.aliases):
        STRATEGIES[name] = cls
    return cls


for _cls in (RandomSearch, GridSearch, BayesianOptimization, SobolSearch, TreeParzen, MultivariateTreeParzen, Cmaes,
             GpBayesian, Hyperband, PopulationBasedTraining):
    register(_cls)


# Single-objective strategies that handle several objectives through ParEGO's scalarisation.
PAREGO_STRATEGIES: tuple[type[Strategy], ...] = (GpBayesian, BayesianOptimization)


def make_strategy(name: str, settings: dict[str, Any], space: SearchSpace, *, seed: int,
                  n_objectives: int = 1) -> Strategy:
    """Build a strategy from an experiment's algorithm spec; ValueError/ValidationError name the problem."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    if n_objectives > 1 and not cls.multi_objective and cls not in PAREGO_STRATEGIES:
        raise ValueError(f"algorithm {name!r} optimises one objective; for {n_objectives} objectives use one of "
                         f"{', '.join(multi_objective_names())}")
    strategy = cls(space, cls.Settings.model_validate(settings), seed=seed)
    strategy.validate()
    if n_objectives > 1 and not cls.multi_objective:
        return ParEgo(strategy)
    return strategy


def multi_objective_names() -> list[str]:
    """Algorithm names that accept two or more objectives."""
    return sorted(name for name, cls in STRATEGIES.items() if cls.multi_objective or cls in PAREGO_STRATEGIES)


__all__ = [
    "Assignment", "Dimension", "Proposal", "SearchSpace", "Strategy", "StrategySettings", "TrialRecord", "STRATEGIES",
    "ValidationError", "make_strategy", "multi_objective_names", "preload", "propose_active", "propose_active_trials", "register",
]
