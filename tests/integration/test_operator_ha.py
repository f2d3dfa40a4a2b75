"""Two operators, one leader (a coordination.k8s.io Lease): SIGKILL the leader again and again, freeze one past
its lease; every experiment still ends with exactly its budget, no duplicate, no observation lost, and a
replica that lost the Lease never writes again (the API server's audit log says who wrote what, when)."""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from datetime import datetime
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

import run_summary
from operator_fixtures import (  # noqa: F401  (fixtures)
    OperatorProcess, apply, assert_each_trial_ran_once_with_its_printed_objective, dial_namespace, dump,
    example_manifest, phases, trials, wait, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

LEASE = "dial-operator"
# Short timings keep the test fast; the chart ships client-go's 15/10/2.
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4, 3, 1
N_TRIALS = 6


def replica(cluster, namespace: str, identity: str, log_dir: Path) -> OperatorProcess:
    return OperatorProcess(cluster.kubeconfig, namespace, log_dir / f"operator-{identity}.log", extra_args=(
        "--leader-election", "--leader-election-namespace", namespace, "--leader-election-identity", identity,
        "--lease-duration", str(LEASE_DURATION), "--renew-deadline", str(RENEW_DEADLINE),
        "--retry-period", str(RETRY_PERIOD)))


@pytest.fixture
def replicas(cluster, dial_namespace, tmp_path):
    pair = {name: replica(cluster, dial_namespace, name, tmp_path) for name in ("ha-a", "ha-b")}
    for process in pair.values():
        process.start()
    yield pair
    for process in pair.values():
        if process.proc is not None and process.proc.poll() is None:
            os.kill(process.proc.pid, signal.SIGCONT)  # a frozen one must be able to stop
        process.stop()


def holder(cluster, namespace: str) -> str | None:
    try:
        lease = cluster.coordination.read_namespaced_lease(LEASE, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def wait_for_holder(cluster, namespace: str, replicas: dict[str, OperatorProcess], not_: str | None = None,
                    timeout: float = 60) -> str:
    def changed() -> str | None:
        current = holder(cluster, namespace)
        return current if current is not None and current != not_ else None
    try:
        return wait(changed, timeout, f"a Lease holder other than {not_}")
    except AssertionError as exc:
        logs = "\n".join(f"--- {name}:\n{p.log()}" for name, p in replicas.items())
        raise AssertionError(f"{exc}\n{logs}") from None


def wait_until_campaigning(process: OperatorProcess) -> None:
    """The restarted replica is up and standing by (so the next kill has a standby to fail over to)."""
    wait(lambda: process.log(tail=10**7).count("campaigns for Lease") >= process.n_starts, 60,
         "the restarted replica campaigning", process)


def experiments(n: int) -> list[dict]:
    return [example_manifest("peaks", maxTrialCount=N_TRIALS, parallelTrialCount=2, maxFailedTrialCount=None,
                             algorithm={"name": "random"}, seed=20 + i) | {"metadata": {"name": f"peaks-{i}"}}
            for i in range(n)]


def assert_finished_exactly_once(cluster, namespace: str, name: str) -> None:
    items = trials(cluster, namespace, name)
    assert [t["metadata"]["name"] for t in items] == [f"{name}-{i:04d}" for i in range(N_TRIALS)], dump(items)
    assert phases(items) == ["Succeeded"] * N_TRIALS, dump([t["status"] for t in items])
    assert_each_trial_ran_once_with_its_printed_objective(cluster, namespace, items)


def test_sigkill_the_leader_ten_times_during_three_experiments(cluster, replicas):
    ns = next(iter(replicas.values())).namespace
    leader = wait_for_holder(cluster, ns, replicas)
    for manifest in experiments(3):
        apply(cluster, ns, manifest)
    rng = random.Random(7)
    failovers: list[float] = []
    for _ in range(10):
        time.sleep(rng.uniform(0.5, 4.0))  # somewhere inside a reconcile, a renewal or an idle wait
        replicas[leader].kill()
        killed_at = time.monotonic()
        new_leader = wait_for_holder(cluster, ns, replicas, not_=leader, timeout=LEASE_DURATION + 20)
        failovers.append(time.monotonic() - killed_at)
        replicas[leader].start()  # back as the standby
        wait_until_campaigning(replicas[leader])
        leader = new_leader
    for manifest in experiments(3):
        name = manifest["metadata"]["name"]
        exp = wait_for_phase(cluster, replicas[leader], ns, name, ("Succeeded", "Failed"), timeout=600)
        assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
        assert exp["status"]["trialsCreated"] == N_TRIALS
        assert_finished_exactly_once(cluster, ns, name)
    run_summary.line("operator high availability", f"fail-over after SIGKILL of the leader ({len(failovers)} kills, "
                     f"lease {LEASE_DURATION}s, renew deadline {RENEW_DEADLINE}s, retry {RETRY_PERIOD}s): "
                     f"p50 {statistics.median(failovers):.1f}s, max {max(failovers):.1f}s")
    # The standby takes the Lease once the dead leader's renewal is a lease duration old, at its next retry.
    assert max(failovers) <= LEASE_DURATION + 2 * RETRY_PERIOD + 4, failovers


def writes_by(events: list[dict], identity: str) -> list[dict]:
    return [e for e in events if f"({identity})" in e.get("userAgent", "")]


def timestamp(event: dict) -> datetime:
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))


def test_a_frozen_leader_that_lost_its_lease_never_writes_again(cluster, replicas):
    ns = next(iter(replicas.values())).namespace
    leader = wait_for_holder(cluster, ns, replicas)
    standby = next(name for name in replicas if name != leader)
    [manifest] = experiments(1)
    apply(cluster, ns, manifest)
    name = manifest["metadata"]["name"]
    wait(lambda: len(trials(cluster, ns, name)) >= 2, 120, "2 trials", replicas[leader])
    frozen = replicas[leader].proc
    os.kill(frozen.pid, signal.SIGSTOP)  # a paused process: it neither renews nor knows it is paused
    assert wait_for_holder(cluster, ns, replicas, not_=leader, timeout=LEASE_DURATION + 20) == standby
    wait(lambda: len(trials(cluster, ns, name)) >= 4, 180, "the new leader creating trials", replicas[standby])
    os.kill(frozen.pid, signal.SIGCONT)
    assert frozen.wait(RENEW_DEADLINE + 15) == 3, replicas[leader].log()  # it sees the lost Lease and exits
    exp = wait_for_phase(cluster, replicas[standby], ns, name, ("Succeeded", "Failed"), timeout=600)
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert_finished_exactly_once(cluster, ns, name)

    events = [e for e in cluster.audit_events() if (e.get("objectRef") or {}).get("namespace") == ns]
    taken = [e for e in writes_by(events, standby)
             if e["objectRef"]["resource"] == "leases" and e["verb"] in ("update", "create")
             and e["responseStatus"]["code"] < 300]
    assert taken, "no Lease write by the standby in the audit log"
    took_over_at = timestamp(taken[0])
    old = writes_by(events, leader)
    assert [e for e in old if timestamp(e) < took_over_at and e["objectRef"]["resource"] != "leases"], \
        "the first leader wrote nothing before it was frozen: the audit check would prove nothing"
    late = [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name"), e["responseStatus"]["code"])
            for e in old if timestamp(e) >= took_over_at and e["responseStatus"]["code"] < 400]
    assert late == [], f"the old leader wrote after the standby took the Lease: {late}"
