"""Two model families on scikit-learn's bundled digits data, each with its own hyperparameters.

`--model svm` takes `--C` and `--gamma`; `--model sgd` takes `--alpha` and `--penalty`. Each fold
of a stratified k-fold cross-validation is a step, printed as `dial.examples.sklearn_digits` does.
A hyperparameter of the other family is refused, so a conditional experiment that passed one by
mistake fails loudly instead of ignoring it.
"""

from __future__ import annotations

import argparse
from typing import Any

from sklearn.linear_model import SGDClassifier
from sklearn.svm import SVC

from dial.examples.sklearn_digits import cross_validate

FAMILY_OPTIONS = {"svm": ("C", "gamma"), "sgd": ("alpha", "penalty")}


def build(args: argparse.Namespace) -> Any:
    for family, options in FAMILY_OPTIONS.items():
        given = [o for o in options if getattr(args, o) is not None]
        if family != args.model and given:
            raise SystemExit(f"--{given[0]} applies to --model {family}, not {args.model}")
        if family == args.model and len(given) != len(options):
            missing = next(o for o in options if getattr(args, o) is None)
            raise SystemExit(f"--model {family} needs --{missing}")
    if args.model == "svm":
        return SVC(C=args.C, gamma=args.gamma)
    return SGDClassifier(alpha=args.alpha, penalty=args.penalty, max_iter=50, tol=None, random_state=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(FAMILY_OPTIONS), required=True)
    parser.add_argument("--C", type=float)
    parser.add_argument("--gamma", type=float)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--penalty", choices=["l2", "l1", "elasticnet"])
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args(argv)
    build(args)  # refuses the other family's options before any training
    cross_validate(lambda: build(args), args.folds)


if __name__ == "__main__":
    main()
