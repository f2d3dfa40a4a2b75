"""The noisy "peaks" function of the classic Bayesian-optimisation demo, as a trial program.

Minimum about -6.551 at (0.228, -1.626) on [-3, 3]^2. Prints `objective=<value>`.
"""

from __future__ import annotations

import argparse

import numpy as np


def peaks(x: float, y: float) -> float:
    return float(
        3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
        - np.exp(-((x + 1) ** 2) - y**2) / 3
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, required=True)
    parser.add_argument("--noise", type=float, default=0.01, help="standard deviation of the observation noise")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    value = peaks(args.x, args.y) + args.noise * rng.standard_normal()
    print(f"x={args.x:.6g} y={args.y:.6g}")
    print(f"objective={value:.8g}", flush=True)


if __name__ == "__main__":
    main()
