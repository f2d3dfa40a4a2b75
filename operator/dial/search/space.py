"""Search-space dimensions as value objects: bounds, transforms, sampling and membership."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dial.api.space import ParameterSpec, ParameterType, ParameterValue, Scale


@dataclass(frozen=True)
class Dimension:
    """One parameter's domain. `to_unit`/`from_unit` map it to [0, 1] (log-aware)."""

    name: str
    kind: ParameterType
    low: float = 0.0
    high: float = 1.0
    step: float | None = None
    log: bool = False
    choices: tuple[ParameterValue, ...] = ()

    @classmethod
    def from_spec(cls, spec: ParameterSpec) -> "Dimension":
        fs = spec.feasible_space
        if spec.type in (ParameterType.categorical, ParameterType.discrete):
            values: tuple[ParameterValue, ...] = tuple(
                _plain_number(v) if spec.type is ParameterType.discrete else str(v) for v in fs.list or ())
            if spec.type is ParameterType.discrete:
                values = tuple(sorted(values))  # type: ignore[type-var]
            return cls(spec.name, spec.type, choices=values, log=fs.scale is Scale.log)
        return cls(spec.name, spec.type, float(fs.min), float(fs.max), fs.step, fs.scale is Scale.log)  # type: ignore[arg-type]

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)

    @property
    def n_values(self) -> float:
        """How many distinct values the dimension holds (inf for a continuous one)."""
        if self.is_choice:
            return len(self.choices)
        if self.kind is ParameterType.int:
            step = self.step or 1
            return math.floor((self.high - self.low) / step) + 1
        if self.step is not None:
            return math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return math.inf

    def grid(self) -> list[ParameterValue]:
        if self.is_choice:
            return list(self.choices)
        n = self.n_values
        if math.isinf(n):
            raise ValueError(f"parameter {self.name!r} is continuous without a step: a grid needs feasibleSpace.step or a list")
        step = self.step or 1
        return [self.cast(self.low + i * step) for i in range(int(n))]

    def cast(self, value: float) -> ParameterValue:
        """Clip to bounds and round to the dimension's type and step."""
        if self.is_choice:
            raise TypeError("cast applies to numeric ranges")
        value = min(max(value, self.low), self.high)
        if self.step is not None:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(value, self.high)
        if self.kind is ParameterType.int:
            return int(round(value))
        return float(value)

    def from_unit(self, u: float) -> ParameterValue:
        u = min(max(float(u), 0.0), 1.0)
        if self.is_choice:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.kind is ParameterType.int:
            # Widen by half a unit each side so the end values are as likely as the others.
            low, high = self.low - 0.4999, self.high + 0.4999
            if self.log:
                low, high = max(self.low - 0.4999, self.low * 0.5), self.high + 0.4999
                return self.cast(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
            return self.cast(low + u * (high - low))
        if self.log:
            return self.cast(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return self.cast(self.low + u * (self.high - self.low))

    def to_unit(self, value: ParameterValue) -> float:
        if self.is_choice:
            i = self.index_of(value)
            return (i + 0.5) / len(self.choices)
        v = float(value)
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def to_unit_many(self, values: Sequence[ParameterValue]) -> np.ndarray:
        """`to_unit` of each value, bit for bit, at a fraction of the cost per value."""
        if self.is_choice or self.high == self.low:
            return np.array([self.to_unit(v) for v in values], dtype=float)
        if self.log:
            # math.log, not np.log: the two may differ in the last bit, and callers compare rows exactly.
            logs = np.array([math.log(float(v)) for v in values], dtype=float)
            return (logs - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (np.array(values, dtype=float) - self.low) / (self.high - self.low)

    def index_of(self, value: ParameterValue) -> int:
        for i, c in enumerate(self.choices):
            if c == value or str(c) == str(value):
                return i
        raise ValueError(f"{value!r} is not one of {list(self.choices)}")

    def contains(self, value: ParameterValue) -> bool:
        if self.is_choice:
            return any(c == value or str(c) == str(value) for c in self.choices)
        if isinstance(value, str) or isinstance(value, bool):
            return False
        if self.kind is ParameterType.int and int(value) != value:
            return False
        return self.low - 1e-12 <= float(value) <= self.high + 1e-12


def _plain_number(v: float | str) -> int | float:
    f = float(v)
    return int(f) if f.is_integer() else f


@dataclass(frozen=True)
class ActiveWhen:
    """`child` exists only while the categorical `parent` is active and takes one of `values`."""

    child: str
    parent: str
    values: frozenset[str]


class SearchSpace:
    """An ordered set of dimensions with helpers to sample and check assignments.

    With conditions, an assignment holds only its active parameters. Strategies work on complete
    assignments: `complete` fills inactive parameters with a fixed value (the middle of their
    range), so models see one constant there, and `active` drops them again from a proposal.
    `key`, `to_unit` and `contains` judge an assignment by its active parameters only.
    """

    def __init__(self, dimensions: Sequence[Dimension], conditions: Sequence[ActiveWhen] = ()):
        self.dimensions = list(dimensions)
        self.conditions = {c.child: c for c in conditions}
        self._order = _parents_first(self.names, self.conditions)

    @classmethod
    def from_parameters(cls, parameters: Sequence[ParameterSpec]) -> "SearchSpace":
        conditions = [ActiveWhen(p.name, p.active_when.parameter, frozenset(map(str, p.active_when.values)))
                      for p in parameters if p.active_when is not None]
        return cls([Dimension.from_spec(p) for p in parameters], conditions)

    def with_dimensions(self, dimensions: Sequence[Dimension]) -> "SearchSpace":
        """The same parameters and conditions over other domains (a zoomed space)."""
        return SearchSpace(dimensions, list(self.conditions.values()))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def size(self) -> float:
        """Combinations of the complete space: an upper bound on distinct assignments when conditional."""
        return math.prod(d.n_values for d in self.dimensions)

    def active_names(self, assignment: dict[str, ParameterValue]) -> set[str]:
        """Parameters that exist under this assignment (a parameter in a condition cycle never does)."""
        if not self.conditions:
            return set(self.names)
        active: set[str] = set()
        for name in self._order:
            condition = self.conditions.get(name)
            if condition is None or (condition.parent in active and str(assignment.get(condition.parent)) in condition.values):
                active.add(name)
        return active

    def active(self, assignment: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
        """The assignment without its inactive parameters: what a trial receives."""
        if not self.conditions:
            return dict(assignment)
        active = self.active_names(assignment)
        return {n: assignment[n] for n in self.names if n in active and n in assignment}

    def complete(self, assignment: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
        """Every parameter, inactive (or missing) ones at their dimension's middle value."""
        active = self.active_names(assignment)
        return {d.name: assignment[d.name] if d.name in active and d.name in assignment else d.from_unit(0.5)
                for d in self.dimensions}

    def sample(self, rng: np.random.Generator) -> dict[str, ParameterValue]:
        return self.from_unit(rng.random(len(self.dimensions)))

    def from_unit(self, point: Sequence[float]) -> dict[str, ParameterValue]:
        return {d.name: d.from_unit(u) for d, u in zip(self.dimensions, point)}

    def to_unit(self, assignment: dict[str, ParameterValue]) -> np.ndarray:
        if self.conditions:
            assignment = self.complete(assignment)
        return np.array([d.to_unit(assignment[d.name]) for d in self.dimensions])

    def to_unit_rows(self, assignments: Sequence[dict[str, ParameterValue]]) -> np.ndarray:
        """`to_unit` of each assignment as the rows of one (n, dimensions) array."""
        if self.conditions:
            assignments = [self.complete(a) for a in assignments]
        columns = [d.to_unit_many([a[d.name] for a in assignments]) for d in self.dimensions]
        return np.array(columns, dtype=float).T.reshape(len(assignments), len(self.dimensions))

    def contains(self, assignment: dict[str, ParameterValue]) -> bool:
        by_name = {d.name: d for d in self.dimensions}
        if not set(assignment) <= set(by_name) or not all(by_name[n].contains(v) for n, v in assignment.items()):
            return False
        return set(assignment) == self.active_names(assignment)

    def key(self, assignment: dict[str, ParameterValue]) -> tuple[str, ...]:
        """A hashable identity of an assignment's active parameters, for spotting duplicates."""
        if not self.conditions:
            return tuple(repr(assignment.get(n)) for n in self.names)
        active = self.active_names(assignment)
        return tuple(repr(assignment.get(n)) if n in active else "-" for n in self.names)


def _parents_first(names: Sequence[str], conditions: dict[str, ActiveWhen]) -> list[str]:
    """Parameters ordered so each comes after its parent; those in a cycle (or under an unknown parent) are left out."""
    order: list[str] = []
    placed: set[str] = set()
    pending = list(names)
    while pending:
        ready = [n for n in pending if n not in conditions or conditions[n].parent in placed]
        if not ready:
            break
        order += ready
        placed.update(ready)
        pending = [n for n in pending if n not in placed]
    return order
