"""Which watch events can change a reconcile: fingerprints of Jobs and pods, and the filter that remembers them."""

from __future__ import annotations

from dial.kube.relevance import ChangeFilter, job_fingerprint, pod_fingerprint


def _job(*conditions: tuple[str, str], deleting: bool = False) -> dict:
    metadata = {"uid": "j1", **({"deletionTimestamp": "2026-11-25T00:00:00Z"} if deleting else {})}
    return {"metadata": metadata, "status": {"active": 1, "conditions": [
        {"type": t, "status": s, "reason": "BackoffLimitExceeded" if t == "Failed" else None} for t, s in conditions]}}


def test_a_job_counts_only_when_it_ends_or_is_deleted():
    assert job_fingerprint(_job()) == job_fingerprint(_job(("Complete", "False")))
    assert job_fingerprint(_job()) != job_fingerprint(_job(("Complete", "True")))
    assert job_fingerprint(_job(("Failed", "True"))) != job_fingerprint(_job(("Complete", "True")))
    assert job_fingerprint(_job()) != job_fingerprint(_job(deleting=True))


def _pod(state: dict, *, phase: str = "Running", init_state: dict | None = None) -> dict:
    return {"metadata": {"uid": "p1"}, "status": {
        "phase": phase, "podIP": "10.0.0.1",
        "initContainerStatuses": [{"name": "dial-collector", "state": init_state or {"running": {}}}],
        "containerStatuses": [{"name": "training", "ready": True, "state": state}]}}


def test_a_pod_counts_when_a_containers_state_or_the_phase_changes_not_for_its_sidecar():
    waiting = {"waiting": {"reason": "PodInitializing"}}
    pulling = {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}
    running = {"running": {"startedAt": "2026-11-25T00:00:00Z"}}
    failed = {"terminated": {"exitCode": 137, "reason": "Error"}}
    succeeded = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    fingerprints = [pod_fingerprint(_pod(s)) for s in (waiting, pulling, running, failed, succeeded)]
    assert len(set(fingerprints)) == 5
    assert pod_fingerprint(_pod(running)) != pod_fingerprint(_pod(running, phase="Succeeded"))
    assert pod_fingerprint(_pod(running)) == pod_fingerprint(_pod(running, init_state={"terminated": {"exitCode": 0}}))


def test_the_filter_drops_repeats_per_object_and_always_passes_deletions():
    seen = ChangeFilter(job_fingerprint)
    first, other = _job(), {**_job(), "metadata": {"uid": "j2"}}
    assert seen.changed("ADDED", first)
    assert not seen.changed("MODIFIED", first)
    assert seen.changed("ADDED", other)  # another object: its own history
    assert seen.changed("MODIFIED", _job(("Complete", "True")))
    assert seen.changed("DELETED", first) and len(seen) == 1
    assert seen.changed("ADDED", first)  # forgotten on deletion: seen again as new
    assert seen.n_dropped == 1
