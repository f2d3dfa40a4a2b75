"""The strategy interface: propose `n` assignments from the space and the trials so far."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from dial.api.space import ParameterValue
from dial.search.space import SearchSpace

Assignment = dict[str, ParameterValue]


@dataclass(frozen=True)
class TrialRecord:
    """What a strategy may know of a trial: its parameters and, once known, its loss (lower is better).

    Multi-objective experiments also fill `losses`, one per objective (`loss` is the first);
    strategies that set `multi_objective` read it, the others never see such a history.
    """

    index: int
    assignment: Assignment
    loss: float | None = None
    finished: bool = False
    losses: tuple[float, ...] | None = None
    parent: int | None = None  # the trial whose checkpoint this one started from (pbt)
    # Ended without running to completion (failed, stopped early, interrupted): any checkpoint it left may be partial.
    incomplete: bool = False

    @property
    def objective_losses(self) -> tuple[float, ...] | None:
        """Every objective's loss: `losses`, or the single `loss`."""
        if self.losses is not None:
            return self.losses
        return None if self.loss is None else (self.loss,)

    @property
    def running(self) -> bool:
        return not self.finished


@dataclass(frozen=True)
class Proposal:
    """A proposed assignment and, for strategies that continue training, the trial to start from."""

    assignment: Assignment
    parent: int | None = None


class StrategySettings(BaseModel):
    """Typed settings of one strategy; accepts snake_case (Katib) and camelCase keys."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class CheckpointSettings(Protocol):
    """The settings every strategy with `needs_checkpoints` has: where checkpoints live in a trial's pod."""

    suggestion_trial_dir: str
    checkpoint_claim_name: str | None  # a PersistentVolumeClaim mounted at suggestion_trial_dir; None: the operator's
    # The claim the operator creates when checkpoint_claim_name is None (and nothing is mounted there):
    checkpoint_storage: str  # its storage request, a Kubernetes quantity
    checkpoint_storage_class_name: str | None  # its StorageClass; None: the cluster's default
    checkpoint_access_mode: str  # ReadWriteMany or ReadWriteOnce


class Strategy:
    """A pure function of (space, settings, seed, history, n): no hidden state survives a call.

    Subclasses set `name`, `Settings` and implement `propose`. The same seed and history give
    the same proposals, so a restarted backend continues the same search.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Settings: ClassVar[type[StrategySettings]] = StrategySettings
    # True when `propose` reads every objective (`TrialRecord.losses`) or none (random, grid).
    multi_objective: ClassVar[bool] = False
    # What the engine and the backends ask of a strategy instead of its name or class:
    # its trials resume a parent's checkpoint (placeholders, a shared volume; see `CheckpointSettings`),
    needs_checkpoints: ClassVar[bool] = False
    # its trials run at different budgets of one resource (epochs, steps),
    is_multi_fidelity: ClassVar[bool] = False
    # it can search a space narrowed around the best trial (`algorithm.zoom`), and
    supports_zoom: ClassVar[bool] = True
    # it can take earlier experiments' trials as history (`warmStart`).
    supports_warm_start: ClassVar[bool] = True
    # Why not, in a validation error's words, for a strategy without zoom or warm start.
    why_no_zoom: ClassVar[str] = ""
    why_no_warm_start: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, settings: StrategySettings | None = None, *, seed: int = 0):
        self.space = space
        self.settings = settings if settings is not None else self.Settings()
        self.seed = seed

    def propose(self, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
        raise NotImplementedError

    def propose_trials(self, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        """`propose` with lineage; strategies whose trials resume a parent's checkpoint override it."""
        return [Proposal(a) for a in self.propose(history, n)]

    def rng(self, history: Sequence[TrialRecord], salt: int = 0) -> np.random.Generator:
        """A generator seeded by the experiment seed and how far the search has come."""
        return np.random.default_rng([self.seed, len(history), salt])

    def validate(self) -> None:
        """Raise ValueError when the strategy cannot work on this space."""


def propose_active_trials(strategy: Strategy, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
    """Proposals as trials receive them, on a space with conditional parameters or without.

    The strategy sees complete assignments (inactive parameters at one fixed value, so a model is
    not confused by absent values) and its proposals lose their inactive parameters again.
    """
    space = strategy.space
    complete = [replace(r, assignment=space.complete(r.assignment)) for r in history]
    return [replace(p, assignment=space.active(p.assignment)) for p in strategy.propose_trials(complete, n)]


def propose_active(strategy: Strategy, history: Sequence[TrialRecord], n: int) -> list[Assignment]:
    """`propose_active_trials` without lineage."""
    return [p.assignment for p in propose_active_trials(strategy, history, n)]


def next_index(history: Sequence[TrialRecord]) -> int:
    return max((r.index for r in history), default=-1) + 1


def without_duplicates(space: SearchSpace, history: Sequence[TrialRecord], proposals: list[Assignment],
                       rng: np.random.Generator, *, tries: int = 200) -> list[Assignment]:
    """Replace proposals that repeat an existing or sibling assignment by unseen random ones.

    Only finite spaces can collide in practice; once a finite space is used up, fewer
    proposals come back.
    """
    seen = {space.key(r.assignment) for r in history}
    out: list[Assignment] = []
    for proposal in proposals:
        candidate = proposal
        for _ in range(tries):
            if space.key(candidate) not in seen:
                break
            candidate = space.sample(rng)
        else:
            candidate = _first_unseen(space, seen)
            if candidate is None:
                break
        seen.add(space.key(candidate))
        out.append(candidate)
    return out


def _first_unseen(space: SearchSpace, seen: set[tuple[str, ...]]) -> Assignment | None:
    if space.size > 100_000:
        return None
    import itertools

    for combo in itertools.product(*(d.grid() for d in space.dimensions)):
        assignment = dict(zip(space.names, combo))
        if space.key(assignment) not in seen:
            return assignment
    return None
