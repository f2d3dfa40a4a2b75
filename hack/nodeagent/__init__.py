"""The node agent's parts (``hack/node_agent.py`` is the program that runs them).

Split by job so each can be read without the others:

* ``common``: timestamps, Kubernetes quantities, file writing and the logger.
* ``nodes``: a node's shape and its pool of GPU ids.
* ``containers``: ``ContainerRun``, one container as a process (start, signals, exit, status).
* ``volumes``: ``PodSetup``, what a pod needs before a process starts (GPU ids, volumes,
  tokens, env, path remapping, the command line).
* ``pods``: ``PodWorker``, one pod's lifecycle (init containers, sidecars, restarts, deadline,
  deletion) and its status.
* ``kubelet_api``: the kubelet ``/containerLogs`` endpoint, for ``kubectl logs``.
* ``agent``: ``NodeAgent``, the nodes (registration, status, leases) and the pod watch.
"""
