"""Zoom-in: narrow the numeric ranges around the best trial as the search goes on, and where it stands."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dial.api.base import ApiModel


class ZoomSpec(ApiModel):
    """After every `afterTrials` finished trials (up to `maxZooms` times), int and double ranges
    shrink by `factor` around the best trial; categorical and discrete lists stay whole."""

    after_trials: Annotated[int, Field(ge=1)]
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    max_zooms: Annotated[int, Field(ge=1)] = 1


class ZoomedRange(ApiModel):
    name: str
    min: float
    max: float


class ZoomStatus(ApiModel):
    """The space the strategy searches now: zoom level, the trial it is centred on, the narrowed ranges."""

    level: int
    center: str
    parameters: list[ZoomedRange] = Field(default_factory=list)

    def describe(self) -> str:
        """One line for people: an event's message, a `dial run` line."""
        ranges = ", ".join(f"{r.name} in [{r.min:.4g}, {r.max:.4g}]" for r in self.parameters)
        return f"level {self.level} around {self.center}: {ranges}"


def zoomed_further(previous: ZoomStatus | None, current: ZoomStatus | None) -> bool:
    """Whether the search narrowed since `previous` (worth an event: it changes where trials land)."""
    return current is not None and (previous is None or current.level > previous.level)
