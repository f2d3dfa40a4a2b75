"""`dial run` of the pbt example: real training segments resume their parents' checkpoints on disk."""

from __future__ import annotations

import json
from pathlib import Path

from dial_cli import example_spec, run_experiment


def test_pbt_example_trains_generations_that_resume_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "out"
    trials = run_experiment(example_spec(tmp_path, "pbt", maxTrialCount=12), out)["trials"]  # three generations of four
    assert [t["status"]["phase"] for t in trials] == ["Succeeded"] * 12
    by_name = {t["metadata"]["name"]: t for t in trials}
    generation: dict[str, int] = {}
    for t in trials:
        name, parent = t["metadata"]["name"], t["spec"].get("parentTrial")
        generation[name] = 0 if parent is None else generation[parent] + 1
        state = json.loads((out / "checkpoints" / name / "state.json").read_text())
        assert state["epoch"] == 2 * (generation[name] + 1), (name, state)
        if parent is not None:
            # The segment began where its parent's checkpoint left off, and says so.
            parent_state = json.loads((out / "checkpoints" / parent / "state.json").read_text())
            assert state["lineage"][:-1] == parent_state["lineage"]
            log = (out / "trials" / name / "output.log").read_text()
            assert f"resuming {out.resolve() / 'checkpoints' / parent} after {parent_state['epoch']} epochs" in log
    assert sorted(generation.values()) == [0] * 4 + [1] * 4 + [2] * 4
    exploited = [t for t in trials if t["spec"].get("parentTrial")
                 and t["spec"]["parameterAssignments"] != by_name[t["spec"]["parentTrial"]]["spec"]["parameterAssignments"]]
    assert len(exploited) == 2  # the worst of each later generation's predecessor copied a better member and explored

    def best(g: int) -> float:
        return max(t["status"]["objective"] for t in trials if generation[t["metadata"]["name"]] == g)
    assert best(2) > best(0)
