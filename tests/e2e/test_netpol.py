"""NetworkPolicy enforcement end to end (skiff-net::netpol): one `skiff server` with its agent,
busybox httpd servers and busybox `nc` clients sending an HTTP GET (busybox wget crashes on this
VM, its nc has no -z) in two
namespaces, policies created with kubectl 1.32, kubectl 1.20 and the Python client, and the
kernel's `ip skiff-netpol` table read with nft in the cluster's network namespace.

A refused connection is a dropped SYN: `nc -w 2` gives up after two seconds. Every negative
check follows a positive one showing the policy in question is already enforced, so no check
relies on timing."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time

import pytest
from kubernetes import client as k8s

from conftest import Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-netpol"
HTTPD = "mkdir -p /www && echo $HOSTNAME > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www"


def pod(name: str, labels: dict, command: str = "exec sleep 3600", ports: list | None = None) -> dict:
    container = {"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command]}
    if ports:
        container["ports"] = ports
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [container]}}


def apply(c: Cluster, ns: str, obj: dict, version: str = "1.32") -> None:
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj), version=version)


def policy(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def pod_ip(c: Cluster, ns: str, name: str) -> str | None:
    p = c.kubectl_json("-n", ns, "get", "pod", name)
    return p["status"].get("podIP") if p.get("status", {}).get("phase") == "Running" else None


@pytest.fixture(scope="module")
def env():
    with running_agent_cluster(NODE) as c:
        a, b = unique("npa"), unique("npb")
        for ns, team in ((a, "a"), (b, "b")):
            c.kubectl("create", "namespace", ns)
            c.kubectl("label", "namespace", ns, f"team={team}")
        apply(c, a, pod("server", {"app": "server"}, HTTPD,
                        ports=[{"name": "http", "containerPort": 8080}, {"name": "alt", "containerPort": 9090}]))
        apply(c, a, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        apply(c, a, pod("client-a", {"role": "client"}))
        apply(c, a, pod("stranger-a", {}))
        apply(c, b, pod("client-b", {"role": "client"}))
        apply(c, b, pod("other-b", {}))
        ips = {}
        for ns, name in ((a, "server"), (a, "client-a"), (a, "stranger-a"), (b, "client-b"), (b, "other-b")):
            ips[name] = eventually(lambda ns=ns, n=name: pod_ip(c, ns, n), timeout=120, what=f"{name} running")
        yield c, a, b, ips


@pytest.fixture
def cleanup(env):
    """Deletes every NetworkPolicy after the test and waits until the table has no policy."""
    yield
    c, a, b, _ = env
    for ns in (a, b):
        c.kubectl("-n", ns, "delete", "networkpolicy", "--all", check=False)
    eventually(lambda: policy_jumps(c) == [], what="policies gone from the table")


def reach(c: Cluster, ns: str, client: str, target: str, port: int) -> bool:
    """Whether an HTTP GET from `client` to `target:port` is answered (busybox nc has no -z)."""
    script = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} {port}"
    r = c.kubectl("-n", ns, "exec", client, "--", "sh", "-c", script, check=False, timeout=30)
    return r.returncode == 0 and "200 OK" in r.stdout


def blocked(c: Cluster, ns: str, client: str, target: str, port: int) -> bool:
    return not reach(c, ns, client, target, port)


def nft_json(c: Cluster, *what: str) -> list:
    r = c.netns.exec("nft", "-j", "list", *what, check=False)
    return json.loads(r.stdout)["nftables"] if r.returncode == 0 else []


def policy_jumps(c: Cluster) -> list[str]:
    """The policies (`namespace/name`) the table's base chains jump to."""
    rules = [i["rule"] for i in nft_json(c, "table", "ip", "skiff-netpol") if "rule" in i]
    return sorted(r["comment"] for r in rules if r.get("chain") in ("ingress", "egress") and "comment" in r)


def test_default_deny_then_allow_from_label_then_delete(env, cleanup):
    c, a, b, ips = env
    server = ips["server"]
    assert eventually(lambda: reach(c, a, "stranger-a", server, 8080), what="open before any policy")
    apply(c, a, policy("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    assert eventually(lambda: blocked(c, a, "client-a", server, 8080), what="default deny")
    assert blocked(c, a, "stranger-a", server, 8080)
    apply(c, a, policy("allow-clients", {"podSelector": {"matchLabels": {"app": "server"}},
                                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    assert eventually(lambda: reach(c, a, "client-a", server, 8080), what="allowed from role=client")
    assert blocked(c, a, "stranger-a", server, 8080), "no label, no access"
    assert blocked(c, b, "client-b", server, 8080), "a podSelector alone stays in the policy's namespace"
    # The reply of an allowed connection comes back although the client is isolated too.
    assert reach(c, a, "client-a", f"web.{a}.svc.cluster.local", 80), "through the Service's DNAT"
    c.kubectl("-n", a, "delete", "networkpolicy", "deny", "allow-clients")
    assert eventually(lambda: reach(c, a, "stranger-a", server, 8080), what="deleting the policies restores traffic")


def test_namespace_selector_with_kubectl_120(env, cleanup):
    c, a, b, ips = env
    server = ips["server"]
    apply(c, a, policy("from-team-b", {"podSelector": {"matchLabels": {"app": "server"}},
                                       "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]}),
          version="1.20")
    out = c.kubectl("-n", a, "get", "networkpolicy", version="1.20").stdout
    assert "from-team-b" in out and "app=server" in out, out
    assert eventually(lambda: blocked(c, a, "client-a", server, 8080), what="own namespace refused")
    assert reach(c, b, "client-b", server, 8080)
    assert reach(c, b, "other-b", server, 8080), "every pod of the selected namespace"


def test_pod_and_namespace_selector_in_one_peer_is_an_and(env, cleanup):
    c, a, b, ips = env
    server = ips["server"]
    apply(c, a, policy("b-clients", {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"from": [{
        "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["b"]}]},
        "podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    assert eventually(lambda: blocked(c, b, "other-b", server, 8080), what="other-b refused")
    assert reach(c, b, "client-b", server, 8080)
    assert blocked(c, a, "client-a", server, 8080), "role=client but in the wrong namespace"


def test_ip_block_with_except(env, cleanup):
    c, a, b, ips = env
    server = ips["server"]
    apply(c, a, policy("block", {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"from": [{
        "ipBlock": {"cidr": "10.42.0.0/16", "except": [f"{ips['client-b']}/32"]}}]}]}))
    assert eventually(lambda: blocked(c, b, "client-b", server, 8080), what="the excepted address refused")
    assert reach(c, b, "other-b", server, 8080)
    assert reach(c, a, "client-a", server, 8080)


def test_named_port_with_the_python_client(env, cleanup):
    c, a, _, ips = env
    server = ips["server"]
    api = k8s.NetworkingV1Api(c.python_client())
    body = k8s.V1NetworkPolicy(
        metadata=k8s.V1ObjectMeta(name="http-only"),
        spec=k8s.V1NetworkPolicySpec(
            pod_selector=k8s.V1LabelSelector(match_labels={"app": "server"}),
            ingress=[k8s.V1NetworkPolicyIngressRule(ports=[k8s.V1NetworkPolicyPort(port="http")])]))
    created = api.create_namespaced_network_policy(a, body)
    assert created.spec.policy_types == ["Ingress"], "defaulted by the API server"
    assert created.spec.ingress[0].ports[0].protocol == "TCP"
    assert eventually(lambda: blocked(c, a, "stranger-a", server, 9090), what="the unnamed port refused")
    assert reach(c, a, "stranger-a", server, 8080), "the port named http (8080) allowed from anywhere"
    api.delete_namespaced_network_policy("http-only", a)


def test_egress_default_deny_still_allows_dns_when_permitted(env, cleanup):
    """Egress isolation of client-b: DNS (UDP and TCP 53) allowed, then the server pod allowed by
    selectors: the client connects through the Service's cluster IP, since egress is checked after
    the proxy's DNAT, against the endpoint pod."""
    c, a, b, ips = env
    server = ips["server"]
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    apply(c, b, policy("egress", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                  "egress": [{"ports": dns}]}))
    assert eventually(lambda: blocked(c, b, "client-b", server, 8080), what="egress denied")
    assert reach(c, b, "other-b", server, 8080), "other-b is not selected"
    fqdn = f"web.{a}.svc.cluster.local"
    r = c.kubectl("-n", b, "exec", "client-b", "--", "nslookup", fqdn, check=False, timeout=30)
    assert r.returncode == 0 and "Address" in r.stdout, r.stdout + r.stderr
    assert blocked(c, b, "client-b", fqdn, 80), "resolved, but the endpoint is not allowed"
    apply(c, b, policy("egress-web", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                      "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                                                          "podSelector": {"matchLabels": {"app": "server"}}}],
                                                  "ports": [{"port": "http"}]}]}))
    assert eventually(lambda: reach(c, b, "client-b", fqdn, 80), what="the Service's endpoint allowed")
    assert blocked(c, b, "client-b", server, 9090), "only the named port"


def test_apply_delay_and_repair(env, cleanup):
    """How long a policy and a label change take to reach the kernel (printed), and a deleted
    table comes back."""
    c, a, _, ips = env
    started = time.monotonic()
    apply(c, a, policy("delay", {"podSelector": {"matchLabels": {"app": "server"}},
                                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    eventually(lambda: f"{a}/delay" in policy_jumps(c), timeout=5, interval=0.01, what="policy in the table")
    policy_delay = time.monotonic() - started

    def peers() -> set:
        """Addresses in the rule's peer set (an interval set: adjacent addresses are ranges)."""
        out = set()
        for item in nft_json(c, "table", "ip", "skiff-netpol"):
            s = item.get("set")
            for e in (s.get("elem", []) if s and s["name"].endswith("-in0") else []):
                if isinstance(e, str):
                    out.add(e)
                elif "range" in e:
                    lo, hi = (int(ipaddress.IPv4Address(x)) for x in e["range"])
                    out.update(str(ipaddress.IPv4Address(i)) for i in range(lo, hi + 1))
                elif "prefix" in e:
                    net = ipaddress.IPv4Network(f"{e['prefix']['addr']}/{e['prefix']['len']}")
                    out.update(str(a) for a in net)
        return out

    assert ips["client-a"] in peers()
    started = time.monotonic()
    c.kubectl("-n", a, "label", "pod", "stranger-a", "role=client")
    eventually(lambda: ips["stranger-a"] in peers(), timeout=5, interval=0.01, what="relabelled pod in the peer set")
    label_delay = time.monotonic() - started
    c.kubectl("-n", a, "label", "pod", "stranger-a", "role-")
    print(f"\n[netpol] apply delay: policy create -> kernel {policy_delay * 1000:.0f} ms, "
          f"pod label -> set element {label_delay * 1000:.0f} ms (kubectl's own time included)")
    assert policy_delay < 1.5 and label_delay < 1.5
    assert eventually(lambda: blocked(c, a, "stranger-a", ips["server"], 8080), what="label removed again")

    c.netns.exec("nft", "delete", "table", "ip", "skiff-netpol")
    assert eventually(lambda: f"{a}/delay" in policy_jumps(c), timeout=20, what="table repaired")
    assert "reprogramming it" in c.log_tail(400)
    assert reach(c, a, "client-a", ips["server"], 8080)
    assert blocked(c, a, "stranger-a", ips["server"], 8080)

