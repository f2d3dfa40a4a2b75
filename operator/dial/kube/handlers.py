"""kopf handlers: any change to an Experiment, or to a Trial, Job or pod of one, reconciles that Experiment.

The handlers only say which experiment to look at; `Reconciler` reads everything fresh, so a
missed, repeated or reordered event changes nothing but timing. A periodic resync (started
here, not a kopf timer: timers put finalizers on the Experiments) is the safety net for events
lost while the operator was down or a watch was reconnecting.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from dial.api.base import API_GROUP, API_VERSION
from dial.kube.jobs import EXPERIMENT_LABEL

log = logging.getLogger("dial.operator")
OWNED = {EXPERIMENT_LABEL: kopf.PRESENT}
EXECUTOR_THREADS = 32


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # Dial posts its own events, about decisions, on the Experiment
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Handlers block their thread for a whole reconcile (API calls, mostly waiting): with kopf's default
    # pool (CPUs + 4 threads) a burst of events for many experiments queues behind a few slow reconciles.
    settings.execution.max_workers = EXECUTOR_THREADS
    stop = threading.Event()
    memo.resync_stop = stop
    thread = threading.Thread(target=_resync_loop, args=(memo, stop), name="dial-resync", daemon=True)
    thread.start()


@kopf.on.cleanup()
def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.resync_stop.set()
    memo.runner.close()


@kopf.on.event(API_GROUP, API_VERSION, "experiments")
def experiment_changed(type: str | None, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED":
        memo.runner.request((namespace, name))


@kopf.on.event(API_GROUP, API_VERSION, "trials", labels=OWNED)
@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
@kopf.on.event("v1", "pods", labels=OWNED)
def dependent_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    memo.runner.request((namespace, labels[EXPERIMENT_LABEL]))


def _resync_loop(memo: kopf.Memo, stop: threading.Event) -> None:
    while not stop.wait(memo.resync_seconds):
        for namespace in memo.namespaces or [None]:
            try:
                experiments = memo.kube.list_experiments(namespace)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("resync: cannot list experiments in %s: %s", namespace or "all namespaces", exc)
                continue
            for experiment in experiments:
                metadata = experiment["metadata"]
                memo.runner.request((metadata["namespace"], metadata["name"]))
