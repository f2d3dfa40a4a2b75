"""Zoom-in as a pure function of history: the space narrowed around the best finished trial so far."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from dial.search.base import TrialRecord
from dial.search.space import Dimension, SearchSpace


def zoom_level(history: Sequence[TrialRecord], *, after_trials: int, max_zooms: int) -> int:
    """How many times the space has been narrowed: once per `after_trials` finished trials (priors included)."""
    return min(sum(r.finished for r in history) // after_trials, max_zooms)


def zoomed(space: SearchSpace, history: Sequence[TrialRecord], *, after_trials: int, factor: float,
           max_zooms: int) -> tuple[SearchSpace, int, TrialRecord | None]:
    """The narrowed space, its level and the trial it is centred on (the space itself at level 0).

    Each numeric range becomes `factor ** level` of its original width in unit space (so log
    scales narrow by ratios), centred on the best trial's value and clipped to the original
    bounds; int and stepped ranges widen to whole steps. A parameter that the best trial lacks
    (inactive) and choice lists keep their whole domain.
    """
    level = zoom_level(history, after_trials=after_trials, max_zooms=max_zooms)
    scored = [r for r in history if r.finished and r.loss is not None and math.isfinite(r.loss)]
    if level == 0 or not scored:
        return space, 0, None
    best = min(scored, key=lambda r: (r.loss, r.index))
    width = factor ** level
    return space.with_dimensions([_narrow(d, best.assignment.get(d.name), width) for d in space.dimensions]), level, best


def _narrow(dim: Dimension, centre: object, width: float) -> Dimension:
    if dim.is_choice or centre is None or dim.high == dim.low:
        return dim
    u = dim.to_unit(centre)  # type: ignore[arg-type]
    low, high = _from_unit(dim, max(0.0, u - width / 2)), _from_unit(dim, min(1.0, u + width / 2))
    step = dim.step or (1.0 if dim.kind.value == "int" else None)
    if step is not None:
        low = dim.low + math.floor((low - dim.low) / step + 1e-9) * step
        high = min(dim.high, dim.low + math.ceil((high - dim.low) / step - 1e-9) * step)
    return replace(dim, low=float(low), high=float(high))


def _from_unit(dim: Dimension, u: float) -> float:
    if dim.log:
        return math.exp(math.log(dim.low) + u * (math.log(dim.high) - math.log(dim.low)))
    return dim.low + u * (dim.high - dim.low)
