"""The Job of one trial: the rendered template, the training command wrapped, the collector sidecar added."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dial import __version__
from dial.api.base import EXPERIMENT_LABEL, TRIAL_LABEL
from dial.api.experiment import CollectorKind, Experiment
from dial.api.trial import Trial
from dial.engine import SpecError, render_job_spec
from dial.engine.checkpoints import katib_checkpoints, checkpoint_settings
from dial.engine.template import primary_container, substitute, trial_metadata
from dial.engine.workloads import PodSlot, pod_slots, primary_pod_labels, primary_slots
from dial.kube.claims import trial_claim_name

COLLECTOR_CONTAINER = "dial-collector"
OUTPUT_VOLUME = "dial-output"
OUTPUT_DIR = "/var/log/dial"
OUTPUT_FILE = f"{OUTPUT_DIR}/output.log"
READY_FILE = f"{OUTPUT_DIR}/collector.ready"
METRICS_VOLUME = "dial-metrics"
CHECKPOINT_VOLUME = "dial-checkpoints"
CHECKPOINT_COPIER = "dial-checkpoint"
ALL_CHECKPOINTS_DIR = "/var/lib/dial/all-checkpoints"
TEMPLATE_CONTAINERS = "spec.trialTemplate.trialSpec.spec.template.spec.containers"

# POSIX sh, so it runs in any image with a shell. It first waits (up to 2 minutes) for the
# collector to say it is ready: a trial shorter than the collector's start-up would otherwise
# end before anyone can read its metrics. The training's output goes through a FIFO to
# `tee`, which appends it to the shared file and still prints it (kubectl logs keeps working);
# tee ignores SIGTERM so it outlives the training and loses no line. SIGTERM (sent to PID 1 only
# by the kubelet) is forwarded to the whole process group, so children the training spawned
# are stopped too. The training's exit code is the container's. No `$(` here: Kubernetes
# would expand `$(NAME)` in a command.
TRAINING_WRAPPER = """\
n=0
while [ ! -e "$DIAL_COLLECTOR_READY" ] && [ "$n" -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
out="$DIAL_OUTPUT_FILE"; fifo="$out.fifo"
rm -f "$fifo"; mkfifo "$fifo" || exit 127
( trap '' TERM INT; exec tee -a "$out" ) < "$fifo" &
tee_pid=$!
"$@" > "$fifo" 2>&1 &
pid=$!
trap 'trap "" TERM INT; kill -TERM 0 2>/dev/null' TERM INT
while :; do
  wait "$pid"; code=$?
  kill -0 "$pid" 2>/dev/null || break
done
wait "$tee_pid"
rm -f "$fifo"
exit "$code"
"""


@dataclass(frozen=True)
class CollectorSettings:
    """How the operator runs the metrics collector next to each trial."""

    image: str = f"dial-worker:{__version__}"
    service_account: str = "dial-collector"
    command: tuple[str, ...] = ("dial", "collect")
    interval_seconds: float = 1.0


COLLECTOR_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,  # the worker image's user
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller reference to `obj`, so the garbage collector deletes dependents with it."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def trial_body(trial: Trial, experiment: dict[str, Any]) -> dict[str, Any]:
    """The Trial object to create (its status is set separately: the API ignores status on create)."""
    body = trial.to_wire()
    body.pop("status", None)
    body["metadata"]["ownerReferences"] = [owner_reference(experiment)]
    return body


def kube_spec_errors(experiment: Experiment) -> list[SpecError]:
    """What the Kubernetes backend needs beyond `validate_experiment`."""
    spec = experiment.spec
    if spec.warm_start is not None and spec.warm_start.results_files:
        return [SpecError("spec.warmStart.resultsFiles", "results files are read by `dial run` only; on Kubernetes "
                                                         "name the earlier Experiments in spec.warmStart.experiments")]
    template = spec.trial_template
    if template.config_map is not None:
        return [SpecError("spec.trialTemplate.configMap",
                          "the operator does not read trial templates from ConfigMaps yet: put the template "
                          f"({template.config_map.template_path}) under spec.trialTemplate.trialSpec")]
    if not template.is_job:
        # Rendered and validated (trial_workload), but creating, watching and judging them by successCondition
        # and failureCondition is the JobSet/Kueue workload work, not done yet.
        return [SpecError("spec.trialTemplate.trialSpec",
                          f"the operator runs batch/v1 Job trials only so far; a {template.manifest.get('kind')} "
                          "trial validates and renders, but is not run on the cluster yet")]
    try:
        container = primary_container(spec.trial_template.job_spec, spec.trial_template.primary_container_name)
    except KeyError:
        return []  # reported by validate_experiment
    try:
        pbt = checkpoint_settings(experiment)
    except ValidationError:
        pbt = None  # reported by validate_experiment
    if pbt is not None and katib_checkpoints(experiment) and any(
            m["mountPath"].rstrip("/") == pbt.suggestion_trial_dir for m in container.get("volumeMounts") or []):
        # Katib's convention mounts each trial's own directory of the claim there; a second mount would clash.
        return [SpecError(f"{TEMPLATE_CONTAINERS}[{container.get('name', 0)}].volumeMounts",
                          "pbt with Katib's checkpoint convention mounts each trial's own directory of the checkpoint "
                          f"claim at suggestion_trial_dir {pbt.suggestion_trial_dir!r}: remove this mount (name a "
                          "ReadWriteMany claim in spec.algorithm.settings.checkpoint_claim_name, or leave it unset for "
                          "the operator to create one)")]
    collector = spec.metrics_collector
    if collector.kind is CollectorKind.stdout and not (container.get("command") or container.get("args")):
        return [SpecError(f"{TEMPLATE_CONTAINERS}[{container.get('name', 0)}].command",
                          "the StdOut metrics collector wraps the training command to read its output; "
                          "give the container's command (the image entrypoint cannot be wrapped), "
                          "or use metricsCollector.kind File")]
    if collector.kind is CollectorKind.file and not posixpath.isabs(collector.path or "") and not container.get("workingDir"):
        return [SpecError("spec.metricsCollector.path",
                          f"{collector.path!r} is relative and the primary container has no workingDir; give an absolute path")]
    return []


def trial_job(experiment: Experiment, trial: dict[str, Any], collector: CollectorSettings) -> dict[str, Any]:
    """The Job for a Trial object as stored (its own assignment, its uid for the owner reference)."""
    name = trial["metadata"]["name"]
    namespace = trial["metadata"].get("namespace") or experiment.metadata.namespace or "default"
    assignment = trial["spec"]["parameterAssignments"]
    spec = render_job_spec(experiment, name, assignment, parent=trial["spec"].get("parentTrial"))
    # The operator must see how the Job ended; a TTL could delete it before that.
    spec.pop("ttlSecondsAfterFinished", None)
    labels = {EXPERIMENT_LABEL: experiment.name, TRIAL_LABEL: name}
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    pod = template.setdefault("spec", {})
    pod.setdefault("serviceAccountName", collector.service_account)
    container = primary_container(spec, experiment.spec.trial_template.primary_container_name)
    slot = PodSlot("spec.template", {}, pod.setdefault("containers", []), pod.setdefault("initContainers", []),
                   pod.setdefault("volumes", []))
    _mount_checkpoints(experiment, slot, container, name, trial["spec"].get("parentTrial"), collector)
    _add_collector(experiment, name, namespace, slot, container, collector)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": [owner_reference(trial)]},
        "spec": spec,
    }


def trial_workload(experiment: Experiment, trial: dict[str, Any], collector: CollectorSettings) -> dict[str, Any]:
    """The workload of a Trial whose template is another kind than Job (PyTorchJob, TFJob, MPIJob, XGBoostJob,
    an Argo Workflow, a Tekton PipelineRun): the rendered manifest, named and owned like a Job, with the
    collector in each pod picked by primaryPodLabels that holds the primary container."""
    template = experiment.spec.trial_template
    name = trial["metadata"]["name"]
    namespace = trial["metadata"].get("namespace") or experiment.metadata.namespace or "default"
    manifest = render_job_spec(experiment, name, trial["spec"]["parameterAssignments"],
                               parent=trial["spec"].get("parentTrial"))
    labels = {EXPERIMENT_LABEL: experiment.name, TRIAL_LABEL: name}
    metadata = manifest.setdefault("metadata", {})
    metadata.update({"name": name, "namespace": namespace, "ownerReferences": [owner_reference(trial)]})
    metadata.setdefault("labels", {}).update(labels)
    instrumented = 0
    for slot in primary_slots(pod_slots(manifest), primary_pod_labels(manifest, template.primary_pod_labels)):
        container = slot.container(template.primary_container_name)
        if container is None:
            continue
        if slot.sidecars is None:
            raise ValueError(f"{manifest.get('kind')}: {slot.path} has no place for another container, so Dial "
                             "cannot add its metrics collector to these pods")
        if slot.pod_metadata is not None:
            slot.pod_metadata.setdefault("labels", {}).update(labels)
        _mount_checkpoints(experiment, slot, container, name, trial["spec"].get("parentTrial"), collector)
        _add_collector(experiment, name, namespace, slot, container, collector)
        instrumented += 1
    if not instrumented:
        raise ValueError(f"no pod of the {manifest.get('kind')} holds the primary container "
                         f"{template.primary_container_name!r}")
    return manifest


def _add_collector(experiment: Experiment, trial_name: str, namespace: str, slot: PodSlot, container: dict[str, Any],
                   collector: CollectorSettings) -> None:
    """The training's output made readable and the collector next to it (none for Katib's collector kind None)."""
    if experiment.spec.metrics_collector.kind is CollectorKind.none:
        return
    source, collector_mounts = _collector_source(experiment, trial_name, namespace, slot.volumes, container)
    sidecar = _collector_container(experiment, trial_name, namespace, source, collector_mounts, collector)
    if not slot.native_sidecar:
        sidecar.pop("restartPolicy")  # an ordinary sidecar container (Tekton runs and stops its own)
    assert slot.sidecars is not None  # checked by the callers
    slot.sidecars.insert(0, sidecar)


def _mount_checkpoints(experiment: Experiment, slot: PodSlot, container: dict[str, Any], trial_name: str,
                       parent: str | None, collector: CollectorSettings) -> None:
    """pbt: the checkpoint claim (named, or the operator's: `dial.kube.claims`) at suggestion_trial_dir, where every
    trial writes and reads checkpoints.

    With Katib's convention (no checkpoint placeholder in the template) only the trial's own directory is mounted
    there, and an init container first copies the parent trial's checkpoint into it, as Katib's suggestion does.
    """
    settings = checkpoint_settings(experiment)
    claim = trial_claim_name(experiment, container)
    if settings is None or claim is None:
        return
    slot.volumes.append({"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
    if not katib_checkpoints(experiment):
        container.setdefault("volumeMounts", []).append(
            {"name": CHECKPOINT_VOLUME, "mountPath": settings.suggestion_trial_dir})
        return
    container.setdefault("volumeMounts", []).append(
        {"name": CHECKPOINT_VOLUME, "mountPath": settings.suggestion_trial_dir, "subPath": trial_name})
    own = posixpath.join(ALL_CHECKPOINTS_DIR, trial_name)
    copy_parent = posixpath.join(ALL_CHECKPOINTS_DIR, parent) if parent else ""
    assert slot.sidecars is not None  # checked by the callers
    slot.sidecars.insert(0, {
        "name": CHECKPOINT_COPIER,
        "image": collector.image,
        # No `$(` (Kubernetes would expand it): the two directories come as arguments.
        "command": ["sh", "-c", 'mkdir -p "$1" && if [ -n "$2" ]; then cp -a "$2/." "$1/"; fi', "sh", own, copy_parent],
        "volumeMounts": [{"name": CHECKPOINT_VOLUME, "mountPath": ALL_CHECKPOINTS_DIR}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        "securityContext": COLLECTOR_SECURITY_CONTEXT,
    })


def _collector_source(experiment: Experiment, trial_name: str, namespace: str, volumes: list[dict[str, Any]],
                      container: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Make the training's metrics readable by the sidecar; return the file (or event directory) it follows
    and its mounts."""
    mounts = container.setdefault("volumeMounts", [])
    collector = experiment.spec.metrics_collector
    volumes.append({"name": OUTPUT_VOLUME, "emptyDir": {}})
    output_mount = {"name": OUTPUT_VOLUME, "mountPath": OUTPUT_DIR}
    mounts.append(output_mount)
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if command:  # without one the image's entrypoint runs unwrapped (File collector only)
        container.pop("args", None)
        container["command"] = ["sh", "-c", TRAINING_WRAPPER, "dial-training", *command]
        container.setdefault("env", []).extend([{"name": "DIAL_OUTPUT_FILE", "value": OUTPUT_FILE},
                                                {"name": "DIAL_COLLECTOR_READY", "value": READY_FILE}])
    if collector.kind is CollectorKind.stdout:
        return OUTPUT_FILE, [output_mount]
    meta = trial_metadata(experiment.spec.trial_template, trial_name, namespace, experiment.name)
    path = substitute(collector.path or "", {}, meta).rstrip("/") or "/"
    if not posixpath.isabs(path):
        path = posixpath.join(container["workingDir"], path)
    for existing in mounts:
        root = existing["mountPath"].rstrip("/")
        if path.startswith(root + "/"):
            shared = {key: existing[key] for key in ("name", "mountPath", "subPath") if key in existing}
            return path, [output_mount] if existing is output_mount else [output_mount, shared]
    volumes.append({"name": METRICS_VOLUME, "emptyDir": {}})
    # TensorFlow writes event files into the directory itself; other collectors read a file in it.
    directory = path if collector.kind is CollectorKind.tensorflow_event else posixpath.dirname(path)
    mount = {"name": METRICS_VOLUME, "mountPath": directory}
    mounts.append(mount)
    return path, [output_mount, mount]


def _collector_format(experiment: Experiment) -> str:
    collector = experiment.spec.metrics_collector
    return collector.kind.value if collector.kind is CollectorKind.tensorflow_event else collector.format.value


def _collector_container(experiment: Experiment, trial_name: str, namespace: str, source: str,
                         mounts: list[dict[str, Any]], collector: CollectorSettings) -> dict[str, Any]:
    """A native sidecar: starts before training, never keeps a finished pod alive."""
    spec = experiment.spec
    return {
        "name": COLLECTOR_CONTAINER,
        "image": collector.image,
        "restartPolicy": "Always",
        "command": list(collector.command),
        "args": [
            "--namespace", namespace,
            "--trial", trial_name,
            "--source", source,
            "--format", _collector_format(experiment),
            *[arg for pattern in spec.metrics_collector.metrics_format or () for arg in ("--metrics-format", pattern)],
            "--objective", json.dumps(spec.objective.to_wire(), separators=(",", ":")),
            "--interval", f"{collector.interval_seconds:g}",
            "--ready-file", READY_FILE,
        ],
        "volumeMounts": mounts,
        # The kubelet starts the training only once this passes (the wrapper also waits for it).
        "startupProbe": {"exec": {"command": ["cat", READY_FILE]}, "periodSeconds": 1, "failureThreshold": 120},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        # Pod Security Admission's `restricted` level: the sidecar never stands in the way of a namespace that
        # enforces it (the training container is the user's to harden; the README says how).
        "securityContext": COLLECTOR_SECURITY_CONTEXT,
    }
