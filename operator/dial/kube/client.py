"""The few Kubernetes API calls Dial makes, on plain JSON dicts (no model classes); with a `dial.kube.cache`
attached, what the API server returns to writes and GETs is also stored there."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from dial.api.base import API_GROUP, API_VERSION, EXPERIMENT_LABEL
from dial.kube.cache import Kind, ObjectCache
from dial.kube.workqueue import RetryLater

MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "dial-operator"
REQUEST_TIMEOUT = (5, 30)  # connect, read seconds: a stuck call must not hang a reconcile forever


def load_api_client() -> k8s.ApiClient:
    """In-cluster credentials when running in a pod with a token, else $KUBECONFIG / ~/.kube/config."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


class StaleRead(RetryLater):
    """A write made from a copy older than what the API server holds (409 Conflict on its resourceVersion)."""


class KubeClient(Protocol):
    """The calls the reconciler makes; `Kube` makes them on the API server, tests on an in-memory fake."""

    cache: ObjectCache | None

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_experiment_status(self, namespace: str, name: str, status: dict[str, Any], *,
                                resource_version: str | None = None) -> str | None: ...
    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]: ...
    def get_trial(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...
    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    def list_jobs(self, namespace: str, experiment: str) -> list[dict[str, Any]]: ...
    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...
    def delete_job(self, namespace: str, name: str) -> bool: ...
    def list_pods(self, namespace: str, experiment: str) -> list[dict[str, Any]]: ...
    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_claim(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...
    def service_account_exists(self, namespace: str, name: str) -> bool: ...
    def pod_log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str: ...
    def post_event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None: ...


class Kube:
    def __init__(self, api: k8s.ApiClient, *, write_guard: Callable[[], None] | None = None,
                 cache: ObjectCache | None = None):
        self.api = api
        # What the API server returns to this client's writes and GETs goes into the cache, so the next read
        # from it includes them before their watch events arrive.
        self.cache = cache
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        # Raises when this replica may not write (`Leadership.check`): called right before each write is sent,
        # so a leader that lost its Lease while paused cannot send one more.
        self.write_guard = write_guard

    def request(self, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json") -> dict[str, Any]:
        """One API call; raises ApiException (with .status) on any non-2xx answer."""
        if method != "GET" and self.write_guard is not None:
            self.write_guard()
        method, url, headers, payload, _ = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, payload, _request_timeout=REQUEST_TIMEOUT)
        response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data) if response.data else {}

    def ping(self) -> None:
        """Raises unless the API server answers (GET /version: allowed to every authenticated client)."""
        self.request("GET", "/version")

    # -- Dial resources
    @staticmethod
    def _custom(namespace: str | None, plural: str, name: str = "", sub: str = "") -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{API_GROUP}/{API_VERSION}{where}/{plural}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._seen("experiments", self._get_or_none(self._custom(namespace, "experiments", name)))

    def list_experiments(self, namespace: str | None) -> list[dict[str, Any]]:
        return self.request("GET", self._custom(namespace, "experiments"))["items"]

    def patch_experiment_status(self, namespace: str, name: str, status: dict[str, Any], *,
                                resource_version: str | None = None) -> str | None:
        """A merge patch of these status fields; with `resource_version`, only onto that version of the
        Experiment (else StaleRead): a status computed from an older copy must not overwrite a newer one.
        Returns the new resourceVersion."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            answer = self.request("PATCH", self._custom(namespace, "experiments", name, "status"), body=body,
                                  content_type=MERGE_PATCH)
        except ApiException as exc:
            if exc.status == 409:
                raise StaleRead(f"experiment {namespace}/{name} changed since version {resource_version}") from exc
            raise
        self._seen("experiments", answer)
        return answer.get("metadata", {}).get("resourceVersion")

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return self.request("GET", self._custom(namespace, "trials"),
                            query={"labelSelector": f"{EXPERIMENT_LABEL}={experiment}"})["items"]

    def get_trial(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._seen("trials", self._get_or_none(self._custom(namespace, "trials", name)))

    def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created Trial, or None when one of that name exists already."""
        return self._seen("trials", self._create_or_none(self._custom(namespace, "trials"), body))

    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A JSON merge patch of just these status fields (others, owned by someone else, are kept)."""
        self._seen("trials", self.request("PATCH", self._custom(namespace, "trials", name, "status"),
                                          body={"status": status}, content_type=MERGE_PATCH))

    # -- Jobs and pods
    def list_jobs(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs",
                            query={"labelSelector": f"{EXPERIMENT_LABEL}={experiment}"})["items"]

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        # Strict: a field the API server does not know is an error (400), not silently dropped.
        created = self._seen("jobs", self._create_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs", body,
                                                          query={"fieldValidation": "Strict"}))
        if created is None and self.cache is not None:
            # It exists and the cache had not seen it: read it once, or every cached reconcile would try again.
            self._seen("jobs", self._get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{body['metadata']['name']}"))
        return created

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete with background propagation (the garbage collector removes its pods); False if gone."""
        try:
            self.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                         body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        if self.cache is not None:
            self.cache.forget("jobs", namespace, name)
        return True

    def list_pods(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                            query={"labelSelector": f"{EXPERIMENT_LABEL}={experiment}"})["items"]

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    # -- PersistentVolumeClaims (pbt's checkpoints, `dial.kube.claims`)
    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")

    def create_claim(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created claim, or None when one of that name exists already."""
        return self._create_or_none(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", body,
                                    query={"fieldValidation": "Strict"})

    def service_account_exists(self, namespace: str, name: str) -> bool:
        return self._get_or_none(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}") is not None

    def pod_log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str:
        """The last lines a container printed; empty when they cannot be read (best effort)."""
        try:
            method, url, headers, _, _ = self.api.param_serialize(
                "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                query_params=[("container", container), ("tailLines", lines)], auth_settings=["BearerToken"])
            response = self.api.call_api(method, url, headers, _request_timeout=REQUEST_TIMEOUT)
            response.read()
            return response.data.decode("utf-8", "replace") if 200 <= response.status < 300 else ""
        except Exception:  # noqa: BLE001 - the tail only decorates a message
            return ""

    # -- Events
    def post_event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        """A core/v1 Event on `obj`, as `kubectl describe` shows them; losing one is not worth a retry."""
        metadata = obj["metadata"]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": metadata["name"],
                               "namespace": metadata["namespace"], "uid": metadata["uid"]},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT}, "reportingComponent": f"{API_GROUP}/operator",
            "reportingInstance": self.instance, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{metadata['namespace']}/events", body=event)
        except ApiException:
            pass

    # -- helpers
    def _seen(self, kind: Kind, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        if obj is not None and self.cache is not None and obj.get("metadata"):
            self.cache.observe(kind, obj)
        return obj

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create_or_none(self, path: str, body: dict[str, Any], query: dict[str, Any] | None = None) -> dict[str, Any] | None:
        try:
            return self.request("POST", path, body=body, query=query)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
