"""What a resumed run may change: budgets yes; the space, objective, search and template no."""

from __future__ import annotations

from typing import Any, Iterator

from dial.api.experiment import Experiment

# Changing these makes the recorded trials answer a different question (another space, another
# objective, another command) or breaks the strategy's replay of its own proposals (algorithm, seed).
FIXED_FIELDS = ("parameters", "objective", "algorithm", "seed", "trialTemplate", "metricsCollector",
                "earlyStopping", "warmStart")
# Budgets and parallelism (maxTrialCount, parallelTrialCount, maxFailedTrialCount, max*Seconds,
# maxGpuHours, suspend) may change: raising maxTrialCount is how a finished run is continued.


def changes(recorded: Experiment, current: Experiment, *, limit: int = 5) -> list[str]:
    """The fixed fields that differ between the recorded experiment and the current file, as
    `path: old -> new` lines (at most `limit`, then a count of the rest)."""
    before, after = recorded.to_wire(), current.to_wire()
    found: list[str] = []
    if before["metadata"]["name"] != after["metadata"]["name"]:
        found.append(f"metadata.name: {before['metadata']['name']!r} -> {after['metadata']['name']!r}")
    for name in FIXED_FIELDS:
        found += _diff(before["spec"].get(name), after["spec"].get(name), f"spec.{name}")
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more"]
    return found


def _diff(old: Any, new: Any, path: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from _diff(old.get(key), new.get(key), f"{path}.{key}")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _diff(a, b, f"{path}[{i}]")
    elif old != new:
        yield f"{path}: {_show(old)} -> {_show(new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return f"a list of {len(value)}" if len(repr(value)) > 60 else repr(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
