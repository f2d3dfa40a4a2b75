"""A population-based-training segment: a linear classifier on scikit-learn's digits, resumed from a checkpoint.

Loads the model and epoch counter from `--parent-checkpoint-dir` when given (empty: start fresh),
applies this segment's learning rate and regularisation, trains `--epochs` more epochs with
`partial_fit` (plain SGD at a constant rate), prints `epoch=<total so far> accuracy=<validation>
loss=<1 - accuracy>` after each, and saves the model and counter to `--checkpoint-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

MODEL_FILE = "model.pkl"
STATE_FILE = "state.json"


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    features, labels = load_digits(return_X_y=True)
    return train_test_split(features / 16.0, labels, test_size=0.3, random_state=0, stratify=labels)


def load(parent: Path | None) -> tuple[SGDClassifier | None, dict]:
    """The parent's model and state, or nothing for a member's first segment."""
    if parent is None:
        return None, {"epoch": 0, "lineage": []}
    with (parent / MODEL_FILE).open("rb") as f:
        model = pickle.load(f)
    return model, json.loads((parent / STATE_FILE).read_text())


def save(directory: Path, model: SGDClassifier, state: dict) -> None:
    """Write-then-rename, so a segment killed mid-save never leaves a torn checkpoint for its children."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in ((MODEL_FILE, pickle.dumps(model)), (STATE_FILE, json.dumps(state).encode())):
        partial = directory / f".{name}.partial"
        partial.write_bytes(data)
        os.replace(partial, directory / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, required=True, help="SGD learning rate (eta0)")
    parser.add_argument("--alpha", type=float, required=True, help="L2 regularisation strength")
    parser.add_argument("--epochs", type=int, default=2, help="epochs in this segment")
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--parent-checkpoint-dir", default="", help="checkpoint to resume; empty to start fresh")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x_train, x_valid, y_train, y_valid = digits()
    parent = Path(args.parent_checkpoint_dir) if args.parent_checkpoint_dir else None
    model, state = load(parent)
    if model is None:
        model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.lr, alpha=args.alpha,
                              random_state=args.seed)
    else:
        print(f"resuming {parent} after {state['epoch']} epochs", flush=True)
    # The exploit/explore step hands a copied model new hyperparameters; training goes on with them.
    model.set_params(eta0=args.lr, alpha=args.alpha)
    classes = np.unique(y_train)
    shuffle = np.random.default_rng([args.seed, state["epoch"]])
    for _ in range(args.epochs):
        order = shuffle.permutation(len(y_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        state["epoch"] += 1
        accuracy = float(model.score(x_valid, y_valid))
        print(f"epoch={state['epoch']} accuracy={accuracy:.6f} loss={1 - accuracy:.6f}", flush=True)
    state["lineage"] = [*state["lineage"], {"checkpoint": str(args.checkpoint_dir), "lr": args.lr, "alpha": args.alpha}]
    save(args.checkpoint_dir, model, state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
