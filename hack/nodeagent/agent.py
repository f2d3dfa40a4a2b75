"""The node agent itself: registers the nodes and keeps them Ready (node status, Leases), talks
to the API for tokens, configMaps and secrets, watches the pods bound to its nodes and gives each
one a ``PodWorker``."""
from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import urllib.parse

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .common import log, ts, ts_micro
from .containers import ContainerRun
from .kubelet_api import serve_kubelet
from .nodes import Node
from .pods import PodWorker

KUBELET_VERSION = "v1.37.2-dial"


class NodeAgent:
    def __init__(self, kubeconfig: str, data_dir: str, nodes: list[Node], kubelet_port: int = 0,
                 tls_cert: str | None = None, tls_key: str | None = None, pass_env: list[str] | None = None,
                 client_ca: str | None = None):
        self.kubeconfig, self.data_dir, self.nodes = kubeconfig, os.path.abspath(data_dir), {n.name: n for n in nodes}
        self.kubelet_port, self.tls_cert, self.tls_key = kubelet_port, tls_cert, tls_key
        self.pass_env = pass_env or []
        self.client_ca = client_ca
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        self.api_config = cfg
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.server = cfg.host
        self.api_port = urllib.parse.urlparse(cfg.host).port or 443
        with open(cfg.ssl_ca_cert, "rb") as f:
            self.ca_data = base64.b64encode(f.read()).decode()
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids whose worker has ended: never run them again
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        os.makedirs(self.data_dir, exist_ok=True)

    # ---------------------------------------------------------------- api helpers
    def request_token(self, ns: str, sa: str, pod: str, uid: str, audience: str | None = None,
                      expiration: int | None = None) -> str:
        body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[audience] if audience else [],
            expiration_seconds=expiration or 3600,
            bound_object_ref=client.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod, uid=uid),
        ))
        last: Exception | None = None
        for _ in range(50):  # the ServiceAccount may not exist yet right after namespace creation
            try:
                return self.core.create_namespaced_service_account_token(sa, ns, body).status.token
            except ApiException as e:
                last = e
                if e.status != 404:
                    raise
                time.sleep(0.2)
        raise RuntimeError(f"serviceaccount {ns}/{sa}: {last}")

    def pod_kubeconfig(self, ns: str, token: str) -> str:
        return json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "dial", "cluster": {"server": self.server, "certificate-authority-data": self.ca_data}}],
            "users": [{"name": "pod", "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "dial", "user": "pod", "namespace": ns}}],
            "current-context": "pod",
        }, indent=1)

    def get_configmap(self, ns: str, ref: dict) -> dict | None:
        try:
            return self.core.read_namespaced_config_map(ref.get("name"), ns).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_secret(self, ns: str, name: str | None) -> dict | None:
        try:
            return self.core.read_namespaced_secret(name, ns).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    # ---------------------------------------------------------------- nodes
    def register(self) -> None:
        for n in self.nodes.values():
            body = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "labels": {
                    "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                    "node.dial.dev/agent": "python"}},
                "spec": {},
            }
            try:
                self.core.create_node(body)
            except ApiException as e:
                if e.status != 409:
                    raise
            self.update_node_status(n)
            self.renew_lease(n)

    def update_node_status(self, n: Node) -> None:
        t = ts()
        resources = {"cpu": n.cpu, "memory": n.memory, "pods": str(n.pods), "ephemeral-storage": "100Gi",
                     "nvidia.com/gpu": str(n.gpus)}
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        status = {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": c, "status": s, "reason": r, "message": f"dial node agent: {r}",
                            "lastHeartbeatTime": t, "lastTransitionTime": t} for c, s, r in conds],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": n.name, "systemUUID": n.name, "bootID": str(os.getpid()),
                "kernelVersion": os.uname().release, "osImage": "dial node agent",
                "containerRuntimeVersion": "dial-local://processes", "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }
        old = self.core.read_node_status(n.name)
        olds = {c.type: c for c in (old.status.conditions or [])}
        for c in status["conditions"]:
            o = olds.get(c["type"])
            if o is not None and o.status == c["status"] and o.last_transition_time:
                c["lastTransitionTime"] = ts(o.last_transition_time)
        self.core.patch_node_status(n.name, {"status": status})

    def renew_lease(self, n: Node) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": n.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40, "renewTime": ts_micro()},
        }
        try:
            self.coord.patch_namespaced_lease(n.name, "kube-node-lease", {"spec": body["spec"]})
        except ApiException as e:
            if e.status != 404:
                raise
            node = self.core.read_node(n.name)
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": node.metadata.uid}]
            self.coord.create_namespaced_lease("kube-node-lease", body)

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(10):
            for n in self.nodes.values():
                try:
                    self.renew_lease(n)
                    if time.monotonic() - last_status > 60:
                        self.update_node_status(n)
                except Exception as e:  # keep trying: the apiserver may be restarting
                    log.warning("heartbeat %s: %s", n.name, e)
            if time.monotonic() - last_status > 60:
                last_status = time.monotonic()

    # ---------------------------------------------------------------- pods
    def handle(self, typ: str, pod: dict) -> None:
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        md = pod["metadata"]
        uid = md["uid"]
        with self.lock:
            w = self.workers.get(uid)
            if typ == "DELETED":
                if w:
                    w.kill_now()
                return
            if w is None and uid in self.finished:
                if md.get("deletionTimestamp"):
                    self._final_delete(md)
                return
            if w is None:
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    if md.get("deletionTimestamp"):
                        self._final_delete(md)
                    return
                if md.get("deletionTimestamp") and not (pod.get("status") or {}).get("containerStatuses"):
                    self._final_delete(md)  # never started: nothing to stop
                    return
                w = PodWorker(self, pod, node)
                self.workers[uid] = w
                w.start()
            if md.get("deletionTimestamp"):
                w.request_stop(md.get("deletionGracePeriodSeconds"))

    def _final_delete(self, md: dict) -> None:
        try:
            self.core.delete_namespaced_pod(md["name"], md["namespace"], body=client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=md["uid"])))
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("delete %s/%s: %s", md["namespace"], md["name"], e.reason)

    def container_run(self, ns: str, pod: str, container: str) -> ContainerRun | None:
        """The running pod's container of that name, or None once the pod is gone."""
        with self.lock:
            worker = next((w for w in self.workers.values() if w.ns == ns and w.name == pod), None)
        if worker is None or worker.done.is_set():
            return None
        return next((c for c in worker.inits + worker.mains if c.name == container), None)

    def pod_done(self, w: PodWorker) -> None:
        with self.lock:
            if self.workers.get(w.uid) is w:
                del self.workers[w.uid]
            self.finished.add(w.uid)

    def watch_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                lst = self.core.list_pod_for_all_namespaces(_preload_content=False)
                data = json.loads(lst.data)
                rv = data["metadata"]["resourceVersion"]
                seen = set()
                for p in data.get("items") or []:
                    seen.add(p["metadata"]["uid"])
                    self.handle("ADDED", p)
                with self.lock:
                    gone = [w for uid, w in self.workers.items() if uid not in seen]
                for w in gone:
                    w.kill_now()
                w_ = watch.Watch()
                for ev in w_.stream(self.core.list_pod_for_all_namespaces, resource_version=rv,
                                    timeout_seconds=300, allow_watch_bookmarks=False, _preload_content=False):
                    if self.stopping.is_set():
                        w_.stop()
                        break
                    obj = ev["raw_object"]
                    if ev["type"] == "ERROR":
                        break
                    self.handle(ev["type"], obj)
            except Exception as e:
                if self.stopping.is_set():
                    break
                log.warning("pod watch: %s; relisting", e)
                time.sleep(0.5)

    # ---------------------------------------------------------------- kubelet logs endpoint
    def serve_kubelet(self) -> None:
        self.kubelet_server = serve_kubelet(self)

    # ---------------------------------------------------------------- main
    def run(self) -> None:
        if self.kubelet_port:
            self.serve_kubelet()
        deadline = time.monotonic() + 120
        while True:  # the apiserver may still be starting
            try:
                self.register()
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for the apiserver: %s", str(e).splitlines()[0][:200])
                time.sleep(0.5)
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        threading.Thread(target=self.watch_loop, daemon=True, name="pods").start()
        log.info("node agent ready: nodes %s", ", ".join(self.nodes))

    def shutdown(self) -> None:
        """Stop every pod's processes (SIGTERM, short grace, SIGKILL)."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.killed_event.set()
            for c in w.mains + w.inits:
                c.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for w in workers:
            for c in w.mains + w.inits:
                c.stop(max(0.0, deadline - time.monotonic()))
