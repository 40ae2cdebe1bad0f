"""Admission webhooks end to end: a webhook server written here (Python `http.server` over TLS
with a certificate made by `openssl` for the host side of the cluster's veth), reached by
`clientConfig.url` from the API server inside the network namespace.

Every configuration selects only namespaces carrying this test's label, so the shared cluster's
other tests never reach these webhooks, and each test deletes its configurations.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import eventually, running_agent_cluster, unique

LABEL = "skiff-e2e-webhooks"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def make_certs(directory: Path, ip: str) -> tuple[Path, Path, bytes]:
    """A CA and a server certificate for `ip` signed by it: (cert, key, CA PEM)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=webhook-test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=webhook-test",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    (directory / "san.ext").write_text(
        f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=directory)
    return directory / "server.crt", directory / "server.key", (directory / "ca.crt").read_bytes()


EXEC_REWRITE = ["sh", "-c", "echo rewritten in $WHO"]
SIDECAR = {"name": "sidecar", "image": "busybox"}


def patch(ops: list[dict]) -> dict:
    """The JSONPatch fields of an answer."""
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


class WebhookServer:
    """The webhooks: `/mutate` adds a label, `/deny` refuses names starting with `bad`,
    `/deny-connect` refuses every CONNECT (exec, attach, port-forward), `/rewrite-exec` makes an
    exec run `EXEC_REWRITE` in container `second`, `/add-container` adds `SIDECAR` to a pod (and an
    image to its first container when it has none), `/fix-update` replaces the data of an updated
    object with `{"fixed": "yes"}`, `/fix-status` sets a pod's `status.podIP` to 10.9.9.9 and its
    `spec.activeDeadlineSeconds` to 5 on a status update, `/slow` answers after 4 s; any other path allows. Every request body is kept in `reviews`."""

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        self.reviews: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                server.reviews.append({"path": self.path, "review": body})
                req = body["request"]
                resp: dict = {"uid": req["uid"], "allowed": True}
                path = self.path.split("?")[0]
                if path == "/mutate":
                    labels = (req.get("object") or {}).get("metadata", {}).get("labels")
                    ops = ([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}] if labels
                           else [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
                    resp.update(patch(ops))
                elif path == "/rewrite-exec" and req.get("operation") == "CONNECT":
                    resp.update(patch([{"op": "add", "path": "/command", "value": EXEC_REWRITE},
                                       {"op": "add", "path": "/container", "value": "second"}]))
                elif path == "/add-container":
                    ops = [{"op": "add", "path": "/spec/containers/-", "value": SIDECAR}]
                    if not req["object"]["spec"]["containers"][0].get("image"):
                        ops.append({"op": "add", "path": "/spec/containers/0/image", "value": "busybox:1.36"})
                    resp.update(patch(ops))
                elif path == "/fix-update" and req.get("operation") == "UPDATE":
                    resp.update(patch([{"op": "replace", "path": "/data", "value": {"fixed": "yes"}}]))
                elif path == "/fix-status" and req.get("subResource") == "status":
                    resp.update(patch([{"op": "replace", "path": "/status/podIP", "value": "10.9.9.9"},
                                       {"op": "add", "path": "/spec/activeDeadlineSeconds", "value": 5}]))
                elif path == "/deny":
                    name = (req.get("object") or req.get("oldObject") or {}).get("metadata", {}).get("name", "")
                    if name.startswith("bad"):
                        resp["allowed"] = False
                        resp["status"] = {"code": 403, "message": f"the name {name} is not welcome"}
                    else:
                        resp["warnings"] = ["checked by the deny webhook"]
                elif path == "/deny-connect" and req.get("operation") == "CONNECT":
                    resp["allowed"] = False
                    resp["status"] = {"code": 403, "message": f"no {req.get('subResource')} into {req.get('name')}"}
                elif path == "/slow":
                    time.sleep(4)
                out = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": resp}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def webhook_server(cluster):
    """A webhook server listening on the host end of `cluster`'s veth."""
    host = cluster.netns.host_ip
    with tempfile.TemporaryDirectory(prefix="skiff-webhook.") as d:
        cert, key, ca = make_certs(Path(d), host)
        server = WebhookServer(host, cert, key)
        server.ca_bundle = base64.b64encode(ca).decode()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def webhook(cluster):
    """The webhook server of the shared cluster."""
    with webhook_server(cluster) as server:
        yield server


def free_port(host: str) -> int:
    """A port on `host` nothing listens on."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def selector_value(cluster, namespace) -> str:
    """Labels the test namespace so this test's webhooks select it."""
    value = unique("wh")
    cluster.kubectl("label", "namespace", namespace, f"{LABEL}={value}")
    return value


def hook(name: str, url: str, ca_bundle: str, value: str, **extra) -> dict:
    h = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": ["configmaps"]}],
        "namespaceSelector": {"matchLabels": {LABEL: value}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    h.update(extra)
    return h


class Configs:
    """Creates webhook configurations and deletes them at the end of the test."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.created: list[tuple[str, str]] = []

    def create(self, kind: str, hooks: list[dict]) -> str:
        name = unique(kind.lower().replace("webhookconfiguration", "-wh"))
        doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
               "webhooks": hooks}
        self.cluster.kubectl("create", "-f", "-", input=json.dumps(doc))
        self.created.append((kind.lower() + "s", name))
        return name

    def delete_all(self) -> None:
        for plural, name in self.created:
            self.cluster.kubectl("delete", plural, name, "--ignore-not-found", check=False)


@pytest.fixture
def configs(cluster):
    c = Configs(cluster)
    yield c
    c.delete_all()


def configmap(name: str, data: str = "x") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": data}})


def test_configurations_are_defaulted_validated_and_listed(cluster, webhook, configs, selector_value):
    name = configs.create("ValidatingWebhookConfiguration", [
        hook("defaults.skiff.test", webhook.url + "/deny", webhook.ca_bundle, selector_value)])
    got = cluster.kubectl_json("get", "validatingwebhookconfiguration", name)
    w = got["webhooks"][0]
    assert (w["failurePolicy"], w["matchPolicy"], w["timeoutSeconds"]) == ("Fail", "Equivalent", 10)
    assert w["objectSelector"] == {} and w["rules"][0]["scope"] == "*"
    table = cluster.kubectl("get", "validatingwebhookconfigurations", name).stdout
    assert table.split("\n")[0].split() == ["NAME", "WEBHOOKS", "AGE"], table
    bad = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": unique("bad")},
           "webhooks": [hook("two.segments", "http://x/", "", "v", timeoutSeconds=31)]}
    r = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert r.returncode != 0
    assert "webhooks[0].name: Invalid value: \"two.segments\": should be a domain with at least three " \
           "segments separated by dots" in r.stderr, r.stderr
    assert "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 " \
           "seconds" in r.stderr, r.stderr
    assert "'https' is the only allowed URL scheme" in r.stderr, r.stderr


def test_mutating_webhook_adds_a_label(cluster, k, webhook, configs, selector_value):
    configs.create("MutatingWebhookConfiguration", [
        hook("label.skiff.test", webhook.url + "/mutate", webhook.ca_bundle, selector_value)])

    def mutated_on_dry_run():
        r = k("create", "-f", "-", "--dry-run=server", "-o", "json", input=configmap("probe"), check=False)
        return r.returncode == 0 and json.loads(r.stdout)["metadata"].get("labels", {}).get("mutated") == "yes"

    eventually(mutated_on_dry_run, timeout=30, what="the mutating webhook in effect")
    name = unique("cm")
    k("create", "-f", "-", input=configmap(name))
    assert k.json("get", "configmap", name)["metadata"]["labels"] == {"mutated": "yes"}
    review = next(r["review"] for r in reversed(webhook.reviews)
                  if r["review"]["request"].get("name") == name and r["path"].startswith("/mutate"))
    req = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert req["operation"] == "CREATE" and req["namespace"] == k.namespace
    assert req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert req["dryRun"] is False and req["object"]["data"] == {"k": "x"}
    assert req["userInfo"]["username"]
    assert r"?timeout=10s" in next(r["path"] for r in webhook.reviews if r["path"].startswith("/mutate"))
    # An update is sent with the old object too.
    k("label", "configmap", name, "extra=1", "--overwrite")
    upd = next(r["review"]["request"] for r in reversed(webhook.reviews)
               if r["review"]["request"].get("name") == name and r["review"]["request"]["operation"] == "UPDATE")
    assert upd["oldObject"]["metadata"]["labels"] == {"mutated": "yes"}


def test_mutating_webhook_completes_an_update_invalid_without_it(cluster, k, webhook, configs, selector_value):
    configs.create("MutatingWebhookConfiguration", [
        hook("fix-update.skiff.test", webhook.url + "/fix-update", webhook.ca_bundle, selector_value)])
    name = unique("cm")
    k("create", "-f", "-", input=configmap(name))
    # "not a key!" is not a valid ConfigMap key: only the webhook, which runs before validation
    # on updates too (as upstream), makes this update valid.
    broken = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                         "data": {"not a key!": "x"}})

    def fixed():
        r = k("replace", "-f", "-", input=broken, check=False)
        return r.returncode == 0 or None

    eventually(fixed, timeout=30, what="the update webhook in effect")
    assert k.json("get", "configmap", name)["data"] == {"fixed": "yes"}


def test_mutating_webhook_on_a_status_update_runs_before_the_status_strategy(cluster, webhook, configs,
                                                                            selector_value, namespace):
    rules = [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}]
    configs.create("MutatingWebhookConfiguration", [
        hook("fix-status.skiff.test", webhook.url + "/fix-status", webhook.ca_bundle, selector_value, rules=rules)])
    name = unique("pod")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(pod))
    # "not-an-ip" fails the status validation: only the webhook, which runs before the status
    # strategy and validation (as upstream), makes the update valid.
    broken = json.dumps({"status": {"podIP": "not-an-ip"}})

    def fixed():
        r = cluster.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=merge",
                            "-p", broken, check=False)
        return r.returncode == 0 or None

    eventually(fixed, timeout=30, what="the status webhook in effect")
    stored = cluster.kubectl_json("-n", namespace, "get", "pod", name)
    assert stored["status"]["podIP"] == "10.9.9.9", stored["status"]
    # The status strategy drops the webhook's change to the spec, as it drops the client's.
    assert "activeDeadlineSeconds" not in stored["spec"], stored["spec"]
    seen = next(r["review"]["request"] for r in reversed(webhook.reviews)
                if r["path"].startswith("/fix-status") and r["review"]["request"].get("name") == name)
    assert seen["subResource"] == "status" and seen["operation"] == "UPDATE"
    assert seen["object"]["status"]["podIP"] == "not-an-ip", seen["object"]["status"]
    assert "podIP" not in seen["oldObject"].get("status", {}), seen["oldObject"]


def test_validating_webhook_denies_with_its_message(cluster, k, webhook, configs, selector_value):
    configs.create("ValidatingWebhookConfiguration", [
        hook("deny.skiff.test", webhook.url + "/deny", webhook.ca_bundle, selector_value)])
    bad = unique("bad")

    def denied():
        r = k("create", "-f", "-", input=configmap(bad), check=False)
        return r.returncode != 0 and r
    r = eventually(denied, timeout=30, what="the validating webhook in effect")
    assert f'admission webhook "deny.skiff.test" denied the request: the name {bad} is not welcome' in r.stderr, \
        r.stderr
    good = k("create", "-f", "-", input=configmap(unique("good")))
    assert "checked by the deny webhook" in good.stderr, good.stderr


def test_connect_webhook_refuses_exec(cluster, webhook, configs, selector_value, namespace, kubectl_version):
    rules = [{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec"]}]
    configs.create("ValidatingWebhookConfiguration", [
        hook("deny-connect.skiff.test", webhook.url + "/deny-connect", webhook.ca_bundle, selector_value, rules=rules)])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell", "namespace": namespace},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))

    def denied():
        r = cluster.kubectl("exec", "-n", namespace, "shell", "--", "true", check=False, version=kubectl_version)
        return r.stderr if "denied the request" in r.stderr else None

    err = eventually(denied, timeout=30, what="the CONNECT webhook in effect")
    assert 'admission webhook "deny-connect.skiff.test" denied the request: no exec into shell' in err, err
    review = next(r["review"]["request"] for r in reversed(webhook.reviews) if r["path"].startswith("/deny-connect"))
    assert review["operation"] == "CONNECT" and review["subResource"] == "exec"
    assert review["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
    assert review["object"]["kind"] == "PodExecOptions" and review["object"]["command"] == ["true"]
    assert review["object"]["container"] == "c"
    assert review["name"] == "shell" and review["namespace"] == namespace


def test_mutating_webhook_on_a_pod_gets_its_additions_defaulted(cluster, webhook, configs, selector_value,
                                                                 namespace):
    rules = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
    configs.create("MutatingWebhookConfiguration", [
        hook("add-container.skiff.test", webhook.url + "/add-container", webhook.ca_bundle, selector_value,
             rules=rules),
        hook("observe-pod.skiff.test", webhook.url + "/observe-pod", webhook.ca_bundle, selector_value,
             rules=rules)])
    # The client's container has no image: only the webhook makes the pod valid, and it runs
    # before validation as upstream.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
           "spec": {"containers": [{"name": "main", "imagePullPolicy": "IfNotPresent"}]}}

    def added():
        r = cluster.kubectl("-n", namespace, "create", "-f", "-", "--dry-run=server", "-o", "json",
                            input=json.dumps(pod), check=False)
        return r.returncode == 0 and len(json.loads(r.stdout)["spec"]["containers"]) == 2

    eventually(added, timeout=30, what="the pod webhooks in effect")
    name = unique("pod")
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps({**pod, "metadata": {"name": name}}))
    stored = cluster.kubectl_json("-n", namespace, "get", "pod", name)
    main, sidecar = stored["spec"]["containers"]
    assert sidecar["name"] == "sidecar" and main["image"] == "busybox:1.36", stored["spec"]
    # The webhook's container got the scheme's defaults like the client's own.
    assert (main["imagePullPolicy"], sidecar["imagePullPolicy"]) == ("IfNotPresent", "Always"), stored["spec"]
    assert sidecar["terminationMessagePath"] == "/dev/termination-log", sidecar
    assert sidecar["terminationMessagePolicy"] == "File", sidecar
    # ... before the next webhook saw the pod, as upstream defaults after every patch.
    seen = next(r["review"]["request"]["object"] for r in reversed(webhook.reviews)
                if r["path"].startswith("/observe-pod") and r["review"]["request"].get("name") == name)
    assert seen["spec"]["containers"][1]["imagePullPolicy"] == "Always", seen["spec"]["containers"]


def test_failure_policy_with_the_server_down(cluster, webhook, configs, selector_value, namespace):
    down = f"https://{cluster.netns.host_ip}:{free_port(cluster.netns.host_ip)}/deny"
    configs.create("ValidatingWebhookConfiguration", [
        hook("down-ignore.skiff.test", down, webhook.ca_bundle, selector_value, failurePolicy="Ignore")])
    # Ignore: writes go through although the webhook cannot be reached.
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap(unique("ignored")))
    configs.create("ValidatingWebhookConfiguration", [
        hook("down-fail.skiff.test", down, webhook.ca_bundle, selector_value, failurePolicy="Fail")])

    def refused():
        r = cluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap(unique("refused")), check=False)
        return r.returncode != 0 and r
    r = eventually(refused, timeout=30, what="the failing webhook in effect")
    assert 'Internal error occurred: failed calling webhook "down-fail.skiff.test": failed to call webhook: ' \
           f'Post "{down}?timeout=10s"' in r.stderr, r.stderr
    assert "connection refused" in r.stderr, r.stderr


def test_timeout_fails_the_call(cluster, webhook, configs, selector_value, namespace):
    configs.create("ValidatingWebhookConfiguration", [
        hook("slow.skiff.test", webhook.url + "/slow", webhook.ca_bundle, selector_value, timeoutSeconds=1)])

    def timed_out():
        r = cluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap(unique("slow")), check=False)
        return r.returncode != 0 and r
    r = eventually(timed_out, timeout=30, what="the slow webhook in effect")
    assert 'failed calling webhook "slow.skiff.test"' in r.stderr and "context deadline exceeded" in r.stderr, \
        r.stderr
    assert "?timeout=1s" in r.stderr, r.stderr


def test_namespace_selector_excludes_other_namespaces(cluster, webhook, configs, selector_value, namespace):
    configs.create("MutatingWebhookConfiguration", [
        hook("only-labelled.skiff.test", webhook.url + "/mutate", webhook.ca_bundle, selector_value)])

    def mutated():
        r = cluster.kubectl("-n", namespace, "create", "-f", "-", "--dry-run=server", "-o", "json",
                            input=configmap("probe"), check=False)
        return r.returncode == 0 and json.loads(r.stdout)["metadata"].get("labels", {}).get("mutated") == "yes"
    eventually(mutated, timeout=30, what="the mutating webhook in effect")
    other = unique("e2e-other")
    cluster.kubectl("create", "namespace", other)
    try:
        name = unique("cm")
        cluster.kubectl("-n", other, "create", "-f", "-", input=configmap(name))
        got = cluster.kubectl_json("-n", other, "get", "configmap", name)
        assert "mutated" not in got["metadata"].get("labels", {}), got
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


@pytest.fixture
def policies(cluster):
    created: list[tuple[str, str]] = []

    def create(kind: str, name: str, spec: dict) -> str:
        doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
               "spec": spec}
        cluster.kubectl("create", "-f", "-", input=json.dumps(doc))
        plural = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies",
                  "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}[kind]
        created.append((plural, name))
        return name

    yield create
    for plural, name in reversed(created):
        cluster.kubectl("delete", plural, name, "--ignore-not-found", check=False)


def test_validating_admission_policy_denies_and_warns(cluster, k, policies, selector_value):
    # The parameters exist before the binding that needs them.
    k("create", "configmap", "limits", "--from-literal=banned=forbidden")
    match = {"namespaceSelector": {"matchLabels": {LABEL: selector_value}},
             "resourceRules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                "resources": ["configmaps"]}]}
    policy = policies("ValidatingAdmissionPolicy", unique("no-banned"), {
        "failurePolicy": "Fail",
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": match,
        "variables": [{"name": "value", "expression": "has(object.data) && 'k' in object.data ? object.data.k : ''"}],
        "validations": [{"expression": "variables.value != params.data.banned",
                         "messageExpression": "'the value ' + variables.value + ' is banned'", "reason": "Forbidden"}],
    })
    binding = policies("ValidatingAdmissionPolicyBinding", unique("no-banned-binding"), {
        "policyName": policy, "validationActions": ["Deny"],
        "paramRef": {"name": "limits", "namespace": k.namespace, "parameterNotFoundAction": "Deny"},
    })
    warn_policy = policies("ValidatingAdmissionPolicy", unique("short-names"), {
        "matchConstraints": match,
        "validations": [{"expression": "object.metadata.name.size() < 20", "message": "names should be short"}],
    })
    warn_binding = policies("ValidatingAdmissionPolicyBinding", unique("short-names-binding"), {
        "policyName": warn_policy, "validationActions": ["Warn"]})

    def denied():
        r = k("create", "configmap", unique("c"), "--from-literal=k=forbidden", check=False)
        return r.returncode != 0 and r
    r = eventually(denied, timeout=30, what="the policy in effect")
    assert (f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
            "the value forbidden is banned") in r.stderr, r.stderr
    assert "is forbidden" in r.stderr, r.stderr
    k("create", "configmap", unique("c"), "--from-literal=k=fine")
    long_name = unique("a-rather-long-configmap-name")
    r = k("create", "configmap", long_name, "--from-literal=k=fine")
    assert (f"Validation failed for ValidatingAdmissionPolicy '{warn_policy}' with binding '{warn_binding}': "
            "names should be short") in r.stderr, r.stderr
    table = cluster.kubectl("get", "validatingadmissionpolicybindings", binding).stdout
    assert table.split("\n")[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"], table


AGENT_NODE = "e2e-webhooks"


@pytest.fixture(scope="module")
def agent_cluster():
    """A cluster with a node agent, for webhooks on CONNECTs that reach a container."""
    with running_agent_cluster(AGENT_NODE) as c:
        eventually(lambda: c.kubectl("get", "node", AGENT_NODE, check=False).returncode == 0,
                   what="node registered")
        yield c


@pytest.fixture(scope="module")
def agent_webhook(agent_cluster):
    with webhook_server(agent_cluster) as server:
        yield server


def running_pod(c, ns: str, name: str) -> dict | None:
    pod = c.kubectl_json("-n", ns, "get", "pod", name)
    statuses = pod.get("status", {}).get("containerStatuses", [])
    ok = statuses and all("running" in s["state"] for s in statuses)
    return pod if ok else None


def test_mutating_webhook_rewrites_an_exec(agent_cluster, agent_webhook, kubectl_version):
    c = agent_cluster
    ns, value = unique("whexec"), unique("wh")
    c.kubectl("create", "namespace", ns)
    c.kubectl("label", "namespace", ns, f"{LABEL}={value}")
    configs = Configs(c)
    try:
        rules = [{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec"]}]
        configs.create("MutatingWebhookConfiguration", [
            hook("rewrite-exec.skiff.test", agent_webhook.url + "/rewrite-exec", agent_webhook.ca_bundle, value,
                 rules=rules)])
        configs.create("ValidatingWebhookConfiguration", [
            hook("observe-exec.skiff.test", agent_webhook.url + "/observe-exec", agent_webhook.ca_bundle, value,
                 rules=rules)])
        containers = [{"name": who, "image": "busybox", "imagePullPolicy": "IfNotPresent",
                       "command": ["sleep", "3600"], "env": [{"name": "WHO", "value": who}]}
                      for who in ("first", "second")]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell"},
               "spec": {"nodeName": AGENT_NODE, "terminationGracePeriodSeconds": 1, "containers": containers}}
        c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(pod))
        eventually(lambda: running_pod(c, ns, "shell"), timeout=60, what="pod running")

        def rewritten():
            r = c.kubectl("-n", ns, "exec", "shell", "-c", "first", "--", "echo", "as sent", check=False,
                          version=kubectl_version)
            return r if "rewritten in" in r.stdout else None

        # The webhook's command ran, in the container it chose.
        r = eventually(rewritten, timeout=30, what="the exec rewritten by the webhook")
        assert r.stdout.strip() == "rewritten in second", (r.stdout, r.stderr)
        mutating = next(x["review"]["request"] for x in reversed(agent_webhook.reviews)
                        if x["path"].startswith("/rewrite-exec"))
        assert mutating["object"]["command"] == ["echo", "as sent"], mutating["object"]
        # The validating webhook saw the options as the mutating one left them.
        validating = next(x["review"]["request"] for x in reversed(agent_webhook.reviews)
                          if x["path"].startswith("/observe-exec"))
        assert validating["object"]["command"] == EXEC_REWRITE, validating["object"]
        assert validating["object"]["container"] == "second", validating["object"]
    finally:
        configs.delete_all()
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
