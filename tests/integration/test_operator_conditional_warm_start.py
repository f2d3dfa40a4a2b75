"""The operator runs conditional parameters, then warm starts a second experiment from the first one's Trials."""

from __future__ import annotations

import pytest

from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, dump, events, example_manifest, operator, phases, trials, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def digits(name: str, **spec: object) -> dict:
    manifest = example_manifest("conditional", algorithm={"name": "random"}, parallelTrialCount=2, **spec)
    manifest["metadata"]["name"] = name
    manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["args"] += ["--folds", "2"]
    return manifest


def family(assignment: dict) -> set[str]:
    return {"model", "C", "gamma"} if assignment["model"] == "svm" else {"model", "alpha", "penalty"}


def test_conditional_trials_then_warm_start_from_them(cluster, operator):
    ns = operator.namespace
    apply(cluster, ns, digits("digits", maxTrialCount=4, seed=2))
    first = wait_for_phase(cluster, operator, ns, "digits", ("Succeeded", "Failed"), timeout=420)
    items = trials(cluster, ns, "digits")
    assert first["status"]["phase"] == "Succeeded", dump(first["status"])
    # The training program refuses the other family's flags: Succeeded means only active ones were passed.
    assert phases(items) == ["Succeeded"] * 4, dump([t["status"] for t in items])
    assignments = [t["spec"]["parameterAssignments"] for t in items]
    assert all(set(a) == family(a) for a in assignments), assignments

    apply(cluster, ns, digits("digits-again", maxTrialCount=2, seed=2,
                              warmStart={"experiments": ["digits", "never-ran"]}))
    second = wait_for_phase(cluster, operator, ns, "digits-again", ("Succeeded", "Failed"), timeout=420)
    assert second["status"]["phase"] == "Succeeded", dump(second["status"])
    snap = second["status"]["warmStart"]
    assert [p["source"] for p in snap["trials"]] == [f"digits/digits-000{i}" for i in range(4)]
    assert [p["parameters"] for p in snap["trials"]] == assignments
    assert [p["objective"] for p in snap["trials"]] == [t["status"]["objective"] for t in items]
    assert snap["notes"] == ["digits: 4 trials taken", "never-ran: not found; no trials from it"]
    own = trials(cluster, ns, "digits-again")
    assert [t["metadata"]["name"] for t in own] == ["digits-again-0000", "digits-again-0001"]
    assert second["status"]["trials"]["succeeded"] == 2 and second["status"]["progress"] == "2/2"
    assert all(set(t["spec"]["parameterAssignments"]) == family(t["spec"]["parameterAssignments"]) for t in own)
    assert ("WarmStarted", "4 earlier trials seed the search: digits: 4 trials taken; "
                           "never-ran: not found; no trials from it") in events(cluster, ns, "digits-again")
