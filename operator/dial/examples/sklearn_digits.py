"""An SVM trained on scikit-learn's bundled digits data set, reporting accuracy fold by fold.

Each fold of a stratified k-fold cross-validation is a step: the program prints
`fold=<k> accuracy=<mean so far> fold_accuracy=<this fold>`, so a stop rule can cut a poor
configuration after a few folds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--C", type=float, required=True)
    parser.add_argument("--gamma", type=float, required=True)
    parser.add_argument("--kernel", default="rbf")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    scores: list[float] = []
    started = time.monotonic()
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    for k, (train, test) in enumerate(folds.split(X, y), start=1):
        model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel).fit(X[train], y[train])
        scores.append(float(model.score(X[test], y[test])))
        print(f"fold={k} accuracy={np.mean(scores):.6f} fold_accuracy={scores[-1]:.6f} "
              f"seconds={time.monotonic() - started:.3f}", flush=True)


if __name__ == "__main__":
    main()
