"""The checkpoint claim of a pbt experiment: the one it names, or the one the operator creates for it as Katib does.

Katib (kubeflow/katib, v1beta1): with `resumePolicy: FromVolume`, which its pbt example sets, the suggestion
controller creates a PersistentVolumeClaim named `<experiment>-<algorithm>` (`GetSuggestionPersistentVolumeClaimName`
in pkg/controller.v1beta1/util/suggestion.go; the Suggestion is named after the Experiment), in the experiment's
namespace, owned by the Suggestion (`DesiredVolume` in pkg/controller.v1beta1/suggestion/composer/composer.go).
Its spec is katib-config's `persistentVolumeClaimSpec` for the algorithm: for pbt ReadWriteMany and 5Gi, with no
storageClassName, so the cluster's default class provisions it (manifests/v1beta1/installs/*/katib-config.yaml;
without one the defaults are ReadWriteOnce and 1Gi, pkg/apis/config/v1beta1/defaults.go). Katib creates a
PersistentVolume too only when katib-config gives a `persistentVolumeSpec`, named `<experiment>-<algorithm>-<namespace>`
with reclaim policy Delete (a PV cannot be owned by a namespaced object); the shipped configs give none. The pod webhook then
mounts that claim in the primary container of every trial at `suggestion_trial_dir` with subPath
`<experiment>/<trial>` (`mutateSuggestionVolume`, pkg/webhook/v1beta1/pod/inject_webhook.go), and the pbt
suggestion fills that directory beforehand with a copy of the parent trial's (pkg/suggestion/v1beta1/pbt/service.py,
`PbtJobQueue.append`: `shutil.copytree`), so the training reads and writes one directory
(examples/v1beta1/trial-images/simple-pbt/pbt_test.py: `--checkpoint`, `training.ckpt`).

Dial does the same without a suggestion: the claim is `<experiment>-pbt`, owned by the Experiment (the garbage
collector deletes it with the Experiment), with Katib's pbt defaults, which the pbt settings `checkpoint_storage`,
`checkpoint_storage_class_name` and `checkpoint_access_mode` change. The operator creates no PersistentVolume: on a
cluster without a provisioner an administrator provides one. The per-trial directory is the subPath `<trial>` (trial
names start with the experiment's), filled by an init container (`dial.kube.jobs`).
"""

from __future__ import annotations

from typing import Any

from dial.api.experiment import Experiment
from dial.engine.checkpoints import checkpoint_settings, katib_checkpoints
from dial.engine.template import primary_container

CLAIM_SUFFIX = "-pbt"  # Katib's: the claim is named after the suggestion (the experiment) and the algorithm
CLAIM_CREATED = "CheckpointClaimCreated"
CLAIM_NOT_OURS = "CheckpointClaimNotOwned"


def mounted_at(container: dict[str, Any], path: str) -> bool:
    """Whether a volume is mounted at `path` or above it in the container."""
    return any(path == m["mountPath"].rstrip("/") or path.startswith(m["mountPath"].rstrip("/") + "/")
               for m in container.get("volumeMounts") or [])


def operator_claim_name(experiment: Experiment) -> str:
    return f"{experiment.name}{CLAIM_SUFFIX}"


def creates_claim(experiment: Experiment, container: dict[str, Any]) -> bool:
    """pbt naming no claim whose trials need one: Katib's convention (each trial's own directory of a shared volume),
    or Dial's placeholders with nothing mounted at suggestion_trial_dir in the primary `container` (as the template
    gives it). Assumes a validated spec."""
    settings = checkpoint_settings(experiment)
    if settings is None or settings.checkpoint_claim_name is not None:
        return False
    return katib_checkpoints(experiment) or not mounted_at(container, settings.suggestion_trial_dir)


def trial_claim_name(experiment: Experiment, container: dict[str, Any]) -> str | None:
    """The claim mounted at suggestion_trial_dir in every trial pod: the one named, the operator's, or none (the
    training container mounts a shared volume there itself, or the algorithm keeps no checkpoints)."""
    settings = checkpoint_settings(experiment)
    if settings is None:
        return None
    if settings.checkpoint_claim_name is not None:
        return settings.checkpoint_claim_name
    return operator_claim_name(experiment) if creates_claim(experiment, container) else None


def template_container(experiment: Experiment) -> dict[str, Any]:
    """The primary container of a Job template, as given (KeyError without one: refused by validation)."""
    template = experiment.spec.trial_template
    return primary_container(template.job_spec, template.primary_container_name)


def claim_body(experiment: Experiment, namespace: str, *, owner: dict[str, Any],
               labels: dict[str, str]) -> dict[str, Any]:
    """The PersistentVolumeClaim the operator creates for `experiment` (`creates_claim`), owned by `owner`."""
    settings = checkpoint_settings(experiment)
    assert settings is not None and settings.checkpoint_claim_name is None
    spec: dict[str, Any] = {"accessModes": [settings.checkpoint_access_mode],
                            "resources": {"requests": {"storage": settings.checkpoint_storage}}}
    if settings.checkpoint_storage_class_name is not None:
        # Unset leaves the choice to the cluster's default StorageClass (Katib's claim names none either).
        spec["storageClassName"] = settings.checkpoint_storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": operator_claim_name(experiment), "namespace": namespace, "labels": dict(labels),
                         "ownerReferences": [owner]},
            "spec": spec}


def describe_claim(claim: dict[str, Any]) -> str:
    """`ReadWriteMany, 5Gi, the cluster's default StorageClass`: what an event says about a claim."""
    spec = claim["spec"]
    storage_class = spec.get("storageClassName")
    where = ("the cluster's default StorageClass" if storage_class is None
             else "no StorageClass" if storage_class == "" else f"StorageClass {storage_class}")
    return f"{', '.join(spec['accessModes'])}, {spec['resources']['requests']['storage']}, {where}"


def foreign_claim(claim: dict[str, Any], owner_uid: str) -> str | None:
    """Why a stored claim of the operator's name cannot be used as this experiment's, or None when it can."""
    metadata = claim.get("metadata") or {}
    name = metadata.get("name")
    if not any(ref.get("uid") == owner_uid for ref in metadata.get("ownerReferences") or []):
        return (f"PersistentVolumeClaim {name} exists but is not this Experiment's: delete it, or name it in "
                "spec.algorithm.settings.checkpoint_claim_name to keep checkpoints there")
    if metadata.get("deletionTimestamp"):
        return f"PersistentVolumeClaim {name} is being deleted; a new one is created once it is gone"
    return None
