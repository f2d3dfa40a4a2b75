"""An SVM trained on scikit-learn's bundled digits data set, reporting accuracy fold by fold.

Each fold of a stratified k-fold cross-validation is a step: the program prints
`fold=<k> accuracy=<mean so far> fold_accuracy=<this fold>`, so a stop rule can cut a poor
configuration after a few folds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC


def cross_validate(make_model: Callable[[], Any], n_folds: int) -> None:
    """Fit a fresh model per fold of the digits data, printing the running mean accuracy as each fold ends."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    scores: list[float] = []
    started = time.monotonic()
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=0)
    for k, (train, test) in enumerate(folds.split(X, y), start=1):
        scores.append(float(make_model().fit(X[train], y[train]).score(X[test], y[test])))
        print(f"fold={k} accuracy={np.mean(scores):.6f} fold_accuracy={scores[-1]:.6f} "
              f"seconds={time.monotonic() - started:.3f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--C", type=float, required=True)
    parser.add_argument("--gamma", type=float, required=True)
    parser.add_argument("--kernel", default="rbf")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    cross_validate(lambda: SVC(C=args.C, gamma=args.gamma, kernel=args.kernel), args.folds)


if __name__ == "__main__":
    main()
