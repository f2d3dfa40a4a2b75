"""`dial run` with conditional parameters, then a second run warm started from the first one's results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DIAL = [sys.executable, "-m", "dial.cli"]


def dial(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIAL, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def conditional(tmp_path: Path, name: str, **spec: object) -> Path:
    data = yaml.safe_load((ROOT / "examples/conditional/experiment.yaml").read_text())
    data["metadata"]["name"] = name
    data["spec"].update({"maxTrialCount": 4, "parallelTrialCount": 2, "algorithm": {"name": "random"}, **spec})
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["args"] += ["--folds", "2"]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_conditional_run_then_warm_start_from_it(tmp_path: Path) -> None:
    first_out = tmp_path / "dial-results" / "digits-20260101-000000"
    first = dial("run", str(conditional(tmp_path, "digits", seed=4)), "--output", str(first_out), "--no-live",
                 cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    data = json.loads((first_out / "results.json").read_text())
    assignments = [t["spec"]["parameterAssignments"] for t in data["trials"]]
    assert all(t["status"]["phase"] == "Succeeded" for t in data["trials"]), first.stdout
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
    second_out = tmp_path / "second"
    second = dial("run", str(second_spec), "--output", str(second_out), "--no-live", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "warm start: digits: 4 trials taken" in second.stdout
    again = json.loads((second_out / "results.json").read_text())
    snap = again["experiment"]["status"]["warmStart"]
    assert [p["source"] for p in snap["trials"]] == [f"digits/digits-000{i}" for i in range(4)] + \
        [f"{first_out / 'results.json'}/digits-000{i}" for i in range(4)]
    assert [p["parameters"] for p in snap["trials"][:4]] == assignments
    own = [t["spec"]["parameterAssignments"] for t in again["trials"]]
    assert len(own) == 2 and [t["spec"]["index"] for t in again["trials"]] == [0, 1]
    cold = dial("run", str(conditional(tmp_path, "digits-cold", seed=4, maxTrialCount=2)), "--output",
                str(tmp_path / "cold"), "--no-live", cwd=tmp_path)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    cold_own = [t["spec"]["parameterAssignments"] for t in json.loads((tmp_path / "cold/results.json").read_text())["trials"]]
    assert cold_own != own  # same seed: the priors made the difference


def test_unreadable_results_file_names_the_field(tmp_path: Path) -> None:
    path = conditional(tmp_path, "digits", warmStart={"resultsFiles": ["nowhere/results.json"]})
    run = dial("run", str(path), "--no-live", cwd=tmp_path)
    assert run.returncode == 2
    assert "spec.warmStart.resultsFiles[0]: cannot read" in run.stderr and "nowhere/results.json" in run.stderr
