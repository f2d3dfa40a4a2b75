"""The operator's watch-fed cache (dial.kube.cache): it never goes back to an older copy, deletions stick,
fresh LISTs replace an experiment's slice, and it says when an experiment must be read fresh."""

from __future__ import annotations

from dial.kube.cache import ObjectCache


def trial(name: str, rv: int, experiment: str = "exp", **status) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                         "labels": {"dial.dev/experiment": experiment}}, "status": status}


def test_a_late_watch_event_does_not_undo_the_operators_own_write():
    cache = ObjectCache()
    cache.observe("trials", trial("exp-0000", 10, phase="Running"))  # the PATCH's answer
    cache.observe("trials", trial("exp-0000", 7, phase="Pending"))  # the watch catching up
    assert cache.get("trials", "ns", "exp-0000")["status"] == {"phase": "Running"}
    cache.observe("trials", trial("exp-0000", 12, phase="Succeeded"))
    assert cache.get("trials", "ns", "exp-0000")["status"] == {"phase": "Succeeded"}


def test_a_deletion_sticks_against_older_copies_but_not_a_recreation():
    cache = ObjectCache()
    cache.observe("jobs", trial("exp-0000", 5))
    cache.observe("jobs", trial("exp-0000", 6), deleted=True)
    cache.observe("jobs", trial("exp-0000", 5))  # a late event from before the deletion
    assert cache.get("jobs", "ns", "exp-0000") is None
    cache.replace("jobs", "ns", "exp", [trial("exp-0000", 6)])  # a LIST served before the deletion
    assert cache.list("jobs", "ns", "exp") == []
    cache.observe("jobs", trial("exp-0000", 9))  # created again
    assert cache.get("jobs", "ns", "exp-0000")["metadata"]["resourceVersion"] == "9"


def test_the_operator_forgetting_a_job_it_deleted_keeps_older_copies_out():
    cache = ObjectCache()
    cache.observe("jobs", trial("exp-0001", 20))
    cache.forget("jobs", "ns", "exp-0001")
    cache.observe("jobs", trial("exp-0001", 20))
    assert cache.get("jobs", "ns", "exp-0001") is None


def test_a_fresh_list_replaces_one_experiments_objects_and_keeps_newer_copies():
    cache = ObjectCache()
    cache.observe("trials", trial("exp-0000", 3))
    cache.observe("trials", trial("exp-0001", 30, phase="Running"))  # written after the LIST was served
    cache.observe("trials", trial("gone-0000", 4, experiment="other"))
    cache.replace("trials", "ns", "exp", [trial("exp-0001", 25, phase="Pending"), trial("exp-0002", 26)])
    names = {t["metadata"]["name"]: t for t in cache.list("trials", "ns", "exp")}
    assert set(names) == {"exp-0001", "exp-0002"}  # exp-0000 is gone: the LIST does not have it
    assert names["exp-0001"]["status"] == {"phase": "Running"}
    assert [t["metadata"]["name"] for t in cache.list("trials", "ns", "other")] == ["gone-0000"]


def test_an_experiment_is_read_fresh_at_first_after_a_failure_and_once_its_reads_are_old():
    now = [100.0]
    cache = ObjectCache(clock=lambda: now[0], fresh_seconds=30)
    assert cache.needs_fresh_read("ns", "exp")  # an empty cache (a restart) knows nothing
    cache.read_fresh("ns", "exp")
    now[0] += 10
    assert not cache.needs_fresh_read("ns", "exp")
    cache.distrust("ns", "exp")
    assert cache.needs_fresh_read("ns", "exp")
    cache.read_fresh("ns", "exp")
    now[0] += 31
    assert cache.needs_fresh_read("ns", "exp")
