"""Benchmark problems: test functions, BBOB functions from coco-experiment, and scikit-learn models.

Each problem is a Dial search space, a loss to minimise, its best value f* (known, or the best
that any run found) and a reference value (median loss of random points) for normalising regret.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dial.api.space import ParameterSpec
from dial.examples.peaks import peaks
from dial.search import SearchSpace
from dial.search.sobol import sobol_points

Loss = Callable[[dict[str, Any]], float]


@dataclass
class Problem:
    name: str
    parameters: list[dict[str, Any]]
    loss: Loss
    f_star: float | None  # None: the best value any optimiser found in the run
    n_reference_points: int = 256
    reference: float = field(default=math.nan)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_parameters([ParameterSpec.model_validate(p) for p in self.parameters])

    def describe(self) -> str:
        """The kinds of parameters, counted: "2 float", "1 log-float, 1 int, 2 categorical"."""
        kinds: dict[str, int] = {}
        for p in self.parameters:
            kind = {"double": "float", "int": "int", "categorical": "categorical", "discrete": "discrete"}[p["type"]]
            if p["feasibleSpace"].get("scale") == "log":
                kind = "log-" + kind
            kinds[kind] = kinds.get(kind, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in kinds.items())

    def compute_reference(self) -> None:
        """Median loss over quasi-random points: regret 1 means "no better than a typical random point"."""
        points = sobol_points(len(self.parameters), 12345, start=0, n=self.n_reference_points)
        self.reference = float(np.median([self.loss(self.space.from_unit(p)) for p in points]))


def real(name: str, low: float, high: float, log: bool = False) -> dict[str, Any]:
    space: dict[str, Any] = {"min": low, "max": high}
    if log:
        space["scale"] = "log"
    return {"name": name, "type": "double", "feasibleSpace": space}


def branin(a: dict[str, Any]) -> float:
    x1, x2 = a["x1"], a["x2"]
    return float((x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
                 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6(a: dict[str, Any]) -> float:
    x = np.array([a[f"x{i}"] for i in range(6)])
    return float(-(_H6_ALPHA * np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(1))).sum())


def bbob(function: int, dimension: int = 5) -> Problem:
    import cocoex
    from scipy.optimize import differential_evolution

    suite = cocoex.Suite("bbob", "", f"dimensions:{dimension} instance_indices:1 function_indices:{function}")
    problem = next(iter(suite))
    names = [f"x{i}" for i in range(dimension)]

    def loss(a: dict[str, Any]) -> float:
        return float(problem(np.array([a[n] for n in names])))

    # coco does not expose f*; a long differential-evolution run finds it to well below the
    # regret any 50-evaluation run reaches (and the best any optimiser found is used if lower).
    found = differential_evolution(lambda x: float(problem(x)), [(-5, 5)] * dimension, seed=0, maxiter=3000,
                                   popsize=30, tol=1e-12, polish=True)
    return Problem(f"bbob-f{function}-{dimension}d", [real(n, -5, 5) for n in names], loss, float(found.fun),
                   n_reference_points=1024)


def _digits_subset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:600] / 16.0, y[:600]


def svc_digits() -> Problem:
    """An RBF SVM on 600 digits, 3-fold cross-validated error: two log-scaled parameters."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    x, y = _digits_subset()

    def loss(a: dict[str, Any]) -> float:
        return 1.0 - float(cross_val_score(SVC(C=a["C"], gamma=a["gamma"]), x, y, cv=3).mean())

    return Problem("sklearn-svc-digits", [real("C", 1e-2, 1e3, log=True), real("gamma", 1e-5, 1.0, log=True)],
                   loss, None, n_reference_points=64)


def sgd_digits() -> Problem:
    """A linear SGD classifier on 600 digits: log, linear, int and categorical parameters."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import cross_val_score

    x, y = _digits_subset()

    def loss(a: dict[str, Any]) -> float:
        model = SGDClassifier(loss=a["loss"], penalty=a["penalty"], alpha=a["alpha"], l1_ratio=a["l1_ratio"],
                              max_iter=a["max_iter"], tol=None, random_state=0)
        return 1.0 - float(cross_val_score(model, x, y, cv=3).mean())

    parameters = [
        real("alpha", 1e-6, 1.0, log=True),
        real("l1_ratio", 0.0, 1.0),
        {"name": "max_iter", "type": "int", "feasibleSpace": {"min": 2, "max": 40}},
        {"name": "loss", "type": "categorical", "feasibleSpace": {"list": ["hinge", "log_loss", "modified_huber"]}},
        {"name": "penalty", "type": "categorical", "feasibleSpace": {"list": ["l2", "l1", "elasticnet"]}},
    ]
    return Problem("sklearn-sgd-digits", parameters, loss, None, n_reference_points=64)


_OPTIMISERS = {  # best log10 learning rate, and the loss floor, of each optimiser
    "adam": (-3.0, 0.0), "sgd": (-1.2, 0.05), "rmsprop": (-2.6, 0.02), "adagrad": (-1.8, 0.1)}
_ACTIVATIONS = {"relu": (0.0, 1.0), "tanh": (0.03, 1.5), "sigmoid": (0.12, 2.0)}  # offset, depth sensitivity


def mixed_hpo(a: dict[str, Any]) -> float:
    """A synthetic training loss over a typical mixed space (log-float, int, log-int, two categoricals, float).

    Shaped like a neural network's tuning table: the best learning rate depends on the optimiser,
    too high a learning rate diverges to a plateau, the best width grows with the depth, and the
    activation changes how much the depth matters. Best near 0.001 (adam, lr 1e-3, 4 layers, width 128,
    relu, dropout 0.2). Cheap, so that many seeds are affordable; real models are the sklearn problems.
    """
    best_log_lr, floor = _OPTIMISERS[a["optimizer"]]
    offset, depth_weight = _ACTIVATIONS[a["activation"]]
    u = math.log10(a["lr"]) - best_log_lr
    diverged = 0.6 / (1.0 + math.exp(-8.0 * (u - 0.8)))
    depth = a["layers"] - 4
    width = math.log2(a["width"]) - 7 - 0.3 * depth
    return float(floor + offset + 0.08 * u * u + diverged + 0.02 * depth_weight * depth * depth
                 + 0.03 * width * width + 0.4 * (a["dropout"] - 0.2) ** 2)


def mixed_problem() -> Problem:
    parameters = [
        real("lr", 1e-5, 1.0, log=True),
        {"name": "layers", "type": "int", "feasibleSpace": {"min": 1, "max": 8}},
        {"name": "width", "type": "int", "feasibleSpace": {"min": 16, "max": 1024, "scale": "log"}},
        {"name": "optimizer", "type": "categorical", "feasibleSpace": {"list": list(_OPTIMISERS)}},
        {"name": "activation", "type": "categorical", "feasibleSpace": {"list": list(_ACTIVATIONS)}},
        real("dropout", 0.0, 0.5),
    ]
    return Problem("mixed-hpo", parameters, mixed_hpo, None, n_reference_points=1024)


def all_problems() -> list[Problem]:
    problems = [
        Problem("peaks", [real("x", -3, 3), real("y", -3, 3)], lambda a: peaks(a["x"], a["y"]), -6.551133332835841),
        Problem("branin", [real("x1", -5, 10), real("x2", 0, 15)], branin, 0.39788735772973816),
        Problem("hartmann6", [real(f"x{i}", 0, 1) for i in range(6)], hartmann6, -3.3223680114155147),
        *(bbob(f) for f in (6, 8, 15, 21)),
        bbob(21, 2),
        bbob(6, 10),
        mixed_problem(),
        svc_digits(),
        sgd_digits(),
    ]
    for problem in problems:
        problem.compute_reference()
    return problems
