"""`dial run` of the multi-objective example, then a second run warm started from its results file."""

from __future__ import annotations

from pathlib import Path

import yaml
from dial_cli import ROOT, example_spec, run_experiment

MAX_TREES = 16  # the second run's narrower space: earlier trials with more trees are skipped


def forest(tmp_path: Path, name: str, **spec: object) -> Path:
    return example_spec(tmp_path, "multi-objective", name, **{"parallelTrialCount": 2, "seed": 3, **spec})


def run(tmp_path: Path, spec_path: Path, out: Path) -> dict:
    return run_experiment(spec_path, out, cwd=tmp_path)


def test_multi_objective_run_warm_starts_from_an_earlier_runs_results(tmp_path: Path) -> None:
    first = run(tmp_path, forest(tmp_path, "forest", maxTrialCount=8, algorithm={"name": "random"}),
                tmp_path / "first")
    earlier = {t["metadata"]["name"]: t for t in first["trials"]}
    assert len(earlier) == 8 and all(t["status"]["phase"] == "Succeeded" for t in earlier.values())
    fits = sorted(n for n, t in earlier.items() if t["spec"]["parameterAssignments"]["trees"] <= MAX_TREES)
    assert 0 < len(fits) < 8, "seed 3 draws trials on both sides of the narrower range"

    results_file = str(tmp_path / "first/results.json")
    tpe = {"name": "tpe", "settings": {"n_startup_trials": 4}}
    narrower = yaml.safe_load((ROOT / "examples/multi-objective/experiment.yaml").read_text())["spec"]["parameters"]
    narrower[0]["feasibleSpace"]["max"] = MAX_TREES
    warm = run(tmp_path, forest(tmp_path, "forest-warm", maxTrialCount=4, algorithm=tpe, parameters=narrower,
                                warmStart={"resultsFiles": [results_file]}), tmp_path / "warm")
    n_skipped = 8 - len(fits)
    note = (f"{results_file}: {len(fits)} trials taken, {n_skipped} skipped "
            f"({n_skipped} with 'trees' outside this experiment's feasibleSpace)")
    assert f"warm start: {note}" in warm["stdout"]
    status = warm["experiment"]["status"]
    snap = status["warmStart"]
    assert snap["notes"] == [note] and snap["skipped"] == n_skipped
    # Each prior carries both objectives as the earlier trial reported them (metricStrategy best, one value each).
    assert [p["source"] for p in snap["trials"]] == [f"{results_file}/{n}" for n in fits]
    for prior in snap["trials"]:
        trial = earlier[prior["source"].rsplit("/", 1)[1]]
        assert prior["objectives"] == trial["status"]["objectives"]
        assert prior["objective"] == trial["status"]["objectives"]["accuracy"]
        assert prior["parameters"] == trial["spec"]["parameterAssignments"]

    own = warm["trials"]
    assert [t["metadata"]["name"] for t in own] == [f"forest-warm-000{i}" for i in range(4)]
    assert all(t["status"]["phase"] == "Succeeded" and set(t["status"]["objectives"]) == {"accuracy", "nodes"}
               for t in own)
    # The priors are not this run's trials: counts and front are its own.
    assert status["trials"]["succeeded"] == 4 and status["trialsCreated"] == 4
    assert status["paretoFrontSize"] >= 1 and all(e["name"].startswith("forest-warm-") for e in status["paretoFront"])
    own_assignments = [t["spec"]["parameterAssignments"] for t in own]
    assert not any(a in own_assignments for a in (p["parameters"] for p in snap["trials"]))  # none proposed again

    # The same seed without priors starts MOTPE's random startup instead: other proposals.
    cold = run(tmp_path, forest(tmp_path, "forest-cold", maxTrialCount=4, algorithm=tpe, parameters=narrower),
               tmp_path / "cold")
    assert "warmStart" not in cold["experiment"]["status"] and "warm start:" not in cold["stdout"]
    assert [t["spec"]["parameterAssignments"] for t in cold["trials"]] != own_assignments
