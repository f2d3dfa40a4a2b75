"""kopf handlers: any relevant change to an Experiment, or to a Trial, Job or pod of one, queues a reconcile of that Experiment.

The handlers only say which experiment to look at, and return at once: the reconciles run on the
operator's own work queue (`dial.kube.workqueue`), where a burst of events for one experiment
coalesces into one reconcile. Events that change nothing the reconciler reads are dropped first
(`dial.kube.relevance`); every event's object goes into the reconciler's cache first
(`dial.kube.cache`). The reconciler rereads an experiment fresh often enough that a missed, repeated
or reordered event changes nothing but timing. A periodic resync (started here, not a kopf timer: timers put
finalizers on the Experiments) is the safety net for events lost while the operator was down or a
watch was reconnecting. With leader election, a standby watches too but queues nothing; the moment
it takes the Lease, it resyncs every experiment, since it dropped their events while waiting.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import kopf

from dial.api.base import API_GROUP, API_VERSION
from dial.kube.cache import Kind
from dial import search
from dial.kube.jobs import EXPERIMENT_LABEL

log = logging.getLogger("dial.operator")
OWNED = {EXPERIMENT_LABEL: kopf.PRESENT}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # Dial posts its own events, about decisions, on the Experiment
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo.queue.start()
    stop = threading.Event()
    memo.resync_stop = stop
    thread = threading.Thread(target=_resync_loop, args=(memo, stop), name="dial-resync", daemon=True)
    thread.start()
    # The first proposal of the process would otherwise wait for scipy's imports (about 1.6 s).
    threading.Thread(target=search.preload, name="dial-preload", daemon=True).start()


@kopf.on.cleanup()
def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.resync_stop.set()
    memo.resync_now.set()
    memo.queue.close()


# async: enqueuing never blocks, so the handlers run on kopf's event loop instead of its thread pool.
@kopf.on.event(API_GROUP, API_VERSION, "experiments")
async def experiment_changed(type: str | None, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo,
                             **_: Any) -> None:
    _observe(memo, "experiments", type, body)
    # DELETED too: the reconcile finds it gone and drops its Prometheus series.
    _queue_if(memo, "experiments", memo.filters["experiments"].changed(type, body), (namespace, name))


@kopf.on.event(API_GROUP, API_VERSION, "trials", labels=OWNED)
async def trial_changed(type: str | None, body: kopf.Body, namespace: str, labels: dict[str, str],
                        memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "trials", type, body)
    # Every Trial event counts: observations of running trials feed stop rules and strategies.
    _queue_if(memo, "trials", True, (namespace, labels[EXPERIMENT_LABEL]))


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
async def job_changed(type: str | None, body: kopf.Body, namespace: str, labels: dict[str, str],
                      memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "jobs", type, body)
    _queue_if(memo, "jobs", memo.filters["jobs"].changed(type, body), (namespace, labels[EXPERIMENT_LABEL]))


@kopf.on.event("v1", "pods", labels=OWNED)
async def pod_changed(type: str | None, body: kopf.Body, namespace: str, labels: dict[str, str],
                      memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "pods", type, body)
    _queue_if(memo, "pods", memo.filters["pods"].changed(type, body), (namespace, labels[EXPERIMENT_LABEL]))


def _observe(memo: kopf.Memo, kind: Kind, type: str | None, body: kopf.Body) -> None:
    """Into the cache before the reconcile is queued, so that reconcile sees at least this event.
    Standbys too: they take over with a warm cache."""
    if memo.cache is not None:
        memo.cache.observe(kind, copy.deepcopy(dict(body)), deleted=type == "DELETED")


def _queue_if(memo: kopf.Memo, kind: str, relevant: bool, key: tuple[str, str]) -> None:
    if not memo.leadership.is_held():
        relevant = False  # a standby: the leader reconciles; this replica resyncs everything when it takes over
    if memo.metrics is not None:
        memo.metrics.watch_events.labels(kind, "queued" if relevant else "dropped").inc()
    if relevant:
        memo.queue.add(key)


def _resync_loop(memo: kopf.Memo, stop: threading.Event) -> None:
    """Every `resync_seconds`, and at once when `memo.resync_now` is set (this replica became the leader)."""
    while True:
        memo.resync_now.wait(memo.resync_seconds)
        memo.resync_now.clear()
        if stop.is_set():
            return
        if not memo.leadership.is_held():
            continue
        for namespace in memo.namespaces or [None]:
            try:
                experiments = memo.kube.list_experiments(namespace)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("resync: cannot list experiments in %s: %s", namespace or "all namespaces", exc)
                continue
            for experiment in experiments:
                metadata = experiment["metadata"]
                memo.queue.add((metadata["namespace"], metadata["name"]))
