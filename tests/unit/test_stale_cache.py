"""The reconciler reading from a cache that lags on purpose (`fake_kube.FakeKube` with an `ObjectCache`):
what it has not seen yet is never proposed twice with other parameters, never run twice, never lost, and a
status written from a stale copy is refused and redone from a fresh read."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from dial.api.trial import TrialStatus
from dial.kube.cache import ObjectCache
from dial.kube.jobs import CollectorSettings
from dial.kube.reconcile import Reconciler
from fake_kube import FakeKube
from helpers import NOW, manifest

RUNNING = {"training": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
EXITED = {"training": {"terminated": {"exitCode": 0}}}


def cached_kube(**spec: Any) -> FakeKube:
    """An experiment on an API whose cache is never too old to use: every reconcile after the first reads it."""
    kube = FakeKube(cache=ObjectCache(clock=lambda: 0.0))
    kube.add_experiment(manifest(**spec))
    return kube


def reconciler(kube: FakeKube, clock: list[datetime] | None = None) -> Reconciler:
    now = clock or [NOW]
    return Reconciler(kube, CollectorSettings(), clock=lambda: now[0])  # type: ignore[arg-type]


def report(kube: FakeKube, trial: str, curve: list[float]) -> None:
    """The collector's write: the whole curve so far and the objective it gives (best, minimised)."""
    status = TrialStatus()
    for step, loss in enumerate(curve, start=1):
        status.record("loss", float(step), loss)
    kube.collector_patch(trial, {"observations": status.model_dump(mode="json", by_alias=True)["observations"],
                                 "objective": min(curve)})


def trial_status(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.trials[("default", name)]["status"]


def assignment(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.trials[("default", name)]["spec"]["parameterAssignments"]


def job_command(kube: FakeKube, name: str) -> list[str]:
    return kube.jobs[("default", name)]["spec"]["template"]["spec"]["containers"][0]["command"]


def created(kube: FakeKube, verb: str) -> list[str]:
    return [name for v, name, _ in kube.writes if v == verb]


def test_a_trial_the_cache_has_not_seen_is_proposed_again_but_runs_with_its_stored_parameters():
    kube = cached_kube(parallelTrialCount=2, maxTrialCount=4)
    kube.answers_reach_cache = False  # the cache lags behind the operator's own writes
    operator = reconciler(kube)
    operator.reconcile("default", "exp")  # fresh: creates exp-0000 and exp-0001
    first = assignment(kube, "exp-0001")
    del kube.jobs[("default", "exp-0001")]  # the run crashed between exp-0001 and its Job
    kube.add_pod("exp-0000", containers=EXITED)
    report(kube, "exp-0000", [0.5])
    kube.finish_job("exp-0000")
    kube.deliver(trial="exp-0000")  # everything about exp-0000 arrives; nothing about exp-0001 yet
    operator.reconcile("default", "exp")
    # One trial finished and one unseen: the plan proposes index 1 again, from another history.
    retried = [body for verb, name, body in kube.writes if (verb, name) == ("create-trial", "exp-0001")]
    assert len(retried) == 2 and retried[1]["spec"]["parameterAssignments"] != first
    # The create found it (409): the stored trial is what runs, and nothing is announced twice.
    assert assignment(kube, "exp-0001") == first
    assert f"--lr={first['lr']}" in job_command(kube, "exp-0001")
    assert sorted(name for _, name in kube.trials) == ["exp-0000", "exp-0001", "exp-0002"]
    assert sorted(name for _, name in kube.jobs) == ["exp-0000", "exp-0001", "exp-0002"]
    assert [m.split(":")[0] for r, m, _ in kube.events if r == "TrialCreated"] == ["exp-0000", "exp-0001", "exp-0002"]
    assert trial_status(kube, "exp-0000")["phase"] == "Succeeded"


def test_a_trial_the_cache_has_not_seen_that_already_ended_gets_no_second_job():
    kube = cached_kube(parallelTrialCount=2, maxTrialCount=4)
    kube.answers_reach_cache = False
    operator = reconciler(kube)
    operator.reconcile("default", "exp")
    # exp-0001 was stopped early (its stop recorded, its Job deleted) and has ended; the cache has not
    # caught up with any of it, nor with exp-0001 at all.
    kube.collector_patch("exp-0001", {"phase": "EarlyStopped", "reason": "MedianStop", "stopReason": "MedianStop"})
    del kube.jobs[("default", "exp-0001")]
    kube.deliver(trial="exp-0000")
    operator.reconcile("default", "exp")  # proposes index 1 again: the create finds it (409), ended
    assert created(kube, "create-job").count("exp-0001") == 1
    assert ("default", "exp-0001") not in kube.jobs
    assert trial_status(kube, "exp-0001")["phase"] == "EarlyStopped"


def test_a_job_that_ends_before_the_cache_has_the_collectors_last_patch_is_finalised_from_a_fresh_read():
    kube = cached_kube(parallelTrialCount=1, maxTrialCount=2)
    operator = reconciler(kube)
    operator.reconcile("default", "exp")
    kube.add_pod("exp-0000", containers=RUNNING)
    report(kube, "exp-0000", [0.5])
    kube.deliver()
    operator.reconcile("default", "exp")
    assert trial_status(kube, "exp-0000")["phase"] == "Running"
    report(kube, "exp-0000", [0.5, 0.25])  # the last patch: its event is still on the way
    kube.add_pod("exp-0000", containers=EXITED)
    kube.finish_job("exp-0000")
    kube.deliver("jobs", "pods")
    operator.reconcile("default", "exp")
    status = trial_status(kube, "exp-0000")
    assert (status["phase"], status["objective"]) == ("Succeeded", 0.25)
    assert [p["value"] for p in status["observations"][0]["curve"]] == [0.5, 0.25]  # no observation lost
    assert kube.experiments[("default", "exp")]["status"]["bestObjective"] == 0.25


def test_a_stop_the_cache_has_not_seen_still_ends_the_trial_stopped_not_failed_for_a_deleted_job():
    kube = cached_kube(parallelTrialCount=1, maxTrialCount=2)
    operator = reconciler(kube)
    operator.reconcile("default", "exp")
    kube.add_pod("exp-0000", containers=RUNNING)
    kube.deliver()
    operator.reconcile("default", "exp")
    kube.answers_reach_cache = False
    kube.edit_experiment(suspend=True)
    kube.deliver()
    operator.reconcile("default", "exp")  # records the stop and deletes the Job; the cache sees neither
    assert trial_status(kube, "exp-0000")["stopReason"] == "Suspended"
    kube.remove_pod("exp-0000")
    kube.deliver("jobs", "pods")  # the Job and pod are gone; the Trial's stop record is still on the way
    operator.reconcile("default", "exp")
    status = trial_status(kube, "exp-0000")
    assert (status["phase"], status["reason"]) == ("EarlyStopped", "Suspended")


def test_a_restart_with_an_empty_cache_reads_fresh_and_repeats_nothing():
    kube = cached_kube(parallelTrialCount=2, maxTrialCount=4)
    operator = reconciler(kube)
    operator.reconcile("default", "exp")
    kube.add_pod("exp-0000", containers=EXITED)
    report(kube, "exp-0000", [0.5])
    kube.finish_job("exp-0000")
    kube.deliver()
    operator.reconcile("default", "exp")  # exp-0000 succeeded, exp-0002 created
    del kube.jobs[("default", "exp-0002")]  # as if the operator had crashed between the Trial and its Job
    parameters = assignment(kube, "exp-0002")
    status = dict(kube.experiments[("default", "exp")]["status"])
    # A new process: an empty cache, whose watches have delivered the Experiment but none of its Trials yet.
    kube.cache, kube.watch = ObjectCache(clock=lambda: 0.0), []
    kube.cache.observe("experiments", copy.deepcopy(kube.experiments[("default", "exp")]))
    del kube.writes[:]
    reconciler(kube).reconcile("default", "exp")
    assert [(verb, name) for verb, name, _ in kube.writes] == [("create-job", "exp-0002")]
    assert f"--lr={parameters['lr']}" in job_command(kube, "exp-0002")
    assert kube.experiments[("default", "exp")]["status"] == status


def test_a_status_computed_from_a_stale_experiment_is_refused_and_redone_from_a_fresh_read():
    kube = cached_kube(parallelTrialCount=2, maxTrialCount=4)
    kube.service_accounts.add(("default", "dial-collector"))  # exp-0001's pod may take its time
    clock = [NOW]
    operator = reconciler(kube, clock)
    kube.answers_reach_cache = False
    operator.reconcile("default", "exp")  # writes startTime; the cached Experiment does not have it
    started = kube.experiments[("default", "exp")]["status"]["startTime"]
    kube.deliver("trials", "jobs")
    clock[0] = NOW + timedelta(seconds=20)
    kube.add_pod("exp-0000", containers=RUNNING)
    kube.deliver("pods")
    operator.reconcile("default", "exp")  # computed from a status without startTime: its write conflicts
    status = kube.experiments[("default", "exp")]["status"]
    assert status["startTime"] == started  # the budget's clock did not restart
    assert status["trials"]["running"] == 1  # and the reconcile was redone, not dropped
    assert [reason for reason, _, _ in kube.events].count("TrialCreated") == 2
