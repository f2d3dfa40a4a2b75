"""Budgets through `dial operator`: maxTrialSeconds stops a long trial with its reason; maxGpuHours and
maxExperimentSeconds end the experiment, stop its running trials and start no more; usage is in the status
and in `kubectl get experiments`."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, dial_namespace, descent_manifest, dump, experiment, job_names, operator, phases, trials, wait,
    wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LONG_EPOCHS = 2000  # minutes of real gradient descent: only a budget ends these trials
RATES = ["0.05", "0.02", "0.01", "0.04", "0.03", "0.06"]


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def with_gpus(manifest: dict, n_gpus: int) -> dict:
    job = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]
    job["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": n_gpus}}
    return manifest


def assert_ended_by_budget(cluster, operator, ns: str, name: str, reason: str) -> dict:
    """Succeeded with `reason`, its running trials stopped for it, their Jobs gone, nothing started after."""
    exp = wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=120)
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    [condition] = exp["status"]["conditions"]
    assert condition["reason"] == reason, condition
    wait(lambda: all(p not in ("Pending", "Running") for p in phases(trials(cluster, ns, name))), 90,
         "stopped trials final", operator)
    wait(lambda: not job_names(cluster, ns, name), 60, "the trials' Jobs deleted", operator)
    items = trials(cluster, ns, name)
    assert len(items) == 2, f"only the first two trials ran: {[t['metadata']['name'] for t in items]}"
    for t in items:
        s = t["status"]
        assert s["phase"] == "EarlyStopped" and s["reason"] == "ExperimentFinished", dump(s)
        assert reason in s["message"]
        assert s["observations"][0]["nPoints"] > 0, "what the trial reported before the stop is kept"
    # Nothing new once the budget is spent, and the finished status is not rewritten on every resync.
    version = experiment(cluster, ns, name)["metadata"]["resourceVersion"]
    time.sleep(3 * operator.resync_seconds + 1)
    assert len(trials(cluster, ns, name)) == 2
    assert experiment(cluster, ns, name)["metadata"]["resourceVersion"] == version
    return experiment(cluster, ns, name)


def test_max_trial_seconds_stops_a_long_trial_with_the_reason(cluster, operator):
    ns = operator.namespace
    limit = 8
    apply(cluster, ns, descent_manifest("deadline", RATES[:2], epochs=LONG_EPOCHS, maxTrialSeconds=limit))
    job = wait(lambda: cluster.batch.read_namespaced_job("deadline-0000", ns), 60, "the first Job", operator)
    assert job.spec.active_deadline_seconds == limit + 30, "the Job's own deadline is a backstop after the limit"
    exp = wait_for_phase(cluster, operator, ns, "deadline", ("Succeeded", "Failed"), timeout=180)
    items = trials(cluster, ns, "deadline")
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert exp["status"]["conditions"][0]["reason"] == "MaxTrialCountReached"
    for t in items:
        s = t["status"]
        assert s["phase"] == "EarlyStopped" and s["reason"] == "MaxTrialSecondsExceeded", dump(s)
        assert f"maxTrialSeconds {limit}" in s["message"]
        ran = seconds_between(s["startTime"], s["completionTime"])
        # Stopped by the plan (within a resync of the limit), not by the Job's backstop 30 s later.
        assert limit <= ran < limit + 2 * operator.resync_seconds + 5, (t["metadata"]["name"], ran)
        assert 0 < s["observations"][0]["nPoints"] < LONG_EPOCHS


@pytest.mark.cluster_resource("gpu")  # counts the node's two GPUs
def test_max_gpu_hours_ends_the_experiment_and_stops_its_trials(cluster, operator):
    ns = operator.namespace
    # Two 1-GPU trials at once spend 0.004 GPU-hours (14.4 GPU-seconds) in about 7 s each.
    budget = 0.004
    apply(cluster, ns, with_gpus(descent_manifest("gpus", RATES, epochs=LONG_EPOCHS, maxGpuHours=budget), 1))
    wait(lambda: phases(trials(cluster, ns, "gpus")).count("Running") == 2, 90, "two running trials", operator)
    exp = assert_ended_by_budget(cluster, operator, ns, "gpus", "MaxGpuHoursReached")
    used = exp["status"]["budget"]
    assert used["gpusPerTrial"] == 1 and budget <= used["gpuHours"] < budget * 3, used
    # GPU-hours are the trials' running seconds times their GPUs
    seconds = sum(seconds_between(t["status"]["startTime"], t["status"]["completionTime"])
                  for t in trials(cluster, ns, "gpus"))
    assert used["gpuHours"] == pytest.approx(seconds / 3600, abs=2e-5)
    table = cluster.kubectl("get", "experiments", "-n", ns).stdout
    header, row = table.splitlines()[:2]
    assert "GPU-H" in header and f"{used['gpuHours']:g}"[:5] in row, table


def test_max_experiment_seconds_ends_the_experiment_and_stops_its_trials(cluster, operator):
    ns = operator.namespace
    limit = 12
    apply(cluster, ns, descent_manifest("walltime", RATES, epochs=LONG_EPOCHS, maxExperimentSeconds=limit))
    exp = assert_ended_by_budget(cluster, operator, ns, "walltime", "MaxExperimentSecondsReached")
    used = exp["status"]["budget"]
    # The clock stopped when the experiment finished: within a resync of the limit.
    assert limit <= used["elapsedSeconds"] < limit + operator.resync_seconds + 5, used
    assert used["gpuHours"] == 0 and used["gpusPerTrial"] == 0
    assert seconds_between(exp["status"]["startTime"], exp["status"]["completionTime"]) == pytest.approx(
        used["elapsedSeconds"], abs=1.0)
