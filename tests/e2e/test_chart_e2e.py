"""End to end on the local control plane: `helm install` the chart (two operator replicas, one leader, in a
namespace that enforces Pod Security `restricted`), run experiments through the leader (with exactly the
chart's ServiceAccount, RBAC and collector isolation policy), scrape both replicas with a real Prometheus
(Debian's package, hack/install-prometheus.sh) and evaluate every PromQL expression of the Grafana
dashboard through Prometheus's HTTP API; then `helm uninstall` leaves only the CRDs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from cluster_fixture import Cluster, cluster, fit_to_node  # noqa: E402,F401  (pytest fixture)
from dashboard import concrete, load, panel_queries, variable_queries  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PROMETHEUS = "/usr/bin/prometheus"
RELEASE = f"dial-{int(time.time()) % 10**6}"  # cluster-scoped RBAC is named after it: unique per run
CHART = ROOT / "charts" / "dial"
EXPERIMENT = "sklearn-digits"
MULTI_OBJECTIVE = "multi-objective"  # its Pareto-front panel has data only for an experiment with a front
SCRAPE_SECONDS = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> str:
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


class Prometheus:
    """A real Prometheus server scraping static targets, queried through its HTTP API."""

    def __init__(self, targets: list[str], workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
                  "scrape_configs": [{"job_name": "dial-operator", "static_configs": [{"targets": targets}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        try:
            body = json.loads(http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"))
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Prometheus rejected {path} {params}: {exc.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="2")["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: run hack/install-prometheus.sh (the test script does)")
    return PROMETHEUS


@pytest.fixture
def release_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"dial-e2e-{int(time.time() * 1000) % 10**8}"
    yield name
    cluster.helm("uninstall", RELEASE, "-n", name, "--wait", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# What a training container needs in a namespace that enforces Pod Security `restricted` (charts/dial/README.md).
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def experiment_manifest(namespace: str, example: str = EXPERIMENT, trials: int = 8) -> str:
    manifest = fit_to_node(yaml.safe_load((ROOT / "examples" / example / "experiment.yaml").read_text()))
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["maxTrialCount"] = trials
    for container in manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]:
        container["securityContext"] = RESTRICTED
    # JSON, not YAML: kubectl would read an unquoted `y` (a parameter of the peaks example) as true
    return json.dumps(manifest)


def test_helm_install_run_an_experiment_and_see_it_in_prometheus(cluster: Cluster, release_namespace: str,
                                                                  prometheus_binary: str, tmp_path: Path) -> None:
    ns = release_namespace
    # The operator runs in a container from the worker image built from worker_image/Dockerfile, as
    # the chart's non-root user with a read-only root filesystem; its ports are reached at the pod's
    # IP on the node's pod bridge. Watching only this namespace keeps the operator away from other
    # tests' experiments on the shared cluster.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    health_port, metrics_port = values["operator"]["healthPort"], values["metrics"]["port"]
    # The release namespace, where the trials run too, enforces Pod Security `restricted`: the operator
    # pods and the trial pods with their collector sidecar must pass it.
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    install = cluster.helm(
        "install", RELEASE, str(CHART), "-n", ns, "--wait", "--timeout", "180s",
        "--set", f"watchNamespaces={{{ns}}}", "--set", "image.repository=dial-worker", timeout=240)
    assert "kubectl get experiments" in install.stdout and f"helm uninstall {RELEASE}" in install.stdout

    def operator_pods() -> list[Any]:
        return cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=operator").items

    def leader_name() -> str | None:
        try:
            lease = cluster.coordination.read_namespaced_lease(f"{RELEASE}-operator", ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return lease.spec.holder_identity

    def operator_log() -> str:
        return "\n".join(f"--- {pod.metadata.name}\n{cluster.pod_log(ns, pod.metadata.name)}" for pod in operator_pods())

    def alive() -> bool:
        pods = operator_pods()
        if len(pods) != values["operator"]["replicas"] or leader_name() not in {p.metadata.name for p in pods}:
            return False
        try:
            for pod in pods:
                http_get(f"http://{pod.status.pod_ip}:{health_port}/healthz", timeout=2)
        except (OSError, TypeError):
            return False
        return True

    try:
        cluster.wait_for(alive, timeout=60, interval=0.5, what="kopf's liveness endpoint on every replica and a leader")
    except TimeoutError:
        pytest.fail(f"the operator did not come up; its log:\n{operator_log()}")
    # The chart runs two replicas with leader election: one holds the Lease and reconciles, one stands by.
    pods = operator_pods()
    assert values["operator"]["replicas"] == len(pods) == 2 and {p.status.phase for p in pods} == {"Running"}
    [leader] = [p for p in pods if p.metadata.name == leader_name()]
    [standby] = [p for p in pods if p is not leader]
    for pod in pods:
        assert pod.spec.service_account_name == f"{RELEASE}-operator"
        [status] = pod.status.container_statuses
        assert status.ready and status.image.endswith("dial-worker:0.1.0"), status
    who = cluster.kubectl("exec", "-n", ns, leader.metadata.name, "--", "python", "-c",
                          "import os; open('/probe', 'w')", check=False)
    assert who.returncode != 0 and "Read-only file system" in who.stderr, who.stderr
    uid = cluster.kubectl("exec", "-n", ns, leader.metadata.name, "--", "python", "-c", "import os; print(os.getuid())")
    assert uid.stdout.strip() == str(values["operator"]["runAsUser"]) == "65532"
    pod_ip = leader.status.pod_ip
    operator_sa = f"system:serviceaccount:{ns}:{RELEASE}-operator"
    can = lambda *args: cluster.kubectl("auth", "can-i", *args, "--as", operator_sa, check=False).stdout.strip()  # noqa: E731
    assert can("create", "trials.dial.dev", "-n", ns) == "yes"
    assert can("delete", "experiments.dial.dev", "-n", ns) == "no"
    assert can("list", "jobs.batch", "-n", "default") == "no"  # only the watched namespace

    prometheus = Prometheus([f"{p.status.pod_ip}:{metrics_port}" for p in pods], tmp_path)
    try:
        started = time.time()
        cluster.apply(experiment_manifest(ns))
        cluster.apply(experiment_manifest(ns, MULTI_OBJECTIVE, trials=4))
        cluster.apply(experiment_manifest(ns, "peaks", trials=4))

        def finished(name: str) -> dict[str, Any] | None:
            exp = cluster.custom.get_namespaced_custom_object("dial.dev", "v1alpha1", ns, "experiments", name)
            phase = (exp.get("status") or {}).get("phase")
            return exp if phase in ("Succeeded", "Failed") else None

        try:
            experiment = cluster.wait_for(lambda: finished(EXPERIMENT), timeout=400, interval=1,
                                          what=f"{EXPERIMENT} to finish")
            multi = cluster.wait_for(lambda: finished(MULTI_OBJECTIVE), timeout=300, interval=1,
                                     what=f"{MULTI_OBJECTIVE} to finish")
            peaks = cluster.wait_for(lambda: finished("peaks"), timeout=300, interval=1, what="peaks to finish")
        except TimeoutError as exc:
            pytest.fail(f"{exc}; the operator's log:\n{operator_log()}")
        assert multi["status"]["phase"] == "Succeeded" and multi["status"]["paretoFrontSize"] >= 1, multi["status"]
        assert peaks["status"]["phase"] == "Succeeded" and peaks["status"]["trialsDone"] == 4, peaks["status"]
        status = experiment["status"]
        assert status["phase"] == "Succeeded", status
        assert status["trialsDone"] == 8 and status["bestTrial"]["objective"] > 0.5
        assert EXPERIMENT in cluster.kubectl("get", "experiments", "-n", ns).stdout
        trials = cluster.kubectl("get", "trials", "-n", ns, "-l", f"dial.dev/experiment={EXPERIMENT}", "-o", "json").stdout
        assert len(json.loads(trials)["items"]) == 8

        jobs = cluster.batch.list_namespaced_job(ns, label_selector=f"dial.dev/experiment={EXPERIMENT}").items
        assert jobs and {j.spec.template.spec.service_account_name for j in jobs} == {"dial-collector"}
        # the collector: a native sidecar (an init container that keeps running) from the same image
        sidecars = [c for j in jobs for c in j.spec.template.spec.init_containers or [] if c.name == "dial-collector"]
        assert len(sidecars) == len(jobs) and {(c.restart_policy, c.image) for c in sidecars} == {
            ("Always", leader.spec.containers[0].image)}

        body = http_get(f"http://{pod_ip}:{metrics_port}/metrics")
        assert f'dial_experiments{{namespace="{ns}",phase="Succeeded"}} 3.0' in body
        front = {(s.labels["trial"], s.labels["metric"]): s.value for f in text_string_to_metric_families(body)
                 for s in f.samples if s.name == "dial_experiment_pareto_front" and s.labels["namespace"] == ns}
        assert front == {(e["name"], m): v for e in multi["status"]["paretoFront"] for m, v in e["objectives"].items()}

        # Let Prometheus take a few more scrapes of the final state, then check every dashboard query.
        time.sleep(3 * SCRAPE_SECONDS)
        targets = prometheus.api("targets")["activeTargets"]
        assert [t["health"] for t in targets] == ["up", "up"], targets
        # the standby reconciled nothing: it exports no experiment series and reports itself as standby
        standby_body = http_get(f"http://{standby.status.pod_ip}:{metrics_port}/metrics")
        assert "dial_operator_leader 0.0" in standby_body and "dial_operator_leader 1.0" in body
        assert f'namespace="{ns}"' not in standby_body
        roles = {r["metric"].get("instance", ""): r["value"][1] for r in
                 prometheus.api("query", query="dial_operator_leader")["result"]}
        assert sorted(roles.values()) == ["0", "1"], roles
        end = time.time()
        empty = []
        dashboard = load()
        for title, expr in panel_queries(dashboard):
            queries = [concrete(expr, namespace=ns, experiment=name) for name in (EXPERIMENT, MULTI_OBJECTIVE)]
            if not any(prometheus.query_range(query, started, end) for query in queries):
                empty.append(f"{title}: {queries[0]}")
        for name, query in variable_queries(dashboard).items():
            selector = query.removeprefix("label_values(").rsplit(",", 1)[0]
            values = prometheus.api(f"label/{name}/values", **{"match[]": concrete(selector, namespace=ns,
                                                                                    experiment=EXPERIMENT)})
            if (ns if name == "namespace" else EXPERIMENT) not in values:
                empty.append(f"variable {name}: {query} -> {values}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    finally:
        prometheus.stop()

    cluster.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "120s")
    leftovers = []
    for kind in ("deployments", "serviceaccounts", "roles", "rolebindings", "services", "configmaps"):
        out = cluster.kubectl("get", kind, "-n", ns, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name")
        leftovers += out.stdout.split()
    for kind in ("clusterroles", "clusterrolebindings", "validatingadmissionpolicies",
                 "validatingadmissionpolicybindings"):
        out = cluster.kubectl("get", kind, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name")
        leftovers += out.stdout.split()
    assert not leftovers, leftovers
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "experiments.dial.dev" in crds and "trials.dial.dev" in crds
