"""`dial run` with zoom-in on the peaks function: the space narrows around the best trial, and later trials stay inside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AFTER, FACTOR, MAX_ZOOMS, N_TRIALS = 5, 0.5, 2, 14
LOW, HIGH = -3.0, 3.0  # both parameters' feasibleSpace in examples/peaks


def box(centre: dict[str, float], level: int) -> dict[str, tuple[float, float]]:
    """The narrowed ranges as the README states them: factor**level of the width around the centre, clipped."""
    half = (HIGH - LOW) * FACTOR ** level / 2
    return {p: (max(LOW, centre[p] - half), min(HIGH, centre[p] + half)) for p in ("x", "y")}


def test_zoom_narrows_the_space_around_the_best_trial(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples/peaks/experiment.yaml").read_text())
    # Random search scatters over the whole square unless the space really narrows; one trial at a
    # time, so each trial was proposed from exactly the trials before it.
    data["spec"].update({"maxTrialCount": N_TRIALS, "parallelTrialCount": 1, "seed": 2,
                         "algorithm": {"name": "random",
                                       "zoom": {"afterTrials": AFTER, "factor": FACTOR, "maxZooms": MAX_ZOOMS}}})
    spec = tmp_path / "peaks-zoom.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "dial.cli", "run", str(spec), "--output", str(out), "--no-live"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((out / "results.json").read_text())
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
