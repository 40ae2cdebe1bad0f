"""Service networking loose ends (issue 7): the `kube-system/kube-dns` Endpoints kept equal to the
DNS servers' EndpointSlices, those slices owned by their Node (the garbage collector removes the
slice of a removed node) and published again when deleted, the bad inputs of Services (a
selector matching nothing, a node port already taken, an ExternalName that is no DNS name), and
the added latency of a ClusterIP hop against the pod's address, measured from the node's network
namespace to a busybox `nc` echo server and printed as one JSON line (BENCHMARKS.md).

One `skiff server` with its agent for the module; busybox pods."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-svcfix"
GHOST = "e2e-svcfix-ghost"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


@pytest.fixture(scope="module")
def env():
    with running_agent_cluster(NODE) as c:
        ns = unique("svcfix")
        c.kubectl("create", "namespace", ns)
        apply(c, ns, pod("echo", "exec nc -ll -p 8080 -e cat", app="echo"))
        apply(c, ns, pod("client", "exec sleep 3600", app="client"))
        apply(c, ns, service("echo", {"selector": {"app": "echo"},
                                      "ports": [{"name": "tcp", "port": 80, "targetPort": 8080}]}))
        ips = {}
        for name in ("echo", "client"):
            ips[name] = eventually(lambda n=name: pod_ip(c, ns, n), timeout=120, what=f"{name} running")
        yield c, ns, ips


def apply(c: Cluster, ns: str, obj: dict) -> None:
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj))


def pod(name: str, command: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", command]}]}}


def service(name: str, spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def pod_ip(c: Cluster, ns: str, name: str) -> str | None:
    p = c.kubectl_json("-n", ns, "get", "pod", name)
    if p.get("status", {}).get("phase") != "Running":
        return None
    return p["status"].get("podIP")


def cluster_ip(c: Cluster, ns: str, name: str) -> str:
    return c.kubectl_json("-n", ns, "get", "service", name)["spec"]["clusterIP"]


def kube_dns_endpoints(c: Cluster) -> dict | None:
    r = c.kubectl("-n", "kube-system", "get", "endpoints", "kube-dns", "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def addresses(ep: dict | None, key: str = "addresses") -> list[str]:
    return [a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get(key) or []]


def dns_slices(c: Cluster) -> list[dict]:
    return c.kubectl_json("-n", "kube-system", "get", "endpointslices",
                          "-l", "kubernetes.io/service-name=kube-dns")["items"]


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_kube_dns_has_endpoints_as_well_as_slices(env, version):
    """`kubectl get endpoints -n kube-system kube-dns` shows the DNS server's address on both
    ports; the object is marked so the mirroring controller makes no second set of slices."""
    c, _, _ = env
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")
    ep = eventually(lambda: (e := kube_dns_endpoints(c)) and addresses(e) == [c.netns.node_ip] and e,
                    what="kube-dns endpoints")
    assert ep["metadata"]["labels"][SKIP_MIRROR] == "true"
    ports = sorted((p["name"], p["port"], p["protocol"]) for p in ep["subsets"][0]["ports"])
    assert ports == [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert ep["subsets"][0]["addresses"][0]["nodeName"] == NODE
    table = c.kubectl("-n", "kube-system", "get", "endpoints", "kube-dns", version=version).stdout
    assert f"{c.netns.node_ip}:53" in table, table
    assert [s["metadata"]["labels"][MANAGED_BY] for s in dns_slices(c)] == ["skiff-dns"]


def test_dns_slice_is_owned_by_its_node(env):
    c, _, _ = env
    uid = c.kubectl_json("get", "node", NODE)["metadata"]["uid"]
    slices = eventually(lambda: dns_slices(c), what="kube-dns slice")
    assert slices[0]["metadata"]["name"] == f"kube-dns-{NODE}"
    refs = slices[0]["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [("Node", NODE, uid)]


def test_slice_of_a_removed_node_is_collected(env):
    """A DNS server's slice on another node (not ready, so no traffic goes there) appears in the
    Endpoints; deleting that Node makes the garbage collector delete the slice, and the Endpoints
    lose the address."""
    c, _, _ = env
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                   "metadata": {"name": GHOST}}))
    uid = c.kubectl_json("get", "node", GHOST)["metadata"]["uid"]
    ghost_ip = "10.213.255.77"
    c.kubectl("-n", "kube-system", "apply", "-f", "-", input=json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"kube-dns-{GHOST}",
                     "labels": {"kubernetes.io/service-name": "kube-dns", MANAGED_BY: "skiff-dns",
                                "k8s-app": "kube-dns"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": GHOST, "uid": uid}]},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ghost_ip], "nodeName": GHOST,
                       "conditions": {"ready": False, "serving": False, "terminating": False}}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}))
    eventually(lambda: addresses(kube_dns_endpoints(c), "notReadyAddresses") == [ghost_ip],
               what="the other server's address listed as not ready")
    assert addresses(kube_dns_endpoints(c)) == [c.netns.node_ip]
    c.kubectl("delete", "node", GHOST)
    eventually(lambda: [s["metadata"]["name"] for s in dns_slices(c)] == [f"kube-dns-{NODE}"],
               what="the removed node's slice collected")
    eventually(lambda: (e := kube_dns_endpoints(c)) is not None
               and addresses(e, "notReadyAddresses") == [] and addresses(e) == [c.netns.node_ip],
               what="endpoints without the removed node")


def test_a_deleted_dns_slice_is_published_again(env):
    c, ns, _ = env
    eventually(lambda: dns_slices(c), what="kube-dns slice")
    c.kubectl("-n", "kube-system", "delete", "endpointslice", f"kube-dns-{NODE}")
    slices = eventually(lambda: dns_slices(c), what="kube-dns slice published again")
    assert [s["metadata"]["name"] for s in slices] == [f"kube-dns-{NODE}"]
    assert eventually(lambda: addresses(kube_dns_endpoints(c)) == [c.netns.node_ip], what="endpoints")

    def resolves():
        r = c.kubectl("-n", ns, "exec", "client", "--", "nslookup", f"echo.{ns}.svc.cluster.local",
                      check=False, timeout=30)
        return r.returncode == 0 and cluster_ip(c, ns, "echo") in r.stdout

    assert eventually(resolves, what="cluster DNS through the republished slice")


def test_a_selector_matching_nothing_has_empty_endpoints_and_rejects(env):
    """Upstream: an Endpoints object without subsets, a slice without endpoints, and the proxy
    rejects connections to the cluster IP (ICMP port unreachable: connection refused)."""
    c, ns, _ = env
    apply(c, ns, service("nobody", {"selector": {"app": "nobody"},
                                    "ports": [{"name": "tcp", "port": 80, "targetPort": 8080}]}))
    ep = eventually(lambda: c.kubectl_json("-n", ns, "get", "endpoints", "nobody") if c.kubectl(
        "-n", ns, "get", "endpoints", "nobody", check=False).returncode == 0 else None, what="endpoints")
    assert not ep.get("subsets")
    slices = eventually(lambda: c.kubectl_json("-n", ns, "get", "endpointslices",
                                               "-l", "kubernetes.io/service-name=nobody")["items"], what="slice")
    assert [s.get("endpoints") or [] for s in slices] == [[]]
    ip = cluster_ip(c, ns, "nobody")

    def refused():
        r = c.kubectl("-n", ns, "exec", "client", "--", "sh", "-c", f"echo x | nc -w 3 {ip} 80",
                      check=False, timeout=30)
        return r.returncode != 0 and "refused" in (r.stdout + r.stderr).lower()

    assert eventually(refused, what="connection refused")
    r = c.kubectl("-n", ns, "exec", "echo", "--", "true", check=False)
    assert r.returncode == 0, "the proxy and the agent keep working"


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_a_node_port_already_taken_is_refused(env, version):
    c, ns, _ = env
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")
    suffix = version.replace(".", "")
    first = service(f"np-a{suffix}", {"type": "NodePort", "selector": {"app": "echo"},
                                      "ports": [{"port": 80, "targetPort": 8080}]})
    c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(first), version=version)
    port = c.kubectl_json("-n", ns, "get", "service", f"np-a{suffix}")["spec"]["ports"][0]["nodePort"]
    second = service(f"np-b{suffix}", {"type": "NodePort", "selector": {"app": "echo"},
                                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]})
    r = c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(second), check=False, version=version)
    assert r.returncode != 0
    assert (f'The Service "np-b{suffix}" is invalid: spec.ports[0].nodePort: Invalid value: {port}: '
            "provided port is already allocated") in r.stderr, r.stderr


def test_a_node_port_already_taken_is_422_for_the_python_client(env):
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    c, ns, _ = env
    core = k8s.CoreV1Api(c.python_client())
    first = core.create_namespaced_service(ns, service("np-py", {
        "type": "NodePort", "selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}))
    port = first.spec.ports[0].node_port
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(ns, service("np-py2", {
            "type": "NodePort", "selector": {"app": "echo"},
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]}))
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid",
                                          "message": f"Invalid value: {port}: provided port is already allocated",
                                          "field": "spec.ports[0].nodePort"}]


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_an_external_name_that_is_no_dns_name_is_refused(env, version):
    c, ns, _ = env
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")
    name = f"bad-ext{version.replace('.', '')}"
    obj = service(name, {"type": "ExternalName", "externalName": "not_a dns name"})
    r = c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(obj), check=False, version=version)
    assert r.returncode != 0
    assert (f'The Service "{name}" is invalid: spec.externalName: Invalid value: "not_a dns name": '
            "a lowercase RFC 1123 subdomain must consist of") in r.stderr, r.stderr
    assert c.kubectl("-n", ns, "get", "service", name, check=False).returncode != 0


LATENCY_CLIENT = r"""
import json, socket, sys, time

def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6
    return {"p50_us": round(pick(0.50), 1), "p99_us": round(pick(0.99), 1)}

def round_trips(addr, n):
    s = socket.create_connection(addr, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for i in range(n):
        msg = b"%031d\n" % i
        t = time.perf_counter()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(64)
            if not chunk:
                raise SystemExit("echo closed the connection")
            got += chunk
        out.append(time.perf_counter() - t)
        assert got == msg, (got, msg)
    s.close()
    return out

def connects(addr, n):
    out = []
    for i in range(n):
        t = time.perf_counter()
        s = socket.create_connection(addr, timeout=5)
        s.sendall(b"x\n")
        assert s.recv(8) == b"x\n"
        out.append(time.perf_counter() - t)
        s.close()
    return out

direct, service = (sys.argv[1], 8080), (sys.argv[2], 80)
n, c = int(sys.argv[3]), int(sys.argv[4])
result = {}
for name, addr in (("direct", direct), ("cluster_ip", service)):
    round_trips(addr, 50)  # warm up
result["round_trip"] = {"direct": [], "cluster_ip": []}
result["new_connection"] = {"direct": [], "cluster_ip": []}
for _ in range(5):  # interleaved, so both see the same machine load
    for name, addr in (("direct", direct), ("cluster_ip", service)):
        result["round_trip"][name] += round_trips(addr, n // 5)
        result["new_connection"][name] += connects(addr, c // 5)
print(json.dumps({kind: {name: percentiles(v) for name, v in d.items()} for kind, d in result.items()}))
"""


def test_cluster_ip_hop_latency(env):
    """Round trips (32 bytes each way over one TCP connection) and new connections (connect,
    one exchange) from the node's network namespace to the echo pod, directly and through the
    cluster IP; prints the percentiles (no timing assertion: the numbers go to BENCHMARKS.md)."""
    c, ns, ips = env
    ip = cluster_ip(c, ns, "echo")

    def answers():
        r = c.netns.exec("sh", "-c", f"echo ping | busybox nc -w 2 {ip} 80", check=False)
        return r.stdout.strip() == "ping"

    assert eventually(answers, what="echo through the cluster IP")
    r = subprocess.run(["ip", "netns", "exec", c.netns.name, sys.executable, "-c", LATENCY_CLIENT,
                        ips["echo"], ip, "5000", "500"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    print(json.dumps({"bench": "cluster_ip_hop", **result}))
    for kind in ("round_trip", "new_connection"):
        for name in ("direct", "cluster_ip"):
            assert result[kind][name]["p50_us"] > 0
