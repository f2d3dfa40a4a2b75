"""Random search: independent uniform draws (log-uniform on log scales)."""

from __future__ import annotations

from typing import Sequence

from dial.search.base import Assignment, Strategy, TrialRecord, without_duplicates


class RandomSearch(Strategy):
    name = "random"
    multi_objective = True  # proposals never read the losses

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        rng = self.rng(history)
        return without_duplicates(self.space, history, [self.space.sample(rng) for _ in range(n)], rng)
