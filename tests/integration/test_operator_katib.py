"""Katib's hp-tuning, early-stopping and metrics-collector examples run to Succeeded under `dial operator`: the
files as Katib ships them (tests/data/katib), with Dial's apiVersion, the test's namespace, and the training
pointed at dial.examples.katib_mnist in the worker image (Katib's images cannot be pulled here; the example
takes mnist.py's flags and writes its log lines). Budgets are cut to a few trials to fit the test node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_fixture import fit_to_node
from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, dump, events, operator, phases, trials, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

KATIB = Path(__file__).resolve().parents[1] / "data" / "katib"
# simple-pbt trains Katib's own pbt_test.py and keeps checkpoints on a claim Katib creates itself: not
# one of the mnist trials (its rendering is unit-tested in tests/unit/test_katib_workloads.py; the operator
# asks for the claim by name). The custom collector example's collector image is replaced by Dial's File
# collector reading the same file.
NOT_MNIST_AS_IS = {"simple-pbt.yaml"}
RUNNABLE = sorted(p for d in ("hp-tuning", "early-stopping", "metrics-collector") for p in (KATIB / d).glob("*.yaml")
                  if p.name not in NOT_MNIST_AS_IS)


def katib_on_the_worker_image(path: Path, namespace: str) -> dict[str, Any]:
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1"
    manifest["apiVersion"] = "dial.dev/v1alpha1"
    manifest["metadata"]["namespace"] = namespace
    spec = manifest["spec"]
    [container] = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python3", "/opt/pytorch-mnist/mnist.py"], container["command"]
    container["image"] = "dial-worker:0.1.0"
    container["command"] = ["python", "-m", "dial.examples.katib_mnist", *container["command"][2:]]
    container["env"] = [{"name": "OPENBLAS_NUM_THREADS", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}]
    container.setdefault("resources", {}).setdefault("limits", {})["cpu"] = "1"
    spec["parallelTrialCount"] = min(spec.get("parallelTrialCount", 3), 2)
    spec["maxTrialCount"] = min(spec.get("maxTrialCount", 12), 3)
    return fit_to_node(manifest)


@pytest.mark.cluster_exclusive  # its 15 experiments fill the node's CPU requests on purpose
def test_katib_examples_run_to_succeeded_side_by_side(cluster, operator) -> None:
    # All at once under one operator, as a team migrating its experiments would apply them: the node's CPU
    # requests queue their pods, and the run costs a few minutes rather than one operator start per file.
    ns = operator.namespace
    manifests = {path: katib_on_the_worker_image(path, ns) for path in RUNNABLE}
    names = [m["metadata"]["name"] for m in manifests.values()]
    assert len(set(names)) == len(names), names
    for manifest in manifests.values():
        apply(cluster, ns, manifest)
    problems = []
    for path, manifest in manifests.items():
        name = manifest["metadata"]["name"]
        exp = wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=900)
        items = trials(cluster, ns, name)
        metric = yaml.safe_load(path.read_text())["spec"]["objective"]["objectiveMetricName"]
        checks = {
            "Succeeded": exp["status"]["phase"] == "Succeeded",
            "trials Succeeded or EarlyStopped": set(phases(items)) <= {"Succeeded", "EarlyStopped"},
            "an objective on every Succeeded trial": all(t["status"].get("objective") is not None
                                                         for t in items if t["status"]["phase"] == "Succeeded"),
            f"{metric} observed": any(o["name"] == metric for t in items for o in t["status"]["observations"]),
            # One form: the status names the algorithm by Dial's name; Katib's spec is stored as written.
            "status.algorithm by Dial's name": exp["status"]["algorithm"] != "bayesianoptimization",
            "spec stored as written": exp["spec"]["algorithm"]["algorithmName"]
            == manifest["spec"]["algorithm"]["algorithmName"],
        }
        failed = [what for what, ok in checks.items() if not ok]
        if failed:
            problems.append(f"{path.parent.name}/{path.name}: not {failed}\n{dump(exp['status'])}\n"
                            f"{dump([t['status'] for t in items])}")
    warned = [m for reason, m in events(cluster, ns, "median-stop") if reason == "SpecWarning"]
    assert any(m.startswith("spec.trialTemplate.retain: has no effect in Dial") for m in warned), warned
    assert not problems, "\n\n".join(problems)
