"""Where each kind of trial workload keeps its pods: one small interface over Job, the Kubeflow training
jobs, TrainJob, Argo Workflows and Tekton PipelineRuns (Kueue's "pod sets", for templates).

A `PodSlot` is one place in a workload manifest that pods are made from: the labels its pods get, its
containers as the pod will name them, and where a sidecar and a volume go. The collector is added to
the slots that `primaryPodLabels` picks, next to the container `primaryContainerName` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dial.api import gjson

JOB_KIND = ("batch/v1", "Job")
# Kubeflow training operator kinds: spec.<prefix>ReplicaSpecs.<Role>.template is a pod template, and the
# operator labels the pods with the role (lower case).
REPLICA_SPECS = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs", "MPIJob": "mpiReplicaSpecs",
                 "XGBoostJob": "xgbReplicaSpecs", "PaddleJob": "paddleReplicaSpecs", "JAXJob": "jaxReplicaSpecs",
                 "MXJob": "mxReplicaSpecs"}
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"
TEKTON_TASK_LABEL = "tekton.dev/pipelineTask"
TRAINJOB_NODE = "node"  # the trainer's container and replicated job in Kubeflow Trainer's runtimes
# The roles whose pods the training operator labels job-role=master (Katib's default primary pods).
MASTER_ROLES = ("master", "chief", "launcher")
# Katib's defaults when the template gives no primaryPodLabels, successCondition or failureCondition.
DEFAULT_PRIMARY_POD_LABELS = {"kubeflow": {JOB_ROLE_LABEL: "master"},
                              "TrainJob": {"jobset.sigs.k8s.io/replicatedjob-name": TRAINJOB_NODE,
                                           "batch.kubernetes.io/job-completion-index": "0"}}
DEFAULT_CONDITIONS = {
    "Job": ('status.conditions.#(type=="Complete")#|#(status=="True")#',
            'status.conditions.#(type=="Failed")#|#(status=="True")#'),
    "kubeflow": ('status.conditions.#(type=="Succeeded")#|#(status=="True")#',
                 'status.conditions.#(type=="Failed")#|#(status=="True")#'),
    "TrainJob": ('status.conditions.#(type=="Complete")#|#(status=="True")#',
                 'status.conditions.#(type=="Failed")#|#(status=="True")#'),
}


@dataclass
class PodSlot:
    """One pod template (or what stands for one) inside a workload manifest; the lists are the manifest's own."""

    path: str  # where it is, for messages: spec.pytorchReplicaSpecs.Master.template
    labels: dict[str, str]
    containers: list[dict[str, Any]]
    sidecars: list[dict[str, Any]] | None  # where the collector goes; None: the kind has no place for it
    volumes: list[dict[str, Any]]
    container_name: Callable[[dict[str, Any]], str] = field(default=lambda c: str(c.get("name", "")))
    # False where the collector must be an ordinary container (Tekton sidecars), not a native sidecar.
    native_sidecar: bool = True
    pod_metadata: dict[str, Any] | None = None  # where the trial's labels go

    def container(self, name: str | None) -> dict[str, Any] | None:
        """The container the pod will call `name` (the first when no name is given)."""
        if name is None:
            return self.containers[0] if self.containers else None
        return next((c for c in self.containers if self.container_name(c) == name), None)

    def names(self) -> list[str]:
        return [self.container_name(c) for c in self.containers]


class UnknownWorkload(ValueError):
    """A trial spec whose kind has no pod template Dial can find."""


def kind_of(manifest: dict[str, Any]) -> tuple[str, str]:
    """(apiVersion, kind); a bare Job spec (with `template`) is a Job."""
    if "template" in manifest and "kind" not in manifest:
        return JOB_KIND
    return str(manifest.get("apiVersion", "batch/v1")), str(manifest.get("kind", "Job"))


def pod_slots(manifest: dict[str, Any]) -> list[PodSlot]:
    """Every pod template of the workload, in order; UnknownWorkload names a kind without any."""
    api_version, kind = kind_of(manifest)
    spec = manifest if "template" in manifest and "kind" not in manifest else manifest.get("spec")
    if not isinstance(spec, dict):
        raise UnknownWorkload(f"{kind} ({api_version}) has no spec")
    if (api_version, kind) == JOB_KIND:
        return [_pod_template(spec.get("template"), "spec.template", {})]
    if kind in REPLICA_SPECS:
        roles = spec.get(REPLICA_SPECS[kind])
        if not isinstance(roles, dict) or not roles:
            raise UnknownWorkload(f"{kind} without spec.{REPLICA_SPECS[kind]}: no pod template to run")
        return [_pod_template(role.get("template"), f"spec.{REPLICA_SPECS[kind]}.{name}.template",
                              {REPLICA_TYPE_LABEL: name.lower(),
                               **({JOB_ROLE_LABEL: "master"} if name.lower() in MASTER_ROLES else {}),
                               # the MPI operator's own label, which Katib's MPIJob example selects on
                               **({"mpi-job-role": name.lower()} if kind == "MPIJob" else {})})
                for name, role in roles.items() if isinstance(role, dict)]
    if kind == "TrainJob":
        return [_train_job(spec)]
    if kind == "Workflow" and api_version.startswith("argoproj.io/"):
        return _argo(spec)
    if kind == "PipelineRun" and api_version.startswith("tekton.dev/"):
        return _tekton(spec)
    raise UnknownWorkload(f"Dial does not know where a {kind} ({api_version}) keeps its pod templates; trials can be "
                          f"a batch/v1 Job, {', '.join(sorted(REPLICA_SPECS))}, TrainJob, an Argo Workflow or a "
                          "Tekton PipelineRun")


def _pod_template(template: Any, path: str, added_labels: dict[str, str]) -> PodSlot:
    if not isinstance(template, dict):
        raise UnknownWorkload(f"{path}: missing pod template")
    metadata = template.setdefault("metadata", {})
    pod = template.setdefault("spec", {})
    return PodSlot(path, {**(metadata.get("labels") or {}), **added_labels}, pod.setdefault("containers", []),
                   pod.setdefault("initContainers", []), pod.setdefault("volumes", []), pod_metadata=metadata)


def _train_job(spec: dict[str, Any]) -> PodSlot:
    """Kubeflow Trainer: the runtime owns the pod template; the trainer's container ("node") is given by
    `spec.trainer`. `podTemplateOverrides` can add volumes and mounts but not a container, so there is no
    place for the collector in the TrainJob itself (`sidecars` is None)."""
    trainer = spec.setdefault("trainer", {})
    return PodSlot("spec.trainer", dict(DEFAULT_PRIMARY_POD_LABELS["TrainJob"]), [trainer], None, [],
                   container_name=lambda c: TRAINJOB_NODE)


def _argo(spec: dict[str, Any]) -> list[PodSlot]:
    """Argo: each template with a `container` or `script` is a pod whose main container is called "main"."""
    slots = []
    for i, template in enumerate(spec.get("templates") or []):
        for key in ("container", "script"):
            if isinstance(template.get(key), dict):
                metadata = template.setdefault("metadata", {})
                slots.append(PodSlot(f"spec.templates[{i}].{key}", dict(metadata.get("labels") or {}), [template[key]],
                                     template.setdefault("initContainers", []), template.setdefault("volumes", []),
                                     container_name=lambda c: "main", pod_metadata=metadata))
    if not slots:
        raise UnknownWorkload("an Argo Workflow without a container or script template: no pod to run")
    return slots


def _tekton(spec: dict[str, Any]) -> list[PodSlot]:
    """Tekton: each task of the inline pipelineSpec runs as one pod labelled with the task's name; its steps are
    the containers, called "step-<name>"."""
    tasks = (spec.get("pipelineSpec") or {}).get("tasks")
    if not tasks:
        raise UnknownWorkload("a Tekton PipelineRun without spec.pipelineSpec.tasks (a pipelineRef is resolved "
                              "by Tekton, out of Dial's sight): no pod template to run")
    slots = []
    for i, task in enumerate(tasks):
        task_spec = task.get("taskSpec")
        if not isinstance(task_spec, dict):
            continue
        metadata = task_spec.setdefault("metadata", {})
        slots.append(PodSlot(f"spec.pipelineSpec.tasks[{i}].taskSpec",
                             {**(metadata.get("labels") or {}), TEKTON_TASK_LABEL: str(task.get("name", ""))},
                             task_spec.setdefault("steps", []), task_spec.setdefault("sidecars", []),
                             task_spec.setdefault("volumes", []), container_name=lambda c: f"step-{c.get('name', '')}",
                             native_sidecar=False, pod_metadata=metadata))
    if not slots:
        raise UnknownWorkload("a Tekton PipelineRun whose tasks have no inline taskSpec: no pod template to run")
    return slots


def _family(manifest: dict[str, Any]) -> str:
    kind = kind_of(manifest)
    if kind == JOB_KIND:
        return "Job"
    return "kubeflow" if kind[1] in REPLICA_SPECS else kind[1]


def primary_pod_labels(manifest: dict[str, Any], labels: dict[str, str] | None) -> dict[str, str] | None:
    """The template's primaryPodLabels, or Katib's default for its kind (the master pod of a training job)."""
    return labels if labels else DEFAULT_PRIMARY_POD_LABELS.get(_family(manifest))


def conditions(manifest: dict[str, Any], success: str | None, failure: str | None) -> tuple[str | None, str | None]:
    """The success and failure conditions (GJSON) of a trial's workload: the template's, else Katib's default
    for its kind (None: none known, e.g. for an Argo Workflow or a Tekton PipelineRun without them)."""
    default = DEFAULT_CONDITIONS.get(_family(manifest), (None, None))
    return success or default[0], failure or default[1]


def primary_slots(slots: list[PodSlot], labels: dict[str, str] | None) -> list[PodSlot]:
    """The slots whose pods carry every one of `labels` (all slots when there are none)."""
    if not labels:
        return slots
    return [s for s in slots if all(s.labels.get(k) == v for k, v in labels.items())]


@dataclass(frozen=True)
class Outcome:
    """How a workload ended by its success or failure condition, with the condition's reason and message."""

    succeeded: bool
    reason: str
    message: str


def workload_outcome(workload: dict[str, Any], success: str | None, failure: str | None) -> Outcome | None:
    """Katib's reading of a finished workload: the failure condition first, then the success condition; each
    holds when its GJSON path finds an object or a non-empty array. None while neither holds."""
    success, failure = conditions(workload, success, failure)
    for condition, succeeded in ((failure, False), (success, True)):
        if condition is not None and gjson.holds(workload, condition):
            found = gjson.first_match(workload, condition) or {}
            reason = str(found.get("reason") or ("WorkloadSucceeded" if succeeded else "WorkloadFailed"))
            return Outcome(succeeded, reason, str(found.get("message") or f"{condition} holds"))
    return None
