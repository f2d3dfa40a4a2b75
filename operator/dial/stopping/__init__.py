"""Early-stop rules behind one small interface, looked up by name."""

from __future__ import annotations

from typing import Any

from dial.api.experiment import ObjectiveSpec
from dial.stopping.asha import Asha
from dial.stopping.base import RuleSettings, StopDecision, StopRule
from dial.stopping.medianstop import MedianStop
from dial.stopping.threshold import Threshold

RULES: dict[str, type[StopRule]] = {cls.name: cls for cls in (MedianStop, Threshold, Asha)}


def make_rule(name: str, settings: dict[str, Any], objective: ObjectiveSpec) -> StopRule:
    try:
        cls = RULES[name]
    except KeyError:
        raise ValueError(f"unknown early-stopping rule {name!r}; known: {', '.join(sorted(RULES))}") from None
    return cls(objective, cls.Settings.model_validate(settings))


__all__ = ["RULES", "RuleSettings", "StopDecision", "StopRule", "make_rule"]
