"""Katib's 29 hyperparameter-tuning examples (tests/data/katib), with only apiVersion changed, are accepted by
Dial's CRD on the local control plane: `kubectl apply --dry-run=server` with strict field validation, so every
Katib field name and shape is in the schema and every CEL rule holds. NAS is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DATA = Path(__file__).resolve().parents[1] / "data"
KATIB_EXAMPLES = sorted((DATA / "katib").rglob("*.yaml"))


def as_dial(path: Path, namespace: str) -> dict[str, Any]:
    """Katib's file with Dial's apiVersion; the namespace is the test's (Katib's files name `kubeflow`)."""
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1"
    manifest["apiVersion"] = "dial.dev/v1alpha1"
    manifest["metadata"]["namespace"] = namespace
    return manifest


def dry_run(cluster: Any, manifest: dict[str, Any], *, check: bool = True) -> Any:
    return cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-",
                           input=json.dumps(manifest), check=check)


def test_the_whole_set_is_here() -> None:
    assert len(KATIB_EXAMPLES) == 29


@pytest.mark.parametrize("path", KATIB_EXAMPLES, ids=lambda p: str(p.relative_to(DATA / "katib")))
def test_every_katib_example_passes_server_side_dry_run(cluster: Any, namespace: str, path: Path) -> None:
    manifest = as_dial(path, namespace)
    stored = json.loads(dry_run(cluster, manifest).stdout)
    # Nothing pruned: the API server kept every field as written (a dropped Katib field would mean a silent loss).
    assert stored["spec"] == manifest["spec"]


def test_nas_is_refused_by_the_api_server_saying_why(cluster: Any, namespace: str) -> None:
    manifest = as_dial(DATA / "katib-nas" / "darts-cpu.yaml", namespace)
    r = dry_run(cluster, manifest, check=False)
    assert r.returncode != 0
    assert "neural architecture search (Katib's nasConfig) is out of scope for Dial" in r.stderr


def test_katibs_string_bounds_and_dials_numbers_are_both_stored_as_written(cluster: Any, namespace: str) -> None:
    manifest = as_dial(DATA / "katib" / "hp-tuning" / "random.yaml", namespace)
    manifest["spec"]["parameters"][0]["feasibleSpace"] = {"min": 0.01, "max": "0.03"}
    stored = json.loads(dry_run(cluster, manifest).stdout)
    assert stored["spec"]["parameters"][0]["feasibleSpace"] == {"min": 0.01, "max": "0.03"}
