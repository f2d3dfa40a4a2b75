"""Conditional parameters (`activeWhen`): validation, every strategy, grid enumeration, rendering."""

from __future__ import annotations

import math

import pytest
import yaml

from dial.engine import ExperimentError, load_experiment, plan, render_job_spec
from dial.search import SearchSpace, TrialRecord, make_strategy, propose_active
from dial.search.hyperband import Hyperband

from helpers import NOW, experiment, manifest
from test_strategies import FINITE_CASES, STRATEGY_CASES, case_id, space

COND = space(
    {"name": "model", "type": "categorical", "feasibleSpace": {"list": ["svm", "sgd", "tree"]}},
    {"name": "C", "type": "double", "feasibleSpace": {"min": 0.01, "max": 100, "scale": "log"},
     "activeWhen": {"parameter": "model", "values": ["svm"]}},
    {"name": "kernel", "type": "categorical", "feasibleSpace": {"list": ["rbf", "poly"]},
     "activeWhen": {"parameter": "model", "values": ["svm"]}},
    {"name": "degree", "type": "int", "feasibleSpace": {"min": 2, "max": 5},
     "activeWhen": {"parameter": "kernel", "values": ["poly"]}},
    {"name": "alpha", "type": "double", "feasibleSpace": {"min": 1e-6, "max": 1e-1, "scale": "log"},
     "activeWhen": {"parameter": "model", "values": ["sgd"]}},
    {"name": "depth", "type": "int", "feasibleSpace": {"min": 1, "max": 8},
     "activeWhen": {"parameter": "model", "values": ["tree", "sgd"]}},
)
# Five distinct assignments: a=0, a=1, a=2 under x; y=p, y=q under z.
SMALL_COND = space(
    {"name": "branch", "type": "categorical", "feasibleSpace": {"list": ["x", "z"]}},
    {"name": "a", "type": "int", "feasibleSpace": {"min": 0, "max": 2},
     "activeWhen": {"parameter": "branch", "values": ["x"]}},
    {"name": "b", "type": "categorical", "feasibleSpace": {"list": ["p", "q"]},
     "activeWhen": {"parameter": "branch", "values": ["z"]}},
)


def conditional_loss(a: dict) -> float:
    if a["model"] == "svm":
        return (math.log10(a["C"]) - 1) ** 2 + (0.5 if a["kernel"] == "poly" else 0.0) + 0.1 * a.get("degree", 0)
    if a["model"] == "sgd":
        return 1.0 + (math.log10(a["alpha"]) + 4) ** 2 + 0.01 * a["depth"]
    return 2.0 + abs(a["depth"] - 4)


def run(name: str, settings: dict, sp: SearchSpace, *, seed: int, rounds: int, batch: int) -> list[TrialRecord]:
    strategy = make_strategy(name, settings, sp, seed=seed)
    history: list[TrialRecord] = []
    for _ in range(rounds):
        for a in propose_active(strategy, history, batch):
            history.append(TrialRecord(len(history), a, conditional_loss(a), True))
    return history


def expected_names(a: dict) -> set[str]:
    names = {"model"}
    if a["model"] == "svm":
        names |= {"C", "kernel"} | ({"degree"} if a["kernel"] == "poly" else set())
    else:
        names |= {"depth"} | ({"alpha"} if a["model"] == "sgd" else set())
    return names


@pytest.mark.parametrize("case", STRATEGY_CASES, ids=case_id)
def test_every_strategy_proposes_only_active_parameters_deterministically(case: tuple[str, dict]) -> None:
    history = run(*case, COND, seed=5, rounds=6, batch=2)
    assert len(history) == 12
    for record in history:
        assert set(record.assignment) == expected_names(record.assignment), record.assignment
        assert COND.contains(record.assignment), record.assignment
    assert len({COND.key(r.assignment) for r in history}) == 12
    again = run(*case, COND, seed=5, rounds=6, batch=2)
    assert [r.assignment for r in again] == [r.assignment for r in history]


@pytest.mark.parametrize("case", FINITE_CASES, ids=case_id)
def test_finite_conditional_space_holds_only_its_distinct_active_combinations(case: tuple[str, dict]) -> None:
    strategy = make_strategy(*case, SMALL_COND, seed=0)
    history: list[TrialRecord] = []
    for _ in range(2):
        proposals = propose_active(strategy, history, 3)
        history += [TrialRecord(len(history) + i, a) for i, a in enumerate(proposals)]  # still running
    assert len(history) == 5
    assert sorted(map(SMALL_COND.key, (r.assignment for r in history))) == sorted(map(SMALL_COND.key, [
        {"branch": "x", "a": 0}, {"branch": "x", "a": 1}, {"branch": "x", "a": 2},
        {"branch": "z", "b": "p"}, {"branch": "z", "b": "q"}]))
    assert propose_active(strategy, history, 2) == []


def test_grid_enumerates_distinct_active_combinations_in_order() -> None:
    strategy = make_strategy("grid", {}, SMALL_COND, seed=0)
    assert propose_active(strategy, [], 10) == [
        {"branch": "x", "a": 0}, {"branch": "x", "a": 1}, {"branch": "x", "a": 2},
        {"branch": "z", "b": "p"}, {"branch": "z", "b": "q"}]


def test_hyperband_with_a_conditional_parameter() -> None:
    sp = space({"name": "epochs", "type": "int", "feasibleSpace": {"min": 1, "max": 9}}, *[
        {"name": p.name, "type": "categorical" if p.is_choice else "double",
         **({"feasibleSpace": {"list": list(p.choices)}} if p.is_choice else {"feasibleSpace": {"min": 0.01, "max": 100}}),
         **({"activeWhen": {"parameter": "model", "values": ["svm"]}} if p.name == "C" else {})}
        for p in COND.dimensions[:2]])
    strategy: Hyperband = make_strategy("hyperband", {"resource_name": "epochs", "max_resource": 9}, sp, seed=0)  # type: ignore[assignment]
    history: list[TrialRecord] = []
    for _ in range(20):
        proposals = propose_active(strategy, history, 1)
        if not proposals:
            break
        a = proposals[0]
        assert set(a) == ({"epochs", "model", "C"} if a["model"] == "svm" else {"epochs", "model"})
        history.append(TrialRecord(len(history), a, a.get("C", 1.0) / a["epochs"], True))
    assert len(history) == 20


def test_inactive_parameters_look_the_same_to_models_whatever_their_value() -> None:
    stripped = {"model": "tree", "depth": 3}
    assert (COND.to_unit(stripped) == COND.to_unit({**stripped, "C": 50.0, "kernel": "poly", "degree": 5})).all()
    assert COND.key(stripped) == COND.key({**stripped, "alpha": 0.01})
    assert COND.key(stripped) != COND.key({"model": "sgd", "depth": 3, "alpha": 0.01})
    assert COND.complete(stripped)["C"] == COND.complete({"model": "sgd", "alpha": 0.1, "depth": 1})["C"]
    assert not COND.contains({**stripped, "C": 1.0})  # an inactive parameter given a value
    assert not COND.contains({"model": "svm", "C": 1.0})  # an active one missing


def conditional_manifest(*extra: dict, **active_when: object) -> dict:
    data = manifest(parameters=[
        {"name": "opt", "type": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
        {"name": "lr", "type": "double", "feasibleSpace": {"min": 0.001, "max": 1}},
        {"name": "momentum", "type": "double", "feasibleSpace": {"min": 0, "max": 0.99}, "activeWhen": active_when},
        *extra,
    ])
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python", "train.py", *[f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in data["spec"]["parameters"]]]
    return data


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load_experiment(yaml.safe_dump(data))
    return [str(e) for e in info.value.errors]


def test_condition_on_an_unknown_parameter_names_the_field() -> None:
    assert errors_of(conditional_manifest(parameter="optimizer", values=["sgd"])) == [
        "spec.parameters[2].activeWhen.parameter: 'optimizer' is not a parameter of this experiment"]


def test_condition_on_a_numeric_parameter_is_refused() -> None:
    assert errors_of(conditional_manifest(parameter="lr", values=["0.1"])) == [
        "spec.parameters[2].activeWhen.parameter: 'lr' is double: a condition needs a categorical parameter"]


def test_condition_on_an_impossible_value_is_refused() -> None:
    assert errors_of(conditional_manifest(parameter="opt", values=["sgd", "adamw"])) == [
        "spec.parameters[2].activeWhen.values[1]: 'adamw' is not one of 'opt''s values ['sgd', 'adam']"]


def test_condition_cycles_are_refused() -> None:
    cyclic = conditional_manifest(
        {"name": "a", "type": "categorical", "feasibleSpace": {"list": ["u", "v"]}, "activeWhen": {"parameter": "b", "values": ["u"]}},
        {"name": "b", "type": "categorical", "feasibleSpace": {"list": ["u", "v"]}, "activeWhen": {"parameter": "a", "values": ["v"]}},
        parameter="opt", values=["sgd"])
    assert errors_of(cyclic) == ["spec.parameters[3].activeWhen: conditions form a cycle: a -> b -> a",
                                 "spec.parameters[4].activeWhen: conditions form a cycle: b -> a -> b"]
    selfish = conditional_manifest(parameter="momentum", values=["x"])
    assert errors_of(selfish) == ["spec.parameters[2].activeWhen.parameter: parameter 'momentum' cannot depend on itself"]


def test_inactive_placeholders_leave_the_command_line() -> None:
    data = conditional_manifest(parameter="opt", values=["sgd"])
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "train.py", "--opt", "${trialParameters.opt}", "--momentum",
                            "${trialParameters.momentum}", "--m=${trialParameters.momentum}", "-v",
                            "--lr=${trialParameters.lr}", "sh -c 'echo m=${trialParameters.momentum}'"]
    container["env"] = [{"name": "MOMENTUM", "value": "${trialParameters.momentum}"}]
    exp = load_experiment(yaml.safe_dump(data))
    adam = render_job_spec(exp, "t", {"opt": "adam", "lr": 0.1})["template"]["spec"]["containers"][0]
    assert adam["command"] == ["python", "train.py", "--opt", "adam", "-v", "--lr=0.1", "sh -c 'echo m='"]
    assert adam["env"] == [{"name": "MOMENTUM", "value": ""}]
    sgd = render_job_spec(exp, "t", {"opt": "sgd", "lr": 0.1, "momentum": 0.9})["template"]["spec"]["containers"][0]
    assert sgd["command"] == ["python", "train.py", "--opt", "sgd", "--momentum", "0.9", "--m=0.9", "-v",
                              "--lr=0.1", "sh -c 'echo m=0.9'"]


def test_engine_plans_trials_without_inactive_parameters() -> None:
    exp = experiment(**conditional_manifest(parameter="opt", values=["sgd"])["spec"] | {"maxTrialCount": 20,
                                                                                        "parallelTrialCount": 20})
    proposals = plan(exp, [], now=NOW).create
    assert len(proposals) == 20
    assert {frozenset(p.assignment) for p in proposals} == {frozenset({"opt", "lr", "momentum"}), frozenset({"opt", "lr"})}
    assert all(("momentum" in p.assignment) == (p.assignment["opt"] == "sgd") for p in proposals)
