"""`kubectl dial` and `dial report --experiment` against the local control plane.

The Experiment and Trial objects are those of a real local run (scikit-learn digits), created in
the cluster with their status through the API, so these tests do not depend on the operator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dial.api import Experiment, Trial
from dial.api.base import API_GROUP, API_VERSION
from dial.engine.plan import count
from dial.local.results import load_results
from dial.report import build_report_data
from dial.report.echarts_options import chart_specs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from chromium import chromium_available, render  # noqa: E402
from report_checks import assert_report_drew  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, list[Trial]]:
    output = tmp_path_factory.mktemp("digits") / "run"
    done = subprocess.run([sys.executable, "-m", "dial.cli", "run", str(REPO / "examples/sklearn-digits/experiment.yaml"),
                           "--output", str(output), "--no-live"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return load_results(output)


def create(cluster, namespace: str, plural: str, obj: Experiment | Trial) -> None:
    """Create the object, then set its status through the status subresource (as the operator would)."""
    body = obj.to_wire()
    status = body.pop("status")
    body["metadata"] = {k: v for k, v in body["metadata"].items() if k in ("name", "labels", "annotations")}
    cluster.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, plural, body)
    cluster.custom.patch_namespaced_custom_object_status(API_GROUP, API_VERSION, namespace, plural, obj.name,
                                                         {"status": status})


def upload(cluster, namespace: str, experiment: Experiment, trials: list[Trial]) -> None:
    create(cluster, namespace, "experiments", experiment)
    for t in trials:
        create(cluster, namespace, "trials", t)


def plugin(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`kubectl dial ...` through kubectl's own plugin lookup: `kubectl-dial` is found on PATH."""
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "160"}
    done = subprocess.run([cluster.state["dialkube"], "kubectl", "dial", *args], capture_output=True, text=True,
                          env=env, timeout=60)
    if check:
        assert done.returncode == 0, f"kubectl dial {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def running_copy(experiment: Experiment, trials: list[Trial], n_done: int) -> tuple[Experiment, list[Trial]]:
    """The run as it looked mid-way: `n_done` trials finished, the next one still running."""
    live = experiment.model_copy(deep=True)
    live.status.phase = live.status.phase.running
    live.status.completion_time = None
    kept = [t.model_copy(deep=True) for t in trials[: n_done + 1]]
    last = kept[-1].status
    last.phase, last.reason, last.completion_time, last.exit_code = last.phase.running, None, None, None
    live.status.trials = count(kept)
    live.status.trials_created, live.status.trials_done = len(kept), live.status.trials.done
    live.status.progress = f"{live.status.trials_done}/{live.spec.max_trial_count}"
    return live, kept


def test_list_and_status_of_an_experiment(cluster, namespace, digits_run) -> None:
    experiment, trials = digits_run
    live, kept = running_copy(experiment, trials, 6)
    upload(cluster, namespace, live, kept)
    listed = plugin(cluster, "list", "-n", namespace).stdout
    assert listed.split("\n")[0].split() == ["NAME", "PHASE", "PROGRESS", "RUNNING", "BEST", "ALGORITHM", "AGE"]
    assert listed.split("\n")[1].split()[:4] == ["sklearn-digits", "Running", "6/12", "1"]

    status = plugin(cluster, "status", "sklearn-digits", "-n", namespace).stdout
    best = max((t for t in kept[:6] if t.phase.value == "Succeeded"), key=lambda t: t.status.objective)
    assert f"Experiment sklearn-digits ({namespace})  Running" in status
    assert "6/12 done · 1 running" in status
    assert f"best: {best.name} accuracy={best.status.objective:.6g}" in status
    assert "budget: 7 of 12 trials started" in status
    assert "top 5 of 6 finished trials" in status
    running = status.split("1 running")[-1]
    assert kept[6].name in running and any(block in running for block in "▁▂▃▄▅▆▇█")


def test_suspend_resume_and_stop(cluster, namespace, digits_run) -> None:
    experiment, trials = digits_run
    live, kept = running_copy(experiment, trials, 4)
    upload(cluster, namespace, live, kept)

    def spec() -> dict:
        return cluster.custom.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "experiments",
                                                           "sklearn-digits")

    assert "suspended" in plugin(cluster, "suspend", "sklearn-digits", "-n", namespace).stdout
    assert spec()["spec"]["suspend"] is True
    plugin(cluster, "resume", "sklearn-digits", "-n", namespace)
    assert spec()["spec"]["suspend"] is False
    out = plugin(cluster, "stop", "sklearn-digits", "-n", namespace).stdout
    assert "maxTrialCount 12 -> 5" in out
    stopped = spec()
    assert stopped["spec"]["maxTrialCount"] == 5 and stopped["spec"]["suspend"] is False
    assert "maxTrialCount was 12" in stopped["metadata"]["annotations"]["dial.dev/stopped-by"]
    assert "it was stopped: maxTrialCount is 5" in plugin(cluster, "resume", "sklearn-digits", "-n", namespace).stdout


def test_unknown_experiment_is_a_clear_error(cluster, namespace) -> None:
    done = plugin(cluster, "status", "nope", "-n", namespace, check=False)
    assert done.returncode == 1
    assert f"cannot get experiment 'nope' in namespace '{namespace}': not found" in done.stderr


def test_logs_of_a_trial_come_from_its_training_container(cluster, namespace, digits_run) -> None:
    experiment, trials = digits_run
    upload(cluster, namespace, experiment, trials[:1])
    trial = trials[0]
    params = trial.spec.parameter_assignments
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": trial.name, "labels": {"dial.dev/experiment": experiment.name, "dial.dev/trial": trial.name}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {"dial.dev/experiment": experiment.name, "dial.dev/trial": trial.name}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "sidecar", "image": "dial-worker:0.1.0", "command": ["python", "-c", "print('not me')"]},
                {"name": "training", "image": "dial-worker:0.1.0",
                 "command": ["python", "-m", "dial.examples.sklearn_digits", "--C", str(params["C"]),
                             "--gamma", str(params["gamma"]), "--folds", "3"]},
            ]}}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(job))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", f"job/{trial.name}", "--timeout=120s",
                    timeout=130)
    logs = plugin(cluster, "logs", trial.name, "-n", namespace).stdout
    lines = logs.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["fold=1", "fold=2", "fold=3"], logs
    assert "not me" not in logs
    assert plugin(cluster, "logs", trial.name, "-n", namespace, "-c", "sidecar").stdout == "not me\n"
    assert plugin(cluster, "logs", trial.name, "-n", namespace, "--tail", "1").stdout.startswith("fold=3 ")


def test_logs_of_a_trial_without_a_pod_say_so(cluster, namespace, digits_run) -> None:
    experiment, trials = digits_run
    upload(cluster, namespace, experiment, trials[:1])
    done = plugin(cluster, "logs", trials[0].name, "-n", namespace, check=False)
    assert done.returncode == 1
    assert f"trial {trials[0].name} has no pod (phase {trials[0].phase.value}" in done.stderr


def test_report_of_a_cluster_experiment_matches_the_local_one(cluster, namespace, digits_run, tmp_path) -> None:
    experiment, trials = digits_run
    upload(cluster, namespace, experiment, trials)
    out = tmp_path / "cluster-report.html"
    done = subprocess.run([sys.executable, "-m", "dial.cli", "report", "--experiment", experiment.name, "-n", namespace,
                           "--kubeconfig", cluster.kubeconfig, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {out} ({len(trials)} trials)" in done.stdout
    from dial.kubectl.cluster import DialCluster

    remote = DialCluster(namespace=namespace, kubeconfig=cluster.kubeconfig)
    local_data = build_report_data(experiment, trials)
    remote_data = build_report_data(remote.experiment(experiment.name), remote.trials(experiment.name))
    assert remote_data.namespace == namespace
    assert remote_data.history_by_index == local_data.history_by_index
    assert remote_data.curves == local_data.curves
    assert remote_data.importance == local_data.importance
    assert [t.name for t in remote_data.top_trials] == [t.name for t in local_data.top_trials]
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed (hack/install-chromium.sh): page not opened")
    page = render(out, tmp_path / "cluster-report.png")
    assert_report_drew(page, experiment, trials, [s.id for s in chart_specs(remote_data)])


def test_report_of_a_missing_experiment_fails_clearly(cluster, namespace, tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "dial.cli", "report", "--experiment", "ghost", "-n", namespace,
                           "--kubeconfig", cluster.kubeconfig, "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert textwrap.shorten(done.stderr, 200).startswith(
        f"dial report: cannot get experiment 'ghost' in namespace '{namespace}': not found")
