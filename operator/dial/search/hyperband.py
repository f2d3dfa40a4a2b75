"""Hyperband: brackets of successive halving over a resource parameter (epochs, steps), stateless.

The schedule is a fixed, endless sequence of slots (bracket, rung, place); trial k of the
experiment fills slot k. A rung-0 slot gets a random configuration at that bracket's smallest
resource; a later rung's slots get the best configurations of the rung below at `reduction_factor`
times the resource, once every trial of the rung below has finished. Until then no proposal comes
back, so the experiment waits (as Katib's hyperband does). After the last bracket the schedule
starts over with fresh configurations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from pydantic import AliasChoices, Field

from dial.search.base import Assignment, Strategy, StrategySettings, TrialRecord, without_duplicates

MAX_SLOTS_PER_ROUND = 100_000


class HyperbandSettings(StrategySettings):
    resource_name: str = Field(description="The parameter that hyperband sets: epochs, steps, samples.")
    max_resource: float = Field(gt=0, validation_alias=AliasChoices("max_resource", "maxResource", "r_l"),
                                description="Resource of a configuration that reaches the last rung (Katib's r_l).")
    min_resource: float | None = Field(default=None, gt=0, description="Smallest rung; default the parameter's minimum.")
    reduction_factor: float = Field(default=3.0, gt=1, validation_alias=AliasChoices("reduction_factor", "reductionFactor", "eta"),
                                    description="Keep the best 1/reduction_factor at each rung (Katib's eta).")


@dataclass(frozen=True)
class Slot:
    round: int
    bracket: int
    rung: int
    place: int
    first_of_rung: int  # slot number of the rung's first slot
    rung_size: int
    resource: float
    below_first: int  # slot number of the rung below's first slot (-1 for rung 0)
    below_size: int


class Hyperband(Strategy):
    name = "hyperband"
    Settings = HyperbandSettings
    settings: HyperbandSettings
    is_multi_fidelity = True
    supports_zoom = False
    why_no_zoom = "hyperband's brackets assume one fixed space; it cannot zoom"
    supports_warm_start = False
    why_no_warm_start = "hyperband's brackets are made of this experiment's own trials; it cannot be warm started"

    def validate(self) -> None:
        s = self.settings
        dim = next((d for d in self.space.dimensions if d.name == s.resource_name), None)
        if dim is None:
            raise ValueError(f"resource_name: {s.resource_name!r} is not a parameter; "
                             f"declare it (type int or double) so trials receive their resource")
        if dim.is_choice:
            raise ValueError(f"resource_name: parameter {s.resource_name!r} must be an int or double range")
        if not (dim.low <= self.min_resource <= s.max_resource <= dim.high):
            raise ValueError(f"min_resource {self.min_resource:g} and max_resource {s.max_resource:g} must lie within "
                             f"parameter {s.resource_name!r}'s range [{dim.low:g}, {dim.high:g}] with min <= max")
        resources = [dim.cast(r) for r in self._rung_resources(self._s_max)]
        if len(set(resources)) != len(resources):
            raise ValueError(f"rung resources {resources} repeat after rounding; widen the range or lower reduction_factor")
        if len(self._round()) > MAX_SLOTS_PER_ROUND:
            raise ValueError(f"one hyperband round would need more than {MAX_SLOTS_PER_ROUND} trials")

    @property
    def min_resource(self) -> float:
        if self.settings.min_resource is not None:
            return self.settings.min_resource
        dim = next(d for d in self.space.dimensions if d.name == self.settings.resource_name)
        return dim.low if dim.low > 0 else 1.0

    @property
    def _s_max(self) -> int:
        eta = self.settings.reduction_factor
        return int(math.floor(math.log(self.settings.max_resource / self.min_resource) / math.log(eta) + 1e-9))

    def _rung_resources(self, s: int) -> list[float]:
        eta, top = self.settings.reduction_factor, self.settings.max_resource
        return [top * eta ** (i - s) for i in range(s + 1)]

    def _round(self) -> list[Slot]:
        """One pass over all brackets, most aggressive first (Li et al. 2018, algorithm 1)."""
        eta, s_max = self.settings.reduction_factor, self._s_max
        slots: list[Slot] = []
        for s in range(s_max, -1, -1):
            n = int(math.ceil((s_max + 1) / (s + 1) * eta**s))
            below_first, below_size = -1, 0
            for i, resource in enumerate(self._rung_resources(s)):
                size = max(int(math.floor(n * eta ** -i)), 1)
                first = len(slots)
                slots += [Slot(0, s, i, j, first, size, resource, below_first, below_size) for j in range(size)]
                below_first, below_size = first, size
        return slots

    def slot(self, k: int) -> tuple[Slot, int]:
        """The slot trial k fills, and the slot number where its round begins."""
        one_round = self._round()
        r, offset = divmod(k, len(one_round))
        return one_round[offset], r * len(one_round)

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        self.validate()
        ordered = sorted(history, key=lambda r: r.index)
        resource_dim = next(d for d in self.space.dimensions if d.name == self.settings.resource_name)
        out: list[Assignment] = []
        for k in range(len(ordered), len(ordered) + n):
            slot, round_start = self.slot(k)
            if slot.rung == 0:
                assignment = self.space.sample(self.rng(history, salt=k))
            else:
                below = ordered[round_start + slot.below_first:round_start + slot.below_first + slot.below_size]
                if len(below) < slot.below_size or not all(r.finished for r in below):
                    break  # the rung below is still running: wait
                ranked = sorted(below, key=lambda r: (r.loss is None or not math.isfinite(r.loss), r.loss or 0.0, r.index))
                assignment = dict(ranked[slot.place].assignment)
            assignment[resource_dim.name] = resource_dim.cast(slot.resource)
            out.append({name: assignment[name] for name in self.space.names})
        return without_duplicates(self.space, history, out, self.rng(history, salt=1 << 30))
