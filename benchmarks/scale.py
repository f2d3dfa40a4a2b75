"""Scale benchmark of `dial operator` on the local control plane (hack/cluster), run on demand:

    .venv/bin/python benchmarks/scale.py --experiments 20 --trials 50 --parallel 3

N experiments of the peaks example (random search, real short trials) are applied at once to a fresh
namespace and run to the end. Measured: apply -> first Job (p50/p95), slot freed (a Job finished) -> the
experiment's next Job (p50/p95), proposals per second, the operator's API requests and writes per trial
(from the API server's own metrics: an APF FlowSchema per identity, so other users of a shared cluster do
not count), the operator's CPU seconds and peak RSS, and the watch events it was sent and handled (queued a
reconcile, or dropped as changing nothing it reads). Prints a markdown table (`--json` for the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cluster_fixture import CLUSTER, Cluster, _state  # noqa: E402
from dial.kube.rbac import collector_rbac, operator_cluster_role, render  # noqa: E402
from operator_fixtures import example_manifest, service_account_kubeconfig  # noqa: E402

TARGETS = {"first_job_p95_s": 1.0, "slot_to_job_p95_s": 1.0, "operator_writes_per_trial": 10, "peak_rss_mb": 300}
WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")
WRITE_K8S_VERBS = ["create", "patch", "update", "delete", "deletecollection"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class TwinWatch:
    """Watches what the operator watches, stamping each event with this process's clock."""

    def __init__(self, cluster: Cluster, namespace: str):
        self.cluster, self.namespace = cluster, namespace
        self.counts: Counter[str] = Counter()
        self.job_created: dict[str, float] = {}
        self.job_finished: dict[str, float] = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._watch, args=(kind,), daemon=True)
                        for kind in ("experiments", "trials", "jobs", "pods")]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _path(self, kind: str) -> str:
        prefix = {"experiments": "/apis/dial.dev/v1alpha1", "trials": "/apis/dial.dev/v1alpha1",
                  "jobs": "/apis/batch/v1", "pods": "/api/v1"}[kind]
        selector = "" if kind == "experiments" else "&labelSelector=dial.dev%2Fexperiment"
        return f"{prefix}/namespaces/{self.namespace}/{kind}?watch=true&timeoutSeconds=3600{selector}"

    def _watch(self, kind: str) -> None:
        api = self.cluster.api()
        method, url, headers, _, _ = api.param_serialize("GET", self._path(kind), auth_settings=["BearerToken"])
        response = api.call_api(method, url, headers, _request_timeout=(5, 3700))
        for line in _lines(response.response):
            if self.stop.is_set():
                return
            event = json.loads(line)
            now = time.time()
            self.counts[kind] += 1
            if kind == "jobs":
                job = event["object"]
                name = job["metadata"]["name"]
                self.job_created.setdefault(name, now)
                conditions = (job.get("status") or {}).get("conditions") or []
                if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
                    self.job_finished.setdefault(name, now)


def _lines(response: Any):
    buffer = b""
    for chunk in response.stream(65536):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())


def api_metrics(cluster: Cluster) -> dict[tuple[str, tuple], float]:
    api = cluster.api()
    method, url, headers, _, _ = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, _request_timeout=(5, 30))
    response.read()
    samples = {}
    for line in response.data.decode().splitlines():
        match = re.match(r"^(apiserver_request_total|apiserver_flowcontrol_dispatched_requests_total)\{(.*)\} (\S+)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2))))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def delta(before: dict, after: dict, name: str, **want: str) -> float:
    total = 0.0
    for (metric, labels), value in after.items():
        d = dict(labels)
        if metric == name and all(d.get(k) == v for k, v in want.items()):
            total += value - before.get((metric, labels), 0.0)
    return total


def identity(cluster: Cluster, namespace: str, tag: str) -> Path:
    """The operator's own ServiceAccount (its ClusterRole) and FlowSchemas that count each identity's requests."""
    kubeconfig = service_account_kubeconfig(cluster, namespace, "dial-operator",
                                            operator_cluster_role(f"dial-operator-{tag}"))
    # The operator's writes match the first schema (lower precedence number wins), the rest of its requests
    # the second; the collectors' requests the third.
    objects = []
    for schema, who, precedence, verbs in (("dial-operator-writes", "dial-operator", 99, WRITE_K8S_VERBS),
                                           ("dial-operator", "dial-operator", 100, ["*"]),
                                           ("dial-collector", "dial-collector", 100, ["*"])):
        objects.append({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": f"{schema}-{tag}"},
            "spec": {"matchingPrecedence": precedence, "priorityLevelConfiguration": {"name": "workload-high"},
                     "distinguisherMethod": {"type": "ByUser"},
                     "rules": [{"subjects": [{"kind": "ServiceAccount",
                                              "serviceAccount": {"name": who, "namespace": namespace}}],
                                "resourceRules": [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"],
                                                   "namespaces": ["*"], "clusterScope": True}],
                                **({"nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}
                                   if verbs == ["*"] else {})}]}})
    cluster.apply(render(objects))
    return kubeconfig


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    return cpu, hwm / 1024


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("dial_proposal_duration_seconds_") and not line.startswith("#"):
            name, value = line.split(" ")[0].split("{")[0], float(line.rsplit(" ", 1)[1])
            out[name] += value
        elif line.startswith("dial_watch_events_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[f"watch {labels['kind']} {labels['outcome']}"] += float(line.rsplit(" ", 1)[1])
    return out


def run(n_experiments: int, n_trials: int, parallel: int, timeout: float, workers: int) -> dict[str, Any]:
    if subprocess.run([sys.executable, CLUSTER, "up"], capture_output=True, text=True).returncode != 0:
        raise SystemExit("hack/cluster up failed")
    load_before = os.getloadavg()  # others' work on a shared machine shows here
    cluster = Cluster(_state())
    cluster.apply_crds(str(REPO / "crds"))
    tag = uuid.uuid4().hex[:6]
    namespace = f"scale-{tag}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0, 30)
    cluster.apply(render(collector_rbac(namespace)))
    kubeconfig = identity(cluster, namespace, tag)
    metrics_port = 19000 + int(tag, 16) % 1000
    log = open(Path(cluster.dir) / f"operator-{tag}.log", "wb")
    operator = subprocess.Popen([sys.executable, "-m", "dial.cli", "operator", "-n", namespace,
                                 "--metrics-port", str(metrics_port), "--workers", str(workers)],
                                env={**os.environ, "KUBECONFIG": str(kubeconfig)}, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
    watch = TwinWatch(cluster, namespace)
    watch.start()
    try:
        cluster.wait_for(lambda: scrape(metrics_port) is not None, 60, what="the operator's metrics endpoint")
        time.sleep(2)  # kopf's watches established
        before = api_metrics(cluster)
        cpu_before, _ = proc_usage(operator.pid)
        names = [f"scale-{i:02d}" for i in range(n_experiments)]
        manifests = []
        for i, name in enumerate(names):
            manifest = example_manifest("peaks", maxTrialCount=n_trials, parallelTrialCount=parallel,
                                        maxFailedTrialCount=None, algorithm={"name": "random"}, seed=i)
            manifest["metadata"]["name"] = name
            manifests.append(json.dumps(manifest))
        applied_at = time.time()
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n".join(manifests))
        started = time.monotonic()

        def done() -> bool:
            items = cluster.custom.list_namespaced_custom_object("dial.dev", "v1alpha1", namespace, "experiments")["items"]
            return len(items) == n_experiments and all((e.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                                                       for e in items)
        cluster.wait_for(done, timeout, interval=1.0, what="every experiment finished")
        wall = time.monotonic() - started
        time.sleep(2)  # the last patches and events land
        after = api_metrics(cluster)
        cpu_after, peak_rss = proc_usage(operator.pid)
        scraped = scrape(metrics_port)
    finally:
        watch.stop.set()
        operator.terminate()
        operator.wait(30)
        log.close()
    experiments = cluster.custom.list_namespaced_custom_object("dial.dev", "v1alpha1", namespace, "experiments")["items"]
    n_done = sum(e["status"]["trialsCreated"] for e in experiments)
    first_job = [min(t for n, t in watch.job_created.items() if n.startswith(f"{name}-")) - applied_at for name in names]
    slot_to_job = []
    for name in names:
        created = sorted(t for n, t in watch.job_created.items() if n.startswith(f"{name}-"))
        finished = sorted(t for n, t in watch.job_finished.items() if n.startswith(f"{name}-"))
        pending = list(created[parallel:])  # every Job after the first `parallel` waited for a slot
        for freed in finished:
            if not pending:
                break
            nxt = next((c for c in pending if c >= freed), None)
            if nxt is not None:
                slot_to_job.append(nxt - freed)
                pending.remove(nxt)
    flow = "apiserver_flowcontrol_dispatched_requests_total"
    operator_writes = delta(before, after, flow, flow_schema=f"dial-operator-writes-{tag}")
    operator_requests = delta(before, after, flow, flow_schema=f"dial-operator-{tag}") + operator_writes
    collector_requests = delta(before, after, flow, flow_schema=f"dial-collector-{tag}")
    all_writes = sum(delta(before, after, "apiserver_request_total", verb=verb) for verb in WRITE_VERBS)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "workers": workers,
        "experiments": n_experiments, "trials_per_experiment": n_trials, "parallel_per_experiment": parallel,
        "max_running": n_experiments * parallel, "trials_created": n_done, "wall_seconds": round(wall, 1),
        "phases": dict(Counter(e["status"]["phase"] for e in experiments)),
        "first_job_p50_s": percentile(first_job, 0.5), "first_job_p95_s": percentile(first_job, 0.95),
        "slot_to_job_p50_s": percentile(slot_to_job, 0.5), "slot_to_job_p95_s": percentile(slot_to_job, 0.95),
        "n_slot_samples": len(slot_to_job),
        "trials_per_second": n_done / wall,
        "planning_calls_with_proposals": scraped.get("dial_proposal_duration_seconds_count", 0.0),
        "proposal_planning_seconds": scraped.get("dial_proposal_duration_seconds_sum", 0.0),
        "operator_requests_per_trial": operator_requests / n_done,
        "operator_writes_per_trial": operator_writes / n_done,
        "collector_requests_per_trial": collector_requests / n_done,
        # every write on the cluster minus the collectors' (all of theirs are writes): the operator's,
        # plus the controllers' and the kubelet's (Jobs -> pods, pod status) and anyone else's
        "cluster_writes_per_trial": all_writes / n_done,
        "operator_cpu_seconds": round(cpu_after - cpu_before, 1), "peak_rss_mb": round(peak_rss, 1),
        "watch_events": dict(watch.counts), "namespace": namespace,
        "operator_watch_events": {k.removeprefix("watch "): v for k, v in scraped.items() if k.startswith("watch ")},
    }
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return result


def table(r: dict[str, Any]) -> str:
    calls, seconds = r["planning_calls_with_proposals"], r["proposal_planning_seconds"]
    rows = [
        ("configuration", f"{r['experiments']} experiments x {r['trials_per_experiment']} trials, "
                          f"{r['parallel_per_experiment']} parallel each ({r['max_running']} running at most)", ""),
        ("trials run / wall time", f"{r['trials_created']} in {r['wall_seconds']} s "
                                   f"({r['trials_per_second']:.2f} trials/s); phases {r['phases']}", ""),
        ("apply -> first Job p50 / p95", f"{r['first_job_p50_s']:.2f} s / {r['first_job_p95_s']:.2f} s",
         _met(r["first_job_p95_s"] <= TARGETS["first_job_p95_s"], "p95 <= 1 s")),
        ("slot freed -> next Job p50 / p95", f"{r['slot_to_job_p50_s']:.2f} s / {r['slot_to_job_p95_s']:.2f} s "
                                             f"({r['n_slot_samples']} slots)",
         _met(r["slot_to_job_p95_s"] <= TARGETS["slot_to_job_p95_s"], "p95 < 1 s")),
        ("proposals per second", f"{calls / seconds:.0f} planning steps/s of planning time ({calls:.0f} steps, "
                                 f"{seconds:.2f} s); {r['trials_per_second']:.2f} trials/s end to end"
         if seconds else "n/a", ""),
        ("operator API writes per trial", f"{r['operator_writes_per_trial']:.1f} (create, patch, delete; "
                                          "events included)",
         _met(r["operator_writes_per_trial"] <= TARGETS["operator_writes_per_trial"], "<= 10")),
        ("operator API requests per trial", f"{r['operator_requests_per_trial']:.1f} (all verbs: lists, gets, "
                                            "watches, writes)", ""),
        ("collector API requests per trial", f"{r['collector_requests_per_trial']:.1f} (all status patches)", ""),
        ("all cluster writes per trial", f"{r['cluster_writes_per_trial']:.1f} (operator + collectors + "
                                         "controllers + kubelet)", ""),
        ("operator CPU / peak RSS", f"{r['operator_cpu_seconds']} s / {r['peak_rss_mb']} MB",
         _met(r["peak_rss_mb"] < TARGETS["peak_rss_mb"], "RSS < 300 MB")),
        ("watch events sent", ", ".join(f"{k} {v}" for k, v in sorted(r["watch_events"].items()))
         + f" (total {sum(r['watch_events'].values())})", ""),
        ("watch events the operator handled", ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["operator_watch_events"].items()))
         + " (dropped: changed nothing the reconcile reads)", ""),
    ]
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _met(ok: bool, target: str) -> str:
    return f"{target}: {'met' if ok else 'NOT met'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workers", type=int, default=16, help="the operator's reconcile workers")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    args = parser.parse_args(argv)
    result = run(args.experiments, args.trials, args.parallel, args.timeout, args.workers)
    print(f"{result['date']}, {result['machine']}; load average before "
          f"{'/'.join(f'{x:.1f}' for x in result['load_average_before'])}, after "
          f"{'/'.join(f'{x:.1f}' for x in result['load_average_after'])}")
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
