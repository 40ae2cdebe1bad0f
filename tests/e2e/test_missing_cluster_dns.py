"""Pods on a node without cluster DNS (`skiff server --disable-dns`): a `ClusterFirst` pod falls
back to the node's resolvers, and the kubelet's `MissingClusterDNS` warning is recorded on the
pod (naming it) and on the Node; a `Default` pod gets no such event."""

from __future__ import annotations

import json

import pytest

from conftest import eventually, running_agent_cluster, unique

NODE = "e2e-nodns"
MESSAGE = ('kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. '
           'Falling back to "Default" policy.')


@pytest.fixture(scope="module")
def nodns():
    with running_agent_cluster(NODE, ["--disable-dns"]) as c:
        yield c


def pod(name: str, policy: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": NODE, "dnsPolicy": policy, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                 "command": ["sleep", "600"]}]},
    })


def events(c, *selectors: str) -> list[dict]:
    out = c.kubectl("get", "events", "-A", "-o", "json", "--field-selector", ",".join(selectors)).stdout
    return json.loads(out)["items"]


def test_cluster_first_without_cluster_dns_falls_back_with_events(nodns):
    ns = unique("nodns")
    nodns.kubectl("create", "namespace", ns)
    nodns.kubectl("-n", ns, "apply", "-f", "-", input=pod("first", "ClusterFirst"))
    nodns.kubectl("-n", ns, "apply", "-f", "-", input=pod("default", "Default"))
    for name in ("first", "default"):
        eventually(lambda: json.loads(nodns.kubectl("-n", ns, "get", "pod", name, "-o", "json").stdout)
                   .get("status", {}).get("phase") == "Running", timeout=90, what=f"{name} Running")

    resolv = nodns.kubectl("-n", ns, "exec", "first", "--", "cat", "/etc/resolv.conf").stdout
    host = nodns.kubectl("-n", ns, "exec", "default", "--", "cat", "/etc/resolv.conf").stdout
    assert "svc.cluster.local" not in resolv and "ndots:5" not in resolv, resolv
    assert resolv == host, (resolv, host)

    uid = json.loads(nodns.kubectl("-n", ns, "get", "pod", "first", "-o", "json").stdout)["metadata"]["uid"]
    warning = eventually(lambda: next(iter(events(nodns, f"involvedObject.namespace={ns}",
                                                  "reason=MissingClusterDNS")), None), what="pod event")
    assert warning["type"] == "Warning"
    assert warning["involvedObject"]["name"] == "first", warning
    assert warning["message"] == f'pod: "first_{ns}({uid})". {MESSAGE}', warning
    node_event = eventually(lambda: next(iter(events(nodns, "involvedObject.kind=Node", f"involvedObject.name={NODE}",
                                                     "reason=MissingClusterDNS")), None), what="node event")
    assert node_event["message"] == MESSAGE and node_event["type"] == "Warning", node_event
    # Only the ClusterFirst pod asked for the cluster DNS.
    assert [e["involvedObject"]["name"] for e in events(nodns, f"involvedObject.namespace={ns}",
                                                        "reason=MissingClusterDNS")] == ["first"]
