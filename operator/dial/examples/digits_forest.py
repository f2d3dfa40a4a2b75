"""A random forest on scikit-learn's bundled digits data: held-out accuracy against model size.

Two objectives that pull apart: more and deeper trees classify better but take more memory and
time at inference. Prints `accuracy=<held-out accuracy> nodes=<tree nodes in the forest>` once,
after training on a fixed stratified split (deterministic for the same parameters).
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trees", type=int, required=True)
    parser.add_argument("--max-depth", type=int, required=True)
    parser.add_argument("--max-features", default="sqrt")
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    forest = RandomForestClassifier(n_estimators=args.trees, max_depth=args.max_depth,
                                    max_features=args.max_features, random_state=0).fit(X_train, y_train)
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    print(f"accuracy={forest.score(X_test, y_test):.6f} nodes={nodes}", flush=True)


if __name__ == "__main__":
    main()
