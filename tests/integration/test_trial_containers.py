"""Trials in real containers: what the kubelet, containerd and the device manager do with a trial's
pod, as a user meets it on a real cluster (native sidecar ordering, signals, deadlines, images
without a shell, GPUs)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest

from cluster_fixture import pid_alive
from operator_fixtures import (  # noqa: F401  (fixtures)
    apply, descent_manifest, dial_namespace, dump, operator, phases, trials, wait, wait_for_phase,
)

pytestmark = pytest.mark.integration


def _pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]


def _trial_pods(cluster, ns: str, trial: str) -> list[Any]:
    return cluster.core.list_namespaced_pod(ns, label_selector=f"dial.dev/trial={trial}").items



def test_training_exits_the_kubelet_stops_the_sidecar_and_the_job_completes(cluster, operator):
    ns = operator.namespace
    apply(cluster, ns, descent_manifest("brief", ["0.1"], epochs=3, maxTrialCount=1))
    exp = wait_for_phase(cluster, operator, ns, "brief", ("Succeeded", "Failed"), timeout=240)
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    [trial] = trials(cluster, ns, "brief")
    name = trial["metadata"]["name"]
    assert trial["status"]["observations"][0]["nPoints"] == 3, dump(trial["status"])
    job = cluster.batch.read_namespaced_job(name, ns)
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []), job.status
    [pod] = _trial_pods(cluster, ns, name)
    assert pod.status.phase == "Succeeded"
    [training] = pod.status.container_statuses
    [collector] = [s for s in pod.status.init_container_statuses if s.name == "dial-collector"]
    # the native sidecar started first, ran alongside, and was stopped (SIGTERM) after the training
    assert training.state.terminated.exit_code == 0
    assert collector.state.terminated is not None and collector.state.terminated.exit_code == 0, collector
    assert collector.state.terminated.started_at <= training.state.terminated.started_at
    assert collector.state.terminated.finished_at >= training.state.terminated.finished_at


def test_early_stop_deletes_the_job_and_its_containers_end_on_sigterm_within_the_grace_period(cluster, operator):
    ns = operator.namespace
    grace = 30  # long: ending well within it means the containers obeyed SIGTERM, not the SIGKILL after it
    # long enough (~10 ms an epoch) that the stop lands mid-run, after start_step
    manifest = descent_manifest("cut", ["0.3", "0.1", "0.00005"], epochs=2000, maxTrialCount=3,
                                parallelTrialCount=1,
                                earlyStopping={"name": "medianstop", "settings": {"min_trials_required": 2,
                                                                                 "start_step": 15}})
    _pod_spec(manifest)["terminationGracePeriodSeconds"] = grace
    apply(cluster, ns, manifest)
    slow = "cut-0002"

    def running_pod() -> Any:
        pods = [p for p in _trial_pods(cluster, ns, slow) if p.status.phase == "Running"]
        return pods[0] if pods else None
    pod = wait(running_pod, 300, f"{slow}'s pod running", operator)
    pids = wait(lambda: cluster.pod_pids(ns, pod.metadata.name), 30, f"{slow}'s processes")
    assert len(pids) >= 3  # the collector, the wrapper's sh and tee, the training

    def deleting() -> Any:
        pods = _trial_pods(cluster, ns, slow)
        return pods and pods[0].metadata.deletion_timestamp is not None
    wait(deleting, 120, f"{slow}'s pod being deleted (early stop)", operator)
    t_stop = time.monotonic()
    wait(lambda: not any(pid_alive(p) for p in pids), grace + 10, f"{slow}'s processes to end", operator)
    took = time.monotonic() - t_stop
    assert took < grace / 2, f"the containers took {took:.1f}s to end: SIGTERM was not obeyed"
    exp = wait_for_phase(cluster, operator, ns, "cut", ("Succeeded", "Failed"), timeout=120)
    status = {t["metadata"]["name"]: t["status"] for t in trials(cluster, ns, "cut")}
    assert status[slow]["phase"] == "EarlyStopped" and status[slow]["reason"] == "medianstop", dump(status)
    assert 15 <= status[slow]["observations"][0]["nPoints"] < 2000, dump(status[slow])
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])


@pytest.mark.parametrize("where", ["job", "pod"])
def test_active_deadline_seconds_stops_a_trial_with_the_deadline_as_its_reason(cluster, operator, where):
    """A deadline is a time budget: the trial is stopped for it (as maxTrialSeconds stops one), not failed."""
    ns = operator.namespace
    manifest = descent_manifest("deadline", ["0.01"], epochs=100000, maxTrialCount=1)
    job_spec = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]
    (job_spec if where == "job" else job_spec["template"]["spec"])["activeDeadlineSeconds"] = 8
    apply(cluster, ns, manifest)
    wait_for_phase(cluster, operator, ns, "deadline", ("Succeeded", "Failed"), timeout=240)
    [trial] = trials(cluster, ns, "deadline")
    s = trial["status"]
    assert s["phase"] == "EarlyStopped" and s["reason"] == "MaxTrialSecondsExceeded", dump(s)
    assert s["message"] == "the trial ran past its activeDeadlineSeconds", dump(s)
    assert s["observations"][0]["nPoints"] >= 1, "the observations made before the deadline are kept"


@pytest.fixture(scope="module")
def noshell_image(cluster) -> str:
    """The worker image without sh, tee and mkfifo, imported into the node's containerd."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "hack"))
    from realnode.images import NOSHELL_REF, Images, import_images

    dialkube_dir = os.path.dirname(cluster.state["dialkube"])
    archive = Images(os.path.dirname(dialkube_dir), os.path.join(dialkube_dir, "pause")).noshell_archive()
    import_images(cluster.state["ctr"], cluster.state["containerd_sock"], {NOSHELL_REF: archive})
    return NOSHELL_REF


def test_a_training_image_without_a_shell_fails_the_trial_with_a_message_that_says_why(cluster, operator,
                                                                                        noshell_image):
    ns = operator.namespace
    listing = subprocess.run([cluster.state["ctr"], "--address", cluster.state["containerd_sock"], "-n", "k8s.io",
                              "images", "ls", "-q"], capture_output=True, text=True, check=True).stdout
    assert noshell_image in listing.split()
    manifest = descent_manifest("noshell", ["0.1"], epochs=3, maxTrialCount=1)
    _pod_spec(manifest)["containers"][0]["image"] = noshell_image.removeprefix("docker.io/library/")
    apply(cluster, ns, manifest)
    exp = wait_for_phase(cluster, operator, ns, "noshell", ("Succeeded", "Failed"), timeout=240)
    [trial] = trials(cluster, ns, "noshell")
    s = trial["status"]
    assert s["phase"] == "Failed" and s["reason"] == "StartError", dump(s)
    assert '"sh"' in s["message"] and "POSIX shell" in s["message"], dump(s)
    assert exp["status"]["trials"]["failed"] == 1, dump(exp["status"])
    # its only trial failed before any success: the experiment failed (the engine's rule for an
    # unset maxFailedTrialCount, the same as `dial run`'s)
    assert exp["status"]["phase"] == "Failed", dump(exp["status"])
    assert exp["status"]["conditions"][0]["reason"] == "FirstTrialsFailed", dump(exp["status"])


@pytest.mark.cluster_resource("gpu")  # counts the node's two GPUs
def test_one_gpu_trials_on_a_two_gpu_node_run_at_most_two_at_once(cluster, operator):
    ns = operator.namespace
    assert cluster.gpus == 2
    rates = ["0.1", "0.09", "0.08", "0.07", "0.06"]
    manifest = descent_manifest("gpus", rates, epochs=60, maxTrialCount=len(rates), parallelTrialCount=4)
    _pod_spec(manifest)["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    apply(cluster, ns, manifest)
    most, waited_for_a_gpu = 0, False
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        pods = cluster.core.list_namespaced_pod(ns, label_selector="dial.dev/experiment=gpus").items
        running = [p for p in pods if any(s.state.running for s in p.status.container_statuses or [])]
        most = max(most, len(running))
        for p in pods:
            for c in p.status.conditions or []:
                if c.type == "PodScheduled" and c.reason == "Unschedulable" and "nvidia.com/gpu" in (c.message or ""):
                    waited_for_a_gpu = True
        phase = (cluster.custom.get_namespaced_custom_object("dial.dev", "v1alpha1", ns, "experiments", "gpus")
                 .get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.3)
    items = trials(cluster, ns, "gpus")
    assert phases(items) == ["Succeeded"] * len(rates), dump([t["status"] for t in items])
    assert most <= 2, f"{most} one-GPU trials ran at once on a node with 2 GPUs"
    assert waited_for_a_gpu, "4 parallel trials for 2 GPUs: some pod must have waited for a free GPU"
