"""Katib's `pytorch-mnist` trial, on scikit-learn's bundled digits: the same flags and the same log lines, so
Katib's example Experiments run unchanged but for the image and the command.

A small neural network (scikit-learn's MLPClassifier, plain SGD with `--lr` and `--momentum`) trains for
`--epochs` passes in batches of `--batch-size`. Like Katib's mnist.py it logs
`Train Epoch: N [seen/total (p%)]\tloss=V` every `--log-interval` batches and, after each epoch,
`{metricName: accuracy, metricValue: A};{metricName: loss, metricValue: L}` on the held-out quarter;
to `--log-path` when given, and with `--logger hypertune` as JSON lines there instead (what Katib's
`hypertune` library writes: `{"loss": "0.31", "global_step": "1", ...}`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


MAX_MOMENTUM = 1.0  # the most scikit-learn's MLPClassifier takes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000, help="accepted for Katib's flags; unused")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--no-cuda", action="store_true", default=False, help="accepted for Katib's flags")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--log-path", type=str, default="")
    parser.add_argument("--logger", type=str, choices=["standard", "hypertune"], default="standard")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    to_file = args.log_path and args.logger == "standard"
    logging.basicConfig(format="%(asctime)s %(levelname)-8s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ",
                        level=logging.INFO, **({"filename": args.log_path} if to_file else {}))
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    momentum = args.momentum
    if not 0.0 <= momentum <= MAX_MOMENTUM:
        # torch's SGD takes any momentum >= 0 (Katib's optuna-distribution example searches up to 3, where
        # training diverges); scikit-learn's refuses one outside [0, 1], so train with the nearest it takes.
        momentum = min(max(momentum, 0.0), MAX_MOMENTUM)
        logging.warning("--momentum %g is outside [0, %g]: training with %g", args.momentum, MAX_MOMENTUM, momentum)
    model = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", learning_rate_init=args.lr, momentum=momentum,
                          batch_size=args.batch_size, random_state=args.seed)
    classes = np.unique(y)
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(X_train))
        for batch, start in enumerate(range(0, len(order), args.batch_size)):
            rows = order[start:start + args.batch_size]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)  # the last batch of an epoch is smaller
                model.partial_fit(X_train[rows], y_train[rows], classes=classes)
            if batch % args.log_interval == 0:
                logging.info("Train Epoch: %d [%d/%d (%.0f%%)]\tloss=%.4f", epoch, start, len(order),
                             100.0 * start / len(order), model.loss_)
        accuracy = float(model.score(X_test, y_test))
        loss = float(log_loss(y_test, model.predict_proba(X_test), labels=classes))
        logging.info("{metricName: accuracy, metricValue: %.4f};{metricName: loss, metricValue: %.4f}\n", accuracy, loss)
        if args.logger == "hypertune" and args.log_path:
            with open(args.log_path, "a") as out:
                for tag, value in (("loss", loss), ("accuracy", accuracy)):
                    out.write(json.dumps({tag: str(value), "global_step": str(epoch), "timestamp": time.time(),
                                          "trial": "0"}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
