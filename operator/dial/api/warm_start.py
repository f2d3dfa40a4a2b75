"""Warm start: earlier trials that seed an experiment's strategy, and the snapshot of them in its status."""

from __future__ import annotations

from pydantic import Field

from dial.api.base import ApiModel
from dial.api.space import ParameterValue


class WarmStartSpec(ApiModel):
    """Where earlier trials come from: Experiments in the same namespace (their Trials) or, for
    `dial run`, the `results.json` files of earlier runs."""

    experiments: list[str] = Field(default_factory=list)
    results_files: list[str] = Field(default_factory=list)


class PriorTrial(ApiModel):
    """One earlier trial as this experiment sees it: active parameters and the objective(s) by this experiment's metrics."""

    source: str
    parameters: dict[str, ParameterValue]
    objective: float  # the first objective's value when there are several
    # Multi-objective experiments only: every objective's value by metric name, as in a Trial's status.
    objectives: dict[str, float] | None = None


class WarmStartStatus(ApiModel):
    """The earlier trials, read once before the first trial, so every later plan (and a restart) sees the same ones."""

    trials: list[PriorTrial] = Field(default_factory=list)
    skipped: int = 0
    notes: list[str] = Field(default_factory=list)
