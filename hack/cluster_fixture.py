"""pytest fixtures for Dial's local Kubernetes control plane (hack/cluster).

Use from any conftest.py::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "hack"))
    from cluster_fixture import cluster, namespace  # noqa: F401  (pytest fixtures)

and mark the tests ``@pytest.mark.integration`` (tests/integration/conftest.py registers it).

Fixtures
--------
``cluster`` (session): a :class:`Cluster`. If a cluster for this checkout is already up
(``hack/cluster up`` by hand, or ``DIAL_CLUSTER_DIR`` pointing at one) it is reused and left
running; otherwise it is started with ``hack/cluster up`` and stopped with ``hack/cluster down``
when the last test session using it ends (``DIAL_KEEP_CLUSTER=1`` keeps it). Sessions may run
concurrently: each registers its pid under ``<dir>.turns/users`` (kept when the cluster is taken down
and up) and takes turns (hack/cluster_turns.py). Every YAML in ``crds/`` is applied
and waited for until Established (``DIAL_CRDS_DIR`` names another directory; empty skips).

``namespace`` (function): a fresh namespace name; deleted after the test (not waited for).

Cluster API
-----------
``kubeconfig``          admin kubeconfig path (also exported as ``KUBECONFIG`` for the session)
``dir``                 the cluster's data dir; ``node_data`` is the node's (containerd, kubelet)
``node_name``, ``node_ip``, ``gpus``   the one real node: its name, address and fake GPU count
``kubectl(*args, input=None, check=True, timeout=60)`` -> ``subprocess.CompletedProcess`` (text)
``helm(*args, ...)``    same for helm
``api()``               a ``kubernetes.client.ApiClient`` for the admin user
``core``, ``batch``, ``custom``, ``rbac``   typed clients (CoreV1Api, BatchV1Api, ...)
``pod_log(ns, pod, container=None, previous=False)`` -> str: the container's log, through the
                        API server and the kubelet (``kubectl logs``); "" when there is none yet
``component_log(name)`` -> str: a component's own log (etcd, kube-apiserver, containerd, kubelet, ...)
``audit_events()``      -> list of the API server's audit events (writes to Dial's, Job, Lease, Event and pod
                        resources, Metadata level: user, userAgent, verb, objectRef, timestamps)
``wait_for(fn, timeout=30, interval=0.2, what="...")``  poll until ``fn()`` is truthy; returns it
``wait_pod_phase(ns, pod, phases, timeout=60)``         -> the V1Pod
``apply(yaml_text)``, ``apply_crds(dir)``
``down_and_up(check)``  ``hack/cluster down``, ``check(old_state)``, ``up``; the object follows
``restart(*args)``      ``hack/cluster restart`` (stop, keep down, start again; see its help)
``fit_to_node(manifest)``  an Experiment's training containers ask for 250m CPU (the node has 2 cores)
``pid_alive(pid)``      a module function: the process exists and is not a zombie
``pod_pids(ns, pod)``   host pids of the pod's container processes (from its cgroups)
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Callable

import pytest

from cluster_turns import cluster_dir, turns_dir

HACK = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HACK)
CLUSTER = os.path.join(HACK, "cluster")


class Cluster:
    def __init__(self, state: dict):
        self.state = state
        self.dir: str = state["dir"]
        self.kubeconfig: str = state["kubeconfig"]
        self.node_data: str = state["node_data"]
        self.server: str = state["server"]
        self.node_name: str = state["node_name"]
        self.node_ip: str = state["node_ip"]
        self.gpus: int = state["gpus"]
        self._api = None

    # -------------------------------------------------------------- CLIs
    def _env(self) -> dict:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
                ) -> subprocess.CompletedProcess:
        r = subprocess.run([self.state["dialkube"], "kubectl", *args], input=input, capture_output=True,
                           text=True, env=self._env(), timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def helm(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
             ) -> subprocess.CompletedProcess:
        env = self._env()
        for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env.setdefault(k, os.path.join(self.dir, "helm", k.split("_")[1].lower()))
        r = subprocess.run([self.state["helm"], *args], input=input, capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def restart(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`hack/cluster restart ARGS` (default: kube-apiserver and etcd), same arguments and data."""
        env = self._env()
        env.pop("KUBECONFIG", None)
        return subprocess.run([sys.executable, CLUSTER, "restart", *args], capture_output=True, text=True,
                              env=env, timeout=timeout)

    def down_and_up(self, check_down: Callable[[dict], None] | None = None) -> None:
        """`hack/cluster down`, then `check_down(old state)`, then `up` again: this object, the CRDs
        and this session's registration follow the new cluster (its ports and data are new)."""
        old = dict(self.state)
        started_by_fixture = os.path.exists(os.path.join(self.dir, "started-by-fixture"))
        r = _run_cluster("down", timeout=180)
        assert r.returncode == 0, f"hack/cluster down failed:\n{r.stderr[-4000:]}"
        try:
            if check_down is not None:
                check_down(old)
        finally:  # a failed check fails its own test only: the tests after it get a cluster
            r = _run_cluster("up")
            assert r.returncode == 0, f"hack/cluster up failed:\n{r.stderr[-6000:]}"
            self._follow_new_cluster(started_by_fixture)

    def _follow_new_cluster(self, started_by_fixture: bool) -> None:
        self.__init__(_state())
        if started_by_fixture:  # else it was up before the tests: leave it up after them
            open(os.path.join(self.dir, "started-by-fixture"), "w").close()
        crds = os.environ.get("DIAL_CRDS_DIR", os.path.join(REPO, "crds"))
        if crds and os.path.isdir(crds):
            self.apply_crds(crds)

    def apply(self, yaml_text: str) -> subprocess.CompletedProcess:
        return self.kubectl("apply", "-f", "-", input=yaml_text)

    # -------------------------------------------------------------- Python client
    def api(self):
        if self._api is None:
            from kubernetes import client, config

            cfg = client.Configuration()
            config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
            self._api = client.ApiClient(cfg)
        return self._api

    @property
    def core(self):
        from kubernetes import client
        return client.CoreV1Api(self.api())

    @property
    def batch(self):
        from kubernetes import client
        return client.BatchV1Api(self.api())

    @property
    def custom(self):
        from kubernetes import client
        return client.CustomObjectsApi(self.api())

    @property
    def coordination(self):
        from kubernetes import client
        return client.CoordinationV1Api(self.api())

    @property
    def rbac(self):
        from kubernetes import client
        return client.RbacAuthorizationV1Api(self.api())

    # -------------------------------------------------------------- helpers
    def pod_log(self, ns: str, pod: str, container: str | None = None, previous: bool = False) -> str:
        from kubernetes.client.exceptions import ApiException

        if container is None:
            container = self.core.read_namespaced_pod(pod, ns).spec.containers[0].name
        try:
            return self.core.read_namespaced_pod_log(pod, ns, container=container, previous=previous)
        except ApiException as e:
            if e.status in (400, 404):  # not started yet, or no previous run
                return ""
            raise

    def component_log(self, name: str) -> str:
        try:
            with open(os.path.join(self.dir, "logs", f"{name}.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def audit_events(self) -> list[dict]:
        """The API server's audit log (writes to Dial's, batch, lease, event and pod resources), oldest first."""
        events = []
        for line in self.component_log("audit").splitlines():
            if line.strip():
                events.append(json.loads(line))
        return events

    def pod_pids(self, ns: str, pod: str) -> set[int]:
        """Processes of the pod's containers on this machine, found by the pod's cgroup (cgroupfs driver)."""
        uid = self.core.read_namespaced_pod(pod, ns).metadata.uid
        pids: set[int] = set()
        for d in glob.glob(f"/sys/fs/cgroup/*/kubepods/**/pod{uid}", recursive=True) + \
                glob.glob(f"/sys/fs/cgroup/kubepods/**/pod{uid}", recursive=True):
            for dirpath, _dirs, files in os.walk(d):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(dirpath, "cgroup.procs")) as f:
                            pids.update(int(x) for x in f.read().split())
                    except OSError:
                        pass
        return pids

    @staticmethod
    def wait_for(fn: Callable[[], Any], timeout: float = 30, interval: float = 0.2, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                v = fn()
                if v:
                    return v
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last_exc = e
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                                   + (f" (last error: {last_exc})" if last_exc else ""))
            time.sleep(interval)

    def wait_pod_phase(self, ns: str, pod: str, phases=("Succeeded", "Failed"), timeout: float = 60):
        if isinstance(phases, str):
            phases = (phases,)

        def check():
            p = self.core.read_namespaced_pod(pod, ns)
            return p if p.status.phase in phases else None
        return self.wait_for(check, timeout, what=f"pod {ns}/{pod} phase in {phases}")

    def apply_crds(self, directory: str, timeout: float = 60) -> list[str]:
        files = sorted(glob.glob(os.path.join(directory, "*.yaml")) + glob.glob(os.path.join(directory, "*.yml")))
        names = []
        for f in files:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", f)
            out = self.kubectl("get", "-f", f, "-o", "json").stdout
            doc = json.loads(out)
            for item in doc.get("items", [doc]):
                if item.get("kind") == "CustomResourceDefinition":
                    names.append(item["metadata"]["name"])
        if names:
            self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s",
                         *[f"crd/{n}" for n in names], timeout=timeout + 10)
        return names


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def fit_to_node(manifest: dict[str, Any], cpu: str = "250m") -> dict[str, Any]:
    """Ask for `cpu` per training container: the examples limit each trial to one CPU (so, without
    a request, ask for one), and the test node is this 2-core machine, which would then run one
    trial at a time (the collector sidecar asks for 10m more)."""
    pod = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    for container in pod["containers"]:
        if "cpu" in (container.get("resources") or {}).get("limits", {}):
            container["resources"].setdefault("requests", {})["cpu"] = cpu
    return manifest


def _run_cluster(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CLUSTER, *args], capture_output=True, text=True, timeout=timeout)


def _state() -> dict:
    with open(os.path.join(cluster_dir(), "state.json")) as f:
        return json.load(f)


# This process's session cluster, for follow_restarted_cluster.
_SESSION: list[Cluster] = []


def _users_dir() -> str:
    # Beside the cluster's data, which `down` removes: another session's down_and_up must not unregister us.
    d = os.path.join(turns_dir(), "users")
    os.makedirs(d, exist_ok=True)
    return d


def _register_user() -> str:
    me = os.path.join(_users_dir(), str(os.getpid()))
    open(me, "w").close()
    return me


def follow_restarted_cluster() -> None:
    """Another test process took the cluster down and up (new ports and data): follow it. Called at the start
    of each turn."""
    if not _SESSION:
        return
    c = _SESSION[0]
    try:
        state = _state()
    except (OSError, ValueError):
        return  # down: the test's own fixture reports it
    if state != c.state:
        c.__init__(state)
        os.environ["KUBECONFIG"] = c.kubeconfig


def _live_users(users_dir: str) -> list[int]:
    pids = []
    for name in os.listdir(users_dir) if os.path.isdir(users_dir) else []:
        try:
            pid = int(name)
            os.kill(pid, 0)
            pids.append(pid)
        except (ValueError, ProcessLookupError):
            try:
                os.remove(os.path.join(users_dir, name))
            except OSError:
                pass
        except PermissionError:
            pids.append(int(name))
    return pids


@pytest.fixture(scope="session")
def cluster():
    if _run_cluster("env", timeout=30).returncode != 0:
        r = _run_cluster("up")
        if r.returncode != 0:
            pytest.fail(f"hack/cluster up failed:\n{r.stderr[-6000:]}", pytrace=False)
        if "already running" not in r.stderr:  # started now, by a test session
            open(os.path.join(_state()["dir"], "started-by-fixture"), "w").close()
    c = Cluster(_state())
    _SESSION[:] = [c]
    # sessions sharing the cluster register here; the last one out stops a fixture-started cluster
    me = _register_user()
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = c.kubeconfig
    crds = os.environ.get("DIAL_CRDS_DIR", os.path.join(REPO, "crds"))  # "" skips
    try:
        if crds and os.path.isdir(crds):
            c.apply_crds(crds)
        yield c
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
        _SESSION.clear()
        try:
            os.remove(me)
        except OSError:
            pass
        if (os.path.exists(os.path.join(c.dir, "started-by-fixture")) and not _live_users(_users_dir())
                and os.environ.get("DIAL_KEEP_CLUSTER") != "1"):
            _run_cluster("down", timeout=120)


@pytest.fixture
def namespace(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    # the serviceaccount controller creates "default" shortly after (longer just after an API
    # server restart, while the controller-manager's watches reconnect)
    cluster.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
                     90, what=f"default ServiceAccount in {name}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
