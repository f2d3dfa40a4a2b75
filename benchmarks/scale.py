"""Scale benchmark of `dial operator` on the local control plane (hack/cluster), run on demand:

    .venv/bin/python benchmarks/scale.py --experiments 20 --trials 50 --parallel 3       # real node
    .venv/bin/python benchmarks/scale.py --kwok --experiments 100 --trials 100 --parallel 10 [--check]

Real node: N experiments of the peaks example (random search, real short trials in containers) are applied
at once to a fresh namespace and run to the end: the end-to-end check, small.

`--kwok`: the trials' pods land on kwok's fake nodes (`hack/cluster kwok`), which run nothing: kwok's Stage
rules move each pod to Running and, after `--run-seconds`, to Succeeded. What is simulated: the training and
the collector sidecar. This process plays every trial's collector, with dial's own `Collector` (same
patches, same number of writes, at most one a second) as the trial's ServiceAccount would, feeding it
`--epochs` lines of a real numpy objective (the peaks function of the trial's parameters) spread over the
run, the last one before the pod succeeds. What is real: the operator, the API server and etcd, the Job
controller and the scheduler. This measures the operator, not a node.

N experiments of the peaks example (random search, real short trials) are applied at once to a fresh
namespace and run to the end. Measured: apply -> first Job (p50/p95), slot freed (a Job finished) -> the
experiment's next Job (p50/p95), proposals per second, the operator's API requests and writes per trial
(from the API server's own metrics: an APF FlowSchema per identity, so other users of a shared cluster do
not count), the operator's CPU seconds and peak RSS, and the watch events it was sent and handled (queued a
reconcile, or dropped as changing nothing it reads). Prints a markdown table (`--json` for the raw numbers).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cluster_fixture import CLUSTER, Cluster, _state  # noqa: E402
from dial.api.experiment import ObjectiveSpec  # noqa: E402
from dial.examples.peaks import peaks  # noqa: E402
from dial.kube.client import Kube  # noqa: E402
from dial.kube.rbac import collector_rbac, operator_cluster_role, render  # noqa: E402
from dial.metrics.collector import Collector  # noqa: E402
from dial.metrics.parsing import MetricReader  # noqa: E402
from operator_fixtures import example_manifest, service_account_kubeconfig  # noqa: E402

TARGETS = {"first_job_p95_s": 1.0, "slot_to_job_p95_s": 1.0, "operator_writes_per_trial": 10, "peak_rss_mb": 300}
# The targets at 1,000 running trials on kwok nodes.
KWOK_TARGETS = {"first_job_p95_s": 0.5, "slot_to_job_p95_s": 0.5, "operator_requests_per_trial": 6,
                "operator_cpu_ms_per_trial": 5, "peak_rss_mb": 300}
WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")
WRITE_K8S_VERBS = ["create", "patch", "update", "delete", "deletecollection"]
# Every verb the operator could use gets its own FlowSchema, so requests are counted by verb.
K8S_VERBS = ["get", "list", "watch", *WRITE_K8S_VERBS]
RANGES = Path(__file__).with_name("scale_kwok_ranges.json")


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
    # The operator's requests match the schema of their verb (lower precedence number wins), anything else
    # of its (non-resource requests) the catch-all; the collectors' requests the last.
    objects = []
    per_verb = [(f"dial-operator-{verb}", "dial-operator", 90, [verb]) for verb in K8S_VERBS]
    for schema, who, precedence, verbs in (*per_verb,
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


def kwok_manifest(name: str, n_trials: int, parallel: int, seed: int, run_seconds: float) -> dict[str, Any]:
    """Random search over the peaks function, each trial a Job whose pod goes to a kwok node for `run_seconds`."""
    return {
        "apiVersion": "dial.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "metricName": "objective"},
            "algorithm": {"name": "random"}, "seed": seed,
            "maxTrialCount": n_trials, "parallelTrialCount": parallel,
            "parameters": [{"name": p, "type": "double", "feasibleSpace": {"min": -3, "max": 3}} for p in ("x", "y")],
            "trialTemplate": {"primaryContainerName": "training", "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 0, "template": {
                    "metadata": {"annotations": {"dial.dev/kwok-duration": f"{run_seconds:g}s"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"type": "kwok"},
                        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [{"name": "training", "image": "dial-worker:0.1.0",
                                        "command": ["python", "-m", "dial.examples.peaks", "--x", "${trialParameters.x}",
                                                    "--y", "${trialParameters.y}"],
                                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}},
        },
    }


class LinesFollower:
    """A collector's input that this process writes to, instead of a file the training appends to."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def read_lines(self, *, final: bool = False) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


class SimulatedCollectors:
    """Plays the collector sidecar of every trial pod kwok runs: once the pod is Running, `epochs` lines of the
    trial's objective are fed to dial's own Collector, spread over the run so the last lands before the pod
    succeeds; each is published at once (the real collector publishes at most once a second, and the lines
    are further apart than that), as the collector's ServiceAccount."""

    def __init__(self, cluster: Cluster, namespace: str, kube: Kube, epochs: int, run_seconds: float):
        self.cluster, self.namespace, self.kube = cluster, namespace, kube
        self.epochs, self.run_seconds = epochs, run_seconds
        self.objective = ObjectiveSpec.model_validate({"type": "minimize", "metricName": "objective"})
        self.queue: list[tuple[float, int, str]] = []
        self.cond = threading.Condition()
        self.collectors: dict[str, tuple[Collector, LinesFollower, float]] = {}
        self.started: set[str] = set()
        self.writes = 0
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.threads = [threading.Thread(target=self._watch_pods, daemon=True),
                        threading.Thread(target=self._schedule, daemon=True)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _watch_pods(self) -> None:
        api = self.cluster.api()
        path = f"/api/v1/namespaces/{self.namespace}/pods?watch=true&timeoutSeconds=3600&labelSelector=dial.dev%2Fexperiment"
        method, url, headers, _, _ = api.param_serialize("GET", path, auth_settings=["BearerToken"])
        response = api.call_api(method, url, headers, _request_timeout=(5, 3700))
        for line in _lines(response.response):
            if self.stop.is_set():
                return
            pod = json.loads(line)["object"]
            trial = (pod["metadata"].get("labels") or {}).get("job-name")
            if trial and (pod.get("status") or {}).get("phase") == "Running" and trial not in self.started:
                self.started.add(trial)
                now = time.monotonic()
                with self.cond:
                    for k in range(1, self.epochs + 1):
                        # the last line a second before the pod succeeds, the first well after it started
                        at = now + (self.run_seconds - 1.0) * k / self.epochs
                        heapq.heappush(self.queue, (at, k, trial))
                    self.cond.notify()

    def _schedule(self) -> None:
        while not self.stop.is_set():
            with self.cond:
                while not self.queue or self.queue[0][0] > time.monotonic():
                    timeout = (self.queue[0][0] - time.monotonic()) if self.queue else 0.5
                    self.cond.wait(max(0.0, min(timeout, 0.5)))
                    if self.stop.is_set():
                        return
                _, epoch, trial = heapq.heappop(self.queue)
            self.pool.submit(self._observe, trial, epoch)

    def _observe(self, trial: str, epoch: int) -> None:
        try:
            if trial not in self.collectors:
                spec = self.cluster.custom.get_namespaced_custom_object(
                    "dial.dev", "v1alpha1", self.namespace, "trials", trial)["spec"]["parameterAssignments"]
                follower = LinesFollower()
                collector = Collector(follower, MetricReader(self.objective.metric_names), self.objective,
                                      lambda patch, t=trial: self.kube.patch_trial_status(self.namespace, t, patch))
                self.collectors[trial] = (collector, follower, peaks(float(spec["x"]), float(spec["y"])))
            collector, follower, value = self.collectors[trial]
            # a learning curve that reaches the trial's peaks value at its last epoch
            follower.lines.append(f"epoch={epoch} objective={value + 0.5 * (self.epochs - epoch):.6f}")
            collector.poll()
            if collector.flush(force=True):
                self.writes += 1
            else:
                self.errors["unpublished"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported; a benchmark goes on
            self.errors[type(exc).__name__] += 1

    def close(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        self.pool.shutdown(wait=True, cancel_futures=True)


def collector_kubeconfig(cluster: Cluster, namespace: str, tag: str) -> Path:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": f"dial-collector-{tag}"},
            "rules": [{"apiGroups": ["dial.dev"], "resources": ["trials/status"], "verbs": ["patch"]}]}
    return service_account_kubeconfig(cluster, namespace, "dial-collector", role)


def kube_for(kubeconfig: Path) -> Kube:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    return Kube(client.ApiClient(configuration))


def run(n_experiments: int, n_trials: int, parallel: int, timeout: float, workers: int, *, kwok: bool = False,
        run_seconds: float = 20.0, epochs: int = 3, profile: Path | None = None,
        cached_reads: bool = False) -> dict[str, Any]:
    if subprocess.run([sys.executable, CLUSTER, "up"], capture_output=True, text=True).returncode != 0:
        raise SystemExit("hack/cluster up failed")
    max_running = n_experiments * parallel
    if kwok:
        nodes = max(2, -(-max_running // 200))
        r = subprocess.run([sys.executable, CLUSTER, "kwok", "--nodes", str(nodes)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"hack/cluster kwok failed:\n{r.stdout}{r.stderr}")
    load_before = os.getloadavg()  # others' work on a shared machine shows here
    cluster = Cluster(_state())
    cluster.apply_crds(str(REPO / "crds"))
    tag = uuid.uuid4().hex[:6]
    namespace = f"scale-{tag}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0, 30)
    cluster.apply(render(collector_rbac(namespace)))
    kubeconfig = identity(cluster, namespace, tag)
    collectors = (SimulatedCollectors(cluster, namespace, kube_for(collector_kubeconfig(cluster, namespace, tag)),
                                      epochs, run_seconds) if kwok else None)
    metrics_port = 19000 + int(tag, 16) % 1000
    log = open(Path(cluster.dir) / f"operator-{tag}.log", "wb")
    operator = subprocess.Popen([sys.executable, "-m", "dial.cli", "operator", "-n", namespace,
                                 "--metrics-port", str(metrics_port), "--workers", str(workers),
                                 # Both explicit: the operator reads from its caches by default, this
                                 # benchmark (and its ranges) read fresh unless told otherwise.
                                 "--cached-reads" if cached_reads else "--no-cached-reads"],
                                env={**os.environ, "KUBECONFIG": str(kubeconfig)}, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
    profiler = None
    if profile is not None:  # py-spy samples every thread of the operator (pip install py-spy)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        profiler = subprocess.Popen([py_spy, "record", "--pid", str(operator.pid), "--rate", "50", "--format", "raw",
                                     "--output", str(profile), "--nonblocking"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT)
    watch = TwinWatch(cluster, namespace)
    watch.start()
    if collectors is not None:
        collectors.start()
    try:
        cluster.wait_for(lambda: scrape(metrics_port) is not None, 60, what="the operator's metrics endpoint")
        time.sleep(2)  # kopf's watches established
        before = api_metrics(cluster)
        cpu_before, _ = proc_usage(operator.pid)
        names = [f"scale-{i:02d}" for i in range(n_experiments)]
        manifests = []
        for i, name in enumerate(names):
            if kwok:
                manifest = kwok_manifest(name, n_trials, parallel, i, run_seconds)
            else:
                manifest = example_manifest("peaks", maxTrialCount=n_trials, parallelTrialCount=parallel,
                                            maxFailedTrialCount=None, algorithm={"name": "random"}, seed=i)
                manifest["metadata"]["name"] = name
            manifests.append(manifest)
        applied_at: dict[str, float] = {}

        def create(manifest: dict[str, Any]) -> None:
            applied_at[manifest["metadata"]["name"]] = time.time()
            cluster.custom.create_namespaced_custom_object("dial.dev", "v1alpha1", namespace, "experiments", manifest)

        # Created from a few threads, each stamped when its request is sent: one `kubectl apply` of 100 took
        # over a minute (client-side throttling), which would be charged to the last experiments' first Job.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, manifests))

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
        if collectors is not None:
            collectors.close()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        operator.terminate()
        operator.wait(30)
        log.close()
    experiments = cluster.custom.list_namespaced_custom_object("dial.dev", "v1alpha1", namespace, "experiments")["items"]
    trials = cluster.custom.list_namespaced_custom_object("dial.dev", "v1alpha1", namespace, "trials")["items"]
    n_done = sum(e["status"]["trialsCreated"] for e in experiments)
    first_job = [min(t for n, t in watch.job_created.items() if n.startswith(f"{name}-")) - applied_at[name] for name in names]
    slot_to_job = []
    peak_running = 0
    events = sorted([(t, 1) for t in watch.job_created.values()] + [(t, -1) for t in watch.job_finished.values()])
    running = 0
    for _, step in events:
        running += step
        peak_running = max(peak_running, running)
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
    by_verb = {verb: delta(before, after, flow, flow_schema=f"dial-operator-{verb}-{tag}") for verb in K8S_VERBS}
    by_verb["other"] = delta(before, after, flow, flow_schema=f"dial-operator-{tag}")
    operator_writes = sum(by_verb[v] for v in WRITE_K8S_VERBS)
    operator_requests = sum(by_verb.values())
    collector_requests = delta(before, after, flow, flow_schema=f"dial-collector-{tag}")
    all_writes = sum(delta(before, after, "apiserver_request_total", verb=verb) for verb in WRITE_VERBS)
    observed = sum(o.get("nPoints", 0) for t in trials for o in (t.get("status") or {}).get("observations") or [])
    result = {
        "mode": "kwok" if kwok else "real node", "cached_reads": cached_reads,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "workers": workers,
        "experiments": n_experiments, "trials_per_experiment": n_trials, "parallel_per_experiment": parallel,
        "max_running": max_running, "peak_running_jobs": peak_running, "trials_created": n_done,
        "wall_seconds": round(wall, 1),
        "phases": dict(Counter(e["status"]["phase"] for e in experiments)),
        "trial_phases": dict(Counter((t.get("status") or {}).get("phase") for t in trials)),
        "first_job_p50_s": percentile(first_job, 0.5), "first_job_p95_s": percentile(first_job, 0.95),
        "slot_to_job_p50_s": percentile(slot_to_job, 0.5), "slot_to_job_p95_s": percentile(slot_to_job, 0.95),
        "n_slot_samples": len(slot_to_job),
        "trials_per_second": n_done / wall,
        "planning_calls_with_proposals": scraped.get("dial_proposal_duration_seconds_count", 0.0),
        "proposal_planning_seconds": scraped.get("dial_proposal_duration_seconds_sum", 0.0),
        "operator_requests_per_trial": operator_requests / n_done,
        "operator_requests_per_trial_by_verb": {v: round(n / n_done, 2) for v, n in by_verb.items() if n},
        "operator_writes_per_trial": operator_writes / n_done,
        "collector_requests_per_trial": collector_requests / n_done,
        # every write on the cluster minus the collectors' (all of theirs are writes): the operator's,
        # plus the controllers' and the kubelet's (Jobs -> pods, pod status) and anyone else's
        "cluster_writes_per_trial": all_writes / n_done,
        "operator_cpu_seconds": round(cpu_after - cpu_before, 1),
        "operator_cpu_ms_per_trial": 1000 * (cpu_after - cpu_before) / n_done, "peak_rss_mb": round(peak_rss, 1),
        "observations_recorded": observed,
        "watch_events": dict(watch.counts), "namespace": namespace,
        "operator_watch_events": {k.removeprefix("watch "): v for k, v in scraped.items() if k.startswith("watch ")},
    }
    if collectors is not None:
        result |= {"simulated_collector_writes": collectors.writes, "simulated_collector_errors": dict(collectors.errors),
                   "run_seconds": run_seconds, "epochs": epochs}
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return result


def table(r: dict[str, Any]) -> str:
    kwok = r.get("mode") == "kwok"
    targets = KWOK_TARGETS if kwok else TARGETS
    calls, seconds = r["planning_calls_with_proposals"], r["proposal_planning_seconds"]
    latency = f"p95 <= {targets['first_job_p95_s']:g} s"
    rows = [
        ("configuration", f"{r['experiments']} experiments x {r['trials_per_experiment']} trials, "
                          f"{r['parallel_per_experiment']} parallel each ({r['max_running']} running at most, "
                          f"{r['peak_running_jobs']} seen at once)"
         + (f"; kwok pods of {r['run_seconds']:g} s, {r['epochs']} observations each" if kwok else ""), ""),
        ("trials run / wall time", f"{r['trials_created']} in {r['wall_seconds']} s "
                                   f"({r['trials_per_second']:.2f} trials/s); experiments {r['phases']}, "
                                   f"trials {r['trial_phases']}", ""),
        ("apply -> first Job p50 / p95", f"{r['first_job_p50_s']:.2f} s / {r['first_job_p95_s']:.2f} s",
         _met(r["first_job_p95_s"] <= targets["first_job_p95_s"], latency)),
        ("slot freed -> next Job p50 / p95", f"{r['slot_to_job_p50_s']:.2f} s / {r['slot_to_job_p95_s']:.2f} s "
                                             f"({r['n_slot_samples']} slots)",
         _met(r["slot_to_job_p95_s"] <= targets["slot_to_job_p95_s"], latency)),
        ("proposals per second", f"{calls / seconds:.0f} planning steps/s of planning time ({calls:.0f} steps, "
                                 f"{seconds:.2f} s); {r['trials_per_second']:.2f} trials/s end to end"
         if seconds else "n/a", ""),
        ("operator API requests per trial", f"{r['operator_requests_per_trial']:.1f}: "
         + ", ".join(f"{v} {n:g}" for v, n in r["operator_requests_per_trial_by_verb"].items()) + " (events included)",
         _met(r["operator_requests_per_trial"] <= targets["operator_requests_per_trial"], "<= 6") if kwok else ""),
        ("operator API writes per trial", f"{r['operator_writes_per_trial']:.1f} (create, patch, delete; "
                                          "events included)",
         "" if kwok else _met(r["operator_writes_per_trial"] <= TARGETS["operator_writes_per_trial"], "<= 10")),
        ("collector API requests per trial", f"{r['collector_requests_per_trial']:.1f} (all status patches"
         + (", simulated" if kwok else "") + f"); {r['observations_recorded']} observations recorded", ""),
        ("all cluster writes per trial", f"{r['cluster_writes_per_trial']:.1f} (operator + collectors + "
                                         "controllers + " + ("kwok" if kwok else "kubelet") + ")", ""),
        ("operator CPU per trial", f"{r['operator_cpu_ms_per_trial']:.1f} ms ({r['operator_cpu_seconds']} s in all)",
         _met(r["operator_cpu_ms_per_trial"] <= targets["operator_cpu_ms_per_trial"], "<= 5 ms") if kwok else ""),
        ("operator peak RSS", f"{r['peak_rss_mb']} MB", _met(r["peak_rss_mb"] < targets["peak_rss_mb"], "< 300 MB")),
        ("watch events sent", ", ".join(f"{k} {v}" for k, v in sorted(r["watch_events"].items()))
         + f" (total {sum(r['watch_events'].values())})", ""),
        ("watch events the operator handled", ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["operator_watch_events"].items()))
         + " (dropped: changed nothing the reconcile reads)", ""),
    ]
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def profile_table(path: Path, top: int = 25) -> str:
    """Where the operator's samples went: the share of samples in which each dial/kopf/kubernetes function is on
    the stack (inclusive), and the share of idle samples left out."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        seen = set()
        for frame in frames:
            name = re.sub(r" \(.*/site-packages/", " (", frame)
            name = re.sub(r" \(.*/operator/dial/", " (dial/", name)
            name = re.sub(r":\d+\)$", ")", name)
            if name not in seen and ("(dial/" in name or "(kopf/" in name or "(kubernetes/" in name
                                     or "(urllib3/" in name or "(json/" in name or "(pydantic" in name):
                seen.add(name)
                inclusive[name] += n
    rows = [f"| {name} | {100 * n / total:.1f} % |" for name, n in inclusive.most_common(top)]
    return "\n".join([f"py-spy: {total} samples of busy threads", "| function (file) | samples on stack |",
                      "|---|---|", *rows])


# Measures a regression shows in, with how much worse than the worst of the runs the range allows.
RANGE_MEASURES = {"first_job_p95_s": 1.5, "slot_to_job_p95_s": 1.5, "operator_requests_per_trial": 1.15,
                  "operator_writes_per_trial": 1.15, "operator_cpu_ms_per_trial": 1.3, "peak_rss_mb": 1.2}


def derive_ranges(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Kueue's pattern: each measure's limit is the worst of several runs times a margin."""
    first = results[0]
    return {
        "configuration": {k: first[k] for k in ("experiments", "trials_per_experiment", "parallel_per_experiment",
                                                 "cached_reads")},
        "kwok": {"run_seconds": first["run_seconds"], "epochs": first["epochs"]},
        "derived": f"worst of {len(results)} runs x margin, {first['date']}, {first['machine']}",
        "runs": {m: [round(r[m], 4) for r in results] for m in RANGE_MEASURES},
        "max": {m: round(max(r[m] for r in results) * margin, 4) for m, margin in RANGE_MEASURES.items()},
        "min": {"trials_created": first["trials_created"]},
    }


def check_ranges(r: dict[str, Any], ranges: dict[str, Any]) -> list[str]:
    """The measures outside the checked-in ranges (Kueue's pattern: the worst of 5 runs plus a margin)."""
    config = {k: r[k] for k in ("experiments", "trials_per_experiment", "parallel_per_experiment", "cached_reads")}
    if config != ranges["configuration"]:
        return [f"the ranges are for {ranges['configuration']}, this run was {config}"]
    failures = []
    for measure, limit in ranges["max"].items():
        if not r[measure] <= limit:
            failures.append(f"{measure} = {r[measure]:.3g} > {limit:.3g}")
    for measure, limit in ranges.get("min", {}).items():
        if not r[measure] >= limit:
            failures.append(f"{measure} = {r[measure]:.3g} < {limit:.3g}")
    return failures


def _met(ok: bool, target: str) -> str:
    return f"{target}: {'met' if ok else 'NOT met'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workers", type=int, default=16, help="the operator's reconcile workers")
    parser.add_argument("--kwok", action="store_true", help="trials on kwok's fake nodes (hack/cluster kwok)")
    parser.add_argument("--run-seconds", type=float, default=20.0, help="--kwok: how long each trial pod runs")
    parser.add_argument("--epochs", type=int, default=3, help="--kwok: observations each simulated collector writes")
    parser.add_argument("--check", action="store_true",
                        help=f"--kwok: fail when a measure is outside {RANGES.name} (same configuration only)")
    parser.add_argument("--profile", type=Path, help="write py-spy's samples of the operator (collapsed stacks) here "
                        "and print where its CPU time went")
    parser.add_argument("--cached-reads", action="store_true", help="run the operator with --cached-reads (its default); without this flag it runs "
                        "--no-cached-reads, as the checked-in ranges were derived")
    parser.add_argument("--derive-ranges", type=int, metavar="RUNS",
                        help=f"--kwok: run RUNS times and write {RANGES.name} from them")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    args = parser.parse_args(argv)
    if args.derive_ranges:
        results = [run(args.experiments, args.trials, args.parallel, args.timeout, args.workers, kwok=True,
                       run_seconds=args.run_seconds, epochs=args.epochs, cached_reads=args.cached_reads)
                   for _ in range(args.derive_ranges)]
        for r in results:
            print(table(r))
        RANGES.write_text(json.dumps(derive_ranges(results), indent=1) + "\n")
        print(f"wrote {RANGES}")
        return 0
    result = run(args.experiments, args.trials, args.parallel, args.timeout, args.workers, kwok=args.kwok,
                 run_seconds=args.run_seconds, epochs=args.epochs, profile=args.profile,
                 cached_reads=args.cached_reads)
    print(f"{result['date']}, {result['machine']}, {result['mode']}"
          f"{', cached reads' if result['cached_reads'] else ''}; load average before "
          f"{'/'.join(f'{x:.1f}' for x in result['load_average_before'])}, after "
          f"{'/'.join(f'{x:.1f}' for x in result['load_average_after'])}")
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=1))
    if args.profile is not None:
        print(profile_table(args.profile))
    if args.check:
        failures = check_ranges(result, json.loads(RANGES.read_text()))
        for failure in failures:
            print(f"REGRESSION: {failure}", file=sys.stderr)
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
