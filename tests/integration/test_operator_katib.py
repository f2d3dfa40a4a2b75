"""Katib's hp-tuning, early-stopping and metrics-collector examples run to Succeeded under `dial operator`: the
files as Katib ships them (tests/data/katib), with Dial's apiVersion, the test's namespace, and the training
pointed at the worker image's copy of Katib's trial program (Katib's images cannot be pulled here):
dial.examples.katib_mnist takes mnist.py's flags and writes its log lines, dial.examples.katib_pbt those of
simple-pbt's pbt_test.py. Budgets are cut to a few trials to fit the test node."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_fixture import fit_to_node
from dial.kube.rbac import operator_cluster_role
from operator_fixtures import (  # noqa: F401  (fixtures)
    OperatorProcess, apply, dial_namespace, dump, events, operator, phases, service_account_kubeconfig, trials, wait,
    wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

KATIB = Path(__file__).resolve().parents[1] / "data" / "katib"
# simple-pbt trains Katib's pbt_test.py, not mnist.py, and keeps checkpoints on a claim the operator creates:
# its own test below. The custom collector example's collector image is replaced by Dial's File collector
# reading the same file.
PBT = KATIB / "hp-tuning" / "simple-pbt.yaml"
RUNNABLE = sorted(p for d in ("hp-tuning", "early-stopping", "metrics-collector") for p in (KATIB / d).glob("*.yaml")
                  if p != PBT)


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


def katib_pbt_on_the_worker_image(namespace: str) -> dict[str, Any]:
    """simple-pbt.yaml with only apiVersion, namespace, image and command changed (its budget, 2 trials, fits)."""
    manifest = yaml.safe_load(PBT.read_text())
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1"
    manifest["apiVersion"] = "dial.dev/v1alpha1"
    manifest["metadata"]["namespace"] = namespace
    [container] = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python3", "/opt/pbt/pbt_test.py"], container["command"]
    container["image"] = "dial-worker:0.1.0"
    container["command"] = ["python", "-m", "dial.examples.katib_pbt", *container["command"][2:]]
    return manifest


def hostpath_volume_for(cluster, namespace: str, claim: str) -> tuple[str, str]:
    """What an administrator of a cluster without a provisioner does for Katib's claim: a PersistentVolume
    reserved for it (claimRef), as large and as shared as it asks (Katib's pbt defaults: 5Gi, ReadWriteMany),
    on a node directory the image's non-root user may write. Returns (volume name, directory)."""
    directory = os.path.join(cluster.dir, "claims", namespace, claim)
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o777)
    volume = f"{claim}-{namespace}"  # Katib's name for the volume it makes when katib-config gives one
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": directory, "type": "Directory"},
                 "claimRef": {"namespace": namespace, "name": claim}}}))
    return volume, directory


def test_katib_pbt_example_runs_on_the_claim_the_operator_creates(cluster, dial_namespace, tmp_path) -> None:
    ns, name, claim = dial_namespace, "simple-pbt", "simple-pbt-pbt"
    # The operator as the chart would run it: with its own ClusterRole (operator/dial/kube/rbac.py), not the admin,
    # so creating the claim is allowed by that role and nothing more.
    role = operator_cluster_role(f"dial-operator-{ns}")
    kubeconfig = service_account_kubeconfig(cluster, ns, "dial-operator", role)
    volume, directory = hostpath_volume_for(cluster, ns, claim)
    operator = OperatorProcess(str(kubeconfig), ns, tmp_path / "operator.log")
    operator.start()
    try:
        apply(cluster, ns, katib_pbt_on_the_worker_image(ns))
        exp = wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=600)
        items = trials(cluster, ns, name)
        assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
        assert phases(items) == ["Succeeded"] * 2, dump([t["status"] for t in items])
        assert all(t["status"].get("objective") is not None for t in items), dump([t["status"] for t in items])
        stored = cluster.core.read_namespaced_persistent_volume_claim(claim, ns)
        assert stored.status.phase == "Bound" and stored.spec.volume_name == volume
        assert [(r.kind, r.name, r.uid) for r in stored.metadata.owner_references] == \
            [("Experiment", name, exp["metadata"]["uid"])]
        for trial in items:
            trial_name = trial["metadata"]["name"]
            pod = cluster.batch.read_namespaced_job(trial_name, ns).spec.template.spec
            assert [v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim] == [claim]
            # Katib's mount: the trial's own directory of the claim at suggestion_trial_dir, where --checkpoint points.
            with open(os.path.join(directory, trial_name, "training.ckpt"), "rb") as f:
                assert pickle.load(f)["step"] == 21, trial_name  # 20 epochs from scratch (generation 0)
        reasons = [reason for reason, _ in events(cluster, ns, name)]
        assert reasons.count("CheckpointClaimCreated") == 1, reasons
        warned = [m for reason, m in events(cluster, ns, name) if reason == "SpecWarning"]
        assert any(m.startswith("spec.resumePolicy: FromVolume") for m in warned), warned
        # Deleting the Experiment deletes the claim (its owner), through the garbage collector.
        cluster.kubectl("delete", "experiment", name, "-n", ns, "--wait=false")
        wait(lambda: not cluster.core.list_namespaced_persistent_volume_claim(
            ns, field_selector=f"metadata.name={claim}").items, 120, f"claim {claim} garbage-collected", operator)
    finally:
        operator.stop()
        cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)
        cluster.kubectl("delete", "clusterrolebinding", f"{role['metadata']['name']}-{ns}", check=False)
        cluster.kubectl("delete", "clusterrole", role["metadata"]["name"], check=False)
        shutil.rmtree(directory, ignore_errors=True)
