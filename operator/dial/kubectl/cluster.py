"""Read and nudge Dial objects on a cluster with the kubernetes client, as API models (for the plugin and `dial report`)."""

from __future__ import annotations

from typing import Any, Iterator

from pydantic import ValidationError

from dial.api.base import API_GROUP, API_VERSION
from dial.api.experiment import Experiment
from dial.api.trial import Trial
from dial.engine import reasons

EXPERIMENT_LABEL = f"{API_GROUP}/experiment"
TRIAL_LABEL = f"{API_GROUP}/trial"
STOPPED_ANNOTATION = f"{API_GROUP}/stopped-by"
EXPERIMENTS, TRIALS = "experiments", "trials"


class ClusterError(Exception):
    """A cluster read or write that failed, with what was asked and why, for a one-line message."""


class DialCluster:
    """Experiments and Trials of one namespace (or all, for listing) through the Kubernetes API."""

    def __init__(self, *, namespace: str | None = None, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context is not None:
                active = next((c for c in contexts if c["name"] == context), active)
            default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
        except config.ConfigException as kube_error:
            try:  # running in a pod: the service account's credentials and namespace
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                raise ClusterError(f"no usable kubeconfig ({kubeconfig or '$KUBECONFIG or ~/.kube/config'}: {kube_error}) "
                                   "and not running in a pod") from kube_error
            default_namespace = _pod_namespace()
        self.namespace = namespace or default_namespace
        self.api = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    # ---------------------------------------------------------------- reading
    def experiment(self, name: str) -> Experiment:
        obj = self._call(f"get experiment {name!r} in namespace {self.namespace!r}",
                         self.custom.get_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace,
                         EXPERIMENTS, name)
        return _parse(Experiment, obj)

    def experiments(self, *, all_namespaces: bool = False) -> list[Experiment]:
        if all_namespaces:
            listed = self._call("list experiments in all namespaces", self.custom.list_cluster_custom_object,
                                API_GROUP, API_VERSION, EXPERIMENTS)
        else:
            listed = self._call(f"list experiments in namespace {self.namespace!r}",
                                self.custom.list_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace,
                                EXPERIMENTS)
        return sorted((_parse(Experiment, o) for o in listed.get("items", [])),
                      key=lambda e: (e.metadata.namespace or "", e.name))

    def trials(self, experiment: str) -> list[Trial]:
        listed = self._call(f"list trials of experiment {experiment!r} in namespace {self.namespace!r}",
                            self.custom.list_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace,
                            TRIALS, label_selector=f"{EXPERIMENT_LABEL}={experiment}")
        return sorted((_parse(Trial, o) for o in listed.get("items", [])), key=lambda t: t.spec.index)

    def trial(self, name: str) -> Trial:
        obj = self._call(f"get trial {name!r} in namespace {self.namespace!r}",
                         self.custom.get_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace, TRIALS, name)
        return _parse(Trial, obj)

    # ---------------------------------------------------------------- changing
    def patch_experiment(self, name: str, patch: dict[str, Any]) -> Experiment:
        obj = self._call(f"patch experiment {name!r} in namespace {self.namespace!r}",
                         self.custom.patch_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace,
                         EXPERIMENTS, name, patch)
        return _parse(Experiment, obj)

    # ---------------------------------------------------------------- logs
    def trial_pods(self, trial: str) -> list[Any]:
        """The trial's pods, newest first: by the `dial.dev/trial` label, else the Job's `job-name` label."""
        for selector in (f"{TRIAL_LABEL}={trial}", f"job-name={trial}"):
            pods = self._call(f"list pods of trial {trial!r}", self.core.list_namespaced_pod, self.namespace,
                              label_selector=selector).items
            if pods:
                return sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True)
        return []

    def logs(self, pod: str, container: str, *, follow: bool = False, tail_lines: int | None = None) -> Iterator[str]:
        """The container's log through the API server (which asks the node's kubelet), chunk by chunk."""
        what = f"read logs of pod {pod!r} container {container!r}"
        kwargs: dict[str, Any] = {"container": container, "follow": follow}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        response = self._call(what, self.core.read_namespaced_pod_log, pod, self.namespace,
                              _preload_content=False, **kwargs)
        try:
            for chunk in response.stream(amt=4096, decode_content=True):
                yield chunk.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            raise ClusterError(f"cannot {what}: {_api_reason(exc)}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterError(f"cannot {what}: the API server is unreachable ({exc})") from exc


def budget_used(trials: list[Trial]) -> int:
    """Trials that count against maxTrialCount, as the engine's plan counts them."""
    return sum(1 for t in trials if t.status.reason not in reasons.NOT_COUNTED or not t.phase.is_terminal)


def _parse(model: type[Experiment] | type[Trial], obj: dict[str, Any]) -> Any:
    name = obj.get("metadata", {}).get("name", "?")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ClusterError(f"{model.__name__} {name!r} does not match the Dial API: {where}: {first['msg']}") from exc


def _api_reason(exc: Any) -> str:
    import json

    if exc.status == 404:
        return "not found (is the name right, and are the Dial CRDs installed?)"
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"


def _pod_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip()
    except OSError:
        return "default"
