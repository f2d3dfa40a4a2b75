"""Fixtures and helpers for the operator's tests: collector RBAC in the test namespace, `dial operator` as a
subprocess (so it can be SIGKILLed), and readers for Experiments, Trials, Jobs and events."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from cluster_fixture import Cluster, fit_to_node
from dial.kube.rbac import collector_rbac, render

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "dial.dev", "v1alpha1"


class OperatorProcess:
    """`python -m dial.cli operator -n NS`, restartable, its log kept for failure messages."""

    def __init__(self, kubeconfig: str, namespace: str, log_path: Path, *, resync_seconds: float = 5.0,
                 extra_args: tuple[str, ...] = ()):
        self.kubeconfig, self.namespace, self.log_path = kubeconfig, namespace, log_path
        self.extra_args = extra_args  # more namespaces, --metrics-port ...
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen | None = None
        self.n_starts = 0

    def start(self) -> None:
        self.n_starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.n_starts} ====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dial.cli", "operator", "-n", self.namespace,
             "--resync-seconds", str(self.resync_seconds), *self.extra_args],
            env={**os.environ, "KUBECONFIG": self.kubeconfig}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last words, as a node failure or OOM kill would do."""
        assert self.proc is not None and self.proc.poll() is None, f"operator died on its own:\n{self.log()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


@pytest.fixture
def dial_namespace(cluster, namespace) -> str:
    """A fresh namespace with the collector's ServiceAccount, Role and RoleBinding."""
    cluster.apply(render(collector_rbac(namespace)))
    return namespace


@pytest.fixture
def operator(cluster, dial_namespace, tmp_path) -> OperatorProcess:
    process = OperatorProcess(cluster.kubeconfig, dial_namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()


# -- manifests
def example_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """The example's experiment, fitted to the test node, with spec fields replaced (a `None` removes a field)."""
    data = fit_to_node(yaml.safe_load((REPO / "examples" / name / "experiment.yaml").read_text()))
    for key, value in spec.items():
        if value is None:
            data["spec"].pop(key, None)
        else:
            data["spec"][key] = value
    return data


def descent_manifest(name: str, learning_rates: list[str], *, epochs: int = 40, **spec: Any) -> dict[str, Any]:
    """Gradient descent (dial.examples.descent), one trial per learning rate, in the order given."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "metricName": "loss"},
            "algorithm": {"name": "grid"},
            "parallelTrialCount": 2,
            "maxTrialCount": len(learning_rates),
            "parameters": [{"name": "lr", "type": "categorical", "feasibleSpace": {"list": learning_rates}}],
            "trialTemplate": {"primaryContainerName": "training", "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "training", "image": "dial-worker:0.1.0",
                        "command": ["python", "-m", "dial.examples.descent", "--lr", "${trialParameters.lr}",
                                    "--epochs", str(epochs), "--steps-per-epoch", "40",
                                    "--samples", "4000", "--features", "150"],
                        "env": [{"name": "OPENBLAS_NUM_THREADS", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}],
                    }]}}}}},
            **spec,
        },
    }


# -- reading
def apply(cluster, namespace: str, manifest: dict[str, Any]) -> None:
    # JSON, not YAML: kubectl would read an unquoted `y` (a parameter of the peaks example) as true.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def experiment(cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)


def trials(cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items = cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "trials", label_selector=f"dial.dev/experiment={name}")["items"]
    return sorted(items, key=lambda t: t["metadata"]["name"])


def job_names(cluster, namespace: str, name: str) -> set[str]:
    jobs = cluster.batch.list_namespaced_job(namespace, label_selector=f"dial.dev/experiment={name}").items
    return {j.metadata.name for j in jobs}


def events(cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    items = cluster.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [(e.reason, e.message) for e in items]


def wait_for_phase(cluster, operator: OperatorProcess, namespace: str, name: str, phases: tuple[str, ...],
                   timeout: float) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        exp = experiment(cluster, namespace, name)
        return exp if (exp.get("status") or {}).get("phase") in phases else None
    return wait(reached, timeout, f"experiment {name} in {phases}", operator)


def wait(condition: Callable[[], Any], timeout: float, what: str, operator: OperatorProcess | None = None) -> Any:
    """Cluster.wait_for, with the operator's log in the failure when there is an operator."""
    try:
        return Cluster.wait_for(condition, timeout, interval=0.5, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n" + (f"operator log:\n{operator.log()}" if operator else "")) from None


def assert_each_trial_ran_once_with_its_printed_objective(cluster, namespace: str,
                                                          items: list[dict[str, Any]]) -> None:
    """One pod per trial (no duplicate run), and the objective the training printed is the Trial's."""
    import re

    for t in items:
        name = t["metadata"]["name"]
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"dial.dev/trial={name}").items
        assert len(pods) == 1, f"{name} ran {len(pods)} times"
        printed = re.search(r"^objective=(\S+)$", cluster.pod_log(namespace, pods[0].metadata.name, "training"), re.M)
        assert printed and float(printed.group(1)) == t["status"]["objective"], (name, dump(t["status"]))
        assert t["status"]["observations"][0]["nPoints"] == 1


def phases(items: list[dict[str, Any]]) -> list[str | None]:
    return [(t.get("status") or {}).get("phase") for t in items]


def dump(items: Any) -> str:
    return json.dumps(copy.deepcopy(items), indent=1, default=str)[:6000]


def service_account_kubeconfig(cluster, namespace: str, name: str, cluster_role: dict[str, Any]) -> Path:
    """A kubeconfig for ServiceAccount `name` in `namespace`, bound to `cluster_role`: a client that is not
    the admin (whose group is exempt from API priority and fairness) and whose requests a FlowSchema can match."""
    binding = f"{cluster_role['metadata']['name']}-{namespace}"
    cluster.apply(render([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        cluster_role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": cluster_role["metadata"]["name"]},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]))
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path = Path(cluster.dir) / f"{name}-{namespace}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path
