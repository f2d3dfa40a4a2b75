"""CustomResourceDefinitions generated from the pydantic models (never hand-edited)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from dial.api.base import API_GROUP, API_VERSION
from dial.api.experiment import ExperimentSpec, ExperimentStatus
from dial.api.trial import TrialSpec, TrialStatus

_DROPPED_KEYS = {"title", "default", "discriminator", "examples", "const"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema rewritten as a Kubernetes structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**copy.deepcopy(target), **node}
        return _convert(merged, defs)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) == 1:  # `X | None`
            out = _convert({**options[0], **{k: v for k, v in node.items() if k not in _DROPPED_KEYS}}, defs)
            if "type" in out:  # an untyped node (any value) already admits null
                out["nullable"] = True
            return out
        # A union of scalar types (a parameter value): any JSON value, checked by the operator.
        return {"x-kubernetes-preserve-unknown-fields": True, **({"description": node["description"]} if "description" in node else {})}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out[key] = _convert(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _resource(kind: str, plural: str, short: list[str], spec: type[BaseModel], status: type[BaseModel],
              columns: list[dict[str, Any]]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["dial"],
            },
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def custom_resource_definitions() -> dict[str, dict[str, Any]]:
    """File name -> CRD manifest, for every Dial kind."""
    age = _column("Age", ".metadata.creationTimestamp", "date")
    experiment = _resource("Experiment", "experiments", ["exp", "exps"], ExperimentSpec, ExperimentStatus, [
        _column("Phase", ".status.phase"),
        _column("Best", ".status.bestObjective", "number"),
        _column("Trials", ".status.progress"),
        _column("Running", ".status.trials.running", "integer"),
        _column("GPU-h", ".status.budget.gpuHours", "number"),
        _column("Failed", ".status.trials.failed", "integer", priority=1),
        _column("Pareto", ".status.paretoFrontSize", "integer", priority=1),
        _column("Algorithm", ".status.algorithm", priority=1),
        age,
    ])
    trial = _resource("Trial", "trials", ["tr"], TrialSpec, TrialStatus, [
        _column("Experiment", ".spec.experiment"),
        _column("Phase", ".status.phase"),
        _column("Objective", ".status.objective", "number"),
        _column("Parameters", ".spec.parameterAssignments"),
        _column("Reason", ".status.reason", priority=1),
        _column("Parent", ".spec.parentTrial", priority=1),
        age,
    ])
    return {"dial.dev_experiments.yaml": experiment, "dial.dev_trials.yaml": trial}


def render_crds() -> dict[str, str]:
    """File name -> YAML text, exactly as committed under `crds/`."""
    header = "# Generated by `dial crds` from the pydantic models in operator/dial/api. Do not edit.\n"
    return {name: header + yaml.safe_dump(crd, sort_keys=False) for name, crd in custom_resource_definitions().items()}


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crds().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
