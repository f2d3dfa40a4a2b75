"""Population based training: generations of a population that exploit better members and explore.

Every trial is one segment of one member's training: it starts from its parent trial's checkpoint
(none in generation 0), trains a fixed amount, writes its own checkpoint and reports the objective.
Generation g+1 is proposed once all `n_population` segments of generation g have finished.
Member p of the next generation continues from member p's checkpoint with the same parameters,
unless member p ranked in the bottom `truncation_threshold` fraction: then it takes the checkpoint
of a random member from the top fraction (exploit) and that member's parameters, perturbed by a
factor from `perturbation_factors` or, with `resample_probability`, drawn afresh (explore).
A segment that failed, was stopped or was interrupted ranks last (its checkpoint may be partial),
so its member exploits. Every draw is seeded by (seed, generation, member), so the proposals
depend only on the seed and the finished generations, never on timing.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from dial.api.space import ParameterType, ParameterValue
from dial.search.base import Assignment, Proposal, Strategy, StrategySettings, TrialRecord
from dial.search.space import Dimension

DEFAULT_CHECKPOINT_MOUNT = "/var/lib/dial/checkpoints"
# The claim the operator creates when the experiment names none: Katib's defaults for pbt's claim (the
# `persistentVolumeClaimSpec` of the pbt suggestion in its katib-config.yaml: ReadWriteMany, 5Gi, no class).
DEFAULT_CHECKPOINT_STORAGE = "5Gi"
CLAIM_STORAGE_SETTINGS = ("checkpoint_storage", "checkpoint_storage_class_name", "checkpoint_access_mode")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")


class PbtSettings(StrategySettings):
    n_population: Annotated[int, Field(ge=2, description="Members per generation (Katib's n_population).")] = 8
    truncation_threshold: Annotated[float, Field(gt=0, le=0.5, description=(
        "Fraction of a generation that exploits: the bottom fraction copies a member of the top fraction."))] = 0.2
    resample_probability: Annotated[float, Field(ge=0, le=1, description=(
        "Per parameter, the chance of drawing a fresh value instead of perturbing the copied one; "
        "unset: always perturb."))] | None = None
    perturbation_factors: Annotated[tuple[float, float], Field(description=(
        "Multipliers a copied numeric value is perturbed by, one chosen at random (Katib: 0.8, 1.2)."))] = (0.8, 1.2)
    suggestion_trial_dir: Annotated[str, Field(min_length=1, description=(
        "Where checkpoints live inside a trial's pod (Katib's name); each trial has a directory below it."))] = (
        DEFAULT_CHECKPOINT_MOUNT)
    checkpoint_claim_name: Annotated[str, Field(min_length=1, description=(
        "A PersistentVolumeClaim the operator mounts at suggestion_trial_dir in every trial pod; unset: the operator "
        "creates one, <experiment>-pbt, owned by the Experiment."))] | None = None
    checkpoint_storage: Annotated[str, Field(description=(
        "The storage request of the claim the operator creates (a Kubernetes quantity)."))] = DEFAULT_CHECKPOINT_STORAGE
    checkpoint_storage_class_name: Annotated[str, Field(description=(
        "The StorageClass of the claim the operator creates; unset: the cluster's default class; '': none "
        "(binds only to a PersistentVolume without a class)."))] | None = None
    checkpoint_access_mode: Annotated[Literal["ReadWriteMany", "ReadWriteOnce"], Field(description=(
        "The access mode of the claim the operator creates: ReadWriteMany lets trials on different nodes share it; "
        "ReadWriteOnce, for classes that cannot, keeps them on one node."))] = "ReadWriteMany"

    @field_validator("suggestion_trial_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must be an absolute path inside the trial's container (got {value!r})")
        return value.rstrip("/") or "/"

    @field_validator("checkpoint_storage")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.fullmatch(value):
            raise ValueError(f"must be a Kubernetes quantity such as 5Gi or 500Mi (got {value!r})")
        return value

    @model_validator(mode="after")
    def _storage_only_for_the_operators_claim(self) -> "PbtSettings":
        given = [name for name in CLAIM_STORAGE_SETTINGS if name in self.model_fields_set]
        if self.checkpoint_claim_name is not None and given:
            raise ValueError(f"{', '.join(given)} describe the claim the operator creates when checkpoint_claim_name "
                             f"is unset; with checkpoint_claim_name {self.checkpoint_claim_name!r} the claim is yours: "
                             "give one or the other")
        return self

    @field_validator("perturbation_factors")
    @classmethod
    def _positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) <= 0:
            raise ValueError(f"factors must be > 0 (got {list(value)})")
        return value


class PopulationBasedTraining(Strategy):
    name = "pbt"
    aliases = ("population-based-training",)
    Settings = PbtSettings
    settings: PbtSettings
    needs_checkpoints = True
    # pbt's own reasons are checkpoint errors (dial.engine.validation): its members resume this experiment's checkpoints.
    supports_zoom = False
    supports_warm_start = False

    def validate(self) -> None:
        s = self.settings
        if self.n_truncated < 1:
            raise ValueError(f"truncation_threshold: {s.truncation_threshold:g} of n_population {s.n_population} "
                             "exploits no member; raise either so that their product is at least 1")

    @property
    def n_truncated(self) -> int:
        """How many members of a generation exploit (and how many top members they may copy)."""
        return int(math.floor(self.settings.n_population * self.settings.truncation_threshold + 1e-9))

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        return [p.assignment for p in self.propose_trials(history, n)]

    def propose_trials(self, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        population = self.settings.n_population
        generations = split_generations(history)
        out: list[Proposal] = []
        generation = len(generations) - 1
        filled = len(generations[-1]) if generations else population
        if filled >= population:
            # The latest generation is complete: the next one may start once every segment ended.
            if generations and not all(r.finished for r in generations[-1]):
                return []
            generation, filled = generation + 1, 0
        previous = generations[generation - 1] if generation > 0 else []
        for member in range(filled, min(filled + n, population)):
            out.append(self._seed(member) if generation == 0 else self._next(previous, generation, member))
        return out

    def _seed(self, member: int) -> Proposal:
        return Proposal(self.space.sample(self._rng(0, member)))

    def _next(self, previous: list[TrialRecord], generation: int, member: int) -> Proposal:
        own = previous[member] if member < len(previous) else None
        ranked = sorted(previous, key=lambda r: (not _has_loss(r), r.loss if _has_loss(r) else 0.0, r.index))
        top = [r for r in ranked[:self.n_truncated] if _has_loss(r)]
        bottom = {r.index for r in ranked[len(ranked) - self.n_truncated:]}
        if own is not None and _has_loss(own) and (own.index not in bottom or not top):
            return Proposal(dict(own.assignment), parent=own.index)
        if not top:
            # No member of the generation left a result: start this member over.
            return Proposal(self.space.sample(self._rng(generation, member)))
        rng = self._rng(generation, member)
        donor = top[int(rng.integers(len(top)))]
        return Proposal(self._explore(donor.assignment, rng), parent=donor.index)

    def _explore(self, assignment: Assignment, rng: np.random.Generator) -> Assignment:
        p = self.settings.resample_probability
        out: Assignment = {}
        for dim in self.space.dimensions:
            resample = p is not None and rng.random() < p
            fresh = dim.from_unit(rng.random())
            out[dim.name] = fresh if resample else perturb(dim, assignment[dim.name], self.settings.perturbation_factors, rng)
        return out

    def _rng(self, generation: int, member: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, generation, member])


def perturb(dim: Dimension, value: ParameterValue, factors: tuple[float, float],
            rng: np.random.Generator) -> ParameterValue:
    """A neighbour of `value` inside the dimension: scaled numbers, an adjacent discrete value, another category."""
    if dim.kind is ParameterType.categorical:
        others = [c for c in dim.choices if str(c) != str(value)]
        return others[int(rng.integers(len(others)))] if others else value
    if dim.is_choice:
        # Discrete values are ordered: step to a neighbour, inwards at either end.
        i = dim.index_of(value) + (1 if rng.random() < 0.5 else -1)
        if i < 0 or i >= len(dim.choices):
            i = min(max(2 * dim.index_of(value) - i, 0), len(dim.choices) - 1)
        return dim.choices[i]
    first = int(rng.integers(len(factors)))
    factor = factors[first]
    moved = dim.cast(float(value) * factor)
    for other in (*factors[first + 1:], *factors[:first]):
        if moved != value:
            break
        # Clipped at a bound: go the other way instead of standing still.
        factor, moved = other, dim.cast(float(value) * other)
    if moved == value and dim.low < dim.high:
        # Zero never moves under a factor, nor do small integers under one near 1: step in the
        # factor's direction by what it would move a mid-range value (an int: one step).
        size = int(dim.step or 1) if dim.kind is ParameterType.int else (
            dim.step or abs(factor - 1.0) * (dim.high - dim.low) / 2)
        step = size * (1 if factor >= 1 else -1)
        moved = dim.cast(float(value) + step)
        if moved == value:
            moved = dim.cast(float(value) - step)
    return moved


def split_generations(history: Sequence[TrialRecord]) -> list[list[TrialRecord]]:
    """Trials by generation (0 without a parent, else the parent's plus one), each in index order."""
    depth: dict[int, int] = {}
    generations: list[list[TrialRecord]] = []
    for record in sorted(history, key=lambda r: r.index):
        g = 0 if record.parent is None else depth.get(record.parent, -1) + 1
        depth[record.index] = g
        while len(generations) <= g:
            generations.append([])
        generations[g].append(record)
    return generations


def _has_loss(record: TrialRecord) -> bool:
    """A segment that ran to completion with a result: only these rank, continue or lend their checkpoint."""
    return record.finished and not record.incomplete and record.loss is not None and math.isfinite(record.loss)
