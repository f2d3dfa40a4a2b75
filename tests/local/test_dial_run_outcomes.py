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


FAILING = "import sys; print('accuracy=0.5 step=1'); print('preparing'); print('CUDA out of memory', file=sys.stderr); sys.exit(4)"


def test_a_failed_trials_line_shows_exit_code_last_output_and_log(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "oom", ["python", "-c", FAILING, "${trialParameters.x}"],
                            maxTrialCount=1, parallelTrialCount=1)
    out = tmp_path / "out"
    run = dial("run", str(path), "--output", str(out), "--no-live")
    lines = run.stdout.splitlines()
    at = lines.index("failed oom-0000 (TrainingFailed: exit code 4)")
    assert lines[at + 1:at + 6] == ["  last 3 lines of output:", "  | accuracy=0.5 step=1", "  | preparing",
                                    "  | CUDA out of memory", f"  full log: {out}/trials/oom-0000/output.log"]


def test_exiting_0_without_the_objective_names_the_metrics_seen(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "quiet", ["python", "-c", FAILING.replace("exit(4)", "exit(0)"),
                                                "${trialParameters.x}"], maxTrialCount=1, parallelTrialCount=1)
    out = tmp_path / "out"
    run = dial("run", str(path), "--output", str(out), "--no-live")
    expected = ("training exited 0 without reporting loss (metrics seen: accuracy; 2 of 3 output lines held no metric)")
    assert f"metricsunavailable quiet-0000 (MetricsUnavailable: {expected})" in run.stdout
    assert results(out)["trials"][0]["status"]["message"].startswith(expected)


def test_a_relative_command_that_is_not_there_names_the_directory_searched(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "typo", ["./trian.sh", "${trialParameters.x}"], maxTrialCount=1,
                            parallelTrialCount=1)
    run = dial("run", str(path), "--output", str(tmp_path / "out"), "--no-live", cwd=tmp_path)
    assert run.returncode == 1
    assert (f"  | cannot start './trian.sh': no such file in {tmp_path.resolve()} (a relative command is looked up "
            "in the trial's working directory") in run.stdout
    missing = write_experiment(tmp_path, "nocmd", ["trian-dial-test", "${trialParameters.x}"], maxTrialCount=1,
                               parallelTrialCount=1)
    run = dial("run", str(missing), "--output", str(tmp_path / "out2"), "--no-live", cwd=tmp_path)
    assert "cannot start 'trian-dial-test': command not found on PATH (" in run.stdout
    assert f"the trial's working directory was {tmp_path.resolve()}" in run.stdout
