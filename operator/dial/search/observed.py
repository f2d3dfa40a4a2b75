"""History as arrays in the unit cube: what model-based strategies fit their models to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from dial.search.base import Assignment, TrialRecord
from dial.search.space import SearchSpace


@dataclass(frozen=True)
class Observed:
    """Finished trials with a finite loss (`x`, `y`), failed ones and running ones, as unit points.

    Rows follow trial index order, so weights by age are possible.
    """

    x: np.ndarray
    y: np.ndarray
    failed: np.ndarray
    running: np.ndarray
    # One row per `x` row, one column per objective (a copy of `y` when there is one objective).
    losses: np.ndarray = field(default_factory=lambda: np.empty((0, 1)))

    @classmethod
    def from_history(cls, space: SearchSpace, history: Sequence[TrialRecord]) -> "Observed":
        done, failed, running = [], [], []
        for record in sorted(history, key=lambda r: r.index):
            if not record.finished:
                running.append(record)
            elif record.loss is not None and math.isfinite(record.loss):
                done.append(record)
            else:
                failed.append(record)
        losses = [r.objective_losses or (r.loss,) for r in done]
        width = len(losses[0]) if losses else 1

        def rows(records: list[TrialRecord]) -> np.ndarray:
            return space.to_unit_rows([r.assignment for r in records])

        return cls(rows(done), np.array([r.loss for r in done], dtype=float), rows(failed), rows(running),
                   np.array(losses, dtype=float).reshape(len(losses), width))

    @property
    def n_done(self) -> int:
        return len(self.y)


def decode(space: SearchSpace, point: Sequence[float]) -> Assignment:
    """A unit point as an assignment of plain Python values, in the space's parameter order."""
    return {d.name: _plain(d.from_unit(float(u))) for d, u in zip(space.dimensions, point)}


def snap(space: SearchSpace, point: np.ndarray) -> np.ndarray:
    """The unit point of the assignment a unit point decodes to (rounds ints, steps and choices)."""
    return space.to_unit(space.from_unit(point))


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value
