"""`dial operator`: run the kopf operator for some namespaces or the whole cluster."""

from __future__ import annotations

import logging
import os
import sys
import threading

import kopf

from dial.kube import handlers  # noqa: F401  (registers the handlers with kopf)
from dial.kube.cache import ObjectCache
from dial.kube.client import Kube, load_api_client
from dial.kube.jobs import CollectorSettings
from dial.kube.leadership import LOST_LEADERSHIP_EXIT_CODE, Leadership, LeaseSettings, start_election
from dial.kube.readiness import serve_readiness
from dial.kube.reconcile import Reconciler
from dial.kube.relevance import ChangeFilter, experiment_fingerprint, job_fingerprint, pod_fingerprint
from dial.kube.workqueue import WorkQueue
from dial.metrics.exporter import serve_metrics


def run_operator(*, namespaces: list[str], all_namespaces: bool, collector: CollectorSettings,
                 resync_seconds: float = 30.0, liveness_endpoint: str | None = None, verbose: bool = False,
                 metrics_port: int | None = None, workers: int = 16, lease: LeaseSettings | None = None,
                 readiness_endpoint: str | None = None, cached_reads: bool = True) -> None:
    """Blocks until the operator is stopped (SIGINT/SIGTERM). With `lease`, only the replica holding it reconciles."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.INFO if verbose else logging.WARNING)
    api = load_api_client()
    resync_now = threading.Event()
    if lease is None:
        leadership = Leadership.always()
    else:
        # The API server's audit log names each write's user agent: this one says which replica sent it.
        api.user_agent = f"dial-operator ({lease.identity})"
        leadership = start_election(api, lease, on_started_leading=lambda: _started_leading(lease, resync_now),
                                    on_stopped_leading=lambda: _stopped_leading(lease))
    # A lagging cache is safe (tests/unit/test_stale_cache.py): fresh reads only catch what a watch lost (a
    # deletion during a reconnect), so every tenth resync reads fresh; at 1,000 running trials a fresh read on every
    # resync was a third of the operator's requests. A little under ten resyncs, so the tenth one is fresh.
    cache = ObjectCache(fresh_seconds=9.9 * resync_seconds) if cached_reads else None
    kube = Kube(api, write_guard=leadership.check, cache=cache)
    metrics = serve_metrics(metrics_port) if metrics_port is not None else None
    if metrics is not None:
        metrics.leader.set_function(lambda: 1.0 if leadership.is_held() else 0.0)
    if readiness_endpoint is not None:
        serve_readiness(readiness_endpoint, kube.ping)
    reconciler = Reconciler(kube, collector, metrics=metrics)
    queue: WorkQueue[tuple[str, str]] = WorkQueue(lambda key: reconciler.reconcile(*key), n_workers=workers,
                                                  on_failure=metrics.reconcile_failed if metrics else None)
    filters = {"experiments": ChangeFilter(experiment_fingerprint), "jobs": ChangeFilter(job_fingerprint),
               "pods": ChangeFilter(pod_fingerprint)}
    memo = kopf.Memo(kube=kube, queue=queue, filters=filters, metrics=metrics, resync_seconds=resync_seconds,
                     namespaces=[] if all_namespaces else list(namespaces), leadership=leadership,
                     resync_now=resync_now, cache=cache)
    kopf.run(standalone=True, clusterwide=all_namespaces, namespaces=[] if all_namespaces else namespaces,
             liveness_endpoint=liveness_endpoint, memo=memo)


def _started_leading(lease: LeaseSettings, resync_now: threading.Event) -> None:
    logging.getLogger("dial.leadership").info("%s is the leader: reconciling", lease.identity)
    resync_now.set()  # events were dropped while standing by


def _stopped_leading(lease: LeaseSettings) -> None:
    # No write goes out any more (Leadership.lose ran first). Exiting leaves nothing half-done in memory: the
    # Deployment restarts this replica as a standby, and the new leader rebuilds everything from the resources.
    logging.getLogger("dial.leadership").error("%s lost the leader Lease: exiting", lease.identity)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(LOST_LEADERSHIP_EXIT_CODE)
