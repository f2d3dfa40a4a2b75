"""pbt's checkpoint claim on the in-memory API: created by the operator when the experiment names none (Katib's
simple-pbt as shipped), owned by the Experiment, before any Job, once; mounted in every trial pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dial.engine import load_experiment
from dial.engine.validation import parse_experiment
from dial.kube.jobs import CHECKPOINT_VOLUME, CollectorSettings, kube_spec_errors
from dial.kube.reconcile import Reconciler, TrialsBlocked
from fake_kube import FakeKube
from helpers import NOW, manifest

KATIB_PBT = Path(__file__).resolve().parents[1] / "data" / "katib" / "hp-tuning" / "simple-pbt.yaml"
CLAIM = "simple-pbt-pbt"


def reconcile(kube: FakeKube, name: str = "simple-pbt") -> None:
    Reconciler(kube, CollectorSettings(), clock=lambda: NOW).reconcile("default", name)  # type: ignore[arg-type]


def katib_pbt(**settings: str) -> dict[str, Any]:
    """Katib's example with Dial's apiVersion (and Dial settings added as Katib's name/value pairs)."""
    data = yaml.safe_load(KATIB_PBT.read_text())
    data["apiVersion"] = "dial.dev/v1alpha1"
    data["spec"]["algorithm"]["algorithmSettings"] += [{"name": k, "value": v} for k, v in settings.items()]
    return data


def verbs(kube: FakeKube) -> list[tuple[str, str]]:
    return [(verb, name) for verb, name, _ in kube.writes if verb.startswith("create-")]


def pod(kube: FakeKube, trial: str) -> dict[str, Any]:
    return kube.jobs[("default", trial)]["spec"]["template"]["spec"]


def test_katibs_example_gets_a_claim_owned_by_the_experiment_before_its_first_job():
    kube = FakeKube()
    raw = kube.add_experiment(katib_pbt())
    reconcile(kube)
    assert verbs(kube)[:3] == [("create-trial", "simple-pbt-0000"), ("create-claim", CLAIM),
                               ("create-job", "simple-pbt-0000")]
    claim = kube.claims[("default", CLAIM)]
    # Katib's pbt claim: ReadWriteMany, 5Gi, no storageClassName (the cluster's default class provisions it).
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}}
    assert claim["metadata"]["ownerReferences"] == [{
        "apiVersion": "dial.dev/v1alpha1", "kind": "Experiment", "name": "simple-pbt", "uid": raw["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert claim["metadata"]["labels"] == {"dial.dev/experiment": "simple-pbt"}
    [(message, warning)] = [(m, w) for r, m, w in kube.events if r == "CheckpointClaimCreated"]
    assert message.startswith(f"PersistentVolumeClaim {CLAIM} (ReadWriteMany, 5Gi, the cluster's default StorageClass)")
    assert not warning


def test_every_trial_pod_mounts_its_own_directory_of_the_claim_where_katib_would():
    kube = FakeKube()
    kube.add_experiment(katib_pbt())
    reconcile(kube)
    for trial in ("simple-pbt-0000", "simple-pbt-0001"):
        spec = pod(kube, trial)
        assert {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": CLAIM}} in spec["volumes"]
        [training] = spec["containers"]
        assert {"name": CHECKPOINT_VOLUME, "mountPath": "/var/log/katib/checkpoints", "subPath": trial} \
            in training["volumeMounts"]
        assert "--checkpoint=/var/log/katib/checkpoints/" in training["command"]


def test_the_claim_is_created_once_however_often_the_experiment_is_reconciled():
    kube = FakeKube()
    kube.add_experiment(katib_pbt())
    reconcile(kube)
    writes = len(kube.writes)
    reconcile(kube)
    assert len(kube.writes) == writes
    assert [name for verb, name in verbs(kube) if verb == "create-claim"] == [CLAIM]


def test_a_crash_after_the_claim_and_before_the_jobs_heals_without_a_second_claim():
    kube = FakeKube()
    kube.add_experiment(katib_pbt())
    reconcile(kube)
    kube.jobs.clear()  # as if the operator had died after creating the Trials and the claim
    events = len(kube.events)
    reconcile(kube)
    assert sorted(name for _, name in kube.jobs) == ["simple-pbt-0000", "simple-pbt-0001"]
    assert [name for verb, name in verbs(kube) if verb == "create-claim"] == [CLAIM]
    assert "CheckpointClaimCreated" not in [r for r, _, _ in kube.events[events:]]


class LaggingClaims(FakeKube):
    """Another run of the operator created the claim between this one's GET and its create (409)."""

    def __init__(self, owner: dict[str, Any]) -> None:
        super().__init__()
        self.raw = self.add_experiment(owner)
        self.gets = 0

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        if self.gets == 1:
            self.claims[(namespace, name)] = {"metadata": {"name": name, "namespace": namespace, "ownerReferences": [
                {"kind": "Experiment", "name": "simple-pbt", "uid": self.raw["metadata"]["uid"]}]}}
            return None
        return super().get_claim(namespace, name)


def test_a_claim_another_run_created_meanwhile_is_used_as_ours():
    kube = LaggingClaims(katib_pbt())
    reconcile(kube)
    assert ("default", "simple-pbt-0000") in kube.jobs
    assert "CheckpointClaimCreated" not in [r for r, _, _ in kube.events]


@pytest.mark.parametrize("metadata", [{"ownerReferences": [{"kind": "Experiment", "name": "simple-pbt", "uid": "older"}]},
                                      {}])
def test_a_claim_of_that_name_that_is_not_the_experiments_blocks_its_jobs(metadata: dict[str, Any]):
    kube = FakeKube()
    kube.add_experiment(katib_pbt())
    kube.claims[("default", CLAIM)] = {"metadata": {"name": CLAIM, "namespace": "default", **metadata}}
    with pytest.raises(TrialsBlocked, match=f"PersistentVolumeClaim {CLAIM} exists but is not this Experiment's"):
        reconcile(kube)
    assert kube.jobs == {} and len(kube.trials) == 2  # the trials wait as Pending, without pods
    [blocked] = [c for c in kube.experiments[("default", "simple-pbt")]["status"]["conditions"]
                 if c["type"] == "TrialsBlocked"]
    assert blocked["reason"] == "CheckpointClaimNotOwned"
    del kube.claims[("default", CLAIM)]  # removed by whoever made it: the next pass creates ours and the Jobs
    reconcile(kube)
    assert sorted(name for _, name in kube.jobs) == ["simple-pbt-0000", "simple-pbt-0001"]


def test_storage_settings_shape_the_claim():
    kube = FakeKube()
    kube.add_experiment(katib_pbt(checkpoint_storage="500Mi", checkpoint_storage_class_name="nfs",
                                  checkpoint_access_mode="ReadWriteOnce"))
    reconcile(kube)
    assert kube.claims[("default", CLAIM)]["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "500Mi"}}, "storageClassName": "nfs"}
    kube = FakeKube()
    kube.add_experiment(katib_pbt(checkpoint_storage_class_name=""))  # no class: binds to a PV without one
    reconcile(kube)
    assert kube.claims[("default", CLAIM)]["spec"]["storageClassName"] == ""


def test_a_named_claim_is_mounted_and_none_is_created():
    kube = FakeKube()
    kube.add_experiment(katib_pbt(checkpoint_claim_name="shared"))
    reconcile(kube)
    assert kube.claims == {}
    assert {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": "shared"}} in pod(kube, "simple-pbt-0000")["volumes"]


@pytest.mark.parametrize("settings, message", [
    ({"checkpoint_claim_name": "shared", "checkpoint_storage": "1Gi"}, "checkpoint_storage describe the claim"),
    ({"checkpoint_storage": "lots"}, "must be a Kubernetes quantity"),
    ({"checkpoint_access_mode": "ReadWriteOncePod"}, "checkpoint_access_mode"),
])
def test_storage_settings_are_checked(settings: dict[str, str], message: str):
    from dial.engine import ExperimentError
    with pytest.raises(ExperimentError, match=message):
        load_experiment(yaml.safe_dump(katib_pbt(**settings)))


def test_dials_own_placeholders_without_a_claim_or_a_mount_get_the_operators_claim_at_suggestion_trial_dir():
    data = manifest(algorithm={"name": "pbt", "settings": {"n_population": 4, "truncation_threshold": 0.25}},
                    parallelTrialCount=4, maxTrialCount=8)
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--save=${trialParameters.checkpointDir}", "--resume=${trialParameters.parentCheckpointDir}"]
    kube = FakeKube()
    kube.add_experiment(data)
    reconcile(kube, "exp")
    assert ("default", "exp-pbt") in kube.claims
    training = pod(kube, "exp-0000")["containers"][0]
    assert {"name": CHECKPOINT_VOLUME, "mountPath": "/var/lib/dial/checkpoints"} in training["volumeMounts"]
    # A shared volume the training container mounts there itself is used instead.
    container["volumeMounts"] = [{"name": "mine", "mountPath": "/var/lib/dial"}]
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["volumes"] = [
        {"name": "mine", "persistentVolumeClaim": {"claimName": "mine"}}]
    data["metadata"]["name"] = "own"
    kube.add_experiment(data)
    reconcile(kube, "own")
    assert ("default", "own-pbt") not in kube.claims
    assert all(m["name"] != CHECKPOINT_VOLUME for m in pod(kube, "own-0000")["containers"][0]["volumeMounts"])


def test_katibs_convention_with_a_mount_of_its_own_at_suggestion_trial_dir_is_refused():
    data = katib_pbt()
    [container] = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    container["volumeMounts"] = [{"name": "mine", "mountPath": "/var/log/katib/checkpoints/"}]
    [error] = kube_spec_errors(parse_experiment(data))
    assert error.path.endswith("containers[training-container].volumeMounts")
    assert "remove this mount" in error.message
