"""The optimisers compared: Dial's strategies and the peers, each run for a fixed number of evaluations.

Every runner takes a problem, a seed, a budget and a batch size and returns the losses in
evaluation order. With a batch of k, each optimiser is asked for k points before any of them is
told (ask k, tell k): Dial's strategies get one `propose(history, k)` call, as the engine makes
when k slots are free; Optuna's samplers see the k - 1 asked trials as running (TPE with its
constant liar, GPSampler with its own handling of running trials); skopt uses its constant liar,
Hyperopt its queue, SMAC asks k times before telling.
Every latency probe takes a space, a history of (assignment, loss) and a loss, and returns the
seconds of consecutive proposals made from that history on, as in a running experiment.
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any, Callable

import numpy as np

from dial.api.space import ParameterType
from dial.search import SearchSpace, TrialRecord, make_strategy
from problems import Problem

# (problem, seed, n_evals, batch) -> losses in evaluation order
Runner = Callable[[Problem, int, int, int], list[float]]
History = list[tuple[dict[str, Any], float]]
Loss = Callable[[dict[str, Any]], float]
# (space, history, loss, steps, cap_s) -> seconds of each of up to `steps` consecutive proposals
# from that history on, each proposal evaluated and added before the next; the first one meets
# whatever the optimiser keeps between proposals empty.
LatencyProbe = Callable[[SearchSpace, History, Loss, int, float], list[float]]


def _batches(n_evals: int, batch: int) -> list[int]:
    """Sizes of the successive asks: `batch` each, the last one cut to the budget."""
    return [min(batch, n_evals - start) for start in range(0, n_evals, batch)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- Dial ------------------------------------------------------------------------------------

def dial_runner(name: str, settings: dict[str, Any] | None = None) -> Runner:
    def run(problem: Problem, seed: int, n_evals: int, batch: int) -> list[float]:
        history: list[TrialRecord] = []
        for k in _batches(n_evals, batch):
            # A fresh strategy per planning step, as the operator and `dial run` make one.
            strategy = make_strategy(name, settings or {}, problem.space, seed=seed)
            for assignment in strategy.propose(history, k):
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


OptunaSampler = Callable[[int, int], Any]  # (seed, batch) -> sampler


def optuna_tpe(multivariate: bool = False) -> OptunaSampler:
    """TPESampler as it ships (or multivariate); with a batch, its constant liar for the running trials."""
    def make(seed: int, batch: int) -> Any:
        import optuna

        options: dict[str, Any] = {"multivariate": True} if multivariate else {}
        return optuna.samplers.TPESampler(seed=seed, constant_liar=batch > 1, **options)
    return make


def optuna_gp(seed: int, batch: int) -> Any:
    """GPSampler as it ships: it conditions on running trials by itself."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


def optuna_runner(sampler: OptunaSampler) -> Runner:
    def run(problem: Problem, seed: int, n_evals: int, batch: int) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=sampler(seed, batch))
        distributions = _optuna_distributions(problem.space)
        losses: list[float] = []
        for k in _batches(n_evals, batch):
            trials = [study.ask(distributions) for _ in range(k)]
            for trial in trials:
                losses.append(problem.loss(dict(trial.params)))
                study.tell(trial, losses[-1])
        return losses
    return run


def optuna_latency(sampler: OptunaSampler) -> LatencyProbe:
    def probe(space: SearchSpace, history: History, loss: Loss, steps: int, cap_s: float) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = _optuna_distributions(space)
        study = optuna.create_study(sampler=sampler(0, 1))
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


def hyperopt_run_with_gaps(problem_space: SearchSpace, loss: Loss, seed: int, n_evals: int,
                           batch: int = 1) -> tuple[list[float], list[float]]:
    """Losses in order, and the seconds between consecutive evaluations (hyperopt's proposal time).

    With a batch, fmin queues `batch` suggestions from one model before evaluating any of them.
    """
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
         rstate=np.random.default_rng(seed), show_progressbar=False, max_queue_len=batch)
    gaps = [stamps[2 * i + 2] - stamps[2 * i + 1] for i in range(len(losses) - 1)]
    return losses, gaps


def hyperopt_runner(problem: Problem, seed: int, n_evals: int, batch: int) -> list[float]:
    return hyperopt_run_with_gaps(problem.space, problem.loss, seed, n_evals, batch)[0]


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


def _skopt_optimizer(space: SearchSpace, seed: int) -> Any:
    """An Optimizer with gp_minimize's own settings, so ask/tell runs what gp_minimize runs."""
    from skopt import Optimizer
    from skopt.utils import cook_estimator, normalize_dimensions

    dims = normalize_dimensions(_skopt_dimensions(space))
    return Optimizer(dims, base_estimator=cook_estimator("GP", space=dims, random_state=seed, noise="gaussian"),
                     n_initial_points=10, acq_func="gp_hedge", acq_optimizer="lbfgs",
                     acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1},
                     random_state=seed)


def skopt_runner(problem: Problem, seed: int, n_evals: int, batch: int) -> list[float]:
    space = problem.space
    optimizer = _skopt_optimizer(space, seed)
    losses: list[float] = []
    for k in _batches(n_evals, batch):
        # One point: plain ask; several: skopt's constant liar (the lie is the minimum seen).
        points = [optimizer.ask()] if k == 1 else optimizer.ask(n_points=k, strategy="cl_min")
        values = [problem.loss({d.name: _plain(v) for d, v in zip(space.dimensions, p)}) for p in points]
        losses.extend(values)
        optimizer.tell(points, values)
    return losses


def skopt_latency(space: SearchSpace, history: History, loss: Loss, steps: int, cap_s: float) -> list[float]:
    """gp_minimize's steps: `tell` refits the GP on the history and optimises the acquisition, `ask` returns the point."""
    optimizer = _skopt_optimizer(space, 0)
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


# -- SMAC3 -----------------------------------------------------------------------------------

def _smac_space(space: SearchSpace, seed: int) -> Any:
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for dim in space.dimensions:
        if dim.is_choice:
            cs.add(Categorical(dim.name, list(dim.choices)))
        elif dim.kind is ParameterType.int:
            cs.add(Integer(dim.name, (int(dim.low), int(dim.high)), log=dim.log))
        else:
            cs.add(Float(dim.name, (dim.low, dim.high), log=dim.log))
    return cs


def smac_runner(facade_name: str) -> Runner:
    """SMAC3 through ask/tell: `BlackBoxFacade` (a GP) or `HyperparameterOptimizationFacade` (a random forest)."""
    def run(problem: Problem, seed: int, n_evals: int, batch: int) -> list[float]:
        import smac
        from smac.runhistory.dataclasses import TrialValue

        space = problem.space
        facade = getattr(smac, facade_name)
        losses: list[float] = []
        with tempfile.TemporaryDirectory() as output:
            scenario = smac.Scenario(_smac_space(space, seed), deterministic=True, n_trials=n_evals, seed=seed,
                                     output_directory=output)
            # ask/tell only: SMAC never calls the target function itself.
            optimizer = facade(scenario, target_function=lambda config, seed=0: 0.0, overwrite=True,
                               logging_level=40)
            for k in _batches(n_evals, batch):
                infos = [optimizer.ask() for _ in range(k)]
                for info in infos:
                    assignment = {d.name: space.dimensions[i].cast(float(info.config[d.name])) if not d.is_choice
                                  else info.config[d.name] for i, d in enumerate(space.dimensions)}
                    losses.append(problem.loss(assignment))
                    optimizer.tell(info, TrialValue(cost=losses[-1]))
        return losses
    return run


# -- the line-up -----------------------------------------------------------------------------

RUNNERS: dict[str, Runner] = {
    "dial gp": dial_runner("gp"),
    "dial tpe": dial_runner("tpe"),
    "dial multivariate-tpe": dial_runner("multivariate-tpe"),
    "dial cmaes": dial_runner("cmaes"),
    "dial sobol": dial_runner("sobol"),
    "random": dial_runner("random"),
    "optuna tpe": optuna_runner(optuna_tpe()),
    "optuna tpe multivariate": optuna_runner(optuna_tpe(multivariate=True)),
    "optuna gp": optuna_runner(optuna_gp),
    "hyperopt tpe": hyperopt_runner,
    "skopt gp_minimize": skopt_runner,
    "smac blackbox": smac_runner("BlackBoxFacade"),
    "smac hpo": smac_runner("HyperparameterOptimizationFacade"),
}

LATENCY_PROBES: dict[str, LatencyProbe] = {
    "dial gp": dial_latency("gp"),
    "dial tpe": dial_latency("tpe"),
    "dial multivariate-tpe": dial_latency("multivariate-tpe"),
    "dial cmaes": dial_latency("cmaes"),
    "dial sobol": dial_latency("sobol"),
    "random": dial_latency("random"),
    "optuna tpe": optuna_latency(optuna_tpe()),
    "optuna tpe multivariate": optuna_latency(optuna_tpe(multivariate=True)),
    "optuna gp": optuna_latency(optuna_gp),
    "skopt gp_minimize": skopt_latency,
    # hyperopt: measured from the gaps between evaluations of one long run (see strategies.py)
}
