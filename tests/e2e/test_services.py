"""Service networking end to end: the service proxy (cluster IPs, node ports, LoadBalancer
addresses, ClientIP affinity, hairpin, repair of a flushed table), the cluster DNS (service,
headless, SRV, ExternalName records) and what the agent gives pods (resolv.conf, Service
environment variables). One `skiff server` with its agent; busybox httpd pods serve a page
naming the pod, busybox nc (its wget crashes resolving even addresses) and nslookup are the
clients. Services with a selector get their EndpointSlices from the controller manager; the
selector-less ones get hand-made slices (a non-controller managed-by label), as a user or another
controller would write them.

busybox's nslookup (1.35) is no stub resolver: a name with a dot is asked as is, a name without
one only with each search suffix, and any NXDOMAIN among those makes it exit 1, so it fails on
short names against CoreDNS too. Names are therefore resolved through libc (busybox nc's
getaddrinfo, the search list and ndots as any application sees them), and nslookup is used for
fully qualified names and record types."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-svc"
CLUSTER_DNS = "10.43.0.10"


@pytest.fixture(scope="module")
def env():
    with running_agent_cluster(NODE) as c:
        ns = unique("svc")
        c.kubectl("create", "namespace", ns)
        for name in ("web-a", "web-b"):
            apply(c, ns, pod(name, "mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"))
        # Services before the client pod, so it gets their variables.
        apply(c, ns, service("web", {"selector": {"app": "web"},
                                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}))
        apply(c, ns, pod("client", "exec sleep 3600", app="client"))
        ips = {}
        for name in ("web-a", "web-b", "client"):
            ips[name] = eventually(lambda n=name: pod_ip(c, ns, n), timeout=120, what=f"{name} running")
        yield c, ns, ips


def apply(c: Cluster, ns: str, obj: dict) -> None:
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj))


def pod(name: str, command: str, app: str = "web") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "hostname": name,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", command]}]}}


def service(name: str, spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(service_name: str, ips: list[str], hostnames: list[str] | None = None,
                   port_name: str = "http") -> dict:
    endpoints = []
    for i, ip in enumerate(ips):
        ep = {"addresses": [ip], "nodeName": NODE, "conditions": {"ready": True}}
        if hostnames:
            ep["hostname"] = hostnames[i]
        endpoints.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-manual",
                         "labels": {"kubernetes.io/service-name": service_name,
                                    "endpointslice.kubernetes.io/managed-by": "e2e.skiff.io"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}]}


def pod_ip(c: Cluster, ns: str, name: str) -> str | None:
    p = c.kubectl_json("-n", ns, "get", "pod", name)
    if p.get("status", {}).get("phase") != "Running":
        return None
    return p["status"].get("podIP")


def in_pod(c: Cluster, ns: str, name: str, *cmd: str) -> subprocess.CompletedProcess:
    return c.kubectl("-n", ns, "exec", name, "--", *cmd, check=False, timeout=30)


HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}"


def body(r: subprocess.CompletedProcess) -> str | None:
    """The page's last line (the pod's name) from an HTTP exchange through nc."""
    if r.returncode != 0 or "200 OK" not in r.stdout:
        return None
    return r.stdout.strip().splitlines()[-1].strip()


def fetch(c: Cluster, ns: str, ip: str, port: int = 80, pod_name: str = "client") -> str | None:
    """The page served at `ip` (an address or a name, resolved by libc in the pod)."""
    return body(in_pod(c, ns, pod_name, "sh", "-c", HTTP_GET.format(ip=ip, port=port)))


def cluster_ip(c: Cluster, ns: str, name: str) -> str:
    return c.kubectl_json("-n", ns, "get", "service", name)["spec"]["clusterIP"]


def host_fetch(c: Cluster, ip: str, port: int) -> str | None:
    script = "busybox " + HTTP_GET.format(ip=ip, port=port).replace("| nc", "| busybox nc")
    return body(c.netns.exec("sh", "-c", script, check=False))


def test_cluster_ip_from_a_pod_by_address(env):
    c, ns, _ = env
    ip = cluster_ip(c, ns, "web")
    assert eventually(lambda: fetch(c, ns, ip) in ("web-a", "web-b"), what="cluster IP answers")


@pytest.mark.parametrize("host", ["web", "web.{ns}", "web.{ns}.svc", "web.{ns}.svc.cluster.local"])
def test_cluster_ip_by_dns_name(env, host):
    """An application in the pod reaches the Service by name (the short forms through the search
    list), through the cluster IP to an endpoint."""
    c, ns, _ = env
    name = host.format(ns=ns)
    assert eventually(lambda: fetch(c, ns, name) in ("web-a", "web-b"), what=f"{name} answers")


def test_fully_qualified_name_is_the_cluster_ip(env):
    """nslookup of the FQDN gives exactly the cluster IP; AAAA is an empty NOERROR answer
    (NODATA), not NXDOMAIN, as CoreDNS answers in a single-stack IPv4 cluster."""
    c, ns, _ = env
    ip = cluster_ip(c, ns, "web")
    fqdn = f"web.{ns}.svc.cluster.local"

    def resolves():
        r = in_pod(c, ns, "client", "nslookup", "-type=A", fqdn)
        return r.returncode == 0 and f"Address: {ip}" in r.stdout

    assert eventually(resolves, what=f"{fqdn} resolves to {ip}")
    r = in_pod(c, ns, "client", "nslookup", "-type=AAAA", fqdn)
    assert "NXDOMAIN" not in r.stdout + r.stderr


def test_short_name_with_busybox_nslookup(env):
    """busybox nslookup asks each search suffix; the namespace's one answers with the cluster IP,
    the others are NXDOMAIN (as with CoreDNS)."""
    c, ns, _ = env
    ip = cluster_ip(c, ns, "web")

    def resolves():
        out = in_pod(c, ns, "client", "nslookup", "web").stdout
        return f"Name:\tweb.{ns}.svc.cluster.local\nAddress: {ip}" in out and out

    out = eventually(resolves, what="web through the search list")
    assert "can't find web.svc.cluster.local: NXDOMAIN" in out


def test_kube_dns_has_one_source_of_endpoints(env):
    """kube-system/kube-dns has no selector, so the controller manager leaves it alone: its only
    EndpointSlices are the DNS servers' own, and their Endpoints object (skip-mirror) is not
    mirrored into more."""
    c, _, _ = env
    svc = c.kubectl_json("-n", "kube-system", "get", "service", "kube-dns")
    assert not svc["spec"].get("selector")
    assert svc["spec"]["clusterIP"] == CLUSTER_DNS

    def slices():
        items = c.kubectl_json("-n", "kube-system", "get", "endpointslices",
                               "-l", "kubernetes.io/service-name=kube-dns")["items"]
        return items

    items = eventually(slices, what="kube-dns slices")
    assert [s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] for s in items] == ["skiff-dns"]
    assert [e["addresses"] for e in items[0]["endpoints"]] == [[c.netns.node_ip]]


def test_load_spreads_over_both_endpoints(env):
    c, ns, _ = env
    ip = cluster_ip(c, ns, "web")
    seen: set[str] = set()

    def both():
        seen.add(fetch(c, ns, ip) or "")
        return {"web-a", "web-b"} <= seen

    assert eventually(both, timeout=90, what=f"both endpoints answer (seen {seen})")


def test_client_ip_affinity_sticks(env):
    c, ns, _ = env
    apply(c, ns, service("sticky", {"selector": {"app": "web"},
                                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                                     "sessionAffinity": "ClientIP",
                                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}))
    ip = cluster_ip(c, ns, "sticky")
    first = eventually(lambda: fetch(c, ns, ip), what="sticky answers")
    answers = {fetch(c, ns, ip) for _ in range(8)}
    assert answers == {first}


def test_node_port_from_the_host(env):
    c, ns, ips = env
    apply(c, ns, service("np", {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}))
    apply(c, ns, endpoint_slice("np", [ips["web-a"]]))
    port = c.kubectl_json("-n", ns, "get", "service", "np")["spec"]["ports"][0]["nodePort"]
    assert eventually(lambda: host_fetch(c, c.netns.node_ip, port) == "web-a", what="node port")
    assert eventually(lambda: host_fetch(c, "127.0.0.1", port) == "web-a", what="node port on 127.0.0.1")


def test_load_balancer_address_from_the_host(env):
    c, ns, ips = env
    apply(c, ns, service("lb", {"type": "LoadBalancer", "ports": [{"name": "http", "port": 8081, "targetPort": 8080}]}))
    apply(c, ns, endpoint_slice("lb", [ips["web-b"]]))

    def ingress():
        s = c.kubectl_json("-n", ns, "get", "service", "lb")
        return [i.get("ip") for i in s.get("status", {}).get("loadBalancer", {}).get("ingress", [])]

    assert eventually(ingress, what="LoadBalancer ingress") == [c.netns.node_ip]
    assert eventually(lambda: host_fetch(c, c.netns.node_ip, 8081) == "web-b", what="LB address")


def test_service_without_endpoints_is_rejected(env):
    c, ns, _ = env
    apply(c, ns, service("empty", {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}))
    ip = cluster_ip(c, ns, "empty")

    def refused():
        r = in_pod(c, ns, "client", "sh", "-c", HTTP_GET.format(ip=ip, port=80))
        return r.returncode != 0 and "refused" in (r.stdout + r.stderr).lower()

    assert eventually(refused, what="ICMP reject")


def test_a_pod_reaches_its_own_service(env):
    c, ns, ips = env
    apply(c, ns, service("self", {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}))
    apply(c, ns, endpoint_slice("self", [ips["web-a"]]))
    ip = cluster_ip(c, ns, "self")
    assert eventually(lambda: fetch(c, ns, ip, pod_name="web-a") == "web-a", what="hairpin")


def test_headless_per_pod_records_and_srv(env):
    c, ns, ips = env
    apply(c, ns, service("db", {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}))
    apply(c, ns, endpoint_slice("db", [ips["web-a"], ips["web-b"]], hostnames=["db-0", "db-1"]))

    def lookup(*args):
        r = in_pod(c, ns, "client", "nslookup", *args)
        return r.stdout if r.returncode == 0 else ""

    assert eventually(lambda: ips["web-a"] in lookup(f"db-0.db.{ns}.svc.cluster.local"), what="db-0 record")
    out = eventually(lambda: lookup(f"db.{ns}.svc.cluster.local"), what="headless records")
    assert ips["web-a"] in out and ips["web-b"] in out
    srv = eventually(lambda: lookup("-type=SRV", f"_http._tcp.web.{ns}.svc.cluster.local"), what="SRV")
    assert f"web.{ns}.svc.cluster.local" in srv and "80" in srv


def test_external_name_is_a_cname(env):
    c, ns, _ = env
    apply(c, ns, service("ext", {"type": "ExternalName", "externalName": "example.com"}))

    def cname():
        r = in_pod(c, ns, "client", "nslookup", "-type=CNAME", f"ext.{ns}.svc.cluster.local")
        return "example.com" in r.stdout

    assert eventually(cname, what="CNAME")


def test_unknown_names_are_nxdomain(env):
    c, ns, _ = env
    r = in_pod(c, ns, "client", "nslookup", f"nope.{ns}.svc.cluster.local")
    assert r.returncode != 0
    assert "NXDOMAIN" in r.stdout + r.stderr


def test_resolv_conf_and_service_variables(env):
    c, ns, _ = env
    conf = in_pod(c, ns, "client", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {CLUSTER_DNS}" in conf
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in conf
    assert "options ndots:5" in conf
    environ = in_pod(c, ns, "client", "env").stdout.splitlines()
    ip = cluster_ip(c, ns, "web")
    for line in (f"WEB_SERVICE_HOST={ip}", "WEB_SERVICE_PORT=80", "WEB_SERVICE_PORT_HTTP=80",
                 f"WEB_PORT=tcp://{ip}:80", f"WEB_PORT_80_TCP=tcp://{ip}:80", "WEB_PORT_80_TCP_PROTO=tcp",
                 "WEB_PORT_80_TCP_PORT=80", f"WEB_PORT_80_TCP_ADDR={ip}", "KUBERNETES_SERVICE_PORT=443"):
        assert line in environ


def repairs_logged(c: Cluster) -> int:
    """The proxy's repair counter as of its last warning (0 without one)."""
    lines = [l for l in c.log_path.read_text(errors="replace").splitlines() if "reprogramming" in l and "WARN" in l]
    if not lines:
        return 0
    return int(lines[-1].split("repairs=")[1].split()[0])


def test_a_flushed_table_is_repaired(env):
    c, ns, _ = env
    ip = cluster_ip(c, ns, "web")
    assert eventually(lambda: fetch(c, ns, ip) is not None, what="cluster IP before")
    c.netns.exec("nft", "flush", "table", "ip", "skiff-proxy")
    assert eventually(lambda: repairs_logged(c) == 1, timeout=30, what="repair logged and counted")
    assert eventually(lambda: fetch(c, ns, ip) in ("web-a", "web-b"), what="cluster IP after")
    c.netns.exec("nft", "delete", "table", "ip", "skiff-proxy")
    assert eventually(lambda: repairs_logged(c) == 2, timeout=30, what="second repair logged and counted")
    assert eventually(lambda: c.netns.exec("nft", "list", "table", "ip", "skiff-proxy", check=False).returncode == 0,
                      timeout=30, what="table recreated")
    assert eventually(lambda: fetch(c, ns, ip) in ("web-a", "web-b"), what="cluster IP after delete")
