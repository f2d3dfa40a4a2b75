"""The optimisers compared: Dial's strategies and the peers, each run for a fixed number of evaluations.

Every runner takes a problem, a seed and a budget and returns the losses in evaluation order;
every latency probe takes a space, a history of (assignment, loss) and a loss, and returns the
seconds of consecutive proposals made from that history on, as in a running experiment.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from dial.api.space import ParameterType
from dial.search import SearchSpace, TrialRecord, make_strategy
from problems import Problem

Runner = Callable[[Problem, int, int], list[float]]
History = list[tuple[dict[str, Any], float]]
Loss = Callable[[dict[str, Any]], float]
# (space, history, loss, steps, cap_s) -> seconds of each of up to `steps` consecutive proposals
# from that history on, each proposal evaluated and added before the next; the first one meets
# whatever the optimiser keeps between proposals empty.
LatencyProbe = Callable[[SearchSpace, History, Loss, int, float], list[float]]


# -- Dial ------------------------------------------------------------------------------------

def dial_runner(name: str, settings: dict[str, Any] | None = None) -> Runner:
    def run(problem: Problem, seed: int, n_evals: int) -> list[float]:
        strategy = make_strategy(name, settings or {}, problem.space, seed=seed)
        history: list[TrialRecord] = []
        while len(history) < n_evals:
            for assignment in strategy.propose(history, 1):
                history.append(TrialRecord(len(history), assignment, problem.loss(assignment), True))
        return [float(r.loss) for r in history]  # type: ignore[arg-type]
    return run


def dial_latency(name: str) -> LatencyProbe:
    def probe(space: SearchSpace, history: History, loss: Loss, steps: int, cap_s: float) -> list[float]:
        records = [TrialRecord(i, a, y, True) for i, (a, y) in enumerate(history)]
        samples: list[float] = []
        while len(samples) < steps and sum(samples) < cap_s:
            # A fresh strategy per proposal, as the operator and `dial run` make one per planning step.
            strategy = make_strategy(name, {}, space, seed=0)
            started = time.perf_counter()
            assignment = strategy.propose(records, 1)[0]
            samples.append(time.perf_counter() - started)
            records.append(TrialRecord(len(records), assignment, loss(assignment), True))
        return samples
    return probe


# -- Optuna ----------------------------------------------------------------------------------

def _optuna_distributions(space: SearchSpace) -> dict[str, Any]:
    import optuna.distributions as d

    out: dict[str, Any] = {}
    for dim in space.dimensions:
        if dim.is_choice:
            out[dim.name] = d.CategoricalDistribution(list(dim.choices))
        elif dim.kind is ParameterType.int:
            out[dim.name] = d.IntDistribution(int(dim.low), int(dim.high), log=dim.log)
        else:
            out[dim.name] = d.FloatDistribution(dim.low, dim.high, log=dim.log)
    return out


def _optuna_sampler(seed: int, multivariate: bool) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate)


def optuna_runner(multivariate: bool) -> Runner:
    def run(problem: Problem, seed: int, n_evals: int) -> list[float]:
        import optuna

        study = optuna.create_study(sampler=_optuna_sampler(seed, multivariate))
        distributions = _optuna_distributions(problem.space)
        losses: list[float] = []
        for _ in range(n_evals):
            trial = study.ask(distributions)
            losses.append(problem.loss(dict(trial.params)))
            study.tell(trial, losses[-1])
        return losses
    return run


def optuna_latency(multivariate: bool) -> LatencyProbe:
    def probe(space: SearchSpace, history: History, loss: Loss, steps: int, cap_s: float) -> list[float]:
        import optuna

        distributions = _optuna_distributions(space)
        study = optuna.create_study(sampler=_optuna_sampler(0, multivariate))
        study.add_trials([optuna.trial.create_trial(params=a, distributions=distributions, value=y) for a, y in history])
        samples: list[float] = []
        while len(samples) < steps and sum(samples) < cap_s:
            started = time.perf_counter()
            trial = study.ask(distributions)
            samples.append(time.perf_counter() - started)
            study.tell(trial, loss(dict(trial.params)))
        return samples
    return probe


# -- Hyperopt --------------------------------------------------------------------------------

def _hyperopt_space(space: SearchSpace) -> dict[str, Any]:
    from hyperopt import hp

    out: dict[str, Any] = {}
    for dim in space.dimensions:
        if dim.is_choice:
            out[dim.name] = hp.choice(dim.name, list(dim.choices))
        elif dim.kind is ParameterType.int:
            low, high = dim.low - 0.5, dim.high + 0.5
            out[dim.name] = (hp.qloguniform(dim.name, math.log(max(low, 1e-9)), math.log(high), 1) if dim.log
                             else hp.quniform(dim.name, low, high, 1))
        elif dim.log:
            out[dim.name] = hp.loguniform(dim.name, math.log(dim.low), math.log(dim.high))
        else:
            out[dim.name] = hp.uniform(dim.name, dim.low, dim.high)
    return out


def _hyperopt_assignment(space: SearchSpace, raw: dict[str, Any]) -> dict[str, Any]:
    return {d.name: raw[d.name] if d.is_choice else d.cast(float(raw[d.name])) for d in space.dimensions}


def hyperopt_run_with_gaps(problem_space: SearchSpace, loss: Loss, seed: int,
                           n_evals: int) -> tuple[list[float], list[float]]:
    """Losses in order, and the seconds between consecutive evaluations (hyperopt's proposal time)."""
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    losses: list[float] = []
    stamps: list[float] = []

    def objective(raw: dict[str, Any]) -> dict[str, Any]:
        stamps.append(time.perf_counter())
        value = loss(_hyperopt_assignment(problem_space, raw))
        losses.append(value)
        stamps.append(time.perf_counter())
        return {"loss": value, "status": STATUS_OK}

    fmin(objective, _hyperopt_space(problem_space), algo=tpe.suggest, max_evals=n_evals, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)
    gaps = [stamps[2 * i + 2] - stamps[2 * i + 1] for i in range(len(losses) - 1)]
    return losses, gaps


def hyperopt_runner(problem: Problem, seed: int, n_evals: int) -> list[float]:
    return hyperopt_run_with_gaps(problem.space, problem.loss, seed, n_evals)[0]


# -- scikit-optimize -------------------------------------------------------------------------

def _skopt_dimensions(space: SearchSpace) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    out: list[Any] = []
    for dim in space.dimensions:
        prior = "log-uniform" if dim.log else "uniform"
        if dim.is_choice:
            out.append(Categorical(list(dim.choices), name=dim.name))
        elif dim.kind is ParameterType.int:
            out.append(Integer(int(dim.low), int(dim.high), prior=prior, name=dim.name))
        else:
            out.append(Real(dim.low, dim.high, prior=prior, name=dim.name))
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def skopt_runner(problem: Problem, seed: int, n_evals: int) -> list[float]:
    from skopt import gp_minimize

    space = problem.space
    losses: list[float] = []

    def objective(point: list[Any]) -> float:
        losses.append(problem.loss({d.name: _plain(v) for d, v in zip(space.dimensions, point)}))
        return losses[-1]

    gp_minimize(objective, _skopt_dimensions(space), n_calls=n_evals, random_state=seed)
    return losses


def skopt_latency(space: SearchSpace, history: History, loss: Loss, steps: int, cap_s: float) -> list[float]:
    """gp_minimize's steps: `tell` refits the GP on the history and optimises the acquisition, `ask` returns the point."""
    from skopt import Optimizer
    from skopt.utils import cook_estimator, normalize_dimensions

    dims = normalize_dimensions(_skopt_dimensions(space))
    optimizer = Optimizer(dims, base_estimator=cook_estimator("GP", space=dims, random_state=0, noise="gaussian"),
                          n_initial_points=10, acq_func="gp_hedge", acq_optimizer="lbfgs",
                          acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1},
                          random_state=0)
    xs: list[list[Any]] = [[a[d.name] for d in space.dimensions] for a, _ in history]
    ys = [y for _, y in history]
    samples: list[float] = []
    while len(samples) < steps and sum(samples) < cap_s:
        started = time.perf_counter()
        optimizer.tell(xs, ys)
        x = optimizer.ask()
        samples.append(time.perf_counter() - started)
        xs, ys = [x], [loss({d.name: v for d, v in zip(space.dimensions, x)})]
    return samples


# -- the line-up -----------------------------------------------------------------------------

RUNNERS: dict[str, Runner] = {
    "dial gp": dial_runner("gp"),
    "dial tpe": dial_runner("tpe"),
    "dial multivariate-tpe": dial_runner("multivariate-tpe"),
    "dial cmaes": dial_runner("cmaes"),
    "dial sobol": dial_runner("sobol"),
    "random": dial_runner("random"),
    "optuna tpe": optuna_runner(False),
    "optuna tpe multivariate": optuna_runner(True),
    "hyperopt tpe": hyperopt_runner,
    "skopt gp_minimize": skopt_runner,
}

LATENCY_PROBES: dict[str, LatencyProbe] = {
    "dial gp": dial_latency("gp"),
    "dial tpe": dial_latency("tpe"),
    "dial multivariate-tpe": dial_latency("multivariate-tpe"),
    "dial cmaes": dial_latency("cmaes"),
    "dial sobol": dial_latency("sobol"),
    "random": dial_latency("random"),
    "optuna tpe": optuna_latency(False),
    "optuna tpe multivariate": optuna_latency(True),
    "skopt gp_minimize": skopt_latency,
    # hyperopt: measured from the gaps between evaluations of one long run (see strategies.py)
}
