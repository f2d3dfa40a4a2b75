"""Chaos on the real control plane: the operator SIGKILLed again and again across several experiments, cut off
from the API server, throttled by it (429), the API server and etcd restarted under it (on a control plane of the
test's own), trials whose training or collector dies or whose writes are refused, and fuzzed bad specs.
Each test adds to a tally of what was tried and survived, printed at the end (and kept in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings

from chaos_support import (
    BAD_MUTATIONS, ApiProxy, kill_container, proxied_kubeconfig, rejected_requests, tally,
    throttle_objects,
)
from cluster_fixture import CLUSTER, Cluster
from dial.kube.rbac import collector_rbac, operator_cluster_role, render
from operator_fixtures import (  # noqa: F401  (fixtures)
    assert_each_trial_ran_once_with_its_printed_objective,
    REPO, OperatorProcess, apply, dial_namespace, descent_manifest, dump, events, example_manifest, experiment, operator,
    phases,
    service_account_kubeconfig, trials, wait, wait_for_phase,
)
from test_operator_crash import crash_free_proposals

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

N_KILLS = 20
KILL_SEEDS = {"rnd-a": ("random", 21), "rnd-b": ("random", 22), "sob-c": ("sobol", 23)}


def peaks(name: str, algorithm: str, seed: int, n_trials: int, parallel: int = 1) -> dict:
    manifest = example_manifest("peaks", maxTrialCount=n_trials, parallelTrialCount=parallel,
                                maxFailedTrialCount=None, algorithm={"name": algorithm}, seed=seed)
    manifest["metadata"]["name"] = name
    return manifest


def assert_ran_exactly_once(cluster, ns: str, name: str, n_trials: int, manifest: dict | None = None) -> None:
    """Succeeded with trials 0..n-1, each run by exactly one pod whose printed objective the Trial holds."""
    exp = experiment(cluster, ns, name)
    items = trials(cluster, ns, name)
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert [t["metadata"]["name"] for t in items] == [f"{name}-{i:04d}" for i in range(n_trials)]
    assert phases(items) == ["Succeeded"] * n_trials, dump([t["status"] for t in items])
    assert exp["status"]["trialsCreated"] == n_trials
    if manifest is not None:
        assert [t["spec"]["parameterAssignments"] for t in items] == crash_free_proposals(manifest), name
    assert_each_trial_ran_once_with_its_printed_objective(cluster, ns, items)


def test_sigkill_operator_many_times_across_experiments(cluster, operator):
    ns = operator.namespace
    n_trials = 8
    manifests = {name: peaks(name, algorithm, seed, n_trials) for name, (algorithm, seed) in KILL_SEEDS.items()}
    for manifest in manifests.values():
        apply(cluster, ns, manifest)
    rng = random.Random(8)
    n_mid_experiment = 0
    for _ in range(N_KILLS):
        time.sleep(rng.uniform(0.2, 2.0))  # at a random moment: starting up, listing, creating, patching
        running = [n for n in manifests if (experiment(cluster, ns, n).get("status") or {}).get("phase") != "Succeeded"]
        if not running:
            break
        n_mid_experiment += 1
        operator.kill()
        operator.start()
    for name in manifests:
        wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=300)
    for name, manifest in manifests.items():
        assert_ran_exactly_once(cluster, ns, name, n_trials, manifest)
    tally(f"operator SIGKILL mid-experiment ({len(manifests)} experiments)", tried=n_mid_experiment,
          survived=n_mid_experiment)
    assert n_mid_experiment >= N_KILLS // 2, f"only {n_mid_experiment} kills landed before the experiments ended"


def test_operator_cut_off_from_the_api_server_reconnects_and_carries_on(cluster, dial_namespace, tmp_path):
    proxy = ApiProxy(urlparse(cluster.server).hostname, urlparse(cluster.server).port)
    kubeconfig = proxied_kubeconfig(cluster.kubeconfig, cluster.server, proxy, tmp_path / "kubeconfig")
    operator = OperatorProcess(kubeconfig, dial_namespace, tmp_path / "operator.log", resync_seconds=5.0)
    operator.start()
    try:
        ns, n_trials = dial_namespace, 8
        manifest = peaks("cutoff", "random", 31, n_trials)
        apply(cluster, ns, manifest)
        n_outages = 0
        for n_seen in (2, 5):
            wait(lambda: len(trials(cluster, ns, "cutoff")) >= n_seen, 180, f"{n_seen} trials", operator)
            proxy.cut()
            time.sleep(12)  # longer than a reconcile's read timeout is not needed: any call fails at once
            proxy.restore()
            n_outages += 1
        wait_for_phase(cluster, operator, ns, "cutoff", ("Succeeded", "Failed"), timeout=300)
        assert operator.proc.poll() is None, f"the operator exited:\n{operator.log()}"
        assert proxy.refused > 0, "the operator never tried to reconnect during the outages"
        assert_ran_exactly_once(cluster, ns, "cutoff", n_trials, manifest)
        tally("operator cut off from the API server for 12 s (watch and calls)", tried=n_outages, survived=n_outages)
    finally:
        operator.stop()
        proxy.close()


def _pod(cluster, ns: str, trial: str):
    pods = cluster.core.list_namespaced_pod(ns, label_selector=f"dial.dev/trial={trial}").items
    return pods[0] if pods and pods[0].status.phase == "Running" else None


def _n_points(cluster, ns: str, trial: str) -> int:
    t = cluster.custom.get_namespaced_custom_object("dial.dev", "v1alpha1", ns, "trials", trial)
    observations = (t.get("status") or {}).get("observations") or []
    return observations[0]["nPoints"] if observations else 0


def test_trial_faults_end_in_the_right_phase_and_keep_observations(cluster, operator):
    ns = operator.namespace
    epochs = 5000  # ~10 ms each: outlives the faults below (~15 s), so each trial must catch up after them
    apply(cluster, ns, descent_manifest("faults", ["0.05", "0.02", "0.01"], epochs=epochs, parallelTrialCount=3))
    killed, sidecar, revoked = "faults-0000", "faults-0001", "faults-0002"
    for trial in (killed, sidecar, revoked):
        wait(lambda t=trial: _pod(cluster, ns, t) and _n_points(cluster, ns, t) >= 5, 180, f"{trial} reporting", operator)

    # 1. the training process dies (OOM kill, node trouble): Failed, its observations kept
    kill_container(_pod(cluster, ns, killed), "training")
    n_before_kill = _n_points(cluster, ns, killed)
    # 2. the collector sidecar dies: restarted, it re-reads the output and loses nothing
    kill_container(_pod(cluster, ns, sidecar), "dial-collector")
    # 3. the collector's writes are refused for a while (its RoleBinding revoked, then restored)
    cluster.kubectl("delete", "rolebinding", "dial-collector", "-n", ns)
    time.sleep(3)  # the authorizer sees the change
    frozen = _n_points(cluster, ns, revoked)
    time.sleep(6)
    assert _n_points(cluster, ns, revoked) == frozen, "writes went through without the RoleBinding"
    cluster.apply(render(collector_rbac(ns)))

    exp = wait_for_phase(cluster, operator, ns, "faults", ("Succeeded", "Failed"), timeout=300)
    status = {t["metadata"]["name"]: t["status"] for t in trials(cluster, ns, "faults")}
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    s = status[killed]
    assert s["phase"] == "Failed" and s["reason"] == "TrainingFailed", dump(s)
    assert s["exitCode"] == 137 and "exit code 137" in s["message"], dump(s)
    assert n_before_kill <= s["observations"][0]["nPoints"] < epochs, dump(s)
    pod = cluster.core.list_namespaced_pod(ns, label_selector=f"dial.dev/trial={sidecar}").items[0]
    [collector] = [c for c in pod.status.init_container_statuses if c.name == "dial-collector"]
    assert collector.restart_count >= 1, "the kubelet restarted the collector (a native sidecar restarts always)"
    for trial in (sidecar, revoked):
        s = status[trial]
        summary = {k: s.get(k) for k in ("phase", "reason", "message", "exitCode")}
        summary["nPoints"] = s["observations"][0]["nPoints"]
        assert s["phase"] == "Succeeded" and summary["nPoints"] == epochs, (trial, summary)
    assert frozen < epochs
    tally("training process SIGKILLed -> Failed, observations kept", tried=1, survived=1)
    tally("collector sidecar SIGKILLed -> restarted, nothing lost", tried=1, survived=1)
    tally("collector writes refused 9 s (RoleBinding revoked) -> caught up", tried=1, survived=1)


@pytest.fixture(scope="module")
def fuzz_counts() -> dict[str, int]:
    return {"rejected at apply": 0, "Failed naming the field": 0}


def test_fuzzed_bad_specs_are_refused_and_the_operator_keeps_serving(cluster, operator, fuzz_counts):
    ns = operator.namespace
    apply(cluster, ns, peaks("good-before", "random", 41, 4, parallel=2))
    names = iter(range(10_000))

    @settings(max_examples=30, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutation=BAD_MUTATIONS)
    def one_bad_spec(mutation) -> None:
        what, field, value, change = mutation
        manifest = peaks(f"bad-{next(names)}", "random", 1, 4)
        change(manifest)
        name = manifest["metadata"]["name"]
        result = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest), check=False)
        if result.returncode != 0:
            assert field in result.stderr, f"{what}={value!r}: rejected without naming {field}:\n{result.stderr}"
            fuzz_counts["rejected at apply"] += 1
            return
        exp = wait_for_phase(cluster, operator, ns, name, ("Failed", "Succeeded", "Running"), timeout=60)
        assert exp["status"]["phase"] == "Failed", f"{what}={value!r} was accepted: {dump(exp['status'])}"
        [condition] = exp["status"]["conditions"]
        assert condition["reason"] == "InvalidSpec" and field in condition["message"], (what, value, condition)
        assert trials(cluster, ns, name) == []
        fuzz_counts["Failed naming the field"] += 1

    one_bad_spec()
    apply(cluster, ns, peaks("good-after", "random", 42, 4, parallel=2))
    for name in ("good-before", "good-after"):
        wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=240)
        assert_ran_exactly_once(cluster, ns, name, 4)
    assert operator.proc.poll() is None and operator.n_starts == 1, f"the operator restarted:\n{operator.log()}"
    n_tried = sum(fuzz_counts.values())
    tally(f"fuzzed bad specs ({fuzz_counts['rejected at apply']} at apply, "
          f"{fuzz_counts['Failed naming the field']} Failed by the operator)", tried=n_tried, survived=n_tried)


def test_throttled_operator_backs_off_and_finishes(cluster, dial_namespace, tmp_path):
    ns, tag, n_trials = dial_namespace, dial_namespace.removeprefix("t-"), 6
    # Its own identity: the admin's group is exempt from API priority and fairness.
    kubeconfig = service_account_kubeconfig(cluster, ns, "dial-operator", operator_cluster_role(f"dial-operator-{tag}"))
    throttle = throttle_objects(tag, ns, "dial-operator")
    flow_schema = throttle[1]["metadata"]["name"]
    # No seats of its own: a request is let through only while none of the operator's is in flight,
    # every concurrent one is answered 429 (watches starting, reconciles of several experiments).
    cluster.apply(render(throttle))
    operator = OperatorProcess(str(kubeconfig), ns, tmp_path / "operator.log", resync_seconds=5.0)
    operator.start()
    try:
        manifests = {f"throttled-{i}": peaks(f"throttled-{i}", "random", 61 + i, n_trials, parallel=2) for i in range(3)}
        for manifest in manifests.values():
            apply(cluster, ns, manifest)
        wait(lambda: rejected_requests(cluster, flow_schema) >= 5, 120, "the operator's requests answered 429", operator)
        time.sleep(10)
        n_rejected = rejected_requests(cluster, flow_schema)
        cluster.kubectl("delete", "flowschema", flow_schema)
        for name in manifests:
            wait_for_phase(cluster, operator, ns, name, ("Succeeded", "Failed"), timeout=300)
        assert operator.proc.poll() is None and operator.n_starts == 1, f"the operator exited:\n{operator.log()}"
        # Which requests collide is timing: kopf's watch LISTs (retried by kopf) or a reconcile's calls
        # (retried by the work queue after Retry-After, unit-tested in test_kube_workqueue.py).
        log_text = operator.log(tail=10**7)
        retried = [line for line in log_text.splitlines() if "429" in line and ("will retry" in line or "retrying in" in line)]
        assert retried, f"no throttled request was retried:\n{log_text}"
        for name in manifests:
            assert_ran_exactly_once(cluster, ns, name, n_trials)  # 2 at a time: the order of outcomes varies
        tally(f"operator throttled: every concurrent request answered 429 ({n_rejected:.0f}) for the first ~10 s+",
              tried=1, survived=1)
    finally:
        operator.stop()
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=render(throttle), check=False)


@pytest.fixture(scope="module")
def own_cluster(cluster):
    """The session's cluster, its API server and etcd restarted in place: a machine holds one real
    node, so there is no second cluster; its tests are cluster_exclusive, so no other test sees the restarts."""
    yield cluster
    for ns in ("restart", "outage"):
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.cluster_exclusive  # restarts the API server and etcd
def test_api_server_and_etcd_restart_mid_experiment(own_cluster, tmp_path):
    cluster, ns, n_trials = own_cluster, "restart", 8
    cluster.kubectl("create", "namespace", ns)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 60)
    cluster.apply(render(collector_rbac(ns)))
    operator = OperatorProcess(cluster.kubeconfig, ns, tmp_path / "operator.log", resync_seconds=5.0)
    operator.start()
    try:
        manifest = peaks("restart", "random", 71, n_trials, parallel=2)
        apply(cluster, ns, manifest)
        n_restarts, restart_logs = 0, []
        for n_seen, how in ((2, ["--down", "5"]), (5, ["--down", "3", "--kill"])):
            wait(lambda n=n_seen: len(trials(cluster, ns, "restart")) >= n, 180, f"{n_seen} trials", operator)
            restarted = cluster.restart(*how)  # kube-apiserver and etcd: stopped, down a few seconds, started again
            assert restarted.returncode == 0, restarted.stderr
            restart_logs.append(restarted.stderr.strip().splitlines()[-1])
            n_restarts += 1
        try:
            wait_for_phase(cluster, operator, ns, "restart", ("Succeeded", "Failed"), timeout=300)
        except AssertionError as exc:
            state = cluster.kubectl("get", "trials,jobs,pods", "-n", ns, "-o", "wide", check=False).stdout
            kubelet = cluster.component_log("kubelet")[-6000:]
            raise AssertionError(f"{exc}\n\nobjects:\n{state}\nkubelet log (tail):\n{kubelet}") from None
        assert operator.proc.poll() is None and operator.n_starts == 1, f"the operator exited:\n{operator.log()}"
        assert_ran_exactly_once(cluster, ns, "restart", n_trials)  # 2 at a time: the order of outcomes varies
        print(*restart_logs, sep="\n")
        tally("kube-apiserver + etcd restarted mid-experiment (SIGTERM, down 10 s; SIGKILL, down 3 s)",
              tried=n_restarts, survived=n_restarts)
    finally:
        operator.stop()


@pytest.mark.cluster_exclusive  # restarts the API server and etcd
def test_a_pod_that_ends_while_the_api_server_is_down_still_reports_its_end(own_cluster):
    """The kubelet's status manager writes a pod's final status once the API server is back."""
    cluster, ns = own_cluster, "outage"
    cluster.kubectl("create", "namespace", ns)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 60)
    cluster.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "brief", "namespace": ns},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "dial-worker:0.1.0", "command": ["python", "-c", "import time; time.sleep(2); print('done')"]}]}}))
    cluster.wait_pod_phase(ns, "brief", "Running", 60)
    restarted = cluster.restart("--down", "6")  # the container exits while the API server is down
    assert restarted.returncode == 0, restarted.stderr
    assert "done" in cluster.pod_log(ns, "brief")
    pod = cluster.wait_pod_phase(ns, "brief", "Succeeded", 30)
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


def _blocked(cluster, ns: str, name: str, reason: str) -> dict | None:
    conditions = (experiment(cluster, ns, name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "TrialsBlocked" and c["reason"] == reason), None)


def _fresh_namespace(cluster, prefix: str) -> str:
    name = f"{prefix}-{os.urandom(3).hex()}"
    cluster.kubectl("create", "namespace", name)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 60)
    return name


def test_experiments_whose_trials_cannot_run_are_reported_and_the_others_carry_on(cluster, dial_namespace, tmp_path):
    healthy = dial_namespace
    quota = _fresh_namespace(cluster, "quota")  # Jobs refused: a ResourceQuota of 0 Jobs
    cluster.apply(render(collector_rbac(quota)))
    cluster.apply(render([{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs", "namespace": quota},
                           "spec": {"hard": {"count/jobs.batch": "0"}}}]))
    # the quota admits everything until the quota controller has computed its status once
    cluster.wait_for(lambda: (cluster.core.read_namespaced_resource_quota("no-jobs", quota).status.hard or {}).get(
        "count/jobs.batch") == "0", 60, what="the ResourceQuota in force")
    no_sa = _fresh_namespace(cluster, "nosa")  # Jobs accepted, their pods refused: no dial-collector ServiceAccount
    operator = OperatorProcess(cluster.kubeconfig, healthy, tmp_path / "operator.log", resync_seconds=5.0,
                               extra_args=("-n", quota, "-n", no_sa))
    operator.start()
    try:
        apply(cluster, quota, peaks("refused", "random", 81, 4, parallel=2))
        apply(cluster, no_sa, peaks("podless", "random", 82, 4, parallel=2))
        apply(cluster, healthy, peaks("healthy", "random", 83, 4, parallel=2))
        refused = wait(lambda: _blocked(cluster, quota, "refused", "JobRefused"), 120, "JobRefused condition", operator)
        assert "refused Job refused-0000" in refused["message"] and "quota" in refused["message"], refused
        podless = wait(lambda: _blocked(cluster, no_sa, "podless", "ServiceAccountMissing"), 120,
                       "ServiceAccountMissing condition", operator)
        assert f"ServiceAccount dial-collector not found in namespace {no_sa}" in podless["message"], podless
        wait_for_phase(cluster, operator, healthy, "healthy", ("Succeeded", "Failed"), timeout=240)
        assert_ran_exactly_once(cluster, healthy, "healthy", 4)
        assert ("JobRefused", refused["message"]) in events(cluster, quota, "refused")
        assert ("ServiceAccountMissing", podless["message"]) in events(cluster, no_sa, "podless")
        # The quota lifted, the blocked experiment runs and its condition goes.
        cluster.kubectl("delete", "resourcequota", "no-jobs", "-n", quota)
        wait_for_phase(cluster, operator, quota, "refused", ("Succeeded", "Failed"), timeout=240)
        assert _blocked(cluster, quota, "refused", "JobRefused") is None
        assert_ran_exactly_once(cluster, quota, "refused", 4)
        assert operator.proc.poll() is None and operator.n_starts == 1, f"the operator restarted:\n{operator.log()}"
        tally("an experiment's Jobs refused (ResourceQuota 0) or pods refused (no ServiceAccount): "
              "reported, the others ran", tried=2, survived=2)
    finally:
        operator.stop()
        for ns in (quota, no_sa):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
