#!/usr/bin/env python3
"""Dial's node agent: plays kubelet for the local test control plane (hack/cluster).

It registers Nodes (cpu, memory, pods and ``nvidia.com/gpu`` capacity), keeps them Ready
(node status + Lease in ``kube-node-lease``), and runs the pods that the real kube-scheduler
binds to them, each container as a local process:

* ``command``/``args`` run as a process (the image is only recorded); ``python`` resolves to
  the interpreter that runs this agent (its directory is first on PATH). ``$(VAR)`` references
  are expanded as Kubernetes does. Without ``command``, ``args`` are run as the command.
* ``env`` (``value``, ``valueFrom`` fieldRef/resourceFieldRef/configMapKeyRef/secretKeyRef) and
  ``envFrom``; ``workingDir``.
* Volumes: emptyDir, configMap, secret, downwardAPI and projected (serviceAccountToken,
  configMap, secret, downwardAPI). A persistentVolumeClaim is the node directory
  ``<data>/claims/<namespace>/<claimName>``, shared by all pods mounting that claim (there is no
  storage provisioner: the claim must be bound, e.g. to a PV the test creates, for the
  scheduler to place the pod; the PV's own source is ignored). Absolute paths are remapped under the pod's root
  ``<data>/pods/<ns>_<pod>_<uid>/fs``: a mount path ``/data`` is ``<root>/fs/data`` (a symlink
  to the volume directory), and occurrences of a mount path (or the workingDir) in command,
  args and env values are rewritten to the remapped path. ``DIAL_POD_ROOT`` holds ``<root>/fs``.
* GPUs: ``nvidia.com/gpu`` limits get distinct ids from the node's pool, handed out as
  ``CUDA_VISIBLE_DEVICES`` (and ``NVIDIA_VISIBLE_DEVICES``); a container without GPUs gets
  ``CUDA_VISIBLE_DEVICES=""``.
* ``activeDeadlineSeconds`` is enforced (phase Failed, reason DeadlineExceeded). Probes, exec,
  port-forward, hostPath and image entrypoints are not implemented.
* The pod's ServiceAccount token (TokenRequest bound to the pod) is given to the process as a
  ``KUBECONFIG`` file; the process never sees the agent's own (admin) credentials.
* Init containers run to completion in order; init containers with ``restartPolicy: Always``
  (native sidecars) start first, run alongside the main containers and are terminated once
  the main containers are done. ``restartPolicy`` Always/OnFailure/Never is honoured.
* Deletion: SIGTERM to the process group, the grace period, then SIGKILL; the pod is put in a
  terminal phase and removed (delete with grace 0), as kubelet does.
* CPU priority: pod processes run at ``nice`` 19 (``DIAL_POD_NICE``; 0 turns it off). A real node
  gives the control plane and the operator CPU of their own (requests, separate machines); on
  one small machine shared with the trials, the niceness simulates that isolation, so busy trials
  slow each other and not the API server or the operator.
* Logs: ``<data>/logs/<namespace>/<pod>/<container>.log`` (the current instance; the previous
  one is ``<container>.previous.log``). With ``--kubelet-port`` the agent also serves the
  kubelet ``/containerLogs`` endpoint, so ``kubectl logs`` works.

Run: ``python hack/node_agent.py --kubeconfig admin.kubeconfig --data-dir DIR [--nodes 1]
[--gpus 2] [--cpu 8] [--memory 16Gi]``.

The parts are the package ``hack/nodeagent/`` (one module a job, listed in its ``__init__``).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the nodeagent package, from any cwd

from nodeagent.agent import NodeAgent  # noqa: E402
from nodeagent.common import log, write_file  # noqa: E402
from nodeagent.nodes import Node  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--nodes", type=int, default=1, help="number of nodes")
    p.add_argument("--node-name", default="dial-node", help="node name (prefix when --nodes > 1)")
    p.add_argument("--cpu", default="8")
    p.add_argument("--memory", default="16Gi")
    p.add_argument("--gpus", type=int, default=int(os.environ.get("DIAL_NODE_GPUS", "2")))
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--kubelet-port", type=int, default=0, help="serve the kubelet log endpoint on this loopback port")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca", help="require client certs signed by this CA on the kubelet endpoint")
    p.add_argument("--pass-env", action="append", default=[], help="host env var to pass to containers")
    p.add_argument("--ready-file", help="touched once the nodes are registered")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    names = [a.node_name] if a.nodes == 1 else [f"{a.node_name}-{i}" for i in range(a.nodes)]
    agent = NodeAgent(a.kubeconfig, a.data_dir, [Node(n, a.cpu, a.memory, a.gpus, a.max_pods) for n in names],
                      kubelet_port=a.kubelet_port, tls_cert=a.tls_cert, tls_key=a.tls_key, pass_env=a.pass_env,
                      client_ca=a.client_ca)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.run()
    if a.ready_file:
        write_file(a.ready_file, str(os.getpid()))
    stop.wait()
    log.info("stopping")
    agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
