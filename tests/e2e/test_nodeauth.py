"""Component identities, the Node authorizer and NodeRestriction end to end. One `skiff server`
with its agent, whose in-process components (scheduler, controller manager, agent, service proxy,
cluster DNS) each use their own client certificate: a Deployment's pods are scheduled, run with a
Secret volume the agent may read, and a Service in front of them answers by DNS name. Then, with a
node client certificate issued from the cluster CA by `openssl` (as an administrator would issue
one), kubectl 1.32 and 1.20 are refused what is not the node's own: Secrets its pods do not
reference, other Nodes, pods that are not mirror pods, restricted labels, pod lists without the
`spec.nodeName=<node>` field selector, pods and VolumeAttachments of another node.

The refusals come from the Node authorizer (which denies node users outright what upstream's
Node+RBAC chain would deny them) and NodeRestriction, so they hold whether or not RBAC follows in
the chain."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import KUBECTL, Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-nodeauth"
OTHER_NODE = "e2e-nodeauth-other"


@pytest.fixture(scope="module")
def env():
    with running_agent_cluster(NODE) as c:
        ns = unique("nodeauth")
        c.kubectl("create", "namespace", ns)
        c.kubectl("-n", ns, "create", "secret", "generic", "mounted", "--from-literal=page=from-the-secret")
        c.kubectl("-n", ns, "create", "secret", "generic", "unrelated", "--from-literal=k=v")
        apply(c, ns, deployment())
        apply(c, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        apply(c, ns, client_pod())
        apply(c, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": OTHER_NODE}})
        # Bound to the other node, which has no agent: it stays Pending.
        apply(c, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"},
                      "spec": {"nodeName": OTHER_NODE, "containers": [{"name": "main", "image": "busybox"}]}})
        for name, node in (("va-own", NODE), ("va-other", OTHER_NODE)):
            apply(c, None, {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": name},
                            "spec": {"attacher": "e2e.example.com", "nodeName": node,
                                     "source": {"persistentVolumeName": f"pv-{name}"}}})
        yield c, ns, node_kubeconfig(c)
        # No new replicas while the cluster's teardown waits for every container to go.
        c.kubectl("-n", ns, "delete", "deployment", "web", "--wait=false", check=False)


def apply(c: Cluster, ns: str | None, obj: dict) -> None:
    c.kubectl(*(["-n", ns] if ns else []), "apply", "-f", "-", input=json.dumps(obj))


def deployment() -> dict:
    """Two busybox httpd replicas (scheduled, not bound by hand) serving a page from a Secret."""
    container = {"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
                 "volumeMounts": [{"name": "page", "mountPath": "/www"}]}
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container],
                         "volumes": [{"name": "page", "secret": {"secretName": "mounted",
                                                                 "items": [{"key": "page", "path": "index.html"}]}}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}


def client_pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", "exec sleep 3600"]}]}}


def node_kubeconfig(c: Cluster) -> Path:
    """A kubeconfig for `system:node:<NODE>` in `system:nodes`, its certificate signed by the
    cluster CA with openssl."""
    tls = c.data_dir / "server" / "tls"
    d = c.workdir / "node-creds"
    d.mkdir(exist_ok=True)
    key, csr, crt = d / "node.key", d / "node.csr", d / "node.crt"
    ext = d / "ext.cnf"
    ext.write_text("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    run("openssl", "req", "-new", "-key", str(key), "-subj", f"/O=system:nodes/CN=system:node:{NODE}", "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(tls / "ca.crt"), "-CAkey", str(tls / "ca.key"),
        "-CAserial", str(d / "ca.srl"), "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt))
    server = c.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout.strip()
    kubeconfig = d / "kubeconfig.yaml"
    k = [KUBECTL["1.32"], "--kubeconfig", str(kubeconfig)]
    run(*k, "config", "set-cluster", "skiff", f"--server={server}", f"--certificate-authority={tls / 'ca.crt'}",
        "--embed-certs=true")
    run(*k, "config", "set-credentials", "node", f"--client-certificate={crt}", f"--client-key={key}",
        "--embed-certs=true")
    run(*k, "config", "set-context", "node", "--cluster=skiff", "--user=node")
    run(*k, "config", "use-context", "node")
    return kubeconfig


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def as_node(kubeconfig: Path, version: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    cmd = [KUBECTL[version], "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig.parent / f"cache-{version}"),
           *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)


def forbidden(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, f"expected a refusal, got: {r.stdout}"
    assert "(Forbidden)" in r.stderr, r.stderr
    return r.stderr


def running_pods(c: Cluster, ns: str) -> list[dict]:
    pods = c.kubectl_json("-n", ns, "get", "pods", "-l", "app=web")["items"]
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"]


def test_components_with_their_own_identities_run_a_deployment_behind_a_service(env):
    """Scheduler, controller manager, agent, proxy and DNS all did their part."""
    c, ns, _ = env
    pods = eventually(lambda: (lambda p: p if len(p) == 2 else None)(running_pods(c, ns)), timeout=120,
                      what="both replicas running")
    assert all(p["spec"]["nodeName"] == NODE for p in pods), "bound by the scheduler"
    eventually(lambda: c.kubectl_json("-n", ns, "get", "pod", "client")["status"].get("phase") == "Running",
               timeout=120, what="client running")

    def page():
        r = c.kubectl("-n", ns, "exec", "client", "--", "sh", "-c",
                      "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80", check=False, timeout=30)
        return "from-the-secret" in r.stdout
    assert eventually(page, timeout=60, what="the Service answers by name with the Secret's page")


def test_control_plane_label_and_node_lease(env):
    """The agent's own Lease is held by the node; the control-plane label, which NodeRestriction
    forbids a node to set on itself, is set by the server (with the controller manager's
    identity); the controller manager holds its leader Lease."""
    c, _, _ = env
    lease = c.kubectl_json("-n", "kube-system", "get", "lease", "kube-controller-manager")
    assert lease["spec"].get("holderIdentity")
    node = c.kubectl_json("get", "node", NODE)
    assert node["metadata"]["labels"].get("node-role.kubernetes.io/control-plane") == "true"
    assert c.kubectl_json("-n", "kube-node-lease", "get", "lease", NODE)["spec"]["holderIdentity"] == NODE


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_reads_only_secrets_its_pods_reference(env, version):
    c, ns, kubeconfig = env
    eventually(lambda: len(running_pods(c, ns)) == 2, timeout=120, what="replicas running")
    r = as_node(kubeconfig, version, "-n", ns, "get", "secret", "mounted", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metadata"]["name"] == "mounted"
    err = forbidden(as_node(kubeconfig, version, "-n", ns, "get", "secret", "unrelated"))
    assert (f'secrets "unrelated" is forbidden: User "system:node:{NODE}" cannot get resource "secrets" '
            f'in API group "" in the namespace "{ns}": no relationship found between node \'{NODE}\' '
            "and this object") in err
    err = forbidden(as_node(kubeconfig, version, "-n", ns, "get", "secrets"))
    assert "can only get individual resources of this type" in err


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_modifies_only_its_own_node(env, version):
    _, _, kubeconfig = env
    patch = json.dumps({"metadata": {"labels": {"e2e": version}}})
    # kubectl reads the Node first, which the Node authorizer refuses.
    err = forbidden(as_node(kubeconfig, version, "patch", "node", OTHER_NODE, "-p", patch))
    assert f"node '{NODE}' cannot read '{OTHER_NODE}', only its own Node object" in err
    r = as_node(kubeconfig, version, "patch", "node", NODE, "-p", patch)
    assert r.returncode == 0, r.stderr
    restricted = json.dumps({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "x"}}})
    err = forbidden(as_node(kubeconfig, version, "patch", "node", NODE, "-p", restricted))
    assert "is not allowed to modify labels: node-restriction.kubernetes.io/pool" in err
    err = forbidden(as_node(kubeconfig, version, "get", "node", OTHER_NODE))
    assert f"node '{NODE}' cannot read '{OTHER_NODE}', only its own Node object" in err


def test_node_patch_of_another_node_is_refused_by_node_restriction(env):
    """A PATCH sent without reading first (the Python client) reaches NodeRestriction."""
    from kubernetes import client as k8s, config

    _, _, kubeconfig = env
    api = k8s.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(k8s.ApiException) as e:
        api.patch_node(OTHER_NODE, {"metadata": {"labels": {"e2e": "python"}}})
    assert e.value.status == 403
    message = json.loads(e.value.body)["message"]
    assert message == f'nodes "{OTHER_NODE}" is forbidden: node "{NODE}" is not allowed to modify node "{OTHER_NODE}"'
    assert api.patch_node(NODE, {"metadata": {"labels": {"e2e": "python"}}}).metadata.labels["e2e"] == "python"


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_creates_only_mirror_pods(env, version):
    _, ns, kubeconfig = env
    name = unique("nonmirror")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox"}]}}
    err = forbidden(as_node(kubeconfig, version, "-n", ns, "create", "-f", "-", input=json.dumps(pod)))
    assert (f'pods "{name}" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
            f'node "{NODE}" can only create mirror pods') in err


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_lists_pods_only_with_its_node_name_selector(env, version):
    c, ns, kubeconfig = env
    eventually(lambda: len(running_pods(c, ns)) == 2, timeout=120, what="replicas running")
    why = "can only list/watch pods with spec.nodeName field selector"
    err = forbidden(as_node(kubeconfig, version, "get", "pods", "-A"))
    assert (f'pods is forbidden: User "system:node:{NODE}" cannot list resource "pods" in API group "" '
            f"at the cluster scope: {why}") in err
    err = forbidden(as_node(kubeconfig, version, "-n", ns, "get", "pods"))
    assert (f'pods is forbidden: User "system:node:{NODE}" cannot list resource "pods" in API group "" '
            f'in the namespace "{ns}": {why}') in err
    err = forbidden(as_node(kubeconfig, version, "get", "pods", "-A", f"--field-selector=spec.nodeName={OTHER_NODE}"))
    assert why in err
    r = as_node(kubeconfig, version, "get", "pods", "-A", f"--field-selector=spec.nodeName={NODE}", "-o", "json")
    assert r.returncode == 0, r.stderr
    names = {p["metadata"]["name"] for p in json.loads(r.stdout)["items"] if p["metadata"]["namespace"] == ns}
    assert "client" in names and "elsewhere" not in names
    assert len([n for n in names if n.startswith("web-")]) >= 2
    r = as_node(kubeconfig, version, "-n", ns, "get", "pods", f"--field-selector=spec.nodeName={NODE}", "-o", "name")
    assert r.returncode == 0 and "pod/client" in r.stdout, r.stderr


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_gets_only_its_own_pods(env, version):
    _, ns, kubeconfig = env
    r = as_node(kubeconfig, version, "-n", ns, "get", "pod", "client", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["spec"]["nodeName"] == NODE
    err = forbidden(as_node(kubeconfig, version, "-n", ns, "get", "pod", "elsewhere"))
    assert (f'pods "elsewhere" is forbidden: User "system:node:{NODE}" cannot get resource "pods" in API group "" '
            f"in the namespace \"{ns}\": no relationship found between node '{NODE}' and this object") in err


def test_node_watch_with_its_selector_streams_its_pods(env):
    """A watch as the agent does it (Python client, `spec.nodeName=<node>`) sees the node's
    pods; without the selector it is refused before any event."""
    from kubernetes import client as k8s, config, watch

    _, ns, kubeconfig = env
    api = k8s.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    seen = set()
    for event in watch.Watch().stream(api.list_namespaced_pod, ns, field_selector=f"spec.nodeName={NODE}",
                                      timeout_seconds=2):
        seen.add(event["object"].metadata.name)
    assert "client" in seen and "elsewhere" not in seen
    with pytest.raises(k8s.ApiException) as e:
        api.list_namespaced_pod(ns, watch=False)
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"].endswith("can only list/watch pods with spec.nodeName field selector")


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_gets_only_volume_attachments_to_itself(env, version):
    _, _, kubeconfig = env
    r = as_node(kubeconfig, version, "get", "volumeattachment", "va-own", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["spec"]["nodeName"] == NODE
    err = forbidden(as_node(kubeconfig, version, "get", "volumeattachment", "va-other"))
    assert (f'volumeattachments.storage.k8s.io "va-other" is forbidden: User "system:node:{NODE}" cannot get '
            f'resource "volumeattachments" in API group "storage.k8s.io" at the cluster scope: '
            f"no relationship found between node '{NODE}' and this object") in err
    err = forbidden(as_node(kubeconfig, version, "get", "volumeattachments"))
    assert "can only get individual resources of this type" in err


def test_subject_access_review_passes_the_field_selector(env):
    """An administrator's SubjectAccessReview for the node, with `resourceAttributes.fieldSelector`
    (1.31+), gets the Node authorizer's answer for that selector."""
    c, _, _ = env

    def review(field_selector: dict | None) -> dict:
        attrs = {"verb": "list", "resource": "pods"}
        if field_selector is not None:
            attrs["fieldSelector"] = field_selector
        sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": f"system:node:{NODE}", "groups": ["system:nodes", "system:authenticated"],
                        "resourceAttributes": attrs}}
        return json.loads(c.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(sar)).stdout)["status"]

    own = {"requirements": [{"key": "spec.nodeName", "operator": "In", "values": [NODE]}]}
    assert review(own)["allowed"] is True
    assert review({"rawSelector": f"spec.nodeName={NODE}"})["allowed"] is True
    status = review({"rawSelector": f"spec.nodeName={OTHER_NODE}"})
    assert status["allowed"] is False
    assert status.get("denied") is True
    assert status["reason"] == "can only list/watch pods with spec.nodeName field selector"
    status = review(None)
    assert status["allowed"] is False and "evaluationError" not in status
    status = review({"requirements": [{"key": "spec.nodeName", "operator": "Exists"}]})
    assert status["allowed"] is False
    assert status["evaluationError"] == "spec.resourceAttributes.fieldSelector ignored due to parse error"


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_node_writes_only_its_own_csinode(env, version):
    c, _, kubeconfig = env

    def csinode(name: str) -> str:
        return json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                           "metadata": {"name": name}, "spec": {"drivers": []}})
    err = forbidden(as_node(kubeconfig, version, "create", "-f", "-", input=csinode(OTHER_NODE)))
    assert (f'csinodes.storage.k8s.io "{OTHER_NODE}" is forbidden: '
            "can only access CSINode with the same name as the requesting node") in err
    r = as_node(kubeconfig, version, "apply", "-f", "-", input=csinode(NODE))
    assert r.returncode == 0, r.stderr
    err = forbidden(as_node(kubeconfig, version, "delete", "csinode", OTHER_NODE))
    assert "can only access CSINode with the same name as the requesting node" in err
    c.kubectl("delete", "csinode", NODE, "--ignore-not-found")
