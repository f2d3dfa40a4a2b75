"""The stop-rule interface: decide from observations alone whether a running trial should stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from dial.api.experiment import ObjectiveSpec
from dial.api.trial import Trial


class RuleSettings(BaseModel):
    """Typed settings of one rule; accepts snake_case (Katib) and camelCase keys."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


@dataclass(frozen=True)
class StopDecision:
    rule: str
    message: str


class StopRule:
    """Subclasses set `name`, `Settings` and implement `check`; pure, no I/O."""

    name: ClassVar[str]
    Settings: ClassVar[type[RuleSettings]] = RuleSettings

    def __init__(self, objective: ObjectiveSpec, settings: RuleSettings | None = None):
        self.objective = objective
        self.settings = settings if settings is not None else self.Settings()

    @property
    def metric(self) -> str:
        """The metric this rule reads (the primary objective unless its settings name another)."""
        return self.objective.primary.metric_name

    def check(self, trial: Trial, others: Sequence[Trial]) -> StopDecision | None:
        """A decision to stop `trial`, given the experiment's other trials (running or done), or None."""
        raise NotImplementedError
