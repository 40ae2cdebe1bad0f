"""Component identities, the Node authorizer and NodeRestriction end to end. One `skiff server`
with its agent, whose in-process components (scheduler, controller manager, agent, service proxy,
cluster DNS) each use their own client certificate: a Deployment's pods are scheduled, run with a
Secret volume the agent may read, and a Service in front of them answers by DNS name. Then, with a
node client certificate issued from the cluster CA by `openssl` (as an administrator would issue
one), kubectl 1.32 and 1.20 are refused what is not the node's own: Secrets its pods do not
reference, other Nodes, pods that are not mirror pods, restricted labels.

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
