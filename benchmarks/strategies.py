"""Run Dial's strategies and the peers on the same problems and print regret, ranks and latency.

    .venv/bin/python benchmarks/strategies.py            # the full run (about 20 minutes on 2 cores)
    .venv/bin/python benchmarks/strategies.py --quick    # a smoke run

Needs the `bench` extra (optuna, hyperopt, coco-experiment). Optimisers run one evaluation at a
time (no parallel trials), single-threaded BLAS, the work spread over `--processes`.
"""

from __future__ import annotations

import os

# One BLAS thread per process: the processes already use the cores, and threaded BLAS on small
# matrices mostly adds synchronisation. Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import multiprocessing
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).parent))
from peers import LATENCY_PROBES, RUNNERS, hyperopt_run_with_gaps  # noqa: E402
from problems import Problem, all_problems, hartmann6, real  # noqa: E402

CHECKPOINTS = (10, 25, 50, 100, 200, 500)
LATENCY_SIZES = (100, 500, 1000)
LATENCY_STEPS = 12  # consecutive proposals per size: the first meets empty caches, the rest are a run's steady state
PROBLEMS: list[Problem] = []


def _run_task(task: tuple[int, str, int, int]) -> tuple[int, str, int, list[float], float]:
    problem_index, optimiser, seed, n_evals = task
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    losses = RUNNERS[optimiser](PROBLEMS[problem_index], seed, n_evals)
    return problem_index, optimiser, seed, losses[:n_evals], time.perf_counter() - started


def _latency_space_and_history(n: int) -> tuple[Any, list[tuple[dict[str, Any], float]]]:
    problem = Problem("hartmann6", [real(f"x{i}", 0, 1) for i in range(6)], hartmann6, None)
    space = problem.space
    rng = np.random.default_rng(n)
    history = []
    for _ in range(n):
        assignment = space.sample(rng)
        history.append((assignment, hartmann6(assignment)))
    return space, history


def _latency_task(task: tuple[str, int, int, float]) -> tuple[str, int, list[float]]:
    """Seconds of `steps` consecutive proposals once the history holds `n` random points."""
    optimiser, n, steps, cap_s = task
    warnings.filterwarnings("ignore")
    if optimiser == "hyperopt tpe":
        space, _ = _latency_space_and_history(1)
        _, gaps = hyperopt_run_with_gaps(space, hartmann6, 0, n + steps + 1)
        return optimiser, n, gaps[n - 1:n - 1 + steps]
    space, history = _latency_space_and_history(n)
    return optimiser, n, LATENCY_PROBES[optimiser](space, history, hartmann6, steps, cap_s)


def regret_table(results: dict[tuple[int, str, int], list[float]], optimisers: list[str], seeds: list[int],
                 n_evals: int) -> tuple[str, dict[str, list[float]], dict[str, float]]:
    checkpoints = [c for c in CHECKPOINTS if c <= n_evals]
    lines = ["| problem | f* | optimiser | " + " | ".join(f"regret@{c}" for c in checkpoints) + " |",
             "|---|---|---|" + "---|" * len(checkpoints)]
    ranks: dict[str, list[float]] = {o: [] for o in optimisers}
    worse_than_random: dict[str, float] = {o: 0 for o in optimisers}
    for p, problem in enumerate(PROBLEMS):
        runs = {(o, s): np.minimum.accumulate(results[p, o, s]) for o in optimisers for s in seeds}
        f_star = min([problem.f_star if problem.f_star is not None else np.inf] + [r[-1] for r in runs.values()])
        scale = problem.reference - f_star
        for o in optimisers:
            cells = []
            for c in checkpoints:
                regret = np.mean([max(runs[o, s][c - 1] - f_star, 0.0) / scale for s in seeds])
                cells.append(f"{regret:.3g}")
            lines.append(f"| {problem.name} | {f_star:.6g} | {o} | " + " | ".join(cells) + " |")
        for s in seeds:
            finals = [runs[o, s][-1] for o in optimisers]
            for o, r in zip(optimisers, rankdata(finals)):
                ranks[o].append(float(r))
        random_mean = np.mean([runs["random", s][-1] for s in seeds])
        for o in optimisers:
            worse_than_random[o] += float(np.mean([runs[o, s][-1] for s in seeds]) > random_mean)
    return "\n".join(lines), ranks, worse_than_random


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12 evaluations, latency at 100 only")
    parser.add_argument("--only", nargs="*", help="optimisers to run (default: all)")
    parser.add_argument("--problems", nargs="*", help="problems to run, by name (default: all)")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.evals = 2, 12
    sizes = (100,) if args.quick else LATENCY_SIZES
    optimisers = args.only or list(RUNNERS)
    if "random" not in optimisers:
        optimisers.append("random")
    seeds = list(range(args.seeds))

    started = time.perf_counter()
    PROBLEMS.extend(p for p in all_problems() if not args.problems or p.name in args.problems)
    tasks = [(p, o, s, args.evals) for p in range(len(PROBLEMS)) for o in optimisers for s in seeds]
    # The slow ones first, so the two processes finish together.
    tasks.sort(key=lambda t: (t[1] != "skopt gp_minimize", t[1] != "dial gp", "sklearn" not in PROBLEMS[t[0]].name))
    latency_tasks = [(o, n, LATENCY_STEPS, 120.0) for n in sizes for o in [*LATENCY_PROBES, "hyperopt tpe"] if o in optimisers]
    results: dict[tuple[int, str, int], list[float]] = {}
    seconds: dict[str, float] = {o: 0.0 for o in optimisers}
    latencies: dict[tuple[str, int], list[float]] = {}
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        for done, (p, o, s, losses, spent) in enumerate(pool.imap_unordered(_run_task, tasks), start=1):
            results[p, o, s] = losses
            seconds[o] += spent
            if done % 25 == 0 or done == len(tasks):
                print(f"{done}/{len(tasks)} runs, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr, flush=True)
        if not args.no_latency:
            for o, n, samples in pool.imap_unordered(_latency_task, latency_tasks):
                latencies[o, n] = samples
    wall = time.perf_counter() - started

    print(header(args, wall))
    table, ranks, worse = regret_table(results, optimisers, seeds, args.evals)
    print("## Normalised simple regret (mean over seeds; 0 = f*, 1 = median of random points)\n")
    print(table)
    print(f"\n## Mean rank at {args.evals} evaluations (1 = best; over {len(PROBLEMS)} problems x {len(seeds)} seeds)\n")
    print("| optimiser | mean rank | problems worse than random (mean best loss) | seconds in optimiser+objective |")
    print("|---|---|---|---|")
    for o in sorted(optimisers, key=lambda o: np.mean(ranks[o])):
        print(f"| {o} | {np.mean(ranks[o]):.2f} | {worse[o]:.0f} of {len(PROBLEMS)} | {seconds[o]:.0f} |")
    if latencies:
        print(latency_tables(latencies, [o for o in [*LATENCY_PROBES, "hyperopt tpe"] if o in optimisers], sizes))
    if args.json:
        args.json.write_text(json.dumps({
            "results": [{"problem": PROBLEMS[p].name, "optimiser": o, "seed": s, "losses": v}
                        for (p, o, s), v in results.items()],
            "latency": [{"optimiser": o, "observations": n, "seconds": v} for (o, n), v in latencies.items()],
        }))


def latency_tables(latencies: dict[tuple[str, int], list[float]], optimisers: list[str], sizes: tuple[int, ...]) -> str:
    """Steady-state p50 / p95 (every proposal after the first), then the first proposal alone."""
    lines = ["\n## Seconds per proposal in a run (Hartmann-6; proposals 2.. of consecutive ones from a history of "
             "random points; p50 / p95)\n",
             "| optimiser | " + " | ".join(f"{n} obs" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for o in optimisers:
        cells = []
        for n in sizes:
            steady = latencies.get((o, n), [])[1:]
            cells.append(f"{np.percentile(steady, 50):.3g} / {np.percentile(steady, 95):.3g} (n={len(steady)})"
                         if steady else "-")
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
    lines += ["\n## Seconds of the first proposal from that history (nothing kept from earlier proposals)\n",
              "| optimiser | " + " | ".join(f"{n} obs" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for o in optimisers:
        cells = [f"{latencies[o, n][0]:.3g}" if latencies.get((o, n)) else "-" for n in sizes]
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(args: argparse.Namespace, wall: float) -> str:
    packages = ["numpy", "scipy", "scikit-learn", "scikit-optimize", "optuna", "hyperopt", "cmaes", "coco-experiment"]
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    load = os.getloadavg()
    return (f"# Strategy benchmark\n\n"
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time {wall / 60:.1f} min\n"
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {args.processes} worker processes, "
            f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; Python {platform.python_version()}\n"
            f"- {args.evals} evaluations x {args.seeds} seeds per problem, sequential (one trial at a time)\n"
            f"- {versions}\n")


if __name__ == "__main__":
    main()
