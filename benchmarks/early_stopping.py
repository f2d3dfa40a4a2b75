"""What early stopping buys on a real learning curve: best validation loss against trial-seconds spent.

    .venv/bin/python benchmarks/early_stopping.py               # 5 seeds, the budget of 30 full trials
    .venv/bin/python benchmarks/early_stopping.py --quick       # a smoke run

The task: a one-hidden-layer MLP (scikit-learn `MLPClassifier`) trained epoch by epoch with
`partial_fit` on the bundled digits data set (70 % train, 30 % validation), up to 27 epochs, the
validation log loss reported after every epoch. Four parameters are tuned: learning rate and L2
penalty (log scale), hidden width and batch size (log-scaled integers), so epochs cost different
seconds in different trials.

Every method samples configurations at random (Dial's `random` strategy, Optuna's
`RandomSampler`), so the comparison isolates what stopping decides. Dial's rules are driven as
the engine drives them (operator/dial/engine/plan.py): after each report `rule.check(trial,
others)` on the experiment's `Trial` objects, no check once a trial has reached the final step;
Dial's `hyperband` is a strategy that sets each trial's `epochs`, and a trial promoted to a
higher rung trains again from scratch, as it does in the operator. Optuna's pruners are driven
through ask / `trial.report` / `trial.should_prune` / tell. `--workers` trials run at a time, each
advancing one epoch per turn, and a free slot is filled at once (asynchronously), as the operator
does with parallelTrialCount.

Cost is counted in epochs trained and in the measured CPU seconds of those epochs (training plus
the validation pass, one BLAS thread; CPU rather than wall seconds, so that other work on a shared
machine does not inflate them). A configuration's curve is deterministic, so it is computed once per process and
its seconds are charged to every trial that trains it.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

import numpy as np

from dial.api.experiment import ObjectiveSpec, ObjectMeta
from dial.api.space import ParameterSpec
from dial.api.trial import Trial, TrialPhase, TrialSpec
from dial.search import SearchSpace, TrialRecord, make_strategy
from dial.stopping import make_rule
from run_info import machine, package_versions  # noqa: E402

METRIC = "val_loss"
MAX_EPOCHS = 27  # 3**3: rungs at 1, 3, 9 with reduction factor 3
LOSS_CAP = 10.0  # a diverged network's loss is reported as this (the engine would stop it as non-finite)
PARAMETERS = [
    {"name": "lr", "type": "double", "feasibleSpace": {"min": 1e-4, "max": 1.0, "scale": "log"}},
    {"name": "alpha", "type": "double", "feasibleSpace": {"min": 1e-6, "max": 1e-1, "scale": "log"}},
    {"name": "width", "type": "int", "feasibleSpace": {"min": 8, "max": 256, "scale": "log"}},
    {"name": "batch_size", "type": "int", "feasibleSpace": {"min": 16, "max": 512, "scale": "log"}},
]
EPOCHS = {"name": "epochs", "type": "int", "feasibleSpace": {"min": 1, "max": MAX_EPOCHS}}


# -- the learning-curve task -----------------------------------------------------------------

class Curves:
    """Validation loss and seconds of each epoch of each configuration, trained lazily and kept."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        self.x_train, self.x_val, self.y_train, self.y_val = train_test_split(
            x / 16.0, y, test_size=0.3, random_state=0, stratify=y)
        self._models: dict[tuple[Any, ...], Any] = {}
        self._points: dict[tuple[Any, ...], list[tuple[float, float]]] = {}

    def epoch(self, config: dict[str, Any], epoch: int) -> tuple[float, float]:
        """(validation loss, seconds) of `epoch` (1-based) of `config`, training up to it if not done yet."""
        key = tuple(sorted((k, config[k]) for k in ("lr", "alpha", "width", "batch_size")))
        points = self._points.setdefault(key, [])
        while len(points) < epoch:
            points.append(self._train_one_more(key, config))
        return points[epoch - 1]

    def _train_one_more(self, key: tuple[Any, ...], config: dict[str, Any]) -> tuple[float, float]:
        from sklearn.metrics import log_loss
        from sklearn.neural_network import MLPClassifier

        started = time.process_time()  # CPU seconds: the cores are shared, and wall time would count the others' work
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = MLPClassifier(
                hidden_layer_sizes=(int(config["width"]),), learning_rate_init=float(config["lr"]),
                alpha=float(config["alpha"]), batch_size=int(config["batch_size"]), random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(self.x_train, self.y_train, classes=np.arange(10))
            proba = model.predict_proba(self.x_val)
        if np.all(np.isfinite(proba)):
            loss = min(float(log_loss(self.y_val, proba, labels=np.arange(10))), LOSS_CAP)
        else:
            loss = LOSS_CAP
        return loss, time.process_time() - started


# -- the methods: one small interface over Dial's and Optuna's ways of stopping ---------------

class Method(Protocol):
    def start(self, n: int) -> list[tuple[Any, dict[str, Any], int]]:
        """Up to `n` new trials: (handle, configuration, epochs to train)."""

    def report(self, handle: Any, epoch: int, loss: float) -> bool:
        """Record one epoch's loss; True when the trial is to stop here."""

    def finish(self, handle: Any, stopped: bool) -> None:
        """The trial ended: trained all its epochs, or stopped."""


class DialMethod:
    """Dial's strategy and stop rule, fed the experiment's trials as the engine feeds them."""

    def __init__(self, seed: int, *, strategy: str = "random", strategy_settings: dict[str, Any] | None = None,
                 rule: str | None = None, rule_settings: dict[str, Any] | None = None):
        self.seed = seed
        self.strategy, self.strategy_settings = strategy, strategy_settings or {}
        parameters = PARAMETERS + ([EPOCHS] if strategy == "hyperband" else [])
        self.space = SearchSpace.from_parameters([ParameterSpec.model_validate(p) for p in parameters])
        self.objective = ObjectiveSpec.model_validate({"type": "minimize", "metricName": METRIC})
        self.rule = make_rule(rule, rule_settings or {}, self.objective) if rule else None
        self.trials: list[Trial] = []

    def start(self, n: int) -> list[tuple[Any, dict[str, Any], int]]:
        strategy = make_strategy(self.strategy, self.strategy_settings, self.space, seed=self.seed)
        out = []
        for assignment in strategy.propose(self._history(), n):
            index = len(self.trials)
            trial = Trial(metadata=ObjectMeta(name=f"bench-{index:04d}"),
                          spec=TrialSpec(experiment="bench", index=index, parameter_assignments=assignment))
            trial.status.phase = TrialPhase.running
            self.trials.append(trial)
            out.append((trial, dict(assignment), int(assignment.get("epochs", MAX_EPOCHS))))
        return out

    def report(self, handle: Any, epoch: int, loss: float) -> bool:
        trial: Trial = handle
        trial.status.record(METRIC, float(epoch), loss)
        trial.status.update_objective(self.objective)
        if self.rule is None or epoch >= self._final_step():
            return False  # the engine does not stop a trial that has reached the final step
        others = [t for t in self.trials if t is not trial]
        return self.rule.check(trial, others) is not None

    def finish(self, handle: Any, stopped: bool) -> None:
        handle.status.phase = TrialPhase.early_stopped if stopped else TrialPhase.succeeded

    def _final_step(self) -> float:
        steps = [t.status.observation(METRIC).curve[-1].step for t in self.trials  # type: ignore[union-attr]
                 if t.phase is TrialPhase.succeeded]
        return max(steps, default=math.inf)

    def _history(self) -> list[TrialRecord]:
        """The trials as the engine's `history` gives them to a strategy (a stopped trial's loss is its best so far)."""
        def loss(t: Trial) -> float | None:
            return self.objective.loss(t.status.objective) if t.phase.is_terminal and t.status.objective is not None else None
        return [TrialRecord(t.spec.index, dict(t.spec.parameter_assignments), loss(t), t.phase.is_terminal,
                            incomplete=t.phase is TrialPhase.early_stopped) for t in self.trials]


class OptunaMethod:
    """An Optuna study with a random sampler and a pruner, through ask / report / should_prune / tell."""

    def __init__(self, seed: int, pruner: Any):
        import optuna
        import optuna.distributions as d

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner)
        self.distributions = {
            "lr": d.FloatDistribution(1e-4, 1.0, log=True), "alpha": d.FloatDistribution(1e-6, 1e-1, log=True),
            "width": d.IntDistribution(8, 256, log=True), "batch_size": d.IntDistribution(16, 512, log=True)}
        self.best: dict[int, float] = {}  # trial number -> best loss reported

    def start(self, n: int) -> list[tuple[Any, dict[str, Any], int]]:
        out = []
        for _ in range(n):
            trial = self.study.ask(self.distributions)
            out.append((trial, dict(trial.params), MAX_EPOCHS))
        return out

    def report(self, handle: Any, epoch: int, loss: float) -> bool:
        handle.report(loss, epoch)
        self.best[handle.number] = min(self.best.get(handle.number, math.inf), loss)
        return epoch < MAX_EPOCHS and handle.should_prune()

    def finish(self, handle: Any, stopped: bool) -> None:
        import optuna

        if stopped:
            self.study.tell(handle, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(handle, self.best[handle.number])


def _optuna_pruner(kind: str) -> Callable[[], Any]:
    def make() -> Any:
        import optuna

        if kind == "sha":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=3)
    return make


METHODS: dict[str, Callable[[int], Method]] = {
    "no stopping": lambda seed: DialMethod(seed),
    "dial asha": lambda seed: DialMethod(seed, rule="asha", rule_settings={
        "minResource": 1, "reductionFactor": 3, "maxResource": MAX_EPOCHS}),
    "dial asha, first rung at 3": lambda seed: DialMethod(seed, rule="asha", rule_settings={
        "minResource": 3, "reductionFactor": 3, "maxResource": MAX_EPOCHS}),
    "dial hyperband": lambda seed: DialMethod(seed, strategy="hyperband", strategy_settings={
        "resourceName": "epochs", "maxResource": MAX_EPOCHS, "minResource": 1, "reductionFactor": 3}),
    "dial medianstop": lambda seed: DialMethod(seed, rule="medianstop"),
    "optuna successive halving": lambda seed: OptunaMethod(seed, _optuna_pruner("sha")()),
    "optuna hyperband": lambda seed: OptunaMethod(seed, _optuna_pruner("hyperband")()),
}


# -- the run loop ------------------------------------------------------------------------------

@dataclass
class Run:
    """One method's run: after each epoch trained, the cost so far and the best loss so far."""

    epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    n_trials: int = 0
    n_stopped: int = 0

    def best_at(self, cost: float, *, unit: str) -> float:
        """Best loss once `cost` epochs (or seconds) were spent; inf before the first epoch."""
        spent = self.epochs if unit == "epochs" else self.seconds
        i = int(np.searchsorted(spent, cost, side="right")) - 1
        return self.best[i] if i >= 0 else math.inf

    def cost_to_reach(self, target: float, *, unit: str) -> float:
        """Epochs (or seconds) spent when the best loss first reached `target`; inf if never."""
        spent = self.epochs if unit == "epochs" else self.seconds
        for cost, best in zip(spent, self.best):
            if best <= target:
                return cost
        return math.inf


def run(method: Method, curves: Curves, budget_epochs: int, workers: int) -> Run:
    """Train trials `workers` at a time, one epoch per turn, until `budget_epochs` epochs were trained."""
    out = Run()
    running: list[list[Any]] = []  # [handle, config, epochs to train, epochs trained]
    spent_epochs, spent_seconds, best = 0, 0.0, math.inf
    while spent_epochs < budget_epochs:
        if len(running) < workers:
            new = method.start(workers - len(running))
            running += [[h, c, e, 0] for h, c, e in new]
            out.n_trials += len(new)
        if not running:
            raise RuntimeError("the method proposed nothing with no trial running")
        for slot in list(running):
            handle, config, n_epochs, done = slot
            loss, seconds = curves.epoch(config, done + 1)
            slot[3] = done = done + 1
            spent_epochs += 1
            spent_seconds += seconds
            best = min(best, loss)
            out.epochs.append(spent_epochs)
            out.seconds.append(spent_seconds)
            out.best.append(best)
            stop = method.report(handle, done, loss)
            if stop or done >= n_epochs or loss >= LOSS_CAP:  # a diverged network is stopped, as non-finite
                method.finish(handle, stopped=done < n_epochs)
                out.n_stopped += stop
                running.remove(slot)
            if spent_epochs >= budget_epochs:
                break
    return out


# -- tables ------------------------------------------------------------------------------------

def tables(runs: dict[tuple[str, int], Run], methods: list[str], seeds: list[int], budget: int) -> str:
    fractions = (1 / 9, 1 / 6, 1 / 3, 1 / 2, 1.0)
    lines = []
    base = "no stopping"
    for unit in ("epochs", "seconds"):
        # The seconds axis: each seed's no-stopping run's total seconds is that seed's full budget.
        full = {s: (budget if unit == "epochs" else runs[base, s].seconds[-1]) for s in seeds}
        lines += [f"\n## Best validation log loss after a share of the no-stopping run's {unit}: "
                  f"median (min-max) over {len(seeds)} seeds\n",
                  "| method | " + " | ".join(f"{f:.2g} of the budget" for f in fractions) + " |",
                  "|---|" + "---|" * len(fractions)]
        for m in methods:
            cells = []
            for f in fractions:
                values = [runs[m, s].best_at(f * full[s], unit=unit) for s in seeds]
                cells.append(f"{np.median(values):.4f} ({min(values):.3f}-{max(values):.3f})")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [f"\n## Cost to reach the no-stopping run's final best, as a share of its cost (same seed): "
              f"median (min-max) over {len(seeds)} seeds; inf: not reached within the budget\n",
              "| method | share of epochs | share of seconds | runs that reached it | "
              "share of seconds to reach the median no-stopping best | trials started | trials stopped early |",
              "|---|---|---|---|---|---|---|"]
    median_best = float(np.median([runs[base, s].best[-1] for s in seeds]))
    for m in methods:
        by_epochs, by_seconds, to_median = [], [], []
        for s in seeds:
            target = runs[base, s].best[-1]
            by_epochs.append(runs[m, s].cost_to_reach(target, unit="epochs") / budget)
            by_seconds.append(runs[m, s].cost_to_reach(target, unit="seconds") / runs[base, s].seconds[-1])
            to_median.append(runs[m, s].cost_to_reach(median_best, unit="seconds") / runs[base, s].seconds[-1])
        reached = sum(math.isfinite(v) for v in by_epochs)
        lines.append(f"| {m} | {_share(by_epochs)} | {_share(by_seconds)} | {reached} of {len(seeds)} | {_share(to_median)} | "
                     f"{np.median([runs[m, s].n_trials for s in seeds]):.0f} | "
                     f"{np.median([runs[m, s].n_stopped for s in seeds]):.0f} |")
    return "\n".join(lines)


def _share(values: list[float]) -> str:
    return f"{np.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30, help="budget in full trials (x 27 epochs)")
    parser.add_argument("--workers", type=int, default=4, help="trials running at a time")
    parser.add_argument("--methods", nargs="*", help=f"of {', '.join(METHODS)}; default: all but the last asha")
    parser.add_argument("--quick", action="store_true", help="2 seeds, the budget of 6 full trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.budget = 2, 6
    methods = args.methods or [m for m in METHODS if m != "dial asha, first rung at 3"]
    if "no stopping" not in methods:
        methods.insert(0, "no stopping")
    seeds = list(range(args.seeds))
    budget = args.budget * MAX_EPOCHS

    started = time.perf_counter()
    curves = Curves()
    runs = {}
    for s in seeds:
        for m in methods:
            runs[m, s] = run(METHODS[m](s), curves, budget, args.workers)
            print(f"seed {s} {m}: best {runs[m, s].best[-1]:.4f}, {runs[m, s].n_trials} trials, "
                  f"{runs[m, s].seconds[-1]:.1f} s, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr, flush=True)
    print(header(args, budget, time.perf_counter() - started))
    print(tables(runs, methods, seeds, budget))


def header(args: argparse.Namespace, budget: int, wall: float) -> str:
    versions = package_versions(("numpy", "scikit-learn", "optuna"))
    return (f"# Early-stopping benchmark\n\n"
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time {wall / 60:.1f} min\n"
            f"- machine: {machine('one process')}\n"
            f"- task: MLPClassifier on digits, validation log loss after each of up to {MAX_EPOCHS} epochs; "
            f"budget {budget} epochs ({args.budget} full trials) per run, {args.workers} trials at a time, "
            f"{args.seeds} seeds; random configurations in every method\n"
            f"- command: `{' '.join(['benchmarks/early_stopping.py', *sys.argv[1:]])}`\n"
            f"- {versions}\n")


if __name__ == "__main__":
    main()
