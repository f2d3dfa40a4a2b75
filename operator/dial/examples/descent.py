"""Gradient descent on a least-squares problem: a trial whose learning curve depends on its learning rate.

Too small a rate crawls (a bad curve for early stopping to cut), a good one reaches the noise
floor in a few epochs, too large a rate diverges (the loss overflows to inf). Prints
`epoch=N loss=V` after every epoch, and with `--metrics-file` also appends `{"epoch": N, "loss": V}`
JSON lines there (for a File metrics collector).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def least_squares(n_samples: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_samples, n_features))
    weights = rng.standard_normal(n_features)
    targets = features @ weights + 0.1 * rng.standard_normal(n_samples)
    return features, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, required=True, help="learning rate")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--features", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data set (the same for every trial)")
    parser.add_argument("--metrics-file", type=Path, default=None, help="also append JSON lines of metrics here")
    args = parser.parse_args(argv)
    if args.lr <= 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    features, targets = least_squares(args.samples, args.features, args.seed)
    weights = np.zeros(args.features)
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, args.epochs + 1):
            for _ in range(args.steps_per_epoch):
                residual = features @ weights - targets
                weights -= args.lr * (features.T @ residual) / args.samples
            loss = float(np.mean((features @ weights - targets) ** 2))
            print(f"epoch={epoch} loss={loss:.6g}", flush=True)
            if args.metrics_file is not None:
                with args.metrics_file.open("a") as metrics:
                    metrics.write(json.dumps({"epoch": epoch, "loss": loss}) + "\n")
            if not math.isfinite(loss):
                print(f"diverged at epoch {epoch} with learning rate {args.lr:g}", flush=True)
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
