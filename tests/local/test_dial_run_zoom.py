"""`dial run` with zoom-in on the peaks function: the space narrows around the best trial, and later trials stay inside."""

from __future__ import annotations

from pathlib import Path

import pytest
from dial_cli import example_spec, run_experiment

AFTER, FACTOR, MAX_ZOOMS, N_TRIALS = 5, 0.5, 2, 14
LOW, HIGH = -3.0, 3.0  # both parameters' feasibleSpace in examples/peaks


def box(centre: dict[str, float], level: int) -> dict[str, tuple[float, float]]:
    """The narrowed ranges as the README states them: factor**level of the width around the centre, clipped."""
    half = (HIGH - LOW) * FACTOR ** level / 2
    return {p: (max(LOW, centre[p] - half), min(HIGH, centre[p] + half)) for p in ("x", "y")}


def test_zoom_narrows_the_space_around_the_best_trial(tmp_path: Path) -> None:
    # Random search scatters over the whole square unless the space really narrows; one trial at a
    # time, so each trial was proposed from exactly the trials before it.
    spec = example_spec(tmp_path, "peaks", "peaks-zoom", maxTrialCount=N_TRIALS, parallelTrialCount=1, seed=2,
                        algorithm={"name": "random",
                                   "zoom": {"afterTrials": AFTER, "factor": FACTOR, "maxZooms": MAX_ZOOMS}})
    results = run_experiment(spec, tmp_path / "out", cwd=tmp_path)
    trials = sorted(results["trials"], key=lambda t: t["spec"]["index"])
    assert len(trials) == N_TRIALS and all(t["status"]["phase"] == "Succeeded" for t in trials)
    points = [{p: float(v) for p, v in t["spec"]["parameterAssignments"].items()} for t in trials]
    values = [t["status"]["objective"] for t in trials]

    for k in range(AFTER, N_TRIALS):
        level = min(k // AFTER, MAX_ZOOMS)
        best = min(range(k), key=lambda i: (values[i], i))
        ranges = box(points[best], level)
        assert all(lo <= points[k][p] <= hi for p, (lo, hi) in ranges.items()), (k, points[k], ranges)
    # Before the first zoom the search covered more than the final ranges hold.
    final = box(points[min(range(N_TRIALS), key=lambda i: (values[i], i))], MAX_ZOOMS)
    assert any(not all(lo <= points[k][p] <= hi for p, (lo, hi) in final.items()) for k in range(AFTER))

    zoom = results["experiment"]["status"]["zoom"]
    best_trial = min(trials, key=lambda t: (t["status"]["objective"], t["spec"]["index"]))
    assert zoom["level"] == MAX_ZOOMS and zoom["center"] == best_trial["metadata"]["name"]
    assert [r["name"] for r in zoom["parameters"]] == ["x", "y"]
    for r in zoom["parameters"]:
        assert (r["min"], r["max"]) == pytest.approx(final[r["name"]])
    assert results["experiment"]["status"]["bestTrial"]["name"] == best_trial["metadata"]["name"]
    # Each narrowing is announced once, as it happens.
    announced = [line.split("zoom: ", 1)[1] for line in results["stdout"].splitlines() if "zoom: level" in line]
    assert [a.split(" around")[0] for a in announced] == ["level 1", "level 2"], results["stdout"]
    for level, line in enumerate(announced, start=1):
        centre = line.split(" around ", 1)[1].split(":", 1)[0]
        ranges = box(points[[t["metadata"]["name"] for t in trials].index(centre)], level)
        assert line.endswith(", ".join(f"{p} in [{lo:.4g}, {hi:.4g}]" for p, (lo, hi) in ranges.items())), line
