"""The local cluster is real: the Job controller, garbage collector, scheduler, RBAC and CRD
validation of the control plane, and one node whose kubelet runs pods in containers (containerd,
runc) from the worker image built from worker_image/Dockerfile."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import textwrap
import time

import pytest
import yaml

from cluster_fixture import pid_alive

pytestmark = pytest.mark.integration

WORKER_IMAGE = "dial-worker:0.1.0"  # imported into the node's containerd by hack/cluster up; never pulled


def job_manifest(name: str, code: str, **pod_extra) -> str:
    pod_spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", code]}],
    }
    pod_spec.update(pod_extra)
    return yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
    })


def job_pods(cluster, ns: str, job: str):
    return cluster.core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items



def test_job_completes_and_output_is_readable(cluster, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=job_manifest(
        "hello", "import os, sys; print('hello from', os.environ['HOSTNAME'], sys.version_info[0])"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/hello", "--timeout=60s", timeout=70)
    job = cluster.batch.read_namespaced_job("hello", namespace)
    assert job.status.succeeded == 1
    [pod] = job_pods(cluster, namespace, "hello")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    assert cluster.pod_log(namespace, pod.metadata.name) == f"hello from {pod.metadata.name} 3\n"
    # kubectl: through the API server to the kubelet's serving certificate issued by the cluster's CA
    out = cluster.kubectl("logs", "-n", namespace, "job/hello").stdout
    assert out == f"hello from {pod.metadata.name} 3\n"


def test_failed_job_reports_exit_code(cluster, namespace):
    cluster.apply(job_manifest("boom", "import sys; print('bad'); sys.exit(3)").replace(
        "name: boom\n", f"name: boom\n  namespace: {namespace}\n", 1))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/boom", "--timeout=60s", timeout=70)
    [pod] = job_pods(cluster, namespace, "boom")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_delete_job_background_terminates_process(cluster, namespace):
    code = textwrap.dedent("""
        import os, signal, sys, time
        def bye(*_):
            print('got SIGTERM', flush=True); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('pid', os.getpid(), flush=True)
        time.sleep(600)
    """)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=job_manifest("sleeper", code))
    pod = cluster.wait_for(lambda: [p for p in job_pods(cluster, namespace, "sleeper") if p.status.phase == "Running"],
                           60, what="sleeper pod Running")[0]
    name = pod.metadata.name
    log = cluster.wait_for(lambda: cluster.pod_log(namespace, name), 15, what="pid in log")
    assert log.split()[:2] == ["pid", "1"]  # its own PID namespace: the training is PID 1
    pids = cluster.wait_for(lambda: cluster.pod_pids(namespace, name), 15, what="the pod's processes")
    assert all(pid_alive(p) for p in pids)
    # the pod's log goes with the pod: follow it through the kubelet until the container ends
    follow = subprocess.Popen([cluster.state["dialkube"], "kubectl", "logs", "-f", "-n", namespace, name],
                              env={**os.environ, "KUBECONFIG": cluster.kubeconfig}, stdout=subprocess.PIPE, text=True)
    cluster.wait_for(lambda: "pid 1" in cluster.pod_log(namespace, name), 5)
    time.sleep(1)  # the follower is attached
    cluster.kubectl("delete", "-n", namespace, "job/sleeper", "--cascade=background", "--wait=false")
    # the real garbage collector deletes the pod, the kubelet stops its containers (SIGTERM to PID 1)
    cluster.wait_for(lambda: not any(pid_alive(p) for p in pids), 30, what="pod processes gone")
    cluster.wait_for(lambda: not job_pods(cluster, namespace, "sleeper"), 30, what="pod object deleted")
    out, _ = follow.communicate(timeout=30)
    assert "got SIGTERM" in out, out


def test_grace_period_then_sigkill(cluster, namespace):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring', flush=True); time.sleep(600)"
    cluster.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn", "namespace": namespace},
        "spec": {"terminationGracePeriodSeconds": 2, "restartPolicy": "Never",
                 "containers": [{"name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", code]}]}}))
    cluster.wait_pod_phase(namespace, "stubborn", "Running", 30)
    cluster.wait_for(lambda: "ignoring" in cluster.pod_log(namespace, "stubborn"), 15)
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "stubborn", "--wait=true", "--timeout=30s", timeout=40)
    assert 1.5 < time.monotonic() - t0 < 20


def test_garbage_collector_removes_dependents(cluster, namespace):
    owner = cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for i in range(2):
        cluster.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"dependent-{i}", "ownerReferences": [ref]}})
    cluster.kubectl("delete", "-n", namespace, "configmap/owner", "--cascade=background")

    def gone():
        names = {c.metadata.name for c in cluster.core.list_namespaced_config_map(namespace).items}
        return not names & {"dependent-0", "dependent-1"}
    cluster.wait_for(gone, 30, what="dependents collected")


def gpu_pod(name: str, ns: str, gpus: int, code: str, node: str | None = None) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "nodeSelector": {"kubernetes.io/hostname": node} if node else None, "containers": [{
            "name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", code],
            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
    }


@pytest.mark.cluster_resource("gpu")  # counts the node's two GPUs
def test_gpu_scheduling_and_isolation(cluster, namespace):
    cluster.core.create_namespaced_pod(namespace, gpu_pod("too-big", namespace, 3, "print('never')"))

    def unschedulable():
        p = cluster.core.read_namespaced_pod("too-big", namespace)
        return [c for c in p.status.conditions or [] if c.type == "PodScheduled" and c.reason == "Unschedulable"]
    [cond] = cluster.wait_for(unschedulable, 30, what="too-big Unschedulable")
    assert "nvidia.com/gpu" in cond.message
    p = cluster.core.read_namespaced_pod("too-big", namespace)
    assert p.status.phase == "Pending" and not p.spec.node_name

    # the kubelet's device manager admits each pod with one device of the fake-GPU plugin, whose
    # Allocate sets NVIDIA_VISIBLE_DEVICES as NVIDIA's plugin does
    code = "import os, time; print(os.environ['NVIDIA_VISIBLE_DEVICES'], flush=True); time.sleep(600)"
    node = cluster.core.list_node().items[0].metadata.name  # both on one node (there may be several)
    for n in ("gpu-a", "gpu-b"):
        cluster.core.create_namespaced_pod(namespace, gpu_pod(n, namespace, 1, code, node))
    for n in ("gpu-a", "gpu-b"):
        cluster.wait_pod_phase(namespace, n, "Running", 60)
    a, b = (cluster.wait_for(lambda n=n: cluster.pod_log(namespace, n).strip(), 15) for n in ("gpu-a", "gpu-b"))
    assert {a, b} == {"dial-gpu-0", "dial-gpu-1"}
    cluster.kubectl("delete", "pod", "-n", namespace, "gpu-a", "gpu-b", "too-big", "--timeout=30s", timeout=40)


RBAC_CHECK = textwrap.dedent("""
    import os, sys
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_incluster_config()  # the `kubernetes` Service, through kube-proxy
    try:
        n = len(client.CoreV1Api().list_namespaced_config_map(os.environ['NS']).items)
        print('OK', n)
    except ApiException as e:
        print('STATUS', e.status, e.body, flush=True)
        sys.exit(3)
""")


def rbac_pod(name: str, ns: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"restartPolicy": "Never", "serviceAccountName": "reader", "containers": [{
            "name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", RBAC_CHECK],
            "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}]},
    }


def test_service_account_rbac(cluster, namespace):
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.core.create_namespaced_pod(namespace, rbac_pod("denied", namespace))
    pod = cluster.wait_pod_phase(namespace, "denied", timeout=60)
    out = cluster.pod_log(namespace, "denied")
    assert pod.status.phase == "Failed", out
    assert "STATUS 403" in out and f"system:serviceaccount:{namespace}:reader" in out, out

    cluster.kubectl("create", "role", "cm-reader", "--verb=list", "--resource=configmaps", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "cm-reader", "--role=cm-reader",
                    f"--serviceaccount={namespace}:reader", "-n", namespace)
    cluster.core.create_namespaced_pod(namespace, rbac_pod("allowed", namespace))
    pod = cluster.wait_pod_phase(namespace, "allowed", timeout=60)
    out = cluster.pod_log(namespace, "allowed")
    assert pod.status.phase == "Succeeded", out
    assert out.startswith("OK "), out


WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.dial.dev}
spec:
  group: test.dial.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def test_crd_schema_rejects_at_api_server(cluster, namespace):
    cluster.apply(WIDGET_CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.test.dial.dev", "--timeout=30s")
    ok = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                         input="apiVersion: test.dial.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n")
    assert ok.returncode == 0, ok.stderr
    bad = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                          input="apiVersion: test.dial.dev/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n")
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr and "should be greater than or equal to 1" in bad.stderr, bad.stderr


def test_dial_crds_are_established(cluster):
    crds = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
    names = {c["metadata"]["name"] for c in crds}
    crds_dir = os.environ.get("DIAL_CRDS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "crds"))
    if not crds_dir or not os.path.isdir(crds_dir):
        pytest.skip("no crds/ directory applied")
    assert {"experiments.dial.dev", "trials.dial.dev"} <= names


def test_init_containers_sidecar_and_empty_dir(cluster, namespace):
    """Plain init containers run in order; a native sidecar runs alongside the main container,
    shares an emptyDir with it, and is stopped when the main container is done."""
    sidecar = textwrap.dedent("""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print('sidecar stopped', flush=True), sys.exit(0)))
        open('/shared/sidecar.txt', 'w').write('from sidecar')
        while True:
            time.sleep(0.1)
    """)
    main = textwrap.dedent("""
        import os, time
        for _ in range(100):
            if os.path.exists('/shared/sidecar.txt'):
                break
            time.sleep(0.1)
        print(open('/shared/init.txt').read(), open('/shared/sidecar.txt').read(), os.environ['POD'], os.getcwd() == os.path.realpath(os.environ['WD']))
    """)
    mount = [{"name": "shared", "mountPath": "/shared"}]
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sidecars", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [
                {"name": "first", "image": WORKER_IMAGE, "volumeMounts": mount,
                 "command": ["python", "-c", "open('/shared/init.txt', 'w').write('init1')"]},
                {"name": "second", "image": WORKER_IMAGE, "volumeMounts": mount,
                 "command": ["python", "-c", "open('/shared/init.txt', 'a').write('+init2')"]},
                {"name": "collector", "image": WORKER_IMAGE, "restartPolicy": "Always", "volumeMounts": mount,
                 "command": ["python", "-c", sidecar]},
            ],
            "containers": [{"name": "main", "image": WORKER_IMAGE, "volumeMounts": mount, "workingDir": "/shared/work",
                            "command": ["python", "-c", main],
                            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "WD", "value": "/shared/work"}]}],
        }})
    pod = cluster.wait_pod_phase(namespace, "sidecars", timeout=60)
    assert pod.status.phase == "Succeeded", cluster.pod_log(namespace, "sidecars", "main")
    assert cluster.pod_log(namespace, "sidecars", "main") == "init1+init2 from sidecar sidecars True\n"
    assert "sidecar stopped" in cluster.pod_log(namespace, "sidecars", "collector")
    states = {s.name: s.state.terminated.exit_code for s in pod.status.init_container_statuses}
    assert states == {"first": 0, "second": 0, "collector": 0}


def test_restart_policy_on_failure(cluster, namespace):
    """First run fails, the kubelet restarts the container, the second run succeeds."""
    code = textwrap.dedent("""
        import os, sys, time
        marker = '/scratch/ran-once'
        if not os.path.exists(marker):
            open(marker, 'w').close(); print('first run fails', flush=True); sys.exit(1)
        print('second run succeeds', flush=True)
        time.sleep(3)  # time to read the first run's log while this one runs
    """)
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky", "namespace": namespace},
        "spec": {"restartPolicy": "OnFailure", "volumes": [{"name": "scratch", "emptyDir": {}}],
                 "containers": [{"name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", code],
                                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]}})

    def second_run() -> bool:
        [st] = cluster.core.read_namespaced_pod("flaky", namespace).status.container_statuses or [None]
        return st is not None and st.restart_count == 1 and st.state.running is not None
    cluster.wait_for(second_run, 90, what="the restarted container running")
    assert cluster.pod_log(namespace, "flaky", "main", previous=True) == "first run fails\n"
    assert cluster.kubectl("logs", "-n", namespace, "flaky", "--previous").stdout == "first run fails\n"
    pod = cluster.wait_pod_phase(namespace, "flaky", timeout=60)
    st = pod.status.container_statuses[0]
    assert pod.status.phase == "Succeeded" and st.restart_count == 1
    assert st.last_state.terminated.exit_code == 1
    assert cluster.pod_log(namespace, "flaky", "main") == "second run succeeds\n"


def test_logs_follow_ends_when_the_container_exits(cluster, namespace):
    """`kubectl logs -f` returns once its container exits, while another container of the pod runs on."""
    counter = "import time\nfor i in range(3):\n    print(f'line {i}', flush=True); time.sleep(0.5)"
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "follow", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "counter", "image": WORKER_IMAGE, "command": ["python", "-c", counter]},
                                {"name": "waiter", "image": WORKER_IMAGE, "command": ["python", "-c", "import time; time.sleep(120)"]}]}})
    cluster.wait_for(lambda: cluster.core.read_namespaced_pod("follow", namespace).status.phase == "Running",
                     timeout=60, what="pod follow running")
    out = cluster.kubectl("logs", "-f", "-n", namespace, "follow", "-c", "counter", timeout=45).stdout
    assert out == "line 0\nline 1\nline 2\n"
    assert cluster.core.read_namespaced_pod("follow", namespace).status.phase == "Running"  # waiter still runs
    cluster.core.delete_namespaced_pod("follow", namespace, grace_period_seconds=0)


def test_helm_installs_a_chart(cluster, namespace, tmp_path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tiny}\ndata: {greeting: {{ .Values.greeting | quote }}}\n")
    cluster.helm("install", "tiny", str(chart), "-n", namespace, "--set", "greeting=hi", "--wait", "--timeout", "60s")
    assert cluster.core.read_namespaced_config_map("tiny", namespace).data == {"greeting": "hi"}
    assert "tiny" in cluster.helm("list", "-n", namespace, "-q").stdout


def test_active_deadline_seconds(cluster, namespace):
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 2, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": WORKER_IMAGE,
                                 "command": ["python", "-c", "import os, time; print(repr(os.environ.get('NVIDIA_VISIBLE_DEVICES')), flush=True); time.sleep(600)"]}]}})
    pod = cluster.wait_pod_phase(namespace, "slow", timeout=60)
    assert pod.status.phase == "Failed" and pod.status.reason == "DeadlineExceeded"
    assert cluster.pod_log(namespace, "slow", "main") == "None\n"  # no GPUs asked for: none visible


def test_config_map_secret_downward_and_projected_volumes_become_files(cluster, namespace):
    cluster.apply(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
         "data": {"lr": "0.1", "unused": "x"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": namespace},
         "stringData": {"token": "s3cret"}},
    ]))
    read = ("import pathlib; print(sorted((f'{n}/{p.name}', p.read_text()) for n, d in "
            "[('cm', '/v/cm'), ('sec', '/v/sec'), ('down', '/v/down'), ('all', '/v/all')] "
            "for p in pathlib.Path(d).iterdir() if p.is_file()), flush=True)")
    downward = {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}
    cluster.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mounts", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "volumes": [
            {"name": "cm", "configMap": {"name": "settings", "items": [{"key": "lr", "path": "lr.txt"}]}},
            {"name": "sec", "secret": {"secretName": "creds"}},
            {"name": "down", "downwardAPI": downward},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "settings", "items": [{"key": "lr", "path": "p-lr"}]}},
                {"secret": {"name": "creds"}}, {"downwardAPI": downward}]}}],
            "containers": [{"name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", read], "volumeMounts": [
                {"name": n, "mountPath": f"/v/{n}"} for n in ("cm", "sec", "down", "all")]}]}}))
    cluster.wait_pod_phase(namespace, "mounts", "Succeeded", 60)
    files = dict(ast.literal_eval(cluster.pod_log(namespace, "mounts").strip()))  # the list the pod printed
    assert files == {"cm/lr.txt": "0.1", "sec/token": "s3cret", "down/name": "mounts",
                     "all/p-lr": "0.1", "all/token": "s3cret", "all/name": "mounts"}


def test_exec_and_port_forward_go_through_the_kubelet(cluster, namespace):
    serve = ("import http.server, socketserver\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        self.send_response(200); self.end_headers(); self.wfile.write(b'pong')\n"
             "socketserver.TCPServer(('0.0.0.0', 8080), H).serve_forever()\n")
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "server", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": WORKER_IMAGE, "command": ["python", "-c", serve],
                                 "ports": [{"containerPort": 8080}]}]}})
    pod = cluster.wait_pod_phase(namespace, "server", "Running", 60)
    assert pod.status.pod_ip.startswith("10.214.0.")
    out = cluster.kubectl("exec", "-n", namespace, "server", "--", "python", "-c",
                          "import os; print(os.getuid(), os.path.exists('/opt/dial/bin/dial'))").stdout
    assert out == "65532 True\n"  # the worker image's user, and its venv
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fwd = subprocess.Popen([cluster.state["dialkube"], "kubectl", "port-forward", "-n", namespace, "pod/server",
                            f"{port}:8080"], env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = cluster.wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read(),
                                30, what="the forwarded port to answer")
        assert body == b"pong"
    finally:
        fwd.terminate()
        fwd.wait(10)
