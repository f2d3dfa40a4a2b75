"""Grid search: every distinct combination of the active parameters' steps or lists, in a fixed order."""

from __future__ import annotations

import itertools
import math
from typing import Sequence

from dial.search.base import Assignment, Strategy, TrialRecord

MAX_GRID_SIZE = 1_000_000


class GridSearch(Strategy):
    name = "grid"
    multi_objective = True  # proposals never read the losses

    def validate(self) -> None:
        for dim in self.space.dimensions:
            if math.isinf(dim.n_values):
                raise ValueError(
                    f"grid needs a finite space: parameter {dim.name!r} is continuous; "
                    "give feasibleSpace.step or use a discrete list")
        if self.space.size > MAX_GRID_SIZE:
            raise ValueError(f"grid has {self.space.size:.0f} points, more than {MAX_GRID_SIZE}")

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        self.validate()
        seen = {self.space.key(r.assignment) for r in history}
        out: list[Assignment] = []
        for combo in itertools.product(*(d.grid() for d in self.space.dimensions)):
            assignment = dict(zip(self.space.names, combo))
            key = self.space.key(assignment)
            if key not in seen:
                # Conditional spaces repeat an active combination under each value of an inactive parameter.
                seen.add(key)
                out.append(assignment)
                if len(out) == n:
                    break
        return out
