"""Run Dial's strategies and the peers on the same problems and print regret, ranks and latency.

    .venv/bin/python benchmarks/strategies.py                # one at a time and 4 at a time
    .venv/bin/python benchmarks/strategies.py --batches 1    # one at a time only
    .venv/bin/python benchmarks/strategies.py --quick        # a smoke run
    .venv/bin/python benchmarks/strategies.py --no-run --merge a.json b.json   # tables of earlier runs

Needs the `bench` extra (optuna, hyperopt, coco-experiment, torch for Optuna's GPSampler, smac,
hebo). Every optimiser runs in each mode of `--batches`: 1 is one trial at a time, k asks for k
points before telling any of them (see peers.py). Single-threaded BLAS, the work spread over
`--processes`.
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
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).parent))
from peers import LATENCY_PROBES, RUNNERS, hyperopt_run_with_gaps  # noqa: E402
from problems import Problem, all_problems, hartmann6, real  # noqa: E402
from run_info import machine, package_versions  # noqa: E402

LATENCY_SIZES = (100, 500, 1000)
LATENCY_STEPS = 12  # consecutive proposals per size: the first meets empty caches, the rest are a run's steady state
PROBLEMS: list[Problem] = []


Task = tuple[int, str, int, int, int]  # problem index, optimiser, seed, evaluations, batch
Results = dict[tuple[int, str, int, int], list[float]]  # (problem index, optimiser, seed, batch) -> losses


def _run_task(task: Task) -> tuple[int, str, int, int, list[float], float]:
    problem_index, optimiser, seed, n_evals, batch = task
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    losses = RUNNERS[optimiser](PROBLEMS[problem_index], seed, n_evals, batch)
    return problem_index, optimiser, seed, batch, losses[:n_evals], time.perf_counter() - started


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


def _merge(raw: dict[str, Any], results: Results, seconds: dict[tuple[str, int], float], optimisers: list[str],
           seeds: list[int], args: argparse.Namespace) -> None:
    """Add an earlier run's results for this run's problems, seeds and modes; its optimisers join the tables."""
    index = {problem.name: p for p, problem in enumerate(PROBLEMS)}
    for row in raw["results"]:
        p, o, s, b = index.get(row["problem"]), row["optimiser"], row["seed"], row["batch"]
        if p is None or s not in seeds or b not in args.batches or (p, o, s, b) in results:
            continue
        if len(row["losses"]) != args.evals:
            raise SystemExit(f"merged run of {o} on {row['problem']} has {len(row['losses'])} evaluations, not {args.evals}")
        if o not in optimisers:
            optimisers.append(o)
            seconds.update({(o, batch): 0.0 for batch in args.batches})
        results[p, o, s, b] = row["losses"]
        seconds[o, b] += row.get("seconds") or 0.0


def f_stars(results: Results) -> list[float]:
    """Each problem's f*: the known optimum, or the best loss any run of any optimiser and mode found."""
    stars = []
    for p, problem in enumerate(PROBLEMS):
        found = min((min(v) for (q, *_), v in results.items() if q == p), default=np.inf)
        stars.append(min(problem.f_star if problem.f_star is not None else np.inf, found))
    return stars


def final_regrets(results: Results, stars: list[float], optimisers: list[str], seeds: list[int],
                  batch: int) -> dict[tuple[int, str], np.ndarray]:
    """Normalised simple regret of each run's best loss (0 = f*, 1 = median of random points), by seed."""
    out = {}
    for p, problem in enumerate(PROBLEMS):
        scale = problem.reference - stars[p]
        for o in optimisers:
            out[p, o] = np.array([max(min(results[p, o, s, batch]) - stars[p], 0.0) / scale for s in seeds])
    return out


def mode_table(results: Results, stars: list[float], optimisers: list[str], seeds: list[int], batch: int,
               n_evals: int) -> tuple[str, dict[str, float]]:
    """Per problem, each optimiser's median and interquartile range of final regret; then the mean rank.

    Ranks are over the optimisers of the table, per problem and seed, ties sharing the mean rank.
    """
    regrets = final_regrets(results, stars, optimisers, seeds, batch)
    ranks: dict[str, list[float]] = {o: [] for o in optimisers}
    for p in range(len(PROBLEMS)):
        for i in range(len(seeds)):
            for o, r in zip(optimisers, rankdata([regrets[p, o][i] for o in optimisers])):
                ranks[o].append(float(r))
    mean_rank = {o: float(np.mean(ranks[o])) for o in optimisers}
    order = sorted(optimisers, key=lambda o: mean_rank[o])
    lines = ["| problem | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for p, problem in enumerate(PROBLEMS):
        random_median = float(np.median(regrets[p, "random"]))
        cells = []
        for o in order:
            q25, q50, q75 = np.percentile(regrets[p, o], [25, 50, 75])
            # Bold: a median worse than random search's on this problem.
            mark = "**" if q50 > random_median else ""
            cells.append(f"{mark}{q50:.3g}{mark} ({q25:.2g}-{q75:.2g})")
        lines.append(f"| {problem.name} | " + " | ".join(cells) + " |")
    lines.append("| **mean rank** | " + " | ".join(f"**{mean_rank[o]:.2f}**" for o in order) + " |")
    worse = {o: sum(float(np.median(regrets[p, o])) > float(np.median(regrets[p, "random"]))
                    for p in range(len(PROBLEMS))) for o in order}
    lines.append("| medians worse than random | " + " | ".join(f"{worse[o]} of {len(PROBLEMS)}" for o in order) + " |")
    title = (f"## {'One at a time' if batch == 1 else f'{batch} at a time (ask {batch}, tell {batch})'}: "
             f"normalised regret at {n_evals} evaluations, median (25th-75th percentile) over {len(seeds)} seeds\n\n"
             "0 = f*, 1 = median loss of random points; bold: median worse than random search's; "
             f"mean rank over {len(PROBLEMS)} problems x {len(seeds)} seeds among these {len(order)} optimisers.\n")
    return title + "\n" + "\n".join(lines), mean_rank


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="proposals per ask (modes to run)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12 evaluations, latency at 100 only")
    parser.add_argument("--only", nargs="*", help="optimisers to run (default: all)")
    parser.add_argument("--problems", nargs="*", help="problems to run, by name (default: all)")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-run", action="store_true", help="run nothing: tables of the --merge files alone")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="raw results of earlier runs (--json) with the same problems, seeds, budget and modes, "
                             "tabled together with this run's: slow peers need not run again")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.evals = 2, 12
    sizes = (100,) if args.quick else LATENCY_SIZES
    optimisers = [] if args.no_run else args.only or list(RUNNERS)
    if "random" not in optimisers and not args.no_run:
        optimisers.append("random")
    seeds = list(range(args.seeds))

    started = time.perf_counter()
    PROBLEMS.extend(p for p in all_problems() if not args.problems or p.name in args.problems)
    tasks = [(p, o, s, args.evals, b) for p in range(len(PROBLEMS)) for o in optimisers for s in seeds
             for b in args.batches]
    # The slow ones first, so the processes finish together.
    slow = ("hebo", "skopt gp_minimize", "smac blackbox", "optuna gp", "smac hpo", "dial gp")
    tasks.sort(key=lambda t: (slow.index(t[1]) if t[1] in slow else len(slow), "sklearn" not in PROBLEMS[t[0]].name))
    latency_tasks = [(o, n, LATENCY_STEPS, 120.0) for n in sizes for o in [*LATENCY_PROBES, "hyperopt tpe"]
                     if o in optimisers and not args.no_latency]
    results: Results = {}
    seconds: dict[tuple[str, int], float] = {(o, b): 0.0 for o in optimisers for b in args.batches}
    latencies: dict[tuple[str, int], list[float]] = {}
    spent_by_run: dict[tuple[int, str, int, int], float] = {}
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        for done, (p, o, s, b, losses, spent) in enumerate(pool.imap_unordered(_run_task, tasks), start=1):
            results[p, o, s, b] = losses
            spent_by_run[p, o, s, b] = spent
            seconds[o, b] += spent
            if done % 25 == 0 or done == len(tasks):
                print(f"{done}/{len(tasks)} runs, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr, flush=True)
        if latency_tasks:
            for o, n, samples in pool.imap_unordered(_latency_task, latency_tasks):
                latencies[o, n] = samples
    wall = time.perf_counter() - started
    for path in args.merge:
        _merge(json.loads(path.read_text()), results, seconds, optimisers, seeds, args)
    missing = [(PROBLEMS[p].name, o, s, b) for p in range(len(PROBLEMS)) for o in optimisers for s in seeds
               for b in args.batches if (p, o, s, b) not in results]
    if missing:
        raise SystemExit(f"merged results lack {len(missing)} runs, e.g. {missing[0]}")

    print(header(args, wall))
    stars = f_stars(results)
    print("| problem | parameters | f* | reference (median of random points) |\n|---|---|---|---|")
    for p, problem in enumerate(PROBLEMS):
        print(f"| {problem.name} | {problem.describe()} | {stars[p]:.6g} | {problem.reference:.6g} |")
    ranks = {}
    for b in args.batches:
        table, ranks[b] = mode_table(results, stars, optimisers, seeds, b, args.evals)
        print("\n" + table)
    print("\n## Mean rank in each mode, and seconds spent in optimiser + objective over all its runs\n")
    print("| optimiser | " + " | ".join(f"rank, {b} at a time | seconds, {b} at a time" for b in args.batches) + " |")
    print("|---|" + "---|---|" * len(args.batches))
    for o in sorted(optimisers, key=lambda o: np.mean([ranks[b][o] for b in args.batches])):
        print(f"| {o} | " + " | ".join(f"{ranks[b][o]:.2f} | {seconds[o, b]:.0f}" for b in args.batches) + " |")
    if latencies:
        print(latency_tables(latencies, [o for o in [*LATENCY_PROBES, "hyperopt tpe"] if o in optimisers], sizes))
    if args.json:
        args.json.write_text(json.dumps({
            "results": [{"problem": PROBLEMS[p].name, "optimiser": o, "seed": s, "batch": b, "losses": v,
                         "seconds": spent_by_run.get((p, o, s, b))} for (p, o, s, b), v in results.items()],
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
    packages = ["numpy", "scipy", "scikit-learn", "scikit-optimize", "optuna", "torch", "hyperopt", "smac", "hebo",
                "cmaes", "coco-experiment"]
    versions = package_versions(packages)
    return (f"# Strategy benchmark\n\n"
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time {wall / 60:.1f} min\n"
            f"- machine: {machine(f'{args.processes} worker processes')}\n"
            f"- {args.evals} evaluations x {args.seeds} seeds per problem, in each mode of {args.batches} proposals per ask\n"
            f"- command: `{' '.join(['benchmarks/strategies.py', *sys.argv[1:]])}`\n"
            f"- {versions}\n")


if __name__ == "__main__":
    main()
