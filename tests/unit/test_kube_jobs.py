"""The Job the operator renders for a trial: template passed through, training wrapped, collector sidecar added."""

from __future__ import annotations

import json

from helpers import experiment, manifest

from dial.api import Experiment
from dial.kube.jobs import (
    COLLECTOR_CONTAINER, EXPERIMENT_LABEL, OUTPUT_DIR, OUTPUT_FILE, READY_FILE, TRAINING_WRAPPER, TRIAL_LABEL,
    CollectorSettings, kube_spec_errors, trial_job,
)

EXPERIMENT_OBJ = {"apiVersion": "dial.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "exp", "uid": "e-uid"}}


def stored_trial(name: str = "exp-0003", assignment: dict | None = None) -> dict:
    return {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial",
            "metadata": {"name": name, "namespace": "team", "uid": "t-uid"},
            "spec": {"experiment": "exp", "index": 3, "parameterAssignments": assignment or {"lr": 0.05, "layers": 3}}}


def pod_spec(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def test_job_is_named_labelled_and_owned_by_its_trial():
    job = trial_job(experiment(), stored_trial(), CollectorSettings())
    assert job["metadata"]["name"] == "exp-0003" and job["metadata"]["namespace"] == "team"
    assert job["metadata"]["labels"] == {EXPERIMENT_LABEL: "exp", TRIAL_LABEL: "exp-0003"}
    assert job["spec"]["template"]["metadata"]["labels"] == {EXPERIMENT_LABEL: "exp", TRIAL_LABEL: "exp-0003"}
    [owner] = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial", "name": "exp-0003", "uid": "t-uid",
                     "controller": True, "blockOwnerDeletion": True}


def test_stored_assignment_is_rendered_and_training_is_wrapped():
    job = trial_job(experiment(), stored_trial(assignment={"lr": 0.25, "layers": 2}), CollectorSettings())
    [training] = pod_spec(job)["containers"]
    assert training["command"][:4] == ["sh", "-c", TRAINING_WRAPPER, "dial-training"]
    assert training["command"][4:] == ["python", "train.py", "--lr=0.25", "--layers=2"]
    assert "args" not in training
    assert {"name": "DIAL_OUTPUT_FILE", "value": OUTPUT_FILE} in training["env"]
    assert {"name": "DIAL_COLLECTOR_READY", "value": READY_FILE} in training["env"]
    assert {"name": "dial-output", "mountPath": OUTPUT_DIR} in training["volumeMounts"]
    assert {"name": "dial-output", "emptyDir": {}} in pod_spec(job)["volumes"]


def test_collector_is_a_native_sidecar_reading_the_shared_output():
    settings = CollectorSettings(image="registry.example/dial:9", interval_seconds=0.5)
    job = trial_job(experiment(), stored_trial(), settings)
    collector = pod_spec(job)["initContainers"][0]
    assert collector["name"] == COLLECTOR_CONTAINER and collector["restartPolicy"] == "Always"
    assert collector["image"] == "registry.example/dial:9"
    args = collector["args"]
    flags = dict(zip(args[::2], args[1::2]))
    assert flags["--namespace"] == "team" and flags["--trial"] == "exp-0003"
    assert flags["--source"] == OUTPUT_FILE and flags["--format"] == "TEXT" and flags["--interval"] == "0.5"
    assert json.loads(flags["--objective"])["metricName"] == "loss"
    assert collector["volumeMounts"] == [{"name": "dial-output", "mountPath": OUTPUT_DIR}]
    assert pod_spec(job)["serviceAccountName"] == "dial-collector"


def test_pod_template_passes_through_untouched():
    data = manifest()
    pod = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["nodeSelector"] = {"accelerator": "a100"}
    pod["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod["serviceAccountName"] = "trainer"
    pod["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["true"]}]
    pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 2}}
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["ttlSecondsAfterFinished"] = 10
    job = trial_job(Experiment.model_validate(data), stored_trial(), CollectorSettings())
    spec = pod_spec(job)
    assert spec["nodeSelector"] == {"accelerator": "a100"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "trainer"  # the user's own account is kept
    assert [c["name"] for c in spec["initContainers"]] == [COLLECTOR_CONTAINER, "fetch"]
    assert spec["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert "ttlSecondsAfterFinished" not in job["spec"]  # the operator must see the Job end


def test_file_collector_shares_the_metrics_directory():
    exp = experiment(metricsCollector={"kind": "File", "format": "JSON", "path": "/out/${trialSpec.Name}.jsonl"})
    job = trial_job(exp, stored_trial(), CollectorSettings())
    spec = pod_spec(job)
    collector = spec["initContainers"][0]
    flags = dict(zip(collector["args"][::2], collector["args"][1::2]))
    assert flags["--source"] == "/out/exp-0003.jsonl" and flags["--format"] == "JSON"
    assert {"name": "dial-metrics", "mountPath": "/out"} in collector["volumeMounts"]
    assert {"name": "dial-metrics", "mountPath": "/out"} in spec["containers"][0]["volumeMounts"]


def test_file_collector_reuses_a_volume_the_training_mounts():
    data = manifest(metricsCollector={"kind": "File", "path": "/work/logs/metrics.txt"})
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "scratch", "mountPath": "/work"}]
    job = trial_job(Experiment.model_validate(data), stored_trial(), CollectorSettings())
    collector = pod_spec(job)["initContainers"][0]
    assert {"name": "scratch", "mountPath": "/work"} in collector["volumeMounts"]
    assert not [v for v in pod_spec(job)["volumes"] if v["name"] == "dial-metrics"]


def test_stdout_collector_needs_a_command_to_wrap():
    data = manifest()
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    del container["command"]
    [error] = kube_spec_errors(Experiment.model_validate(data))
    assert error.path.endswith("containers[training].command") and "StdOut" in error.message
    assert kube_spec_errors(experiment()) == []


def test_relative_metrics_path_without_working_dir_is_rejected():
    [error] = kube_spec_errors(experiment(metricsCollector={"kind": "File", "path": "metrics.txt"}))
    assert error.path == "spec.metricsCollector.path" and "relative" in error.message
