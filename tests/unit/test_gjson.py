"""The GJSON subset that Katib's success and failure conditions are written in."""

from __future__ import annotations

from typing import Any

import pytest

from dial.api import gjson

JOB = {
    "metadata": {"name": "t-0001", "labels": {"a.b/c": "x"}},
    "status": {
        "phase": "Succeeded",
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "Done", "message": "Job completed"},
            {"type": "Failed", "status": "False"},
        ],
    },
}


@pytest.mark.parametrize(("path", "expected"), [
    ("status.phase", "Succeeded"),
    ("status.succeeded", 1),
    ("status.conditions.#", 3),
    ("status.conditions.1.reason", "Done"),
    ("status.conditions.#.type", ["SuccessCriteriaMet", "Complete", "Failed"]),
    ('status.conditions.#(type=="Complete").reason', "Done"),
    ('status.conditions.#(status=="True")#.type', ["SuccessCriteriaMet", "Complete"]),
    ('status.conditions.#(type=="Complete")#|#(status=="True")#',
     [{"type": "Complete", "status": "True", "reason": "Done", "message": "Job completed"}]),
    ('status.conditions.#(type=="Failed")#|#(status=="True")#', []),
    ('status.conditions.#(type!="Failed")#.type', ["SuccessCriteriaMet", "Complete"]),
    ('status.conditions.#(type%"Succ*")#.type', ["SuccessCriteriaMet"]),
    ('status.conditions.#(type!%"Succ*")#.type', ["Complete", "Failed"]),
    ("status.conditions.#(message)#.type", ["Complete"]),
    ('status.[@this].#(phase=="Succeeded")#.succeeded', [1]),
    ('status.[@this].#(phase=="Failed")#', []),
    ("status.@this.phase", "Succeeded"),
    ("status.[phase,succeeded,nothing]", ["Succeeded", 1]),
    ("metadata.labels.a\\.b/c", "x"),
    ("status.succeeded|@this", 1),
    ("status.conditions.#(succeeded>0)#", []),
])
def test_paths_find_what_gjson_finds(path: str, expected: Any) -> None:
    assert gjson.get(JOB, path) == expected


@pytest.mark.parametrize("path", ["status.missing", "status.conditions.9", "status.phase.deeper",
                                  'status.conditions.#(type=="Nope").reason', "status.succeeded.#"])
def test_paths_that_find_nothing(path: str) -> None:
    assert gjson.get(JOB, path) is gjson.MISSING


@pytest.mark.parametrize(("document", "expected"), [
    ({"status": {"n": [{"v": 1}, {"v": 5}, {"v": 10}]}}, [5, 10]),
])
def test_numeric_comparisons(document: dict[str, Any], expected: list[int]) -> None:
    assert gjson.get(document, "status.n.#(v>=5)#.v") == expected
    assert gjson.get(document, "status.n.#(v<5)#.v") == [1]
    assert gjson.get(document, "status.n.#(v==10).v") == 10
    assert gjson.get(document, 'status.n.#(v=="10")#') == []  # a string never equals a number


def test_booleans_and_null_compare_by_identity() -> None:
    document = {"items": [{"ok": True}, {"ok": False}, {"ok": None}, {"ok": 1}]}
    assert gjson.get(document, "items.#(ok==true)#") == [{"ok": True}]
    assert gjson.get(document, "items.#(ok==null)#") == [{"ok": None}]
    assert len(gjson.get(document, "items.#(ok!=false)#")) == 3


def test_a_condition_holds_on_an_object_or_a_non_empty_array() -> None:
    assert gjson.holds(JOB, 'status.conditions.#(type=="Complete")#|#(status=="True")#')
    assert not gjson.holds(JOB, 'status.conditions.#(type=="Failed")#|#(status=="True")#')
    assert gjson.holds(JOB, 'status.conditions.#(type=="Complete")')  # one object
    assert not gjson.holds(JOB, "status.phase")  # a string is not an object
    assert not gjson.holds(JOB, "status.nothing")


def test_argo_and_tekton_conditions_of_katibs_examples() -> None:
    workflow = {"status": {"phase": "Failed"}}
    assert gjson.holds(workflow, 'status.[@this].#(phase=="Failed")#')
    assert not gjson.holds(workflow, 'status.[@this].#(phase=="Succeeded")#')
    run = {"status": {"conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]}}
    assert gjson.holds(run, 'status.conditions.#(type=="Succeeded")#|#(status=="False")#')
    assert not gjson.holds(run, 'status.conditions.#(type=="Succeeded")#|#(status=="True")#')


def test_first_match_gives_the_condition_for_its_reason() -> None:
    found = gjson.first_match(JOB, 'status.conditions.#(type=="Complete")#|#(status=="True")#')
    assert found is not None and found["reason"] == "Done"
    assert gjson.first_match(JOB, 'status.conditions.#(type=="Failed")#|#(status=="True")#') is None


@pytest.mark.parametrize(("path", "words"), [
    ("", "empty path"),
    ("status..phase", "empty component"),
    ("status.", "ends with a separator"),
    ("status.@reverse", "modifier '@reverse' is not supported"),
    ("status.con*", "wildcards"),
    ("status.conditions.#(type==Complete)", "a query compares with a string in quotes"),
    ('status.conditions.#(type=="Complete"', "unterminated"),
    ("status.{phase}", "object multipaths"),
    ("status.)", "unbalanced"),
])
def test_what_the_subset_cannot_read_is_refused_with_why(path: str, words: str) -> None:
    with pytest.raises(gjson.GjsonError, match=words.replace("(", r"\(").replace("*", r"\*")):
        gjson.parse(path)
