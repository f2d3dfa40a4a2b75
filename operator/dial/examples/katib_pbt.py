"""Katib's `simple-pbt` trial (examples/v1beta1/trial-images/simple-pbt/pbt_test.py): the same flags, checkpoint file
and log lines, so Katib's hp-tuning/simple-pbt.yaml runs unchanged but for the image and the command.

The problem is the one pbt_test.py trains, Ray Tune's PBT benchmark (`pbt_example.py`): an accuracy in [0, 100]
grows fastest when the learning rate is near an optimum that itself depends on the accuracy (a triangle wave from
0.001 up to 0.01 at accuracy 50 and back down), so no fixed `--lr` does well and a population that copies and
perturbs its best members does. Each of `--epochs` steps moves the accuracy by the rule below, with Gaussian
noise. Unlike pbt_test.py the noise is seeded by (`--seed`, step), so a segment gives the same result however
often it runs, and there is no sleep (Katib's collector needed 7 s to find the process; Dial's waits for it).

Like pbt_test.py it resumes from `<--checkpoint>/training.ckpt` when that file exists (a pickle of `step` and
`accuracy`, the same format, so either program continues the other's checkpoints), saves it after the last step,
and then prints `epoch <step>:`, `lr=<lr>` and `Validation-accuracy=<accuracy / 100>`.
"""

from __future__ import annotations

import argparse
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHECKPOINT_FILE = "training.ckpt"
MIDPOINT = 50.0  # the optimal learning rate rises until this accuracy, then falls
Q_TOLERANCE = 3.0  # a learning rate more than this factor off the optimum stops helping (and, too high, hurts)
NOISE_LEVEL = 2.0  # standard deviation of the accuracy's noise per step
LOWEST_LR, HIGHEST_LR = 0.001, 0.01


@dataclass
class State:
    step: int = 1  # pbt_test.py counts from 1: after n steps from scratch it prints `epoch n+1:`
    accuracy: float = 0.0  # 0 to 100


def optimal_lr(accuracy: float) -> float:
    """The triangle wave: 0.001 at accuracy 0, 0.01 at the midpoint, back to 0.001 at 100."""
    if accuracy < MIDPOINT:
        best = HIGHEST_LR * accuracy / MIDPOINT
    else:
        best = HIGHEST_LR - HIGHEST_LR * (accuracy - MIDPOINT) / MIDPOINT
    return min(HIGHEST_LR, max(LOWEST_LR, best))


def step(state: State, lr: float, rng: np.random.Generator) -> State:
    """One training step of pbt_test.py's `PBTBenchmarkExample.step`."""
    best = optimal_lr(state.accuracy)
    q_err = max(lr, best) / (min(lr, best) + np.finfo(float).eps)
    accuracy = state.accuracy
    if q_err < Q_TOLERANCE:
        accuracy += (1.0 / q_err) * rng.random()
    elif lr > best:
        accuracy -= (q_err - Q_TOLERANCE) * rng.random()
    accuracy += NOISE_LEVEL * rng.normal()
    return State(step=state.step + 1, accuracy=float(max(0.0, min(100.0, accuracy))))


def load(checkpoint_dir: Path) -> State:
    """The checkpoint's state, or a fresh start when the directory holds none (generation 0)."""
    path = checkpoint_dir / CHECKPOINT_FILE
    if not path.exists():
        return State()
    with path.open("rb") as f:
        data = pickle.load(f)
    return State(step=int(data["step"]), accuracy=float(data["accuracy"]))


def save(checkpoint_dir: Path, state: State) -> None:
    """Write-then-rename: a segment killed while saving leaves its previous checkpoint, never a torn one."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    partial = checkpoint_dir / f".{CHECKPOINT_FILE}.partial"
    partial.write_bytes(pickle.dumps({"step": state.step, "accuracy": state.accuracy}))
    os.replace(partial, checkpoint_dir / CHECKPOINT_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.0001, help="learning rate (default: 0.0001)")
    parser.add_argument("--epochs", type=int, default=20, help="number of epochs to train (default: 20)")
    parser.add_argument("--checkpoint", type=Path, default=Path("/var/log/katib/checkpoints/"),
                        help="checkpoint directory (resume and save)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise, with the step (not in pbt_test.py)")
    args = parser.parse_args(argv)

    state = load(args.checkpoint)
    for _ in range(args.epochs):
        state = step(state, args.lr, np.random.default_rng([args.seed, state.step]))
    save(args.checkpoint, state)
    print(f"epoch {state.step}:\nlr={args.lr:0.4f}\nValidation-accuracy={state.accuracy / 100:0.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
