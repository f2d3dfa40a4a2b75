"""The CRDs in crds/ are generated from the models, structural, and carry the printer columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dial.api.crds import custom_resource_definitions, render_crds

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_are_current() -> None:
    for name, text in render_crds().items():
        committed = ROOT / "crds" / name
        assert committed.exists(), f"crds/{name} is missing: run `dial crds`"
        assert committed.read_text() == text, f"crds/{name} is stale: run `dial crds`"


def walk(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in the schema that break Kubernetes' structural-schema rules."""
    problems = []
    if "$ref" in schema or "anyOf" in schema and "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: $ref/anyOf")
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    for name, sub in schema.get("properties", {}).items():
        problems += walk(sub, f"{path}.{name}")
    if "items" in schema:
        problems += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += walk(schema["additionalProperties"], f"{path}{{}}")
    return problems


def test_schemas_are_structural() -> None:
    for crd in custom_resource_definitions().values():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert walk(schema) == []


def test_printer_columns_and_names() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in custom_resource_definitions().values()}
    exp_cols = [c["name"] for c in crds["Experiment"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert exp_cols[:4] == ["Phase", "Best", "Trials", "Running"] and exp_cols[-1] == "Age"
    trial_cols = [c["name"] for c in crds["Trial"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert {"Experiment", "Phase", "Objective", "Parameters", "Age"} <= set(trial_cols)
    for crd in crds.values():
        assert crd["spec"]["names"]["categories"] == ["dial"]
        assert crd["spec"]["names"]["shortNames"]
        assert crd["spec"]["group"] == "dial.dev"


def test_bounds_rule_is_in_the_schema() -> None:
    crd = custom_resource_definitions()["dial.dev_experiments.yaml"]
    space = (crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
             ["parameters"]["items"]["properties"]["feasibleSpace"])
    rules = [r["rule"] for r in space["x-kubernetes-validations"]]
    # Katib writes bounds as strings, so the rule compares them as numbers whichever they are.
    assert any("double(self.min) <= double(self.max)" in r for r in rules)
