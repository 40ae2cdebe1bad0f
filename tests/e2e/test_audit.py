"""The audit log: a server started with `--audit-policy-file` and `--audit-log-path` writes
`audit.k8s.io/v1` Events as JSON lines, with the level, stages and bodies the policy asks for,
and never a Secret's value. A second server runs the default policy (Metadata everywhere), with
size rotation on.
"""

import base64
import json
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

import pytest

from conftest import Cluster, Netns, eventually, unique

POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi/*", "/api", "/apis*"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["configmaps"]
  omitManagedFields: true
- level: Request
  resources:
  - group: ""
    resources: ["pods"]
  verbs: ["watch"]
- level: Metadata
"""


def start_cluster(prefix: str, args: list[str]):
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    netns = Netns()
    c = Cluster(workdir, netns, server_args=[a.replace("{dir}", str(workdir)) for a in args])
    return workdir, netns, c


def cleanup(workdir, netns, c) -> None:
    c.stop()
    netns.delete()
    if not os.environ.get("KEEP_E2E_WORKDIR"):
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def audited():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir, netns, c = start_cluster("skiff-audit.", [])
    (workdir / "policy.yaml").write_text(POLICY)
    c.server_args = ["--audit-policy-file", str(workdir / "policy.yaml"),
                     "--audit-log-path", str(workdir / "audit" / "audit.log")]
    try:
        c.start()
        yield c
    finally:
        cleanup(workdir, netns, c)


def events(c: Cluster, name: str = "audit.log") -> list[dict]:
    path = c.workdir / "audit" / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def find(c: Cluster, pred, what: str) -> dict:
    return eventually(lambda: next((e for e in events(c) if pred(e)), None), timeout=20, what=what)


def ref(e: dict) -> dict:
    return e.get("objectRef", {})


def test_secret_writes_are_logged_at_metadata_without_values(audited):
    c = audited
    name, value = unique("audited"), unique("never-logged")
    c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
    c.kubectl("patch", "secret", name, "-p", json.dumps({"stringData": {"v": value + "2"}}))
    create = find(c, lambda e: e["verb"] == "create" and ref(e).get("name") == name, "create event")
    assert create["apiVersion"] == "audit.k8s.io/v1" and create["kind"] == "Event"
    assert create["level"] == "Metadata" and create["stage"] == "ResponseComplete"
    assert create["objectRef"] == {"resource": "secrets", "namespace": "default", "name": name,
                                   "apiGroup": "", "apiVersion": "v1"}
    assert create["responseStatus"]["code"] == 201
    assert create["requestURI"].startswith("/api/v1/namespaces/default/secrets")
    assert "system:masters" in create["user"]["groups"]
    assert create["sourceIPs"] == [c.netns.host_ip]
    assert create["userAgent"].startswith("kubectl")
    assert create["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert "requestObject" not in create and "responseObject" not in create
    assert create["requestReceivedTimestamp"] <= create["stageTimestamp"]
    find(c, lambda e: e["verb"] == "patch" and ref(e).get("name") == name, "patch event")
    # RequestReceived is omitted by the policy.
    assert not [e for e in events(c) if e["stage"] == "RequestReceived"]
    text = (c.workdir / "audit" / "audit.log").read_text()
    for form in (value, base64.b64encode(value.encode()).decode()):
        assert form not in text


def test_request_response_level_logs_bodies_without_managed_fields(audited):
    c = audited
    name = unique("cm")
    c.kubectl("create", "configmap", name, "--from-literal=k=visible-config")
    e = find(c, lambda e: e["verb"] == "create" and ref(e).get("name") == name, "configmap create event")
    assert e["level"] == "RequestResponse"
    assert e["requestObject"]["data"] == {"k": "visible-config"}
    assert e["responseObject"]["metadata"]["name"] == name
    assert "managedFields" not in e["responseObject"]["metadata"]


def test_failures_carry_their_status(audited):
    c = audited
    missing = unique("missing")
    r = c.kubectl("get", "configmap", missing, check=False)
    assert r.returncode != 0
    e = find(c, lambda e: e["verb"] == "get" and ref(e).get("name") == missing, "404 event")
    assert e["responseStatus"]["code"] == 404
    assert e["responseStatus"]["reason"] == "NotFound"
    assert e["responseStatus"]["status"] == "Failure"


def test_watches_log_started_and_complete(audited):
    c = audited
    w = c.kubectl_bg("get", "pods", "-w", "--request-timeout=3s", "-n", "kube-system")
    try:
        started = find(c, lambda e: e["verb"] == "watch" and e["stage"] == "ResponseStarted"
                       and ref(e).get("resource") == "pods" and ref(e).get("namespace") == "kube-system"
                       and e.get("userAgent", "").startswith("kubectl"), "watch started")
        assert started["level"] == "Request"
        audit_id = started["auditID"]
        done = eventually(lambda: next((e for e in events(c) if e["auditID"] == audit_id
                                        and e["stage"] == "ResponseComplete"), None),
                          timeout=30, what="watch complete")
        assert done["responseStatus"]["code"] == 200
    finally:
        w.stop()


def test_failed_authentication_is_logged_once_without_a_user(audited):
    c = audited
    cfg = yaml.safe_load(c.kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.check_hostname = False
    marker = unique("authn")
    req = urllib.request.Request(f"{server}/api/v1/namespaces/{marker}/configmaps",
                                 headers={"Authorization": "Bearer not-a-token"})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    assert err.value.code == 401
    e = find(c, lambda e: ref(e).get("namespace") == marker, "401 event")
    same = [x for x in events(c) if x["auditID"] == e["auditID"]]
    assert [x["stage"] for x in same] == ["ResponseStarted"]
    assert e["user"] == {}
    assert e["responseStatus"]["code"] == 401
    assert e["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
    assert e["verb"] == "list" and ref(e)["resource"] == "configmaps"


def test_impersonation_names_both_users(audited):
    c = audited
    ns = unique("imp")
    r = c.kubectl("get", "configmaps", "-n", ns, "--as", "mallory", "--as-group", "staff", check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr
    e = find(c, lambda e: e["verb"] == "list" and ref(e).get("namespace") == ns, "impersonated event")
    assert "system:masters" in e["user"]["groups"]
    assert e["impersonatedUser"]["username"] == "mallory"
    assert "staff" in e["impersonatedUser"]["groups"]
    assert e["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert e["responseStatus"]["code"] == 403


def test_allowed_events_carry_the_rbac_reason(audited):
    c = audited
    ns = unique("why")
    c.kubectl("create", "namespace", ns)
    c.kubectl("create", "rolebinding", "readers", "--clusterrole=view", "--user=rita", "-n", ns)
    eventually(lambda: c.kubectl("get", "configmaps", "-n", ns, "--as", "rita", check=False).returncode == 0,
               timeout=30, what="rita may list configmaps")
    e = find(c, lambda e: e["verb"] == "list" and ref(e).get("namespace") == ns
             and e.get("impersonatedUser", {}).get("username") == "rita"
             and e["annotations"]["authorization.k8s.io/decision"] == "allow", "allowed event")
    assert e["annotations"]["authorization.k8s.io/reason"] == \
        f'RBAC: allowed by RoleBinding "readers/{ns}" of ClusterRole "view" to User "rita"'


def test_audit_events_are_counted_at_metrics(audited):
    c = audited
    c.kubectl("get", "configmaps", "-n", "default")
    text = c.kubectl("get", "--raw", "/metrics").stdout
    total = next(line for line in text.splitlines() if line.startswith("apiserver_audit_event_total "))
    assert float(total.split()[1]) > 0
    assert 'apiserver_audit_error_total{plugin="buffered"} 0' in text


def test_pod_security_audit_mode_annotates_events(audited):
    c = audited
    ns = unique("psa")
    c.kubectl("create", "namespace", ns)
    c.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/audit=restricted")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "securityContext": {"privileged": True}}]}}
    c.kubectl("create", "-f", "-", input=json.dumps(pod))
    e = find(c, lambda e: e["verb"] == "create" and ref(e).get("namespace") == ns
             and ref(e).get("resource") == "pods", "pod create event")
    assert e["responseStatus"]["code"] == 201
    assert e["annotations"]["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    violations = e["annotations"]["pod-security.kubernetes.io/audit-violations"]
    assert violations.startswith('would violate PodSecurity "restricted:latest": privileged'), violations


def test_admission_policy_audit_action_and_annotations(audited):
    c = audited
    name = unique("vap")
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name},
              "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE"],
                                                               "resources": ["configmaps"]}]},
                       "validations": [{"expression": "!has(object.data) || !('forbidden' in object.data)",
                                        "message": "no forbidden key"}],
                       "auditAnnotations": [{"key": "keys",
                                             "valueExpression": "string(has(object.data) ? size(object.data) : 0)"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Audit"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {"audit-vap": name}}}}}
    ns = unique("vapns")
    c.kubectl("create", "namespace", ns)
    c.kubectl("label", "namespace", ns, f"audit-vap={name}")
    c.kubectl("create", "-f", "-", input=json.dumps(policy))
    c.kubectl("create", "-f", "-", input=json.dumps(binding))

    def audited_create():
        cm = unique("cm")
        c.kubectl("create", "configmap", cm, "-n", ns, "--from-literal=forbidden=1", "--from-literal=b=2")
        e = find(c, lambda e: e["verb"] == "create" and ref(e).get("name") == cm, "configmap event")
        return e if "validation.policy.admission.k8s.io/validation_failure" in e.get("annotations", {}) else None

    # The policy takes effect once the API server's caches have it.
    e = eventually(audited_create, timeout=30, what="audited policy failure")
    assert e["responseStatus"]["code"] == 201
    failure = json.loads(e["annotations"]["validation.policy.admission.k8s.io/validation_failure"])
    assert failure == [{"message": "no forbidden key", "policy": name, "binding": name,
                        "expressionIndex": 0, "validationActions": ["Audit"]}]
    assert e["annotations"][f"{name}/keys"] == "2"


def test_default_policy_logs_metadata_only():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir, netns, c = start_cluster("skiff-audit2.", [
        "--audit-log-path", "{dir}/audit/audit.log", "--audit-log-maxsize", "1", "--audit-log-maxbackup", "2"])
    try:
        c.start()
        name, value = unique("dflt"), unique("default-policy-secret")
        c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
        c.kubectl("create", "configmap", name, f"--from-literal=k={value}")
        e = find(c, lambda e: e["verb"] == "create" and ref(e).get("resource") == "configmaps"
                 and ref(e).get("name") == name, "configmap create event")
        assert e["level"] == "Metadata" and "requestObject" not in e and "responseObject" not in e
        find(c, lambda e: e["verb"] == "create" and ref(e).get("resource") == "secrets"
             and ref(e).get("name") == name, "secret create event")
        text = (workdir / "audit" / "audit.log").read_text()
        assert value not in text
        assert not [ev for ev in events(c) if ev["stage"] == "RequestReceived"]
        assert not [ev for ev in events(c) if ev["requestURI"].startswith("/readyz")]
        # Public paths are audited too, naming the caller when it authenticates.
        c.kubectl("get", "--raw", "/.well-known/openid-configuration")
        e = find(c, lambda e: e["requestURI"] == "/.well-known/openid-configuration", "public path event")
        assert e["verb"] == "get" and "system:masters" in e["user"]["groups"]
        assert e["responseStatus"]["code"] == 200
        assert (workdir / "audit" / "audit.log").stat().st_mode & 0o777 == 0o600
    finally:
        cleanup(workdir, netns, c)
