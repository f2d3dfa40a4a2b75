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


def test_cel_rules_read_katibs_string_bounds(cluster: Any, namespace: str) -> None:
    manifest = as_dial(DATA / "katib" / "hp-tuning" / "random.yaml", namespace)
    manifest["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.5", "max": "0.1"}
    r = dry_run(cluster, manifest, check=False)
    assert r.returncode != 0 and "feasibleSpace.min must not be greater than max" in r.stderr
    manifest["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0", "max": "1", "distribution": "logUniform"}
    r = dry_run(cluster, manifest, check=False)
    assert r.returncode != 0 and "feasibleSpace.min must be > 0 with a logUniform or logNormal distribution" in r.stderr
    manifest["spec"]["parameters"][0]["feasibleSpace"] = {"min": 1, "max": 2.5}  # an int and a double
    dry_run(cluster, manifest)


def test_an_algorithm_needs_a_name_in_one_form_or_the_other(cluster: Any, namespace: str) -> None:
    manifest = as_dial(DATA / "katib" / "hp-tuning" / "random.yaml", namespace)
    manifest["spec"]["algorithm"] = {"algorithmSettings": [{"name": "random_state", "value": "1"}]}
    r = dry_run(cluster, manifest, check=False)
    assert r.returncode != 0 and "name (or Katib's algorithmName) is required" in r.stderr
