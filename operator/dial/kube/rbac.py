"""RBAC for Dial's two identities: the collector sidecar (one namespace) and the operator (cluster)."""

from __future__ import annotations

from typing import Any

import yaml

from dial.api.base import API_GROUP

COLLECTOR_NAME = "dial-collector"
OPERATOR_NAME = "dial-operator"


def collector_rbac(namespace: str, name: str = COLLECTOR_NAME) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for trial pods: the collector may only read and patch
    Trial statuses in its own namespace (nothing else, not even Trial specs)."""
    meta = {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "dial"}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [API_GROUP], "resources": ["trials/status"], "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def operator_cluster_role(name: str = OPERATOR_NAME) -> dict[str, Any]:
    """What `dial operator` calls: its own resources, Jobs, pods (read, logs), events, pbt's checkpoint claims,
    and what kopf needs to discover and watch resources."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "dial"}},
        "rules": [
            {"apiGroups": [API_GROUP], "resources": ["experiments", "trials"],
             "verbs": ["get", "list", "watch", "create", "patch"]},
            {"apiGroups": [API_GROUP], "resources": ["experiments/status", "trials/status"], "verbs": ["get", "patch"]},
            # blockOwnerDeletion on dependents needs update on the owners' finalizers
            {"apiGroups": [API_GROUP], "resources": ["experiments/finalizers", "trials/finalizers"], "verbs": ["update"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "create"]},  # pbt's checkpoints
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},  # trialTemplate.configMap
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
             "verbs": ["get", "list", "watch"]},
        ],
    }


def render(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)
