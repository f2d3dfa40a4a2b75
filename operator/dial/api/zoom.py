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
