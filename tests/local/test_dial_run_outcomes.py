"""`dial run` outcomes scripts can trust: failures end Failed with a non-zero exit; --resume refuses a changed file."""

from __future__ import annotations

from pathlib import Path

import yaml

from dial_cli import dial, results
from test_dial_run import write_experiment


def test_an_experiment_whose_trials_all_fail_ends_failed_and_exits_non_zero(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "broken", ["python", "-c", "import sys; sys.exit(3)", "${trialParameters.x}"],
                            maxTrialCount=6, parallelTrialCount=1)
    out = tmp_path / "out"
    run = dial("run", str(path), "--output", str(out), "--no-live")
    assert run.returncode == 1, run.stdout + run.stderr
    status = results(out)["experiment"]["status"]
    assert status["phase"] == "Failed" and status["conditions"][0]["reason"] == "FirstTrialsFailed"
    assert len(results(out)["trials"]) == 3  # the rest of the budget is not spent on a broken setup
    assert "broken: Failed (FirstTrialsFailed" in run.stdout


def test_resume_refuses_a_changed_experiment_naming_the_change(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "again", ["python", "-c", "import sys; print('loss=' + sys.argv[1])",
                                                "${trialParameters.x}"], maxTrialCount=2)
    out = tmp_path / "out"
    assert dial("run", str(path), "--output", str(out), "--no-live").returncode == 0
    data = yaml.safe_load(path.read_text())
    data["spec"]["seed"] = 6
    data["spec"]["parameters"][0]["feasibleSpace"]["max"] = 3
    data["spec"]["maxTrialCount"] = 3  # a budget: may change
    path.write_text(yaml.safe_dump(data))
    refused = dial("run", str(path), "--output", str(out), "--no-live", "--resume")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "spec.seed: 5 -> 6" in refused.stderr and "spec.parameters[0].feasibleSpace.max: 2.0 -> 3.0" in refused.stderr
    assert "maxTrialCount" not in refused.stderr and "--allow-changes" in refused.stderr
    assert len(results(out)["trials"]) == 2
    allowed = dial("run", str(path), "--output", str(out), "--no-live", "--resume", "--allow-changes")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "spec.seed: 5 -> 6" in allowed.stderr and len(results(out)["trials"]) == 3
