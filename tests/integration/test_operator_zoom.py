"""The operator zooms in: the search space narrows around the best trial, in the status and in events."""

from __future__ import annotations

import pytest

from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, dump, events, example_manifest, operator, phases, trials, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

AFTER, FACTOR, MAX_ZOOMS, N_TRIALS = 4, 0.5, 2, 10
LOW, HIGH = -3.0, 3.0  # both parameters' feasibleSpace in examples/peaks


def box(centre: dict[str, float], level: int) -> dict[str, tuple[float, float]]:
    half = (HIGH - LOW) * FACTOR ** level / 2
    return {p: (max(LOW, centre[p] - half), min(HIGH, centre[p] + half)) for p in ("x", "y")}


def test_zoom_narrows_the_space_and_says_so(cluster, operator):
    ns = operator.namespace
    # Random search covers the whole square unless the space narrows; one trial at a time, so each
    # trial was proposed from exactly the trials before it.
    apply(cluster, ns, example_manifest("peaks", maxTrialCount=N_TRIALS, parallelTrialCount=1, seed=2, algorithm={
        "name": "random", "zoom": {"afterTrials": AFTER, "factor": FACTOR, "maxZooms": MAX_ZOOMS}}))
    exp = wait_for_phase(cluster, operator, ns, "peaks", ("Succeeded", "Failed"), timeout=420)
    items = trials(cluster, ns, "peaks")
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert phases(items) == ["Succeeded"] * N_TRIALS, dump([t["status"] for t in items])
    points = [{p: float(v) for p, v in t["spec"]["parameterAssignments"].items()} for t in items]
    values = [t["status"]["objective"] for t in items]
    for k in range(AFTER, N_TRIALS):
        best = min(range(k), key=lambda i: (values[i], i))
        ranges = box(points[best], min(k // AFTER, MAX_ZOOMS))
        assert all(lo <= points[k][p] <= hi for p, (lo, hi) in ranges.items()), (k, points[k], ranges)

    zoom = exp["status"]["zoom"]
    best_name = min(items, key=lambda t: (t["status"]["objective"], t["spec"]["index"]))["metadata"]["name"]
    assert zoom["level"] == MAX_ZOOMS and zoom["center"] == best_name, zoom
    zoomed = [m for reason, m in events(cluster, ns, "peaks") if reason == "Zoomed"]
    assert sorted(m.split(" around")[0] for m in zoomed) == ["level 1", "level 2"], zoomed
    names = [t["metadata"]["name"] for t in items]
    for message in zoomed:  # each names the trial it centres on and the ranges around it
        level = int(message.split()[1])
        centre = message.split(" around ", 1)[1].split(":", 1)[0]
        ranges = box(points[names.index(centre)], level)
        assert message.endswith(", ".join(f"{p} in [{lo:.4g}, {hi:.4g}]" for p, (lo, hi) in ranges.items())), message
