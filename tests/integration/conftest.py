"""Integration tests run against the local cluster (hack/cluster): real etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, and one real node (containerd, the kubelet, kube-proxy).

The session fixture ``cluster`` starts it once (or reuses one started by ``hack/cluster up``) and
applies ``crds/``; see hack/cluster_fixture.py for its API. Tests here are marked
``integration``; run only unit tests with ``pytest -m "not integration"``.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "hack"))

from cluster_fixture import Cluster, cluster, namespace  # noqa: E402,F401  (pytest fixtures)


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs the local Kubernetes control plane (hack/cluster)")

