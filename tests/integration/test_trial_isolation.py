"""Trial isolation on the local control plane: with the collector policy (policies/collector-trial-isolation.yaml)
in force, a pod running as the collector's ServiceAccount may update only its own Trial's status fields that the
collector owns, even when a Role grants it more; the normal collector path and the operator are unaffected; and
trial pods with the collector sidecar pass Pod Security Admission `restricted`."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

from operator_fixtures import (  # noqa: F401  (fixtures)
    GROUP, VERSION, apply, descent_manifest, dial_namespace, dump, example_manifest, operator, phases, trials, wait,
    wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "policies" / "collector-trial-isolation.yaml"
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}

# What a hostile or buggy training script could try with the collector's token (the pod's own, bound to it).
ATTEMPTS = r"""
import json
from kubernetes import client, config
config.load_incluster_config()
api = client.CustomObjectsApi()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
merge = {"_content_type": "application/merge-patch+json"}
def attempt(what, call):
    try:
        call()
        return {"what": what, "code": 200}
    except client.ApiException as exc:
        return {"what": what, "code": exc.status, "message": json.loads(exc.body).get("message", exc.body)}
def status(name, fields):
    return lambda: api.patch_namespaced_custom_object_status("dial.dev", "v1alpha1", ns, "trials", name,
                                                            {"status": fields}, **merge)
body = {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial", "metadata": {"name": "iso-0002"},
        "spec": {"experiment": "iso", "index": 2, "parameterAssignments": {"x": 9}}}
print("ATTEMPTS " + json.dumps([
    attempt("own objective", status("iso-0000", {"objective": 0.5})),
    attempt("other trial's objective", status("iso-0001", {"objective": -100.0})),
    attempt("own phase", status("iso-0000", {"phase": "Succeeded"})),
    attempt("own stop reason", status("iso-0000", {"stopReason": "medianstop"})),
    attempt("create a trial", lambda: api.create_namespaced_custom_object("dial.dev", "v1alpha1", ns, "trials", body)),
    attempt("own spec", lambda: api.patch_namespaced_custom_object("dial.dev", "v1alpha1", ns, "trials", "iso-0000",
                                                                   {"spec": {"index": 7}}, **merge)),
]))
"""


def policy_for(namespace: str) -> list[dict]:
    """The shipped policy and binding, renamed and bound to one namespace so no other test is affected."""
    policy, binding = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    policy, binding = copy.deepcopy(policy), copy.deepcopy(binding)
    policy["metadata"]["name"] = binding["spec"]["policyName"] = f"dial-collector-isolation-{namespace}"
    binding["metadata"]["name"] = f"dial-collector-isolation-{namespace}"
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    return [policy, binding]


@pytest.fixture
def isolated(cluster, dial_namespace):
    """The namespace enforces PSA `restricted`; the policy is bound to it; the collector is given *more* RBAC
    than the chart's (create Trials, patch them), so every denial below is the policy's, not RBAC's."""
    ns = dial_namespace
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    objects = policy_for(ns) + [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "too-much", "namespace": ns},
         "rules": [{"apiGroups": [GROUP], "resources": ["trials", "trials/status"],
                    "verbs": ["get", "create", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "too-much", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "too-much"},
         "subjects": [{"kind": "ServiceAccount", "name": "dial-collector", "namespace": ns}]},
    ]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    name = objects[0]["metadata"]["name"]

    def type_checked() -> bool:
        policy = cluster.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
        data = json.loads(policy)
        warnings = (data.get("status") or {}).get("typeChecking", {}).get("expressionWarnings")
        assert not warnings, warnings  # an expression that does not type-check against the Trial schema
        return (data.get("status") or {}).get("observedGeneration") == data["metadata"]["generation"]
    wait(type_checked, 60, "the policy type-checked")
    time.sleep(3)  # the admission plugin's informers pick up the policy and binding
    yield ns
    for obj in policy_for(ns):
        cluster.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found")


def create_trial(cluster, ns: str, index: int) -> None:
    name = f"iso-{index:04d}"
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "trials", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Trial", "metadata": {"name": name},
        "spec": {"experiment": "iso", "index": index, "parameterAssignments": {"x": index}}})
    cluster.custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, "trials", name,
                                                         {"status": {"phase": "Running", "objective": 1.0}})


def attempts_from_a_collector_pod(cluster, ns: str, job: str) -> dict[str, dict]:
    cluster.batch.create_namespaced_job(ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "serviceAccountName": "dial-collector",
            "containers": [{"name": "attempts", "image": "dial-worker:0.1.0", "command": ["python", "-c", ATTEMPTS],
                            "resources": {"requests": {"cpu": "100m"}}, "securityContext": RESTRICTED}]}}}})
    pod = wait(lambda: next(iter(cluster.core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items), None),
               60, "the collector pod")
    cluster.wait_pod_phase(ns, pod.metadata.name, timeout=120)
    log = cluster.pod_log(ns, pod.metadata.name, "attempts")
    found = re.search(r"^ATTEMPTS (.*)$", log, re.M)
    assert found, log
    return {a["what"]: a for a in json.loads(found.group(1))}


def test_a_collector_may_write_only_its_own_trials_collector_fields(cluster, isolated):
    ns = isolated
    create_trial(cluster, ns, 0)
    create_trial(cluster, ns, 1)
    results = attempts_from_a_collector_pod(cluster, ns, "iso-0000")  # its pod: iso-0000-<5 characters>
    assert results["own objective"]["code"] == 200, results
    for what, message in [
        ("other trial's objective", 'may only write the status of its own Trial, not of Trial "iso-0001"'),
        ("own phase", "may not change a Trial's status.phase (the operator owns it)"),
        ("own stop reason", "may not change a Trial's status.stopReason (the operator owns it)"),
        ("create a trial", "the collector may only update a Trial's status, not CREATE trials"),
        ("own spec", "the collector may only update a Trial's status, not UPDATE trials"),
    ]:
        assert results[what]["code"] == 403, results[what]
        assert message in results[what]["message"] and "dial-collector-trial-isolation" in results[what]["message"]
    own = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "trials", "iso-0000")
    other = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "trials", "iso-0001")
    assert own["status"]["objective"] == 0.5 and own["status"]["phase"] == "Running" and own["spec"]["index"] == 0
    assert "stopReason" not in own["status"]
    assert other["status"]["objective"] == 1.0
    with pytest.raises(ApiException):
        cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "trials", "iso-0002")


def test_trials_run_under_the_policy_and_psa_restricted_with_the_operators_writes_unaffected(cluster, isolated,
                                                                                             operator):
    ns = isolated
    manifest = example_manifest("peaks", maxTrialCount=3, parallelTrialCount=2, maxFailedTrialCount=None,
                                algorithm={"name": "random"}, seed=5)
    pod = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    for container in pod["containers"]:  # what a training container needs under `restricted` (README)
        container["securityContext"] = RESTRICTED
    apply(cluster, ns, manifest)
    exp = wait_for_phase(cluster, operator, ns, "peaks", ("Succeeded", "Failed"), timeout=300)
    items = trials(cluster, ns, "peaks")
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert phases(items) == ["Succeeded"] * 3, dump([t["status"] for t in items])
    assert all(t["status"]["objective"] is not None and t["status"]["observations"] for t in items)

    # A diverging trial: the collector reports the non-finite objective (a field it owns), the operator fails it.
    manifest = descent_manifest("diverging", ["0.1", "30.0"], epochs=40)
    for container in manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]:
        container["securityContext"] = RESTRICTED
    apply(cluster, ns, manifest)
    exp = wait_for_phase(cluster, operator, ns, "diverging", ("Succeeded", "Failed"), timeout=300)
    status = {t["spec"]["parameterAssignments"]["lr"]: t["status"] for t in trials(cluster, ns, "diverging")}
    assert exp["status"]["phase"] == "Succeeded" and status["0.1"]["phase"] == "Succeeded", dump(status)
    diverged = status["30.0"]
    assert diverged["phase"] == "Failed" and diverged["reason"] == "ObjectiveNotFinite", dump(diverged)
    assert diverged["nonFiniteObjective"] == {"metric": "loss", "step": 3.0, "value": "inf"}, dump(diverged)
    assert diverged["message"] == "loss reported inf at step 3"
    assert diverged["observations"][0]["nPoints"] == 2  # its finite points are kept
