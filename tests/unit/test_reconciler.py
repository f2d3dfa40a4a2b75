"""The reconciler on an in-memory API (`fake_kube.FakeKube`): what it creates, stops, finishes and reports, pass by pass."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from dial.api.trial import TrialStatus
from dial.kube.jobs import CollectorSettings
from dial.kube.reconcile import Reconciler, TrialsBlocked
from fake_kube import FakeKube
from helpers import NOW, manifest


def reconciler(kube: FakeKube) -> Reconciler:
    return Reconciler(kube, CollectorSettings(), clock=lambda: NOW)  # type: ignore[arg-type]


def stored(kube: FakeKube, **spec: Any) -> FakeKube:
    kube.add_experiment(manifest(**spec))
    return kube


def report_loss(kube: FakeKube, trial: str, loss: float) -> None:
    """What the collector sidecar writes: the observations and the objective they give."""
    status = TrialStatus()
    status.record("loss", 1.0, loss)
    kube.collector_patch(trial, {"observations": status.model_dump(mode="json", by_alias=True)["observations"],
                                 "objective": loss})


def experiment_status(kube: FakeKube) -> dict[str, Any]:
    return kube.experiments[("default", "exp")]["status"]


def event_reasons(kube: FakeKube) -> list[str]:
    return [reason for reason, _, _ in kube.events]


def test_a_new_experiment_gets_its_parallel_trials_each_with_a_job_and_a_pending_status():
    kube = stored(FakeKube())
    reconciler(kube).reconcile("default", "exp")
    assert sorted(name for _, name in kube.trials) == ["exp-0000", "exp-0001"]
    assert sorted(name for _, name in kube.jobs) == ["exp-0000", "exp-0001"]
    assert all(t["status"]["phase"] == "Pending" for t in kube.trials.values())
    assert event_reasons(kube) == ["TrialCreated", "TrialCreated"]
    status = experiment_status(kube)
    assert (status["phase"], status["trialsCreated"]) == ("Running", 2)


def test_a_second_pass_over_the_same_state_creates_nothing_and_writes_nothing():
    kube = stored(FakeKube())
    reconciler(kube).reconcile("default", "exp")
    writes, events = len(kube.writes), len(kube.events)
    reconciler(kube).reconcile("default", "exp")
    assert len(kube.trials) == 2
    assert (len(kube.writes), len(kube.events)) == (writes, events)


def test_a_trial_that_exists_already_409_runs_as_stored_and_is_not_created_twice():
    kube = stored(FakeKube(), parallelTrialCount=1)
    # An earlier run created exp-0 and crashed before its Job; this read does not see it yet.
    kube.trials[("default", "exp-0000")] = {
        "apiVersion": "dial.dev/v1alpha1", "kind": "Trial",
        "metadata": {"name": "exp-0000", "namespace": "default", "uid": "uid-earlier", "labels": {"dial.dev/experiment": "exp"}},
        "spec": {"experiment": "exp", "index": 0, "parameterAssignments": {"lr": 0.5, "layers": 3}}}
    kube.hidden_trials.add("exp-0000")
    reconciler(kube).reconcile("default", "exp")
    assert list(kube.trials) == [("default", "exp-0000")]
    assert kube.trials[("default", "exp-0000")]["spec"]["parameterAssignments"] == {"lr": 0.5, "layers": 3}
    [job] = kube.jobs.values()
    assert "--lr=0.5" in job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "TrialCreated" not in event_reasons(kube)  # someone else's creation: not announced as ours


def test_suspending_records_the_stop_reason_before_the_job_is_deleted_and_the_trial_ends_early_stopped():
    kube = stored(FakeKube())
    reconciler(kube).reconcile("default", "exp")
    kube.experiments[("default", "exp")]["spec"]["suspend"] = True
    del kube.writes[:]
    reconciler(kube).reconcile("default", "exp")
    for name in ("exp-0000", "exp-0001"):
        verbs = [verb for verb, target, _ in kube.writes if target == name]
        assert verbs == ["patch-trial-status", "delete-job"]
        assert kube.trials[("default", name)]["status"]["stopReason"] == "Suspended"
    assert not kube.jobs
    assert event_reasons(kube).count("TrialStopped") == 2  # suspending is not an early stop
    reconciler(kube).reconcile("default", "exp")  # the Jobs and their pods are gone
    assert {t["status"]["phase"] for t in kube.trials.values()} == {"EarlyStopped"}
    assert experiment_status(kube)["phase"] == "Suspended"


def test_a_trial_whose_training_has_exited_is_not_stopped_but_judged_by_its_outcome():
    kube = stored(FakeKube(), parallelTrialCount=1)
    reconciler(kube).reconcile("default", "exp")
    kube.add_pod("exp-0000", containers={"training": {"terminated": {"exitCode": 0}}})
    kube.experiments[("default", "exp")]["spec"]["suspend"] = True
    reconciler(kube).reconcile("default", "exp")
    assert "stopReason" not in kube.trials[("default", "exp-0000")]["status"]
    assert ("default", "exp-0000") in kube.jobs
    assert "TrialStopped" not in event_reasons(kube)


def test_the_last_trial_succeeding_finishes_the_experiment_with_one_event():
    kube = stored(FakeKube(), parallelTrialCount=1, maxTrialCount=1)
    reconciler(kube).reconcile("default", "exp")
    kube.add_pod("exp-0000", containers={"training": {"terminated": {"exitCode": 0}}})
    report_loss(kube, "exp-0000", 0.25)
    kube.finish_job("exp-0000")
    reconciler(kube).reconcile("default", "exp")
    assert kube.trials[("default", "exp-0000")]["status"]["phase"] == "Succeeded"
    status = experiment_status(kube)
    assert (status["phase"], status["bestObjective"]) == ("Succeeded", 0.25)
    assert status["conditions"][0]["reason"] == "MaxTrialCountReached"
    reconciler(kube).reconcile("default", "exp")
    assert event_reasons(kube).count("ExperimentSucceeded") == 1
    assert len(kube.trials) == 1


def test_a_refused_job_blocks_the_experiment_with_a_condition_and_one_warning():
    kube = stored(FakeKube(), parallelTrialCount=1)
    kube.refuse_jobs = ApiException(status=403, reason="Forbidden")
    with pytest.raises(TrialsBlocked, match="refused Job exp-0000"):
        reconciler(kube).reconcile("default", "exp")
    blocked = [c for c in experiment_status(kube)["conditions"] if c["type"] == "TrialsBlocked"]
    assert [c["reason"] for c in blocked] == ["JobRefused"]
    with pytest.raises(TrialsBlocked):
        reconciler(kube).reconcile("default", "exp")  # retried: the Job is asked for again, not the Trial
    assert list(kube.trials) == [("default", "exp-0000")]
    assert [verb for verb, _, _ in kube.writes].count("create-job") == 2
    assert [(r, w) for r, _, w in kube.events if r == "JobRefused"] == [("JobRefused", True)]
    kube.refuse_jobs = None
    reconciler(kube).reconcile("default", "exp")  # the refusal is lifted: the Job is made, the block is gone
    assert ("default", "exp-0000") in kube.jobs
    assert all(c["type"] != "TrialsBlocked" for c in experiment_status(kube)["conditions"])


def test_a_job_without_pods_whose_service_account_is_missing_blocks_the_experiment():
    kube = stored(FakeKube(created_at="2025-12-31T23:59:00Z"), parallelTrialCount=1)
    reconciler(kube).reconcile("default", "exp")  # creates the Job: looked at on the next pass
    with pytest.raises(TrialsBlocked, match="ServiceAccount dial-collector not found"):
        reconciler(kube).reconcile("default", "exp")
    kube.service_accounts.add(("default", "dial-collector"))
    reconciler(kube).reconcile("default", "exp")  # does not raise: the pods can be made now
    assert all(c["type"] != "TrialsBlocked" for c in experiment_status(kube)["conditions"])


@pytest.mark.parametrize("deleted", ["gone", "being deleted"])
def test_a_deleted_experiment_is_left_to_the_garbage_collector(deleted: str):
    kube = FakeKube()
    if deleted == "being deleted":
        raw = kube.add_experiment(manifest())
        raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    reconciler(kube).reconcile("default", "exp")
    assert (kube.writes, kube.events) == ([], [])


def test_an_invalid_spec_fails_the_experiment_and_stops_its_trials():
    kube = stored(FakeKube(), parallelTrialCount=1)
    reconciler(kube).reconcile("default", "exp")
    kube.experiments[("default", "exp")]["spec"]["maxTrialCount"] = 0
    reconciler(kube).reconcile("default", "exp")
    assert kube.trials[("default", "exp-0000")]["status"]["stopReason"] == "ExperimentFinished"
    assert not kube.jobs
    status = experiment_status(kube)
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "InvalidSpec")
