"""Helpers for the chaos tests: a TCP proxy that can cut the operator off the API server, killing a
container's processes (found by its cgroup on the node), bad-spec mutations for hypothesis, and the
tally printed at the end."""

from __future__ import annotations

import glob
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import run_summary

CHAOS_SECTION = "chaos: what was tried and survived"  # printed at the end of the run; kept in benchmarks/RESULTS.md


def tally(scenario: str, *, tried: int = 0, survived: int = 0) -> None:
    run_summary.count(CHAOS_SECTION, scenario, tried=tried, survived=survived)


class ApiProxy:
    """127.0.0.1:<port> -> the API server; `cut()` drops every connection and closes new ones at once
    (counting them) until `restore()`."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.refused = 0  # connection attempts while cut: proof the client kept trying
        self.is_cut = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def restore(self) -> None:
        self.is_cut = False

    def cut(self) -> None:
        self.is_cut = True
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _close(conn)

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.is_cut:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source)
    _close(sink)


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def proxied_kubeconfig(kubeconfig: str, server: str, proxy: ApiProxy, path: Path) -> str:
    """A copy of the kubeconfig whose server is the proxy (on 127.0.0.1, which the serving certificate names too)."""
    path.write_text(Path(kubeconfig).read_text().replace(server, f"https://127.0.0.1:{proxy.port}"))
    return str(path)


def kill_container(pod: Any, container: str) -> int:
    """SIGKILL every process of a running container (an OOM kill, as the kernel does it); returns how many.

    The container's processes are those in its cgroup, `.../kubepods/.../pod<uid>/<container id>`
    (the kubelet's cgroupfs driver), on this machine: the node is the machine itself.
    """
    statuses = [*(pod.status.container_statuses or []), *(pod.status.init_container_statuses or [])]
    [status] = [s for s in statuses if s.name == container]
    container_id = status.container_id.split("://", 1)[1]
    pids: set[int] = set()
    for procs in glob.glob(f"/sys/fs/cgroup/**/pod{pod.metadata.uid}/{container_id}/cgroup.procs", recursive=True):
        with open(procs) as f:
            pids.update(int(x) for x in f.read().split())
    assert pids, f"no processes found for container {container} ({container_id})"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


# -- bad Experiment specs: (what is changed, a fragment the error must contain, how)
def _set(path: tuple[Any, ...], value: Any):
    def change(manifest: dict[str, Any]) -> None:
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _field(path: tuple[Any, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _mutation(path: tuple[Any, ...], values: st.SearchStrategy, field: str | None = None) -> st.SearchStrategy:
    return values.map(lambda v: (_field(path), field or _field(path), v, _set(path, v)))


NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=3, max_size=12)
BAD_MUTATIONS = st.one_of(
    _mutation(("spec", "parallelTrialCount"), st.integers(-5, 0) | st.sampled_from(["two", 1.5, None, []])),
    _mutation(("spec", "maxTrialCount"), st.integers(-5, 0) | st.sampled_from(["many", {}])),
    _mutation(("spec", "maxFailedTrialCount"), st.integers(-9, -1)),
    _mutation(("spec", "maxTrialSeconds"), st.integers(-100, 0)),
    _mutation(("spec", "maxExperimentSeconds"), st.integers(-100, 0)),
    _mutation(("spec", "maxGpuHours"), st.floats(-10, 0)),
    _mutation(("spec", "objective", "type"), NAME.filter(lambda s: s not in ("minimize", "maximize"))),
    _mutation(("spec", "objective", "metricName"), st.just("")),
    _mutation(("spec", "algorithm", "name"), NAME.filter(lambda s: s.strip("-") and s not in _strategy_names())),
    _mutation(("spec", "parameters", 0, "type"),
              NAME.filter(lambda s: s not in ("double", "int", "categorical", "discrete"))),
    _mutation(("spec", "parameters", 0, "feasibleSpace"),
              st.tuples(st.floats(-100, 100), st.floats(0.001, 100)).map(lambda t: {"min": t[0] + t[1], "max": t[0]}),
              field="feasibleSpace"),
    _mutation(("spec", "parameters"), st.just([]) | st.just(None)),
    _mutation(("spec", "earlyStopping"),
              st.integers(-3, 0).map(lambda n: {"name": "medianstop", "settings": {"start_step": n}}),
              field="spec.earlyStopping.settings.start_step"),
    _mutation(("spec", "trialTemplate", "primaryContainerName"), NAME.filter(lambda s: s != "training")),
)


def _strategy_names() -> set[str]:
    from dial.search import STRATEGIES
    return set(STRATEGIES)


# -- throttling: API priority and fairness with no seats for one identity
def throttle_objects(tag: str, namespace: str, service_account: str) -> list[dict[str, Any]]:
    """A priority level with no concurrency of its own that rejects what it cannot seat (429 with Retry-After),
    and a FlowSchema sending every request of `service_account` there."""
    level = f"dial-throttled-{tag}"
    return [
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
         "metadata": {"name": level},
         "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 0, "lendablePercent": 0, "borrowingLimitPercent": 0,
                                                 "limitResponse": {"type": "Reject"}}}},
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": level},
         "spec": {"matchingPrecedence": 50, "priorityLevelConfiguration": {"name": level},
                  "distinguisherMethod": {"type": "ByUser"},
                  "rules": [{"subjects": [{"kind": "ServiceAccount",
                                           "serviceAccount": {"name": service_account, "namespace": namespace}}],
                             "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                "namespaces": ["*"], "clusterScope": True}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}},
    ]


def rejected_requests(cluster: Any, flow_schema: str) -> float:
    """Requests of a FlowSchema the API server answered 429, from its own metrics."""
    api = cluster.api()
    method, url, headers, _, _ = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, _request_timeout=(5, 30))
    response.read()
    total = 0.0
    for line in response.data.decode().splitlines():
        if line.startswith("apiserver_flowcontrol_rejected_requests_total{") and f'flow_schema="{flow_schema}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
