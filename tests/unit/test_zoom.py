"""Zoom-in: narrowed ranges as a pure function of history, within the original bounds, and what plans do with them."""

from __future__ import annotations

import math

import pytest

from dial.engine import plan
from dial.search import TrialRecord
from dial.search.zoom import zoomed

from helpers import NOW, experiment, finished_trial
from test_strategies import space

SPACE = space(
    {"name": "x", "type": "double", "feasibleSpace": {"min": -10, "max": 10}},
    {"name": "lr", "type": "double", "feasibleSpace": {"min": 1e-6, "max": 1, "scale": "log"}},
    {"name": "n", "type": "int", "feasibleSpace": {"min": 0, "max": 100}},
    {"name": "opt", "type": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
)


def records(n: int, best: dict) -> list[TrialRecord]:
    others = [TrialRecord(i, {"x": -9.0, "lr": 1e-5, "n": 90, "opt": "a"}, 10.0 + i, True) for i in range(n - 1)]
    return [*others, TrialRecord(n - 1, best, 1.0, True)]


def ranges(sp) -> dict:
    return {d.name: (d.low, d.high) for d in sp.dimensions if not d.is_choice}


def test_no_zoom_before_after_trials_finished() -> None:
    sp, level, centre = zoomed(SPACE, records(9, {"x": 2.0, "lr": 1e-3, "n": 50, "opt": "b"}),
                               after_trials=10, factor=0.5, max_zooms=3)
    assert (sp, level, centre) == (SPACE, 0, None)


def test_ranges_shrink_around_the_best_trial_log_and_int_honoured() -> None:
    best = {"x": 2.0, "lr": 1e-3, "n": 50, "opt": "b"}
    sp, level, centre = zoomed(SPACE, records(10, best), after_trials=10, factor=0.5, max_zooms=3)
    assert level == 1 and centre is not None and centre.assignment == best
    got = ranges(sp)
    assert got["x"] == pytest.approx((-3.0, 7.0))  # half of 20, centred on 2
    assert got["lr"] == pytest.approx((10 ** -4.5, 10 ** -1.5))  # half of six decades, centred on 1e-3
    assert got["n"] == (25.0, 75.0)
    assert sp.dimensions[3] == SPACE.dimensions[3]  # categorical unchanged


def test_repeated_zooms_clip_to_the_original_bounds_and_stop_at_max_zooms() -> None:
    edge = {"x": 9.5, "lr": 1.0, "n": 99, "opt": "a"}
    sp, level, _ = zoomed(SPACE, records(35, edge), after_trials=10, factor=0.5, max_zooms=2)
    got = ranges(sp)
    assert level == 2
    assert got["x"] == pytest.approx((7.0, 10.0))  # a quarter of the width (5) around 9.5, clipped at max
    assert got["lr"] == pytest.approx((10 ** -0.75, 1.0))
    assert got["n"] == (86.0, 100.0)  # 86.5 rounds outward to a whole number
    for d, original in zip(sp.dimensions, SPACE.dimensions):
        assert original.low <= d.low <= d.high <= original.high


def test_zoom_is_a_pure_function_of_history() -> None:
    history = records(20, {"x": -1.0, "lr": 0.01, "n": 7, "opt": "a"})
    first = zoomed(SPACE, history, after_trials=5, factor=0.7, max_zooms=10)
    second = zoomed(SPACE, list(history), after_trials=5, factor=0.7, max_zooms=10)
    assert ranges(first[0]) == ranges(second[0]) and first[1:] == second[1:] and first[1] == 4


def test_plan_proposes_inside_the_zoomed_space_and_reports_it() -> None:
    exp = experiment(algorithm={"name": "random", "zoom": {"afterTrials": 4, "factor": 0.25}},
                     maxTrialCount=30, parallelTrialCount=10)
    trials = [finished_trial(exp, i, [float(abs(math.log10(lr) + 2))], assignment={"lr": lr, "layers": 1 + i % 4})
              for i, lr in enumerate([0.001, 0.01, 0.1, 1.0])]
    result = plan(exp, trials, now=NOW)
    zoom = result.status.zoom
    assert zoom is not None and zoom.level == 1 and zoom.center == "exp-0001"
    lr_range = next(r for r in zoom.parameters if r.name == "lr")
    assert lr_range.min == pytest.approx(10 ** -2.375) and lr_range.max == pytest.approx(10 ** -1.625)
    assert len(result.create) == 10
    assert all(lr_range.min <= p.assignment["lr"] <= lr_range.max for p in result.create)
    assert [p.assignment for p in plan(exp, trials, now=NOW).create] == [p.assignment for p in result.create]
    before = plan(exp, trials[:3], now=NOW)
    assert before.status.zoom is None


def test_zoom_with_only_lists_is_refused() -> None:
    from dial.engine import ExperimentError, load_experiment
    import yaml
    from helpers import manifest

    data = manifest(algorithm={"name": "random", "zoom": {"afterTrials": 2}},
                    parameters=[{"name": "lr", "type": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
                                {"name": "layers", "type": "discrete", "feasibleSpace": {"list": [1, 2]}}])
    with pytest.raises(ExperimentError) as info:
        load_experiment(yaml.safe_dump(data))
    assert [str(e) for e in info.value.errors] == [
        "spec.algorithm.zoom: no int or double range to narrow: every parameter is a list"]


def test_a_zoom_is_news_once_per_level() -> None:
    from dial.api.zoom import ZoomedRange, ZoomStatus, zoomed_further

    first = ZoomStatus(level=1, center="exp-0003", parameters=[ZoomedRange(name="x", min=-1.5, max=1.5)])
    second = first.model_copy(update={"level": 2, "center": "exp-0007"})
    assert zoomed_further(None, first) and zoomed_further(first, second)
    assert not zoomed_further(first, first) and not zoomed_further(second, None)
    assert not zoomed_further(second, first.model_copy(update={"center": "exp-0009"}))  # a new centre, same level
    assert first.describe() == "level 1 around exp-0003: x in [-1.5, 1.5]"
