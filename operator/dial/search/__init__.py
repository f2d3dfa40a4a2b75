"""Search strategies behind one small interface, looked up by name."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord
from dial.search.bayesian import BayesianOptimization
from dial.search.cmaes import Cmaes
from dial.search.gp import GpBayesian
from dial.search.grid import GridSearch
from dial.search.hyperband import Hyperband
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
             GpBayesian, Hyperband):
    register(_cls)


def make_strategy(name: str, settings: dict[str, Any], space: SearchSpace, *, seed: int) -> Strategy:
    """Build a strategy from an experiment's algorithm spec; ValueError/ValidationError name the problem."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    strategy = cls(space, cls.Settings.model_validate(settings), seed=seed)
    strategy.validate()
    return strategy


__all__ = [
    "Assignment", "Dimension", "SearchSpace", "Strategy", "StrategySettings", "TrialRecord", "STRATEGIES",
    "ValidationError", "make_strategy", "register",
]
