"""`hack/cluster down` undoes everything the node did on this machine, and `up` starts it again."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "hack"))
from realnode import node  # noqa: E402
from cluster_fixture import pid_alive  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.cluster_exclusive]  # takes the cluster down and up



def test_down_leaves_no_process_mount_link_or_chain_behind_and_up_starts_again(cluster, namespace):
    # a running pod: containers, their rootfs and volume mounts, a network namespace, a veth
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "scratch", "emptyDir": {}}],
                 "containers": [{"name": "main", "image": "dial-worker:0.1.0",
                                 "command": ["python", "-c", "import time; time.sleep(600)"],
                                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]}})
    cluster.wait_pod_phase(namespace, "sleeper", "Running", 60)
    pod_pids = cluster.pod_pids(namespace, "sleeper")
    assert pod_pids and node.node_mounts(cluster.dir) and node.link_exists(node.POD_BRIDGE)
    assert node.iptables_leftovers(), "kube-proxy's and the kubelet's chains exist while the cluster runs"

    def nothing_left(old: dict) -> None:
        assert not [c for c, pid in old["pids"].items() if pid_alive(pid)], "a component outlived down"
        assert not [p for p in pod_pids if pid_alive(p)], "a container process outlived down"
        assert node.leftovers(old["dir"]) == []
        assert not os.path.exists(old["dir"])
        assert not os.path.exists(node.DEVICE_PLUGIN_DIR)

    cluster.down_and_up(nothing_left)
    assert cluster.core.read_node(cluster.node_name).status.allocatable["nvidia.com/gpu"] == "2"
