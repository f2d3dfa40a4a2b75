"""Population based training under the operator: trials chain checkpoints through a PersistentVolumeClaim."""

from __future__ import annotations

import json
import os

import pytest

from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, dump, example_manifest, operator, phases, trials, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CLAIM = "pbt-checkpoints"


def claim_dir(cluster, namespace: str) -> str:
    """The volume's directory on the node (the machine itself), writable by the image's non-root user."""
    path = os.path.join(cluster.dir, "claims", namespace, CLAIM)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)
    return path


def bound_claim(cluster, namespace: str) -> None:
    """A claim bound to a static volume: no provisioner here, and the scheduler places no pod with an unbound claim."""
    volume = f"pbt-{namespace}"
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": claim_dir(cluster, namespace), "type": "Directory"},
                 "claimRef": {"namespace": namespace, "name": CLAIM}}}))
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": volume,
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    cluster.wait_for(lambda: cluster.core.read_namespaced_persistent_volume_claim(CLAIM, namespace).status.phase == "Bound",
                     timeout=60, what=f"claim {CLAIM} bound")


def test_pbt_example_chains_checkpoints_through_the_claim(cluster, operator):
    ns = operator.namespace
    bound_claim(cluster, ns)
    try:
        apply(cluster, ns, example_manifest("pbt", maxTrialCount=8))  # two generations of four
        exp = wait_for_phase(cluster, operator, ns, "pbt-digits", ("Succeeded", "Failed"), timeout=600)
        items = trials(cluster, ns, "pbt-digits")
        assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
        assert phases(items) == ["Succeeded"] * 8, dump([t["status"] for t in items])
        names = [t["metadata"]["name"] for t in items]
        parents = [t["spec"].get("parentTrial") for t in items]
        assert parents[:4] == [None] * 4 and all(p in names[:4] for p in parents[4:]), parents
        wide = cluster.kubectl("get", "trials", "-n", ns, "-o", "wide").stdout.splitlines()
        # Columns are aligned under their headers; an unset parent leaves its cell blank.
        start, end = wide[0].index("PARENT"), wide[0].index("AGE")
        cells = {line.split()[0]: line[start:end].strip() for line in wide[1:]}
        assert [cells[n] for n in names] == [p or "" for p in parents], wide
        volume_dir = claim_dir(cluster, ns)
        for trial, parent in zip(names, parents):
            job = cluster.batch.read_namespaced_job(trial, ns)
            volumes = job.spec.template.spec.volumes
            assert [v.persistent_volume_claim.claim_name for v in volumes if v.persistent_volume_claim] == [CLAIM]
            with open(os.path.join(volume_dir, trial, "state.json")) as f:
                state = json.load(f)
            # A second-generation segment continued its parent's training: 2 + 2 epochs, its parent's entry first.
            assert state["epoch"] == (2 if parent is None else 4), (trial, state)
            if parent is not None:
                assert state["lineage"][0]["checkpoint"].endswith(f"/{parent}")
                log = cluster.pod_log(ns, _pod(cluster, ns, trial), "training")
                assert "after 2 epochs" in log and "epoch=3 " in log and "epoch=1 " not in log, log
    finally:
        cluster.kubectl("delete", "pv", f"pbt-{ns}", "--wait=false", check=False)


def _pod(cluster, namespace: str, trial: str) -> str:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"dial.dev/trial={trial}").items
    assert pods, f"no pod left for {trial}"
    return pods[0].metadata.name
