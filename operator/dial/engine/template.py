"""Render a trial's Job spec from the experiment's template: substitute `${trialParameters.X}`."""

from __future__ import annotations

import copy
import re
from typing import Any

from dial.api.experiment import Experiment, TrialTemplate
from dial.api.space import ParameterValue
from dial.engine.checkpoints import checkpoint_values, checkpoint_settings
from dial.engine.workloads import UnknownWorkload, pod_slots, primary_pod_labels, primary_slots

DEADLINE_BACKSTOP_SECONDS = 30
_PLACEHOLDER = re.compile(r"\$\{(trialParameters|trialSpec)\.([A-Za-z0-9_.-]+(?:\[[^\]]+\])?)\}")
# Katib's trial metadata, as a trialParameters reference or directly in the template.
METADATA_REFERENCE = re.compile(r"\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|(?:Labels|Annotations)\[[^\]]+\])\}")
# A whole argument that is a parameter's placeholder, bare or as `--flag=`.
_WHOLE_ARGUMENT = re.compile(r"(-[^\s=]*=)?\$\{trialParameters\.([A-Za-z0-9_.-]+)\}")


def placeholder_references(template: TrialTemplate) -> dict[str, str]:
    """Placeholder name -> experiment parameter it stands for (Katib's trialParameters, else itself)."""
    if template.trial_parameters is None:
        return {name: name for name in template.placeholders()}
    return {p.name: _strip_reference(p.reference or p.name) for p in template.trial_parameters}


def is_metadata_reference(reference: str) -> bool:
    """`${trialSpec.Name}`, `${trialSpec.Labels[key]}` and the like: the trial's metadata, not a parameter."""
    return METADATA_REFERENCE.fullmatch(reference) is not None


def trial_metadata(template: TrialTemplate, trial_name: str, namespace: str, experiment: str) -> dict[str, str]:
    """What `${trialSpec.X}` stands for in one trial (Katib's names): its name, namespace, the workload's kind
    and apiVersion, and the labels and annotations of the workload's metadata in the template."""
    manifest = template.manifest
    metadata = manifest.get("metadata") or {}
    table = {"Name": trial_name, "Namespace": namespace, "Experiment": experiment,
             "Kind": str(manifest.get("kind", "Job")), "APIVersion": str(manifest.get("apiVersion", "batch/v1"))}
    for key, value in (metadata.get("labels") or {}).items():
        table[f"Labels[{key}]"] = str(value)
    for key, value in (metadata.get("annotations") or {}).items():
        table[f"Annotations[{key}]"] = str(value)
    return table


def _strip_reference(reference: str) -> str:
    match = re.fullmatch(r"\$\{parameters\.(.+)\}", reference)
    return match.group(1) if match else reference


def format_value(value: ParameterValue) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def substitute(obj: Any, values: dict[str, str], meta: dict[str, str], inactive: frozenset[str] = frozenset()) -> Any:
    """Replace placeholders; those of `inactive` parameters are dropped from lists (see `_drop_inactive`)
    and become empty strings anywhere else."""
    if isinstance(obj, str):
        def replace(match: re.Match[str]) -> str:
            if match.group(1) == "trialParameters" and match.group(2) in inactive:
                return ""
            table = values if match.group(1) == "trialParameters" else meta
            return table.get(match.group(2), match.group(0))
        return _PLACEHOLDER.sub(replace, obj)
    if isinstance(obj, dict):
        return {k: substitute(v, values, meta, inactive) for k, v in obj.items()}
    if isinstance(obj, list):
        items = _drop_inactive(obj, inactive) if inactive else obj
        return [substitute(v, values, meta, inactive) for v in items]
    return obj


def _drop_inactive(items: list[Any], inactive: frozenset[str]) -> list[Any]:
    """An argument that is only an inactive parameter's placeholder goes, with the option flag just
    before it (`--alpha`, `${trialParameters.alpha}`); so does `--alpha=${trialParameters.alpha}`."""
    kept: list[Any] = []
    for item in items:
        match = _WHOLE_ARGUMENT.fullmatch(item) if isinstance(item, str) else None
        if match is None or match.group(2) not in inactive:
            kept.append(item)
            continue
        if match.group(1) is None and kept and _is_flag(kept[-1]):
            kept.pop()
    return kept


def _is_flag(item: Any) -> bool:
    return isinstance(item, str) and item.startswith("-") and "${" not in item and "=" not in item


def render_job_spec(experiment: Experiment, trial_name: str, assignment: dict[str, ParameterValue], *,
                    parent: str | None = None, checkpoint_root: str | None = None) -> dict[str, Any]:
    """The Job spec for one trial, every placeholder replaced (for another kind of workload: the whole
    manifest, placeholders replaced).

    With pbt, `${trialParameters.checkpointDir}` and `${trialParameters.parentCheckpointDir}` are
    directories under `checkpoint_root` (default: the pod path `suggestion_trial_dir`).
    """
    template = experiment.spec.trial_template
    references = placeholder_references(template)
    values = {name: format_value(assignment[ref]) for name, ref in references.items() if ref in assignment}
    settings = checkpoint_settings(experiment)
    if settings is not None:
        values.update(checkpoint_values(checkpoint_root or settings.suggestion_trial_dir, trial_name, parent))
    # A conditional parameter that is inactive in this trial is absent from its assignment.
    inactive = frozenset(name for name, ref in references.items() if ref not in assignment and name not in values)
    meta = trial_metadata(template, trial_name, experiment.metadata.namespace or "default", experiment.name)
    for name, ref in references.items():
        if is_metadata_reference(ref):
            values[name] = substitute(ref, {}, meta)
    inactive = frozenset(name for name in inactive if name not in values)
    manifest = substitute(copy.deepcopy(template.manifest), values, meta, inactive)
    if not template.is_job:
        return manifest  # another kind: the whole workload, rendered further by the backend
    job_spec = manifest.get("spec", manifest) if "template" not in manifest else manifest
    limit = experiment.spec.max_trial_seconds
    if limit is not None:
        # A backstop for when the backend is down: normally the plan stops the trial at `limit`
        # gracefully, keeping its reason; the Job controller kills it a little later regardless.
        backstop = limit + DEADLINE_BACKSTOP_SECONDS
        job_spec["activeDeadlineSeconds"] = min(job_spec.get("activeDeadlineSeconds", backstop), backstop)
    return job_spec


def primary_container(job_spec: dict[str, Any], name: str | None) -> dict[str, Any]:
    containers = job_spec.get("template", {}).get("spec", {}).get("containers", [])
    if name is not None:
        for container in containers:
            if container.get("name") == name:
                return container
        raise KeyError(name)
    if not containers:
        raise KeyError("containers")
    return containers[0]


def rendered_primary_container(template: TrialTemplate, rendered: dict[str, Any]) -> dict[str, Any]:
    """The primary container in a rendered trial (what `render_job_spec` returned), of any kind of workload:
    the first container named `primaryContainerName` in the pods `primaryPodLabels` picks. KeyError if none."""
    if template.is_job:
        return primary_container(rendered, template.primary_container_name)
    try:
        slots = primary_slots(pod_slots(rendered), primary_pod_labels(rendered, template.primary_pod_labels))
    except UnknownWorkload:
        raise KeyError(template.manifest.get("kind")) from None
    for slot in slots:
        if (container := slot.container(template.primary_container_name)) is not None:
            return container
    raise KeyError(template.primary_container_name)
