"""`dial run` with conditional parameters, then a second run warm started from the first one's results."""

from __future__ import annotations

from pathlib import Path

import yaml
from dial_cli import dial, example_spec, run_experiment


def conditional(tmp_path: Path, name: str, **spec: object) -> Path:
    path = example_spec(tmp_path, "conditional", name,
                        **{"maxTrialCount": 4, "parallelTrialCount": 2, "algorithm": {"name": "random"}, **spec})
    data = yaml.safe_load(path.read_text())
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["args"] += ["--folds", "2"]
    path.write_text(yaml.safe_dump(data))
    return path


def test_conditional_run_then_warm_start_from_it(tmp_path: Path) -> None:
    first_out = tmp_path / "dial-results" / "digits-20260101-000000"
    data = run_experiment(conditional(tmp_path, "digits", seed=4), first_out, cwd=tmp_path)
    assignments = [t["spec"]["parameterAssignments"] for t in data["trials"]]
    assert all(t["status"]["phase"] == "Succeeded" for t in data["trials"]), data["stdout"]
    for a in assignments:  # each trial got exactly its family's parameters, and the training accepted them
        assert set(a) == ({"model", "C", "gamma"} if a["model"] == "svm" else {"model", "alpha", "penalty"})
    rows = (first_out / "trials.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row, a in zip(rows[1:], assignments):
        cells = dict(zip(header, row.split(",")))
        assert {p for p in ("C", "gamma", "alpha", "penalty") if cells[p] == ""} == \
            {"C", "gamma", "alpha", "penalty"} - set(a)

    # By name (the latest run under dial-results/) and by file: the same four trials twice.
    second_spec = conditional(tmp_path, "digits-again", seed=4, maxTrialCount=2,
                              warmStart={"experiments": ["digits"], "resultsFiles": [str(first_out / "results.json")]})
    again = run_experiment(second_spec, tmp_path / "second", cwd=tmp_path)
    assert "warm start: digits: 4 trials taken" in again["stdout"]
    snap = again["experiment"]["status"]["warmStart"]
    assert [p["source"] for p in snap["trials"]] == [f"digits/digits-000{i}" for i in range(4)] + \
        [f"{first_out / 'results.json'}/digits-000{i}" for i in range(4)]
    assert [p["parameters"] for p in snap["trials"][:4]] == assignments
    own = [t["spec"]["parameterAssignments"] for t in again["trials"]]
    assert len(own) == 2 and [t["spec"]["index"] for t in again["trials"]] == [0, 1]
    cold = run_experiment(conditional(tmp_path, "digits-cold", seed=4, maxTrialCount=2), tmp_path / "cold", cwd=tmp_path)
    cold_own = [t["spec"]["parameterAssignments"] for t in cold["trials"]]
    assert cold_own != own  # same seed: the priors made the difference


def test_unreadable_results_file_names_the_field(tmp_path: Path) -> None:
    path = conditional(tmp_path, "digits", warmStart={"resultsFiles": ["nowhere/results.json"]})
    run = dial("run", str(path), "--no-live", cwd=tmp_path)
    assert run.returncode == 2
    assert "spec.warmStart.resultsFiles[0]: cannot read" in run.stderr and "nowhere/results.json" in run.stderr
