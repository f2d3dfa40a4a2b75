"""Trials of other kinds than Job (Katib's examples): the collector goes into the primary pods, wherever the kind
keeps its pod templates; success and failure follow the GJSON conditions; Katib's metadata and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dial.api import Experiment
from dial.engine import load_experiment, render_job_spec
from dial.engine.workloads import UnknownWorkload, pod_slots, workload_outcome
from dial.kube.jobs import (
    CHECKPOINT_COPIER, COLLECTOR_CONTAINER, EXPERIMENT_LABEL, TRAINING_WRAPPER, TRIAL_LABEL, CollectorSettings,
    kube_spec_errors, trial_job, trial_workload,
)

KATIB = Path(__file__).resolve().parents[1] / "data" / "katib"


def katib(relative: str, **spec_changes: Any) -> Experiment:
    data = yaml.safe_load((KATIB / relative).read_text())
    data["apiVersion"] = "dial.dev/v1alpha1"
    data["spec"].update(spec_changes)
    return load_experiment(yaml.safe_dump(data), relative)


def stored_trial(experiment: Experiment, name: str = "t-0002", parent: str | None = None) -> dict[str, Any]:
    assignment = {p.name: (p.feasible_space.list[0] if p.feasible_space.min is None else
                           int(p.feasible_space.min) if p.type.value == "int" else p.feasible_space.min)
                  for p in experiment.spec.parameters}
    spec: dict[str, Any] = {"experiment": experiment.name, "index": 2, "parameterAssignments": assignment}
    if parent:
        spec["parentTrial"] = parent
    return {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial",
            "metadata": {"name": name, "namespace": "team", "uid": "t-uid"}, "spec": spec}


def names(containers: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in containers]


def test_pytorchjob_gets_the_collector_in_the_master_pod_only() -> None:
    experiment = katib("kubeflow-training-operator/pytorchjob-mnist.yaml")
    job = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"], job["metadata"]["namespace"]) == (
        "kubeflow.org/v1", "PyTorchJob", "t-0002", "team")
    assert job["metadata"]["labels"] == {EXPERIMENT_LABEL: experiment.name, TRIAL_LABEL: "t-0002"}
    assert job["metadata"]["ownerReferences"][0]["name"] == "t-0002"
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    # Katib's default primary pods of a training job: training.kubeflow.org/job-role=master.
    assert names(master["spec"]["initContainers"]) == [COLLECTOR_CONTAINER]
    assert master["metadata"]["labels"] == {EXPERIMENT_LABEL: experiment.name, TRIAL_LABEL: "t-0002"}
    [training] = master["spec"]["containers"]
    assert training["command"][:4] == ["sh", "-c", TRAINING_WRAPPER, "dial-training"]
    assert "--lr=0.01" in training["command"] and "--momentum=0.5" in training["command"]
    assert not worker["spec"].get("initContainers")
    [plain] = worker["spec"]["containers"]
    assert plain["command"][0] == "python3" and "--lr=0.01" in plain["command"]  # substituted, not wrapped


def test_tfjob_gets_the_collector_in_the_worker_pods_its_primary_pod_labels_pick() -> None:
    experiment = katib("kubeflow-training-operator/tfjob-mnist-with-summaries.yaml")
    job = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    [collector] = worker["initContainers"]
    assert collector["name"] == COLLECTOR_CONTAINER and collector["restartPolicy"] == "Always"
    args = collector["args"]
    assert args[args.index("--format") + 1] == "TensorFlowEvent"
    assert args[args.index("--source") + 1] == "/mnist-with-summaries-logs/test"
    [training] = worker["containers"]
    assert training["name"] == "tensorflow"
    # The event directory is shared between the training and the collector.
    mount = next(m for m in training["volumeMounts"] if m["mountPath"] == "/mnist-with-summaries-logs/test")
    assert mount in collector["volumeMounts"]
    assert "--learning-rate=0.01" in training["command"] and "--batch-size=32" in training["command"]


def test_mpijob_gets_the_collector_in_the_launcher() -> None:
    experiment = katib("kubeflow-training-operator/mpijob-horovod.yaml")
    job = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    launcher = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    assert names(launcher["initContainers"]) == [COLLECTOR_CONTAINER]
    assert not job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"].get("initContainers")
    assert launcher["containers"][0]["command"][4:6] == ["mpirun", "-np"]


def test_xgboostjob_collector_reads_katibs_regular_expressions() -> None:
    experiment = katib("kubeflow-training-operator/xgboostjob-lightgbm.yaml")
    job = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    master = job["spec"]["xgbReplicaSpecs"]["Master"]["template"]["spec"]
    [collector] = master["initContainers"]
    args = collector["args"]
    assert args[args.index("--metrics-format") + 1] == "(\\w+\\s\\w+)\\s:\\s((-?\\d+)(\\.\\d+)?)"
    # An image's entrypoint with only args: args are kept, wrapped as the command (the StdOut collector needs it).
    assert master["containers"][0]["command"][4] == "--job_type=Train"


def test_argo_workflow_gets_the_collector_in_the_labelled_template() -> None:
    experiment = katib("argo/argo-workflow.yaml")
    workflow = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    preprocessing, training = workflow["spec"]["templates"][1], workflow["spec"]["templates"][2]
    assert not preprocessing.get("initContainers")
    assert names(training["initContainers"]) == [COLLECTOR_CONTAINER]
    assert training["metadata"]["labels"][TRIAL_LABEL] == "t-0002"
    assert training["container"]["command"][:4] == ["sh", "-c", TRAINING_WRAPPER, "dial-training"]
    assert "--lr=0.01" in training["container"]["command"]
    # Argo's own placeholders are left to Argo.
    assert "--epochs={{inputs.parameters.epochs}}" in training["container"]["command"]


def test_tekton_pipeline_run_gets_an_ordinary_sidecar_in_the_labelled_task() -> None:
    experiment = katib("tekton/pipeline-run.yaml")
    run = trial_workload(experiment, stored_trial(experiment), CollectorSettings())
    tasks = run["spec"]["pipelineSpec"]["tasks"]
    assert not tasks[0]["taskSpec"].get("sidecars")
    [collector] = tasks[1]["taskSpec"]["sidecars"]
    assert collector["name"] == COLLECTOR_CONTAINER and "restartPolicy" not in collector
    [step] = tasks[1]["taskSpec"]["steps"]
    assert step["command"][:4] == ["sh", "-c", TRAINING_WRAPPER, "dial-training"]
    assert {"name": "dial-output", "emptyDir": {}} in tasks[1]["taskSpec"]["volumes"]


def test_a_trainjob_validates_but_has_no_place_for_the_collector() -> None:
    experiment = katib("kubeflow-trainer/trainjob-pytorch.yaml")
    with pytest.raises(ValueError, match="TrainJob: spec.trainer has no place for another container"):
        trial_workload(experiment, stored_trial(experiment), CollectorSettings())


def test_the_operator_refuses_to_run_other_kinds_yet_naming_the_kind() -> None:
    [error] = kube_spec_errors(katib("kubeflow-training-operator/pytorchjob-mnist.yaml"))
    assert error.path == "spec.trialTemplate.trialSpec"
    assert "a PyTorchJob trial validates and renders, but is not run on the cluster yet" in error.message


def test_unknown_kinds_have_no_pod_slots() -> None:
    with pytest.raises(UnknownWorkload, match="Dial does not know where a RayJob"):
        pod_slots({"apiVersion": "ray.io/v1", "kind": "RayJob", "spec": {}})


@pytest.mark.parametrize(("relative", "status", "expected"), [
    ("kubeflow-training-operator/mpijob-horovod.yaml",
     {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True", "reason": "MPIJobSucceeded"}]},
     (True, "MPIJobSucceeded")),
    ("kubeflow-training-operator/mpijob-horovod.yaml",
     {"conditions": [{"type": "Failed", "status": "True", "reason": "MPIJobFailed", "message": "launcher exited 1"}]},
     (False, "MPIJobFailed")),
    ("kubeflow-training-operator/mpijob-horovod.yaml", {"conditions": [{"type": "Running", "status": "True"}]}, None),
    ("argo/argo-workflow.yaml", {"phase": "Succeeded"}, (True, "WorkloadSucceeded")),
    ("argo/argo-workflow.yaml", {"phase": "Running"}, None),
    ("tekton/pipeline-run.yaml", {"conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]},
     (False, "Failed")),
    # No conditions in the template: Katib's defaults for the kind.
    ("kubeflow-training-operator/pytorchjob-mnist.yaml",
     {"conditions": [{"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"}]}, (True, "PyTorchJobSucceeded")),
    ("hp-tuning/random.yaml", {"conditions": [{"type": "Complete", "status": "True"}]}, (True, "WorkloadSucceeded")),
])
def test_success_and_failure_follow_the_conditions(relative: str, status: dict[str, Any], expected: Any) -> None:
    template = katib(relative).spec.trial_template
    outcome = workload_outcome({**template.manifest, "status": status}, template.success_condition,
                               template.failure_condition)
    assert (None if outcome is None else (outcome.succeeded, outcome.reason)) == expected


def test_failure_is_read_before_success() -> None:
    template = katib("kubeflow-training-operator/mpijob-horovod.yaml").spec.trial_template
    both = {"conditions": [{"type": "Succeeded", "status": "True"}, {"type": "Failed", "status": "True", "message": "m"}]}
    outcome = workload_outcome({"status": both}, template.success_condition, template.failure_condition)
    assert outcome is not None and not outcome.succeeded and outcome.message == "m"


def test_trial_metadata_substitutions() -> None:
    experiment = katib("trial-template/trial-metadata-substitution.yaml")
    spec = render_job_spec(experiment, "trial-metadata-substitution-0004", {"lr": 0.02, "momentum": 0.6})
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env == {"TRIAL_NAME": "trial-metadata-substitution-0004", "TRIAL_NAMESPACE": "kubeflow",
                   "TRIAL_KIND": "Job", "TRIAL_API_VERSION": "batch/v1", "TRIAL_LABEL_CUSTOM": "custom-label",
                   "TRIAL_ANNOTATION_CUSTOM": "custom-annotation"}


def test_katib_pbt_mounts_each_trials_own_checkpoint_directory_prefilled_by_its_parent() -> None:
    data = yaml.safe_load((KATIB / "hp-tuning/simple-pbt.yaml").read_text())
    data["apiVersion"] = "dial.dev/v1alpha1"
    data["spec"]["algorithm"]["algorithmSettings"].append({"name": "checkpoint_claim_name", "value": "pbt"})
    experiment = load_experiment(yaml.safe_dump(data))
    assert kube_spec_errors(experiment) == []
    job = trial_job(experiment, stored_trial(experiment, "simple-pbt-0041", parent="simple-pbt-0001"), CollectorSettings())
    pod = job["spec"]["template"]["spec"]
    collector, copier = pod["initContainers"]
    assert (collector["name"], copier["name"]) == (COLLECTOR_CONTAINER, CHECKPOINT_COPIER)
    assert copier["command"][-2:] == ["/var/lib/dial/all-checkpoints/simple-pbt-0041",
                                      "/var/lib/dial/all-checkpoints/simple-pbt-0001"]
    [training] = pod["containers"]
    assert {"name": "dial-checkpoints", "mountPath": "/var/log/katib/checkpoints", "subPath": "simple-pbt-0041"} \
        in training["volumeMounts"]
    assert {"name": "dial-checkpoints", "persistentVolumeClaim": {"claimName": "pbt"}} in pod["volumes"]


def test_katib_pbt_without_a_claim_mounts_the_one_the_operator_creates_as_katib_does() -> None:
    experiment = katib("hp-tuning/simple-pbt.yaml")
    assert kube_spec_errors(experiment) == []
    pod = trial_job(experiment, stored_trial(experiment, "simple-pbt-0003"), CollectorSettings())["spec"]["template"]["spec"]
    assert {"name": "dial-checkpoints", "persistentVolumeClaim": {"claimName": "simple-pbt-pbt"}} in pod["volumes"]


CONFIG_MAP_TEMPLATE = """
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: training-container
          image: docker.io/kubeflowkatib/mxnet-mnist:latest
          command:
            - "python3"
            - "/opt/mxnet-mnist/mnist.py"
            - "--lr=${trialParameters.learningRate}"
            - "--num-layers=${trialParameters.numberLayers}"
            - "--optimizer=${trialParameters.optimizer}"
      restartPolicy: Never
"""


def config_map_experiment() -> dict[str, Any]:
    data = yaml.safe_load((KATIB / "trial-template/trial-configmap-source.yaml").read_text())
    data["apiVersion"] = "dial.dev/v1alpha1"
    return data


def test_the_operator_reads_the_template_from_its_config_map() -> None:
    from dial.kube.spec import read_experiment

    asked: list[tuple[str, str]] = []

    def config_maps(namespace: str, name: str) -> dict[str, Any] | None:
        asked.append((namespace, name))
        return {"data": {"defaultTrialTemplate.yaml": CONFIG_MAP_TEMPLATE}}

    experiment, errors = read_experiment(config_map_experiment(), config_maps)
    assert errors == [] and asked == [("kubeflow", "trial-templates")]
    assert experiment is not None
    job = trial_job(experiment, stored_trial(experiment), CollectorSettings())
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[4:] == ["python3", "/opt/mxnet-mnist/mnist.py", "--lr=0.01", "--num-layers=2", "--optimizer=sgd"]


@pytest.mark.parametrize(("config_map", "expected"), [
    (None, "spec.trialTemplate.configMap: ConfigMap kubeflow/trial-templates does not exist"),
    ({"data": {"other.yaml": "{}"}}, "spec.trialTemplate.configMap.templatePath: ConfigMap kubeflow/trial-templates "
                                     "has no key 'defaultTrialTemplate.yaml' (keys: other.yaml)"),
    ({"data": {"defaultTrialTemplate.yaml": "- a list"}},
     "spec.trialTemplate.configMap.templatePath: ConfigMap kubeflow/trial-templates defaultTrialTemplate.yaml: "
     "expected a workload manifest, got list"),
])
def test_a_config_map_template_that_cannot_be_read_says_why(config_map: Any, expected: str) -> None:
    from dial.kube.spec import read_experiment

    experiment, errors = read_experiment(config_map_experiment(), lambda namespace, name: config_map)
    assert experiment is None and [str(e) for e in errors] == [expected]


def test_a_config_map_template_is_checked_once_read() -> None:
    from dial.kube.spec import read_experiment

    broken = CONFIG_MAP_TEMPLATE.replace("name: training-container", "name: trainer")
    experiment, errors = read_experiment(config_map_experiment(),
                                         lambda namespace, name: {"data": {"defaultTrialTemplate.yaml": broken}})
    assert experiment is not None
    assert [str(e) for e in errors] == ["spec.trialTemplate.primaryContainerName: no container named "
                                        "'training-container' in trialSpec (has 'trainer')"]


class EventRecorder:
    """Only what Reconciler._warn calls of the Kubernetes client."""

    cache = None  # read by Reconciler.__init__: no watch-fed cache

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def post_event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message, warning))


def test_the_operator_posts_the_warnings_as_events() -> None:
    from dial.kube.reconcile import Reconciler

    recorder = EventRecorder()
    experiment = katib("resume-experiment/long-running-resume.yaml")
    Reconciler(recorder, CollectorSettings())._warn({"metadata": {"name": experiment.name}}, experiment)  # type: ignore[arg-type]
    [(reason, message, warning)] = recorder.events
    assert (reason, warning) == ("SpecWarning", True)
    assert message.startswith("spec.resumePolicy: LongRunning has no effect in Dial")
