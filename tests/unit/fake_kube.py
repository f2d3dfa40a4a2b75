"""An in-memory Kubernetes API for the reconciler's unit tests: the calls of `dial.kube.client.KubeClient`, on dicts.

With an `ObjectCache` attached it feeds the cache as `dial.kube.Kube` does (the answers to writes and GETs;
a create that finds its Job reads it), and keeps every change as a watch event that reaches the cache only
when a test delivers it, so a test can make the cache lag on purpose: events held back, or
`answers_reach_cache = False` for a cache that lags behind the operator's own writes.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.rest import ApiException

from dial.kube.cache import Kind, ObjectCache
from dial.kube.client import StaleRead
from dial.kube.jobs import EXPERIMENT_LABEL, TRIAL_LABEL

Key = tuple[str, str]  # (namespace, name)


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386: nested dicts merge, null removes the key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """Stores Experiments, Trials, Jobs and pods as the API server would, and records every write in order."""

    def __init__(self, *, created_at: str = "2026-01-01T00:00:00Z", cache: ObjectCache | None = None) -> None:
        self.cache = cache
        self.experiments: dict[Key, dict[str, Any]] = {}
        self.trials: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, Any]] = {}
        self.service_accounts: set[Key] = set()
        self.claims: dict[Key, dict[str, Any]] = {}  # PersistentVolumeClaims
        self.events: list[tuple[str, str, bool]] = []  # (reason, message, warning)
        self.writes: list[tuple[str, str, Any]] = []  # (verb, name, body)
        self.refuse_jobs: ApiException | None = None  # raised by every create_job while set
        self.hidden_trials: set[str] = set()  # stored, but missing from LISTs (a lagging read)
        self.created_at = created_at
        # Every API request the operator makes, reads and event posts included: (verb, resource).
        self.requests: list[tuple[str, str]] = []
        self.watch: list[tuple[Kind, dict[str, Any], bool]] = []  # (kind, object, deleted), not yet delivered
        self.answers_reach_cache = True
        self._uid = 0
        self._version = 0

    # -- what tests set up (and what the collector, the Job controller and users do)
    def add_experiment(self, manifest: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        raw = copy.deepcopy(manifest)
        raw["metadata"] = {**raw["metadata"], "namespace": namespace, "uid": self._next_uid()}
        self.experiments[(namespace, raw["metadata"]["name"])] = raw
        self._changed("experiments", raw)
        return raw

    def add_pod(self, trial: str, *, namespace: str = "default", experiment: str = "exp",
                containers: dict[str, dict[str, Any]] | None = None) -> None:
        """A pod of `trial`'s Job, with container states by name (e.g. {"training": {"terminated": {...}}})."""
        statuses = [{"name": name, "state": state} for name, state in (containers or {}).items()]
        pod = {"metadata": {"name": f"{trial}-pod", "namespace": namespace, "creationTimestamp": self.created_at,
                            "labels": {EXPERIMENT_LABEL: experiment, TRIAL_LABEL: trial}},
               "status": {"containerStatuses": statuses}}
        self.pods[(namespace, f"{trial}-pod")] = pod
        self._changed("pods", pod)

    def remove_pod(self, trial: str, namespace: str = "default") -> None:
        self._changed("pods", self.pods.pop((namespace, f"{trial}-pod")), deleted=True)

    def finish_job(self, name: str, condition: str = "Complete", namespace: str = "default") -> None:
        job = self.jobs[(namespace, name)]
        job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
        self._changed("jobs", job)

    def edit_experiment(self, namespace: str = "default", name: str = "exp", **spec: Any) -> None:
        """A user's `kubectl edit`: new spec fields, a new resourceVersion."""
        raw = self.experiments[(namespace, name)]
        raw["spec"].update(spec)
        self._changed("experiments", raw)

    def collector_patch(self, name: str, status: dict[str, Any], namespace: str = "default") -> None:
        """The metrics collector's write: not one of the operator's requests."""
        trial = self.trials[(namespace, name)]
        merge_patch(trial.setdefault("status", {}), status)
        self._changed("trials", trial)

    def deliver(self, *kinds: Kind, trial: str | None = None) -> None:
        """The watches catch up: held-back events of these kinds (all when none named), of one trial's objects
        when `trial` is given, reach the cache in order."""
        assert self.cache is not None
        kept = []
        for event in self.watch:
            labels = event[1]["metadata"].get("labels") or {}
            of_trial = trial is None or trial in (event[1]["metadata"]["name"], labels.get(TRIAL_LABEL))
            if (not kinds or event[0] in kinds) and of_trial:
                self.cache.observe(event[0], event[1], deleted=event[2])
            else:
                kept.append(event)
        self.watch = kept

    # -- KubeClient
    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", "experiments"))
        return self._read("experiments", self.experiments.get((namespace, name)))

    def patch_experiment_status(self, namespace: str, name: str, status: dict[str, Any], *,
                                resource_version: str | None = None) -> str | None:
        self.requests.append(("patch", "experiments/status"))
        raw = self.experiments[(namespace, name)]
        if resource_version is not None and resource_version != raw["metadata"].get("resourceVersion"):
            raise StaleRead(f"experiment {namespace}/{name} changed since version {resource_version}")  # 409
        self.writes.append(("patch-experiment-status", name, copy.deepcopy(status)))
        merge_patch(raw.setdefault("status", {}), status)
        return self._answer("experiments", self._changed("experiments", raw))["metadata"]["resourceVersion"]

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        self.requests.append(("list", "trials"))
        return [copy.deepcopy(t) for (ns, name), t in self.trials.items()
                if ns == namespace and _label(t, EXPERIMENT_LABEL) == experiment and name not in self.hidden_trials]

    def get_trial(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", "trials"))
        return self._read("trials", self.trials.get((namespace, name)))

    def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.requests.append(("create", "trials"))
        name = body["metadata"]["name"]
        self.writes.append(("create-trial", name, copy.deepcopy(body)))
        if (namespace, name) in self.trials:
            return None  # 409 Conflict
        stored = self._stored(namespace, body)
        self.trials[(namespace, name)] = stored
        return self._answer("trials", self._changed("trials", stored))

    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.requests.append(("patch", "trials/status"))
        self.writes.append(("patch-trial-status", name, copy.deepcopy(status)))
        trial = self.trials[(namespace, name)]
        merge_patch(trial.setdefault("status", {}), status)
        self._answer("trials", self._changed("trials", trial))

    def list_jobs(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        self.requests.append(("list", "jobs"))
        return [copy.deepcopy(j) for (ns, _), j in self.jobs.items()
                if ns == namespace and _label(j, EXPERIMENT_LABEL) == experiment]

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.requests.append(("create", "jobs"))
        name = body["metadata"]["name"]
        self.writes.append(("create-job", name, copy.deepcopy(body)))
        if self.refuse_jobs is not None:
            raise self.refuse_jobs
        if (namespace, name) in self.jobs:
            if self.cache is not None:  # as Kube does: read it once, or every cached reconcile would try again
                self.requests.append(("get", "jobs"))
                self._read("jobs", self.jobs[(namespace, name)])
            return None
        stored = self._stored(namespace, body)
        self.jobs[(namespace, name)] = stored
        return self._answer("jobs", self._changed("jobs", stored))

    def delete_job(self, namespace: str, name: str) -> bool:
        self.requests.append(("delete", "jobs"))
        self.writes.append(("delete-job", name, None))
        gone = self.jobs.pop((namespace, name), None)
        if gone is None:
            return False
        self._changed("jobs", gone, deleted=True)
        if self.cache is not None and self.answers_reach_cache:
            self.cache.forget("jobs", namespace, name)
        return True

    def list_pods(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        self.requests.append(("list", "pods"))
        return [copy.deepcopy(p) for (ns, _), p in self.pods.items()
                if ns == namespace and _label(p, EXPERIMENT_LABEL) == experiment]

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", "configmaps"))
        return None

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.claims.get((namespace, name)))

    def create_claim(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        self.writes.append(("create-claim", name, copy.deepcopy(body)))
        if (namespace, name) in self.claims:
            return None  # 409 Conflict
        self.claims[(namespace, name)] = self._stored(namespace, body)
        return copy.deepcopy(self.claims[(namespace, name)])

    def service_account_exists(self, namespace: str, name: str) -> bool:
        self.requests.append(("get", "serviceaccounts"))
        return (namespace, name) in self.service_accounts

    def pod_log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str:
        self.requests.append(("get", "pods/log"))
        return ""

    def post_event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        self.requests.append(("create", "events"))
        self.events.append((reason, message, warning))

    # -- helpers
    def _changed(self, kind: Kind, obj: dict[str, Any], *, deleted: bool = False) -> dict[str, Any]:
        """A new resourceVersion (etcd's: one counter for everything) and the watch event that carries it."""
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        self.watch.append((kind, copy.deepcopy(obj), deleted))
        return obj

    def _answer(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        """What the API server returns to a write; `Kube` puts it in the cache too."""
        if self.cache is not None and self.answers_reach_cache:
            self.cache.observe(kind, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _read(self, kind: Kind, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """A GET's answer, which `Kube` puts in the cache: reads are not where a cache lags."""
        if obj is None:
            return None
        if self.cache is not None:
            self.cache.observe(kind, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _stored(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(body)
        stored["metadata"] = {**stored["metadata"], "namespace": namespace, "uid": self._next_uid(),
                              "creationTimestamp": self.created_at}
        return stored

    def _next_uid(self) -> str:
        self._uid += 1
        return f"uid-{self._uid}"


def _label(obj: dict[str, Any], key: str) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(key)
