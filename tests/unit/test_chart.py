"""The Helm chart (charts/dial): lint, CRDs in step with crds/, and what `helm template` renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from helm_chart import CHART, ROOT, render  # noqa: E402


def render_error(helm: str, *sets: str) -> str:
    args = [arg for s in sets for arg in ("--set", s)]
    r = subprocess.run([helm, "template", "t", str(CHART), *args], capture_output=True, text=True)
    assert r.returncode != 0, f"helm template accepted {sets}"
    return r.stderr


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def flag(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def test_chart_crds_are_identical_to_the_generated_ones():
    ours = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    assert ours == generated, "charts/dial/crds differs from crds/: run `dial crds`"


def test_helm_lint_is_clean(helm):
    r = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout


def test_operator_deployment_runs_two_dial_operators_hardened_with_liveness_and_readiness_probes(helm):
    docs = render(helm)
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(docs)
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert container["command"] == ["dial"] and container["args"][0] == "operator"
    assert "--all-namespaces" in container["args"]
    assert "--leader-election" in container["args"] and flag(container["args"], "leader-election-id") == "t-dial-operator"
    assert (flag(container["args"], "lease-duration"), flag(container["args"], "renew-deadline"),
            flag(container["args"], "retry-period")) == ("15", "10", "2")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"
    assert flag(container["args"], "liveness") == "http://0.0.0.0:8080/healthz"
    assert flag(container["args"], "readiness") == "http://0.0.0.0:8081/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "ready": 8081, "metrics": 9090}
    assert flag(container["args"], "metrics-port") == "9090"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount", "t-dial-operator")["metadata"]["name"]


def test_one_replica_without_leader_election_is_the_old_single_operator(helm):
    docs = render(helm, "operator.replicas=1", "operator.leaderElection.enabled=false")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "--leader-election" not in operator_container(docs)["args"]
    assert not [d for d in docs if d["metadata"]["name"].endswith("leader-election")]


def test_leader_election_may_create_leases_and_renew_only_its_own(helm):
    docs = render(helm)
    role = one(docs, "Role", "t-dial-operator-leader-election")
    assert role["metadata"]["namespace"] == "dial"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["t-dial-operator"],
         "verbs": ["get", "update"]}]
    binding = one(docs, "RoleBinding", "t-dial-operator-leader-election")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "t-dial-operator", "namespace": "dial"}]


def test_metrics_service_selects_the_operator_pod_on_its_metrics_port(helm):
    docs = render(helm)
    service = one(docs, "Service")
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    monitor = one(render(helm, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps"),
                  "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    disabled = render(helm, "metrics.enabled=false")
    assert not [d for d in disabled if d["kind"] == "Service"]
    assert flag(operator_container(disabled)["args"], "metrics-port") is None


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# What `dial operator` calls (operator/dial/kube/client.py, handlers.py, and kopf's watches).
OPERATOR_NAMESPACED = {
    ("dial.dev", "experiments"): {"get", "list", "watch"},
    ("dial.dev", "trials"): {"get", "list", "watch", "create"},
    ("dial.dev", "experiments/status"): {"patch"},
    ("dial.dev", "trials/status"): {"patch"},
    ("dial.dev", "experiments/finalizers"): {"update"},
    ("dial.dev", "trials/finalizers"): {"update"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "serviceaccounts"): {"get"},
    ("", "persistentvolumeclaims"): {"get", "create"},
    ("", "events"): {"create"},
    ("", "configmaps"): {"get"},
}
KOPF_DISCOVERY = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
                  ("", "namespaces"): {"list", "watch"}}


def test_operator_rbac_is_exactly_what_it_calls_cluster_wide_by_default(helm):
    docs = render(helm)
    assert rules_of(one(docs, "ClusterRole", "t-dial-operator")) == OPERATOR_NAMESPACED
    assert rules_of(one(docs, "ClusterRole", "t-dial-operator-discovery")) == KOPF_DISCOVERY
    for binding in [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]:
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]
    binding = one(docs, "ClusterRoleBinding", "t-dial-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "t-dial-operator", "namespace": "dial"}]


def test_no_rule_anywhere_uses_a_wildcard_or_escalating_verb(helm):
    for docs in (render(helm), render(helm, "watchNamespaces={a,b}")):
        for role in [d for d in docs if d["kind"] in ("Role", "ClusterRole")]:
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], role["metadata"]["name"]
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_watching_namespaces_binds_roles_there_and_nothing_namespaced_cluster_wide(helm):
    docs = render(helm, "watchNamespaces={team-a,team-b}")
    args = operator_container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
    for ns in ("team-a", "team-b"):
        assert rules_of(roles[(ns, "t-dial-operator")]) == OPERATOR_NAMESPACED
        assert rules_of(roles[(ns, "dial-collector")]) == {("dial.dev", "trials/status"): {"patch"}}
        one([d for d in docs if d["metadata"].get("namespace") == ns], "ServiceAccount", "dial-collector")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == ["t-dial-operator-discovery"]


def test_collector_gets_its_own_account_that_may_only_patch_trial_status(helm):
    docs = render(helm, "collector.namespaces={ml,dial}")
    args = operator_container(docs)["args"]
    assert flag(args, "collector-service-account") == "dial-collector"
    assert flag(args, "collector-image") == "ghcr.io/dial-dev/dial-worker:0.1.0"
    for ns in ("ml", "dial"):
        role = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == ns
                and d["metadata"]["name"] == "dial-collector"]
        assert [rules_of(r) for r in role] == [{("dial.dev", "trials/status"): {"patch"}}]
        binding = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == ns][0]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dial-collector", "namespace": ns}]


def test_images_follow_values_and_a_digest_pins_them(helm):
    digest = "sha256:" + "ab" * 32
    args = operator_container(render(helm, f"image.digest={digest}", "image.repository=reg.example/dial"))
    assert args["image"] == f"reg.example/dial@{digest}"
    assert flag(args["args"], "collector-image") == f"reg.example/dial@{digest}"
    separate = operator_container(render(helm, "collector.image.repository=reg.example/collector",
                                         "collector.image.tag=1.2"))
    assert flag(separate["args"], "collector-image") == "reg.example/collector:1.2"


def test_cached_reads_are_the_default_and_a_value_turns_them_off(helm):
    assert "--no-cached-reads" not in operator_container(render(helm))["args"]
    assert "--no-cached-reads" in operator_container(render(helm, "operator.cachedReads=false"))["args"]


def test_log_level_debug_makes_the_operator_verbose(helm):
    assert "--verbose" not in operator_container(render(helm))["args"]
    assert "--verbose" in operator_container(render(helm, "operator.logLevel=debug"))["args"]


def test_dashboard_configmap_carries_the_dashboard_for_grafanas_sidecar(helm):
    configmap = one(render(helm), "ConfigMap", "t-dial-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["dial.json"]) == json.loads((CHART / "dashboards" / "dial.json").read_text())
    assert not [d for d in render(helm, "dashboard.enabled=false") if d["kind"] == "ConfigMap"]


@pytest.mark.parametrize("setting, complaint", [
    ("operator.logLevel=trace", "logLevel"),
    ("operator.runAsUser=0", "runAsUser"),
    ("image.digest=latest", "digest"),
    ("metrics.port=70000", "port"),
    ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
    ("operator.replicas=0", "replicas"),
    ("operator.replicas=3,operator.leaderElection.enabled=false", "needs operator.leaderElection.enabled"),
    ("operator.leaderElection.leaseDurationSeconds=1", "leaseDurationSeconds"),
    ("metrics.port=8080", "must differ"),
    ("operator.readinessPort=8080", "must differ"),
])
def test_wrong_values_fail_at_install_time_naming_the_value(helm, setting, complaint):
    assert complaint in render_error(helm, setting)



def test_the_collector_policy_binds_cluster_wide_and_the_kubectl_copy_matches_the_chart(helm):
    docs = render(helm, release="dial")
    policy = one(docs, "ValidatingAdmissionPolicy", "dial-collector-trial-isolation")
    binding = one(docs, "ValidatingAdmissionPolicyBinding", "dial-collector-trial-isolation")
    assert binding["spec"] == {"policyName": "dial-collector-trial-isolation", "validationActions": ["Deny"]}
    other = one(render(helm, release="ml"), "ValidatingAdmissionPolicyBinding")  # cluster-scoped: per release
    assert other["metadata"]["name"] == other["spec"]["policyName"] == "ml-dial-collector-trial-isolation"
    assert policy["spec"]["failurePolicy"] == "Fail"
    [condition] = policy["spec"]["matchConditions"]
    assert condition["expression"].endswith("endsWith(':dial-collector')")
    owned_elsewhere = [v["message"] for v in policy["spec"]["validations"] if "message" in v]
    for field in ("spec", "status.phase", "status.reason", "status.stopReason", "status.completionTime"):
        assert any(f"change a Trial's {field}" in m for m in owned_elsewhere), field
    renamed = one(render(helm, "collector.serviceAccount.name=trial-reporter"), "ValidatingAdmissionPolicy")
    assert renamed["spec"]["matchConditions"][0]["expression"].endswith("endsWith(':trial-reporter')")
    copy = [d for d in yaml.safe_load_all((ROOT / "policies" / "collector-trial-isolation.yaml").read_text()) if d]
    assert copy == [policy, binding], "policies/ differs from the chart: render it again (see its header)"
    off = render(helm, "collector.isolation.enabled=false")
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]
