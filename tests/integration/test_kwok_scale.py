"""The kwok scale harness on the local control plane: `hack/cluster kwok` adds fake nodes whose pods kwok's Stage
rules run (Running, then Succeeded after `dial.dev/kwok-duration`, or Failed with `dial.dev/kwok-exit-code`), and
`benchmarks/scale.py --kwok` drives the real operator with simulated collectors. Small sizes: this checks that the
harness measures what it says; the numbers themselves are benchmarks/RESULTS.md's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from operator_fixtures import apply, dump, trials, wait_for_phase  # noqa: F401  (fixtures)
from operator_fixtures import dial_namespace, operator  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "hack"))

import scale  # noqa: E402
from cluster_fixture import CLUSTER  # noqa: E402
from dial.examples.peaks import peaks  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def kwok_nodes(cluster):
    r = subprocess.run([sys.executable, CLUSTER, "kwok", "--nodes", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    yield
    # Fake nodes would only be in the way of later tests (they are tainted, but they are nodes).
    cluster.kubectl("delete", "nodes", "-l", "type=kwok", "--wait=false", check=False)


def test_the_kwok_benchmark_runs_every_trial_through_the_real_operator_with_simulated_collectors(cluster, kwok_nodes):
    # with --cached-reads: the kwok run is where the cache matters, and this keeps its path under test
    result = scale.run(3, 6, 3, timeout=300, workers=4, kwok=True, run_seconds=6, epochs=3, cached_reads=True)
    assert result["phases"] == {"Succeeded": 3} and result["trial_phases"] == {"Succeeded": 18}, dump(result)
    assert result["trials_created"] == 18 and result["peak_running_jobs"] <= 9
    # every simulated collector wrote each of its observations once, through the trial's ServiceAccount
    assert result["simulated_collector_errors"] == {} and result["simulated_collector_writes"] == 18 * 3
    assert result["observations_recorded"] == 18 * 3 and result["collector_requests_per_trial"] == pytest.approx(3)
    assert result["operator_requests_per_trial_by_verb"]["create"] >= 2  # a Trial and a Job each, at least
    assert result["first_job_p95_s"] < 30 and result["n_slot_samples"] > 0
    assert result["operator_cpu_seconds"] > 0 and result["peak_rss_mb"] > 50
    assert "apply -> first Job" in scale.table(result)


def test_kwok_trials_report_the_real_objective_and_a_failing_stage_fails_them(cluster, kwok_nodes, dial_namespace,
                                                                              operator):
    ns = dial_namespace
    good = scale.kwok_manifest("kwok-good", 2, 2, 1, run_seconds=4)
    bad = scale.kwok_manifest("kwok-bad", 3, 3, 2, run_seconds=2)
    bad["metadata"]["name"] = "kwok-bad"
    bad["spec"]["maxFailedTrialCount"] = 1
    bad["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"]["annotations"][
        "dial.dev/kwok-exit-code"] = "3"
    collectors = scale.SimulatedCollectors(cluster, ns, scale.kube_for(Path(cluster.kubeconfig)), epochs=2,
                                           run_seconds=4)
    collectors.start()
    try:
        apply(cluster, ns, good)
        apply(cluster, ns, bad)
        exp = wait_for_phase(cluster, operator, ns, "kwok-good", ("Succeeded", "Failed"), timeout=120)
        failed = wait_for_phase(cluster, operator, ns, "kwok-bad", ("Succeeded", "Failed"), timeout=120)
    finally:
        collectors.close()
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    for t in trials(cluster, ns, "kwok-good"):
        x, y = (float(t["spec"]["parameterAssignments"][p]) for p in ("x", "y"))
        assert t["status"]["phase"] == "Succeeded" and math.isclose(t["status"]["objective"], peaks(x, y),
                                                                     abs_tol=1e-5), dump(t["status"])
    assert failed["status"]["phase"] == "Failed", dump(failed["status"])
    bad_trials = trials(cluster, ns, "kwok-bad")
    assert bad_trials and all(t["status"]["phase"] == "Failed" and t["status"]["exitCode"] == 3 for t in bad_trials), \
        json.dumps([t["status"] for t in bad_trials])
