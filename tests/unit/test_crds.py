"""The CRDs in crds/ are generated from the models, structural, and carry the printer columns."""

from __future__ import annotations

import re
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


def cel_rules_reading_fields_cel_cannot_see(schema: dict[str, Any], path: str = "") -> list[str]:
    """Rules that read `self.x` where x is not a typed property: the API server refuses to compile them
    ("undefined field"), since CEL sees only typed fields (an untyped, preserve-unknown-fields one is invisible)."""
    problems = []
    properties = schema.get("properties", {})
    for rule in schema.get("x-kubernetes-validations", []):
        for field in re.findall(r"\bself\.(\w+)", rule["rule"]):
            sub = properties.get(field)
            if sub is None or "type" not in sub and not sub.get("x-kubernetes-int-or-string"):
                problems.append(f"{path}: {rule['rule']!r} reads {field}")
    for name, sub in properties.items():
        problems += cel_rules_reading_fields_cel_cannot_see(sub, f"{path}.{name}")
    if "items" in schema:
        problems += cel_rules_reading_fields_cel_cannot_see(schema["items"], f"{path}[]")
    return problems


def test_cel_rules_read_only_fields_cel_can_see() -> None:
    for crd in custom_resource_definitions().values():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert cel_rules_reading_fields_cel_cannot_see(schema) == []


def test_the_checker_catches_a_rule_on_an_untyped_field() -> None:
    schema = {"type": "object", "properties": {"min": {"x-kubernetes-preserve-unknown-fields": True}},
              "x-kubernetes-validations": [{"rule": "double(self.min) > 0.0"}]}
    assert cel_rules_reading_fields_cel_cannot_see(schema) == [": 'double(self.min) > 0.0' reads min"]


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
