"""A multi-objective Experiment on the real control plane: every objective on the Trials, the Pareto front in
the Experiment's status, nonsense refused at apply time or with a condition naming the field."""

from __future__ import annotations

import json

import pytest

from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, dump, events, example_manifest, operator, phases, trials, wait_for_phase,
)

from dial.search.pareto import dominates

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
N_TRIALS = 8


def test_status_pareto_front_is_the_non_dominated_trials(cluster, operator):
    ns = operator.namespace
    apply(cluster, ns, example_manifest("multi-objective", maxTrialCount=N_TRIALS))
    exp = wait_for_phase(cluster, operator, ns, "multi-objective", ("Succeeded", "Failed"), timeout=420)
    items = trials(cluster, ns, "multi-objective")
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert phases(items) == ["Succeeded"] * N_TRIALS, dump([t["status"] for t in items])
    values = {t["metadata"]["name"]: t["status"]["objectives"] for t in items}
    assert all(set(v) == {"accuracy", "nodes"} for v in values.values()), dump(values)
    assert all(t["status"]["objective"] == t["status"]["objectives"]["accuracy"] for t in items)

    def losses(name: str) -> tuple[float, float]:
        return -values[name]["accuracy"], values[name]["nodes"]

    expected = [n for n in sorted(values) if not any(dominates(losses(o), losses(n)) for o in values)]
    front = exp["status"]["paretoFront"]
    assert [e["name"] for e in front] == expected and exp["status"]["paretoFrontSize"] == len(expected)
    for entry in front:
        assert entry["objectives"] == values[entry["name"]]
        trial = next(t for t in items if t["metadata"]["name"] == entry["name"])
        assert entry["parameters"] == trial["spec"]["parameterAssignments"]
    assert "bestTrial" not in exp["status"] and "bestObjective" not in exp["status"]
    wide = cluster.kubectl("get", "experiments", "-n", ns, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert "PARETO" in header.split() and str(len(expected)) in row.split(), wide


def test_both_objective_forms_are_refused_at_apply(cluster, dial_namespace):
    manifest = example_manifest("multi-objective")
    manifest["spec"]["objective"] |= {"type": "maximize", "metricName": "accuracy"}
    result = cluster.kubectl("apply", "-n", dial_namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "give type and metricName (one objective) or objectives (two or more), not both" in result.stderr, result.stderr


def test_a_single_objective_algorithm_fails_the_experiment_naming_the_field(cluster, operator):
    ns = operator.namespace
    apply(cluster, ns, example_manifest("multi-objective", algorithm={"name": "cmaes"}))
    exp = wait_for_phase(cluster, operator, ns, "multi-objective", ("Failed",), timeout=60)
    [condition] = exp["status"]["conditions"]
    assert condition["reason"] == "InvalidSpec", condition
    assert condition["message"].startswith("spec.algorithm.name: algorithm 'cmaes' optimises one objective"), condition
    assert ("InvalidSpec", condition["message"]) in events(cluster, ns, "multi-objective")
    assert trials(cluster, ns, "multi-objective") == []
