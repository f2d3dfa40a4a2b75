"""History as arrays in the unit cube: what model-based strategies fit their models to."""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    @classmethod
    def from_history(cls, space: SearchSpace, history: Sequence[TrialRecord]) -> "Observed":
        dims = len(space.dimensions)
        done, failed, running = [], [], []
        ys: list[float] = []
        for record in sorted(history, key=lambda r: r.index):
            point = space.to_unit(record.assignment)
            if not record.finished:
                running.append(point)
            elif record.loss is not None and math.isfinite(record.loss):
                done.append(point)
                ys.append(float(record.loss))
            else:
                failed.append(point)

        def rows(points: list[np.ndarray]) -> np.ndarray:
            return np.array(points, dtype=float).reshape(len(points), dims)

        return cls(rows(done), np.array(ys, dtype=float), rows(failed), rows(running))

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
