"""An in-memory Kubernetes API for the reconciler's unit tests: the calls of `dial.kube.client.KubeClient`, on dicts."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.rest import ApiException

from dial.kube.cache import ObjectCache
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

    cache: ObjectCache | None = None

    def __init__(self, *, created_at: str = "2026-01-01T00:00:00Z") -> None:
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
        self._uid = 0

    # -- what tests set up
    def add_experiment(self, manifest: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        raw = copy.deepcopy(manifest)
        raw["metadata"] = {**raw["metadata"], "namespace": namespace, "uid": self._next_uid()}
        self.experiments[(namespace, raw["metadata"]["name"])] = raw
        return raw

    def add_pod(self, trial: str, *, namespace: str = "default", experiment: str = "exp",
                containers: dict[str, dict[str, Any]] | None = None) -> None:
        """A pod of `trial`'s Job, with container states by name (e.g. {"training": {"terminated": {...}}})."""
        statuses = [{"name": name, "state": state} for name, state in (containers or {}).items()]
        self.pods[(namespace, f"{trial}-pod")] = {
            "metadata": {"name": f"{trial}-pod", "namespace": namespace, "creationTimestamp": self.created_at,
                         "labels": {EXPERIMENT_LABEL: experiment, TRIAL_LABEL: trial}},
            "status": {"containerStatuses": statuses}}

    def finish_job(self, name: str, condition: str = "Complete", namespace: str = "default") -> None:
        self.jobs[(namespace, name)]["status"] = {"conditions": [{"type": condition, "status": "True"}]}

    # -- KubeClient
    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.experiments.get((namespace, name)))

    def patch_experiment_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes.append(("patch-experiment-status", name, copy.deepcopy(status)))
        merge_patch(self.experiments[(namespace, name)].setdefault("status", {}), status)

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(t) for (ns, name), t in self.trials.items()
                if ns == namespace and _label(t, EXPERIMENT_LABEL) == experiment and name not in self.hidden_trials]

    def get_trial(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.trials.get((namespace, name)))

    def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        self.writes.append(("create-trial", name, copy.deepcopy(body)))
        if (namespace, name) in self.trials:
            return None  # 409 Conflict
        stored = self._stored(namespace, body)
        self.trials[(namespace, name)] = stored
        return copy.deepcopy(stored)

    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes.append(("patch-trial-status", name, copy.deepcopy(status)))
        merge_patch(self.trials[(namespace, name)].setdefault("status", {}), status)

    def list_jobs(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(j) for (ns, _), j in self.jobs.items()
                if ns == namespace and _label(j, EXPERIMENT_LABEL) == experiment]

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        self.writes.append(("create-job", name, copy.deepcopy(body)))
        if self.refuse_jobs is not None:
            raise self.refuse_jobs
        if (namespace, name) in self.jobs:
            return None
        stored = self._stored(namespace, body)
        self.jobs[(namespace, name)] = stored
        return copy.deepcopy(stored)

    def delete_job(self, namespace: str, name: str) -> bool:
        self.writes.append(("delete-job", name, None))
        return self.jobs.pop((namespace, name), None) is not None

    def list_pods(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for (ns, _), p in self.pods.items()
                if ns == namespace and _label(p, EXPERIMENT_LABEL) == experiment]

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
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
        return (namespace, name) in self.service_accounts

    def pod_log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str:
        return ""

    def post_event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message, warning))

    # -- helpers
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
