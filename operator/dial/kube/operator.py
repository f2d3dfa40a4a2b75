"""`dial operator`: run the kopf operator for some namespaces or the whole cluster."""

from __future__ import annotations

import logging

import kopf

from dial.kube import handlers  # noqa: F401  (registers the handlers with kopf)
from dial.kube.client import Kube, load_api_client
from dial.kube.jobs import CollectorSettings
from dial.kube.reconcile import Reconciler
from dial.kube.relevance import ChangeFilter, experiment_fingerprint, job_fingerprint, pod_fingerprint
from dial.kube.workqueue import WorkQueue
from dial.metrics.exporter import serve_metrics


def run_operator(*, namespaces: list[str], all_namespaces: bool, collector: CollectorSettings,
                 resync_seconds: float = 30.0, liveness_endpoint: str | None = None, verbose: bool = False,
                 metrics_port: int | None = None, workers: int = 16) -> None:
    """Blocks until the operator is stopped (SIGINT/SIGTERM)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.INFO if verbose else logging.WARNING)
    kube = Kube(load_api_client())
    metrics = serve_metrics(metrics_port) if metrics_port is not None else None
    reconciler = Reconciler(kube, collector, metrics=metrics)
    queue: WorkQueue[tuple[str, str]] = WorkQueue(lambda key: reconciler.reconcile(*key), n_workers=workers,
                                                  on_failure=metrics.reconcile_failed if metrics else None)
    filters = {"experiments": ChangeFilter(experiment_fingerprint), "jobs": ChangeFilter(job_fingerprint),
               "pods": ChangeFilter(pod_fingerprint)}
    memo = kopf.Memo(kube=kube, queue=queue, filters=filters, metrics=metrics, resync_seconds=resync_seconds,
                     namespaces=[] if all_namespaces else list(namespaces))
    kopf.run(standalone=True, clusterwide=all_namespaces, namespaces=[] if all_namespaces else namespaces,
             liveness_endpoint=liveness_endpoint, memo=memo)
