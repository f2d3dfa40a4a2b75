"""Katib's examples, apiVersion changed and the training pointed at a bundled example (Katib's images are not
here), run to the end with `dial run`: the Katib form is what runs, not a translation of it."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import yaml

from dial_cli import ROOT, dial, results

KATIB = ROOT / "tests" / "data" / "katib"
# Gradient descent on least squares, a few epochs: prints `epoch=N loss=V`, and JSON lines with --metrics-file.
DESCENT = ["python", "-m", "dial.examples.descent", "--lr=${trialParameters.learningRate}", "--epochs=4",
           "--steps-per-epoch=20", "--samples=400", "--features=20"]


def katib_with_descent(relative: str, tmp_path: Path, *, extra: list[str] = (), **spec: Any) -> Path:  # type: ignore[assignment]
    data = yaml.safe_load((KATIB / relative).read_text())
    assert data["apiVersion"] == "kubeflow.org/v1beta1"
    data["apiVersion"] = "dial.dev/v1alpha1"
    [container] = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    container.pop("image")
    # The momentum placeholder stays in use (descent has no momentum), so every parameter reaches the trial.
    container["command"] = [*DESCENT, *extra]
    container["env"] = [{"name": "MOMENTUM", "value": "${trialParameters.momentum}"}]
    data["spec"].update(spec)
    path = tmp_path / Path(relative).name
    path.write_text(yaml.safe_dump(data))
    return path


def test_katibs_random_example_runs_with_only_the_training_replaced(tmp_path: Path) -> None:
    path = katib_with_descent("hp-tuning/random.yaml", tmp_path, maxTrialCount=4, parallelTrialCount=2)
    done = dial("run", str(path), "--output", str(tmp_path / "out"), "--no-live")
    assert done.returncode == 0, done.stdout + done.stderr
    data = results(tmp_path / "out")
    assert data["experiment"]["status"]["phase"] == "Succeeded"
    trials = data["trials"]
    assert len(trials) == 4 and all(t["status"]["phase"] == "Succeeded" for t in trials)
    for trial in trials:
        lr = trial["spec"]["parameterAssignments"]["lr"]
        assert 0.01 <= lr <= 0.05 and trial["status"]["objective"] is not None


def test_katibs_median_stop_example_runs_its_rule(tmp_path: Path) -> None:
    path = katib_with_descent("early-stopping/median-stop.yaml", tmp_path, maxTrialCount=4, parallelTrialCount=1)
    done = dial("run", str(path), "--output", str(tmp_path / "out"), "--no-live")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: spec.trialTemplate.retain: has no effect in Dial" in done.stderr
    data = results(tmp_path / "out")
    assert data["experiment"]["spec"]["earlyStopping"] == {"name": "medianstop",
                                                          "settings": {"min_trials_required": 1, "start_step": 2}}
    assert {t["status"]["phase"] for t in data["trials"]} <= {"Succeeded", "EarlyStopped"}


def test_katibs_json_file_collector_example_reads_the_metrics_file(tmp_path: Path) -> None:
    path = katib_with_descent("metrics-collector/file-metrics-collector-with-json-format.yaml", tmp_path,
                              extra=["--metrics-file=metrics.jsonl"], maxTrialCount=2, parallelTrialCount=1)
    data = yaml.safe_load(path.read_text())
    # Katib's file is /katib/mnist.json inside the pod; on a laptop it is relative to the run's directory.
    data["spec"]["metricsCollectorSpec"]["source"]["fileSystemPath"]["path"] = "metrics.jsonl"
    data["spec"]["objective"].update(objectiveMetricName="loss", type="minimize", additionalMetricNames=[])
    data["spec"]["objective"].pop("goal")
    path.write_text(yaml.safe_dump(data))
    done = dial("run", str(path), "--output", str(tmp_path / "out"), "--no-live", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = results(tmp_path / "out")["trials"]
    assert len(trials) == 2 and all(t["status"]["objective"] is not None for t in trials)


def with_katib_mnist(relative: str, tmp_path: Path, log_path: str | None = None, **spec: Any) -> Path:
    """Katib's file with its pytorch-mnist training replaced by dial.examples.katib_mnist (same flags, same
    log lines) and, on a laptop, its pod path for the metrics file made relative to the run's directory."""
    text = (KATIB / relative).read_text().replace("apiVersion: kubeflow.org/v1beta1\nkind: Experiment",
                                                   "apiVersion: dial.dev/v1alpha1\nkind: Experiment")
    data = yaml.safe_load(text)
    [container] = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    container.pop("image")
    container["command"] = ["python", "-m", "dial.examples.katib_mnist",
                            *[a for a in container["command"][2:] if not a.startswith("--log-path")],
                            *([f"--log-path={log_path}"] if log_path else [])]
    if log_path:
        data["spec"]["metricsCollectorSpec"]["source"]["fileSystemPath"]["path"] = log_path
    data["spec"].update(spec)
    path = tmp_path / Path(relative).name
    path.write_text(yaml.safe_dump(data))
    return path


def test_katibs_file_collector_example_with_its_regular_expression(tmp_path: Path) -> None:
    # Trials share the run's directory on a laptop: each writes its own file (Katib's ${trialSpec.Name}).
    path = with_katib_mnist("metrics-collector/file-metrics-collector.yaml", tmp_path,
                            log_path="mnist-${trialSpec.Name}.log", maxTrialCount=2, parallelTrialCount=2)
    done = dial("run", str(path), "--output", str(tmp_path / "out"), "--no-live", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = results(tmp_path / "out")["trials"]
    assert len(trials) == 2
    for trial in trials:
        # `{metricName: accuracy, metricValue: 0.8844}` lines, one per epoch, read with Katib's filter.
        accuracy = next(o for o in trial["status"]["observations"] if o["name"] == "accuracy")
        assert accuracy["nPoints"] == 1 and 0 < trial["status"]["objective"] <= 1


def katib_pbt_on_the_bundled_program(tmp_path: Path, *, settings: dict[str, str] | None = None, **spec: Any) -> Path:
    """Katib's simple-pbt with its pbt_test.py replaced by dial.examples.katib_pbt (same flags, file and lines)."""
    data = yaml.safe_load((KATIB / "hp-tuning/simple-pbt.yaml").read_text())
    data["apiVersion"] = "dial.dev/v1alpha1"
    [container] = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python3", "/opt/pbt/pbt_test.py"], container["command"]
    container.pop("image")
    container["command"] = ["python", "-m", "dial.examples.katib_pbt", *container["command"][2:]]
    settings = dict(settings or {})
    for entry in data["spec"]["algorithm"]["algorithmSettings"]:
        entry["value"] = settings.pop(entry["name"], entry["value"])
    assert not settings, settings
    data["spec"].update(spec)
    path = tmp_path / "simple-pbt.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def checkpoint_step(out: Path, trial: str) -> int:
    with (out / "checkpoints" / trial / "training.ckpt").open("rb") as f:
        return pickle.load(f)["step"]


def test_katibs_pbt_example_keeps_each_trials_checkpoint_in_its_own_directory(tmp_path: Path) -> None:
    katib_dir = Path("/var/log/katib/checkpoints/training.ckpt")
    there_before = katib_dir.exists()
    out = tmp_path / "out"
    done = dial("run", str(katib_pbt_on_the_bundled_program(tmp_path)), "--output", str(out), "--no-live")
    assert done.returncode == 0, done.stdout + done.stderr
    data = results(out)
    assert data["experiment"]["status"]["phase"] == "Succeeded"
    trials = data["trials"]
    assert [t["status"]["phase"] for t in trials] == ["Succeeded"] * 2  # maxTrialCount 2 of n_population 40
    for trial in trials:
        name = trial["metadata"]["name"]
        assert trial["status"]["objective"] is not None
        # --checkpoint=/var/log/katib/checkpoints/ became the trial's own directory under the output.
        assert checkpoint_step(out, name) == 21
        assert (out / "trials" / name / "output.log").read_text().startswith("epoch 21:\n")
    assert katib_dir.exists() == there_before


def test_katibs_pbt_example_with_a_small_population_resumes_the_parents_checkpoints(tmp_path: Path) -> None:
    # Katib's smallest population (5) and two generations, so that generation 1 continues generation 0.
    path = katib_pbt_on_the_bundled_program(tmp_path, settings={"n_population": "5"}, maxTrialCount=10)
    out = tmp_path / "out"
    done = dial("run", str(path), "--output", str(out), "--no-live")
    assert done.returncode == 0, done.stdout + done.stderr
    trials = results(out)["trials"]
    assert [t["status"]["phase"] for t in trials] == ["Succeeded"] * 10
    for trial in trials:
        name, parent = trial["metadata"]["name"], trial["spec"].get("parentTrial")
        assert checkpoint_step(out, name) == (21 if parent is None else 41), (name, parent)
        if parent is not None:
            assert (out / "trials" / name / "output.log").read_text().startswith("epoch 41:\n")
    assert sum(t["spec"].get("parentTrial") is not None for t in trials) == 5
