"""The built-in Ingress controller end to end: one `skiff server` with its agent, two busybox
httpd Deployments behind Services, Ingresses made with kubectl 1.32, kubectl 1.20 and the Python
client; curl on the host talks to the node address on ports 80 and 443 (`-H Host:` for HTTP,
`--resolve` for TLS so SNI carries the name).

Each httpd serves its name at `/`, `/alpha/` and `/beta/`, and a CGI script at `/cgi-bin/env`
printing the request's environment (the forwarding headers as `HTTP_X_*`). The default backend
applies to every Ingress of the class, so the test that creates one deletes it again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-ingress"
HTTPD = (
    "mkdir -p /www/alpha /www/beta /www/cgi-bin && for d in /www /www/alpha /www/beta; do echo $APP > $d/index.html; done"
    " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nenv\\n' > /www/cgi-bin/env"
    " && chmod +x /www/cgi-bin/env && exec httpd -f -p 8080 -h /www"
)


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "httpd", "image": "busybox",
                                                           "imagePullPolicy": "IfNotPresent",
                                                           "env": [{"name": "APP", "value": name}],
                                                           "command": ["sh", "-c", HTTPD]}]}}}}


def service(name: str, selector: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def apply(c: Cluster, ns: str, obj: dict) -> None:
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with running_agent_cluster(NODE) as c:
        ns = unique("ing")
        c.kubectl("create", "namespace", ns)
        for name in ("alpha", "beta"):
            apply(c, ns, deployment(name))
            apply(c, ns, service(name, name))
        apply(c, ns, service("empty", "nothing-has-this-label"))
        certs = tmp_path_factory.mktemp("certs")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(certs / "tls.key"), "-out", str(certs / "tls.crt"),
                        "-subj", "/CN=a.example", "-addext", "subjectAltName=DNS:a.example,DNS:*.wild.example"],
                       check=True, capture_output=True)
        c.kubectl("-n", ns, "create", "secret", "tls", "tls-a",
                  "--cert", str(certs / "tls.crt"), "--key", str(certs / "tls.key"))

        def ready_endpoints():
            items = c.kubectl_json("-n", ns, "get", "endpointslices")["items"]
            ready = {s["metadata"]["labels"]["kubernetes.io/service-name"] for s in items
                     if any(e.get("conditions", {}).get("ready") for e in s.get("endpoints") or [])}
            return {"alpha", "beta"} <= ready

        eventually(ready_endpoints, timeout=120, what="both Deployments ready")
        yield c, ns, certs
        # The cluster's teardown deletes pods; their Deployments must not bring them back.
        c.kubectl("-n", ns, "delete", "deployments", "--all", "--wait=false", check=False)


def curl(c: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True, text=True)


def get(c: Cluster, host: str, path: str = "/") -> tuple[int, str]:
    """(status, body) of an HTTP request for `host` to the node's port 80."""
    r = curl(c, "-H", f"Host: {host}", "-w", "\n%{http_code}", f"http://{c.netns.node_ip}{path}")
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body.strip()


def https(c: Cluster, host: str, *args: str, path: str = "/") -> subprocess.CompletedProcess:
    return curl(c, "--resolve", f"{host}:443:{c.netns.node_ip}", *args, f"https://{host}{path}")


def served_names(c: Cluster, host: str) -> str:
    """The subject alternative names of the certificate the HTTPS port serves for SNI `host`."""
    s = subprocess.run(["openssl", "s_client", "-connect", f"{c.netns.node_ip}:443", "-servername", host],
                       input="", capture_output=True, text=True, timeout=20)
    x = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                       input=s.stdout, capture_output=True, text=True)
    return x.stdout


def warnings(c: Cluster, ns: str, ingress: str) -> list[str]:
    items = c.kubectl_json("-n", ns, "get", "events",
                           "--field-selector", f"involvedObject.kind=Ingress,involvedObject.name={ingress}")["items"]
    return [f"{e['type']} {e['reason']}: {e['message']}" for e in items]


def test_ingress_class_skiff_is_the_default(env):
    c, _, _ = env
    from kubernetes import client

    api = client.NetworkingV1Api(c.python_client())
    cls = eventually(lambda: api.read_ingress_class("skiff"), what="IngressClass skiff")
    assert cls.spec.controller == "skiff.io/ingress"
    assert cls.metadata.annotations["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_routes_by_host(env):
    """kubectl 1.32's `create ingress`, ports by name and by number."""
    c, ns, _ = env
    c.kubectl("-n", ns, "create", "ingress", "hosts", "--class=skiff",
              "--rule=alpha.example/*=alpha:http", "--rule=beta.example/*=beta:80")
    assert eventually(lambda: get(c, "alpha.example") == (200, "alpha"), what="alpha by host")
    assert get(c, "beta.example") == (200, "beta")
    assert get(c, "BETA.example:80", "/beta/") == (200, "beta")


def test_routes_by_path_prefix_and_exact(env):
    """kubectl 1.20's `create ingress` (no class: the default class makes it ours); `*` makes a
    Prefix path, else Exact."""
    c, ns, _ = env
    c.kubectl("-n", ns, "create", "ingress", "paths",
              "--rule=paths.example/alpha*=alpha:80", "--rule=paths.example/beta/index.html=beta:80",
              version="1.20")
    assert eventually(lambda: get(c, "paths.example", "/alpha/") == (200, "alpha"), what="alpha by path")
    assert get(c, "paths.example", "/beta/index.html") == (200, "beta")
    # Prefix matches whole path elements; Exact only the exact path.
    assert get(c, "paths.example", "/alphabet/")[0] == 404
    assert get(c, "paths.example", "/beta/")[0] == 404
    assert get(c, "nothing.example", "/alpha/")[0] == 404


def test_status_load_balancer_is_the_node_address(env):
    c, ns, _ = env
    from kubernetes import client

    api = client.NetworkingV1Api(c.python_client())

    def ips():
        lb = api.read_namespaced_ingress_status("hosts", ns).status.load_balancer
        return [i.ip for i in lb.ingress or []] if lb else []

    assert eventually(ips, what="status.loadBalancer") == [c.netns.node_ip]


def test_tls_by_sni_with_http2(env):
    """An Ingress made with the Python client; the Secret's certificate verifies against itself,
    over HTTP/2 by ALPN and over HTTP/1.1."""
    c, ns, certs = env
    from kubernetes import client

    api = client.NetworkingV1Api(c.python_client())
    backend = client.V1IngressBackend(service=client.V1IngressServiceBackend(
        name="alpha", port=client.V1ServiceBackendPort(number=80)))
    body = client.V1Ingress(
        metadata=client.V1ObjectMeta(name="tls"),
        spec=client.V1IngressSpec(
            ingress_class_name="skiff",
            tls=[client.V1IngressTLS(hosts=["a.example", "*.wild.example"], secret_name="tls-a")],
            rules=[client.V1IngressRule(host=h, http=client.V1HTTPIngressRuleValue(paths=[client.V1HTTPIngressPath(
                path="/", path_type="Prefix", backend=backend)])) for h in ("a.example", "*.wild.example")]))
    api.create_namespaced_ingress(ns, body)
    ca = str(certs / "tls.crt")

    def fetch(host, *args):
        r = https(c, host, "--cacert", ca, "-w", "\n%{http_version}", *args)
        # The body ends in a newline of its own: drop the empty line before the version.
        return [line for line in r.stdout.splitlines() if line] if r.returncode == 0 else None

    assert eventually(lambda: fetch("a.example", "--http2") == ["alpha", "2"], what="TLS over h2")
    assert fetch("a.example", "--http1.1") == ["alpha", "1.1"]
    assert (fetch("x.wild.example") or [""])[0] == "alpha"
    # One label only: a.b.wild.example gets the default certificate, which does not verify.
    assert fetch("a.b.wild.example") is None


def test_forwarding_headers(env):
    c, _, _ = env
    r = curl(c, "-H", "Host: alpha.example", "-H", "X-Forwarded-For: 198.51.100.7",
             f"http://{c.netns.node_ip}/cgi-bin/env")
    env_lines = set(r.stdout.splitlines())
    host_ip = c.netns.host_ip
    for line in (f"HTTP_X_FORWARDED_FOR=198.51.100.7, {host_ip}", f"HTTP_X_REAL_IP={host_ip}",
                 "HTTP_X_FORWARDED_PROTO=http", "HTTP_X_FORWARDED_HOST=alpha.example", "HTTP_X_FORWARDED_PORT=80"):
        assert line in env_lines, r.stdout
    r = https(c, "a.example", "-k", path="/cgi-bin/env")
    assert "HTTP_X_FORWARDED_PROTO=https" in r.stdout.splitlines()
    assert "HTTP_X_FORWARDED_PORT=443" in r.stdout.splitlines()


def test_missing_secret_serves_the_default_certificate_with_a_warning(env):
    c, ns, _ = env
    c.kubectl("-n", ns, "create", "ingress", "nosecret", "--class=skiff", "--rule=c.example/*=beta:80,tls=missing")
    ok = lambda: https(c, "c.example", "-k").stdout.strip() == "beta"  # noqa: E731
    assert eventually(ok, what="c.example over TLS")
    names = served_names(c, "c.example")
    assert "skiff-ingress.invalid" in names and "a.example" not in names
    want = f'Warning SecretNotFound: secret "{ns}/missing" not found; serving the default certificate'
    assert eventually(lambda: want in warnings(c, ns, "nosecret"), what="SecretNotFound event")


def test_no_ready_endpoints_is_503_and_a_missing_service_warns(env):
    c, ns, _ = env
    c.kubectl("-n", ns, "create", "ingress", "broken", "--class=skiff",
              "--rule=empty.example/*=empty:80", "--rule=ghost.example/*=ghost:80", "--rule=ok.example/*=alpha:80")
    assert eventually(lambda: get(c, "empty.example")[0] == 503, what="503 without endpoints")
    assert get(c, "ghost.example")[0] == 503
    # The rest of the Ingress is served.
    assert get(c, "ok.example") == (200, "alpha")
    want = f'Warning ServiceNotFound: service "{ns}/ghost" not found'
    assert eventually(lambda: want in warnings(c, ns, "broken"), what="ServiceNotFound event")


def test_default_backend_then_404_again(env):
    c, ns, _ = env
    assert get(c, "unmatched.example")[0] == 404
    c.kubectl("-n", ns, "create", "ingress", "fallback", "--class=skiff", "--default-backend=beta:80")
    assert eventually(lambda: get(c, "unmatched.example") == (200, "beta"), what="default backend")
    # A host with rules but no matching path falls back too.
    assert get(c, "paths.example", "/beta/") == (200, "beta")
    c.kubectl("-n", ns, "delete", "ingress", "fallback")
    assert eventually(lambda: get(c, "unmatched.example")[0] == 404, what="404 after deletion")


def test_updates_apply_without_restarting_listeners(env):
    """An edited backend takes effect on the running listeners."""
    c, ns, _ = env
    patch = [{"op": "replace", "path": "/spec/rules/0/http/paths/0/backend/service/name", "value": "beta"}]
    c.kubectl("-n", ns, "patch", "ingress", "hosts", "--type=json", "-p", json.dumps(patch))
    assert eventually(lambda: get(c, "alpha.example") == (200, "beta"), what="edited backend")
    log = Path(c.log_path).read_text(errors="replace")
    assert log.count("ingress controller listening") == 1
