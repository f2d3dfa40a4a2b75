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


class SearchSpace:
    """An ordered set of dimensions with helpers to sample and check assignments."""

    def __init__(self, dimensions: Sequence[Dimension]):
        self.dimensions = list(dimensions)

    @classmethod
    def from_parameters(cls, parameters: Sequence[ParameterSpec]) -> "SearchSpace":
        return cls([Dimension.from_spec(p) for p in parameters])

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def size(self) -> float:
        return math.prod(d.n_values for d in self.dimensions)

    def sample(self, rng: np.random.Generator) -> dict[str, ParameterValue]:
        return self.from_unit(rng.random(len(self.dimensions)))

    def from_unit(self, point: Sequence[float]) -> dict[str, ParameterValue]:
        return {d.name: d.from_unit(u) for d, u in zip(self.dimensions, point)}

    def to_unit(self, assignment: dict[str, ParameterValue]) -> np.ndarray:
        return np.array([d.to_unit(assignment[d.name]) for d in self.dimensions])

    def contains(self, assignment: dict[str, ParameterValue]) -> bool:
        return set(assignment) == set(self.names) and all(d.contains(assignment[d.name]) for d in self.dimensions)

    def key(self, assignment: dict[str, ParameterValue]) -> tuple[str, ...]:
        """A hashable identity of an assignment, for spotting duplicates."""
        return tuple(repr(assignment.get(n)) for n in self.names)
