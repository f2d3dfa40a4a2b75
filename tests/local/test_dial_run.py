"""`dial run` end to end: real trial processes, real metrics, results on disk."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dial_cli import DIAL, ROOT, dial, example_spec, results, run_experiment


def write_experiment(tmp_path: Path, name: str, command: list[str], **spec: object) -> Path:
    data = {
        "apiVersion": "dial.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "metricName": "loss"},
            "parameters": [{"name": "x", "type": "double", "feasibleSpace": {"min": -2, "max": 2}}],
            "parallelTrialCount": 2, "maxTrialCount": 4, "seed": 5,
            "trialTemplate": {"trialSpec": {"spec": {"template": {"spec": {"containers": [
                {"name": "training", "image": "local", "command": command}]}}}}},
            **spec,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_peaks_bayesian_finds_the_minimum(tmp_path: Path, seed: int) -> None:
    out = tmp_path / "out"
    data = run_experiment(example_spec(tmp_path, "peaks", seed=seed), out)
    trials = data["trials"]
    assert len(trials) == 25 and all(t["status"]["phase"] == "Succeeded" for t in trials)
    assert len({tuple(t["spec"]["parameterAssignments"].values()) for t in trials}) == 25
    best = data["experiment"]["status"]["bestTrial"]
    assert "best trial" in data["stdout"] and best["name"] in data["stdout"]
    # The issue asks for best < -6.0 on most seeds: the summary test below checks "most".
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    with open(ROOT / ".pytest_cache" / "peaks-best.txt", "a") as f:
        f.write(f"{seed} {best['objective']}\n")
    csv_lines = (out / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 26 and csv_lines[0].startswith("trial,index,phase,reason,objective,x,y")


def test_peaks_best_below_minus_six_on_most_seeds() -> None:
    record = ROOT / ".pytest_cache" / "peaks-best.txt"
    if not record.exists():
        pytest.skip("runs after test_peaks_bayesian_finds_the_minimum")
    bests = {int(s): float(v) for s, v in (line.split() for line in record.read_text().splitlines())}
    record.unlink()
    assert len(bests) == 3
    assert sum(v < -6.0 for v in bests.values()) >= 2, bests


def test_sklearn_digits_with_medianstop(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = dial("run", "examples/sklearn-digits/experiment.yaml", "--output", str(out), "--no-live")
    assert run.returncode == 0, run.stdout + run.stderr
    trials = results(out)["trials"]
    phases = [t["status"]["phase"] for t in trials]
    assert len(trials) == 12 and set(phases) <= {"Succeeded", "EarlyStopped"}
    stopped = [t for t in trials if t["status"]["phase"] == "EarlyStopped"]
    assert stopped and all(t["status"]["reason"] == "medianstop" for t in stopped)
    for t in stopped:
        curve = next(o for o in t["status"]["observations"] if o["name"] == "accuracy")["curve"]
        assert 1 <= len(curve) < 5  # cut before the last fold
    best = results(out)["experiment"]["status"]["bestObjective"]
    assert best > 0.95
    assert (out / "trials" / trials[0]["metadata"]["name"] / "output.log").read_text().startswith("fold=1 ")


CRASH = ("import numpy as np, sys; x = float(sys.argv[1]); print(f'loss={x * x:.4f}', flush=True); "
         "np.linalg.cholesky(-np.eye(2)) if x > 0 else None; print(f'loss={x * x / 2:.4f}')")


def test_crashing_trials_are_failed_with_exit_code_and_output_tail(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "crashy", ["python", "-c", CRASH, "${trialParameters.x}"],
                            maxTrialCount=6, maxFailedTrialCount=1)
    out = tmp_path / "out"
    run = dial("run", str(path), "--output", str(out), "--no-live")
    data = results(out)
    failed = [t for t in data["trials"] if t["status"]["phase"] == "Failed"]
    assert failed, data
    for t in failed:
        assert t["status"]["exitCode"] == 1 and "LinAlgError" in t["status"]["message"]
        assert next(o for o in t["status"]["observations"] if o["name"] == "loss")["nPoints"] == 1
    if len(failed) > 1:
        assert run.returncode == 1
        assert data["experiment"]["status"]["phase"] == "Failed"
        assert data["experiment"]["status"]["conditions"][0]["reason"] == "MaxFailedTrialCountReached"
        assert "MaxFailedTrialCountReached" in run.stdout


def test_nan_objective_and_garbage_output(tmp_path: Path) -> None:
    program = ("import sys, math; x = float(sys.argv[1]); print('garbage \\x00 loss=oops ===', flush=True); "
               "print('loss=nan' if x > 0 else f'loss={math.cos(x):.5f}', flush=True)")
    path = write_experiment(tmp_path, "nan", ["python", "-c", program, "${trialParameters.x}"], maxTrialCount=6)
    out = tmp_path / "out"
    dial("run", str(path), "--output", str(out), "--no-live")
    trials = results(out)["trials"]
    for t in trials:
        x = t["spec"]["parameterAssignments"]["x"]
        if x > 0:
            assert t["status"]["phase"] == "Failed" and t["status"]["reason"] == "ObjectiveNotFinite", t
        else:
            assert t["status"]["phase"] == "Succeeded", t
    assert {t["spec"]["parameterAssignments"]["x"] > 0 for t in trials} == {True, False}


def test_json_metrics_file_collector(tmp_path: Path) -> None:
    program = ("import json, sys; x = float(sys.argv[1]); f = open(sys.argv[2], 'w'); "
               "[f.write(json.dumps({'step': s, 'loss': (x - 1) ** 2 + 1 / s}) + '\\n') for s in range(1, 4)]; f.close()")
    path = write_experiment(tmp_path, "filemetrics",
                            ["python", "-c", program, "${trialParameters.x}", "metrics-${trialSpec.Name}.jsonl"],
                            metricsCollector={"kind": "File", "format": "JSON", "path": "metrics-${trialSpec.Name}.jsonl"})
    out = tmp_path / "out"
    run = dial("run", str(path), "--output", str(out), "--no-live", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for t in results(out)["trials"]:
        obs = next(o for o in t["status"]["observations"] if o["name"] == "loss")
        assert [p["step"] for p in obs["curve"]] == [1, 2, 3]
        x = t["spec"]["parameterAssignments"]["x"]
        assert t["status"]["objective"] == pytest.approx((x - 1) ** 2 + 1 / 3)


SLOW = ("import sys, time, numpy as np; x = float(sys.argv[1]); rng = np.random.default_rng(0)\n"
        "for step in range(1, 400):\n"
        "    a = rng.standard_normal((60, 60)); np.linalg.svd(a)\n"
        "    print(f'step={step} loss={x * x + 1 / step:.6f}', flush=True); time.sleep(0.02)\n")


def test_ctrl_c_keeps_observations_and_resume_skips_finished_trials(tmp_path: Path) -> None:
    quick = write_experiment(tmp_path, "resumable", ["python", "-c", SLOW, "${trialParameters.x}"], maxTrialCount=4)
    out = tmp_path / "out"
    proc = subprocess.Popen([*DIAL, "run", str(quick), "--output", str(out), "--no-live", "--grace-period", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (out / "results.json").exists() and any(
                o["nPoints"] >= 5 for t in results(out)["trials"] for o in t["status"]["observations"]):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "--resume" in stderr
    first = results(out)
    interrupted = [t for t in first["trials"] if t["status"]["reason"] == "Interrupted"]
    assert interrupted and all(t["status"]["phase"] == "EarlyStopped" for t in interrupted)
    assert all(next(o for o in t["status"]["observations"])["nPoints"] >= 1 for t in interrupted)
    assert first["experiment"]["status"]["phase"] == "Suspended"
    # No trial process survives the runner.
    names = [t["metadata"]["name"] for t in first["trials"]]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert SLOW.splitlines()[0][:30] not in ps

    resumed = dial("run", str(quick), "--output", str(out), "--no-live", "--resume", timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = results(out)["trials"]
    assert [t["metadata"]["name"] for t in final[: len(names)]] == names
    assert final[: len(names)] == first["trials"]  # nothing observed before is lost or re-run
    counted = [t for t in final if t["status"]["reason"] != "Interrupted"]
    assert len(counted) == 4 and all(t["status"]["phase"] == "Succeeded" for t in counted)


def test_existing_results_are_not_overwritten(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "once", ["python", "-c", "print('loss=1')", "${trialParameters.x}"], maxTrialCount=1)
    out = tmp_path / "out"
    assert dial("run", str(path), "--output", str(out), "--no-live").returncode == 0
    again = dial("run", str(path), "--output", str(out), "--no-live")
    assert again.returncode == 2 and "already holds results" in again.stderr
