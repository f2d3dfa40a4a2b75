"""A trial's run state read from its Job and pod, as the API server returns them."""

from __future__ import annotations

from datetime import datetime, timezone

from dial.kube.outcomes import RunOutcome, RunState, job_outcome


def job(*conditions: tuple[str, str]) -> dict:
    return {"status": {"conditions": [{"type": t, "status": "True", "reason": r, "message": f"{r} happened"}
                                      for t, r in conditions]}}


def pod(name: str, created: str, **states: dict) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"containerStatuses": [
                {"name": "dial-collector", "state": {"running": {"startedAt": created}}},
                *[{"name": c, "state": s} for c, s in states.items()]]}}


def test_no_pod_yet_is_pending():
    assert job_outcome(job(), [], "training") == RunOutcome(RunState.pending)


def test_waiting_container_says_why_it_is_pending():
    p = pod("p", "2026-01-01T00:00:00Z", training={"waiting": {"reason": "ErrImagePull", "message": "no such image"}})
    assert job_outcome(job(), [p], "training") == RunOutcome(RunState.pending, reason="ErrImagePull",
                                                               message="no such image", pod="p")


def test_running_container_gives_start_time():
    p = pod("p", "2026-01-01T00:00:00Z", training={"running": {"startedAt": "2026-01-01T00:00:05Z"}})
    outcome = job_outcome(job(), [p], "training")
    assert outcome.state is RunState.running
    assert outcome.started_at == datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)


def test_terminated_container_is_still_running_until_the_job_says_so():
    # Until the Job is Complete its pod (and so the collector) may still be flushing.
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 0, "startedAt": "2026-01-01T00:00:01Z"}})
    assert job_outcome(job(("SuccessCriteriaMet", "CompletionsReached")), [p], "training").state is RunState.running


def test_complete_job_succeeds_with_exit_code_zero():
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 0, "reason": "Completed"}})
    assert job_outcome(job(("Complete", "")), [p], "training") == RunOutcome(RunState.succeeded, exit_code=0, pod="p")


def test_failed_job_reports_the_latest_pods_exit_code():
    old = pod("old", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 1, "reason": "Error"}})
    new = pod("new", "2026-01-01T00:01:00Z", training={"terminated": {"exitCode": 3, "reason": "Error"}})
    outcome = job_outcome(job(("Failed", "BackoffLimitExceeded")), [new, old], "training")
    assert (outcome.state, outcome.exit_code, outcome.reason, outcome.pod) == (RunState.failed, 3, None, "new")


def test_specific_container_reason_is_kept():
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    outcome = job_outcome(job(("Failed", "BackoffLimitExceeded")), [p], "training")
    assert (outcome.exit_code, outcome.reason) == (137, "OOMKilled")


def test_deadline_is_the_reason_when_the_container_just_died():
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 143, "reason": "Error"}})
    outcome = job_outcome(job(("Failed", "DeadlineExceeded")), [p], "training")
    assert (outcome.exit_code, outcome.reason) == (143, "DeadlineExceeded")


def test_failed_job_without_pods_keeps_the_jobs_reason():
    outcome = job_outcome(job(("Failed", "DeadlineExceeded")), [], "training")
    assert (outcome.state, outcome.exit_code, outcome.reason) == (RunState.failed, None, "DeadlineExceeded")
    assert outcome.message == "DeadlineExceeded happened"


def test_training_ended_reads_the_latest_pods_training_container() -> None:
    from dial.kube.outcomes import training_ended

    def pod(created: str, state: dict) -> dict:
        return {"metadata": {"name": created, "creationTimestamp": created},
                "status": {"containerStatuses": [{"name": "training", "state": state},
                                                 {"name": "dial-collector", "state": {"running": {}}}]}}

    assert not training_ended([], "training")
    assert not training_ended([pod("2026-01-01T00:00:01Z", {"running": {"startedAt": "x"}})], "training")
    done = pod("2026-01-01T00:00:01Z", {"terminated": {"exitCode": 0}})
    assert training_ended([done], "training")
    assert not training_ended([done, pod("2026-01-01T00:00:02Z", {"running": {}})], "training")
    assert not training_ended([done], "other")


def test_a_pods_own_deadline_is_the_reason_when_the_job_only_counts_a_failed_pod():
    # activeDeadlineSeconds in the pod template: the kubelet stops the pod, the Job sees one failure.
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 143, "reason": "Error"}})
    p["status"]["reason"] = "DeadlineExceeded"
    outcome = job_outcome(job(("Failed", "BackoffLimitExceeded")), [p], "training")
    assert (outcome.state, outcome.reason, outcome.exit_code) == (RunState.failed, "DeadlineExceeded", 143)


def test_an_image_without_sh_fails_with_a_message_that_says_what_the_collector_needs():
    runc = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create '
            'failed: unable to start container process: exec: "sh": executable file not found in $PATH')
    p = pod("p", "2026-01-01T00:00:00Z", training={"terminated": {"exitCode": 128, "reason": "StartError",
                                                                  "message": runc}})
    outcome = job_outcome(job(("Failed", "BackoffLimitExceeded")), [p], "training")
    assert outcome.reason == "StartError" and outcome.message.startswith(runc)
    assert "POSIX shell" in outcome.message and "File metrics collector" in outcome.message
