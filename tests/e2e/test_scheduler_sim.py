"""The scheduler on a simulated multi-node cluster: a `skiff server` without agent, six Node
objects registered by the test (three zones, two nodes each), pods that are only bound, never
run. Topology spreading places pods evenly across zones; required anti-affinity puts one pod per
zone and leaves the next one Pending with upstream's message; a preferred affinity pulls pods to
a zone. Checked with kubectl 1.32 and 1.20 and the Python client."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conftest import Cluster, Netns, eventually, have_kubectl, unique

ZONES = ["z1", "z2", "z3"]
NODES = [f"sim-{z}-{i}" for z in ZONES for i in range(2)]


@pytest.fixture(scope="module")
def sim():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-sim."))
    netns = Netns()
    # The simulated nodes never renew a Lease: a long grace period keeps them Ready.
    c = Cluster(workdir, netns, server_args=["--node-monitor-grace-period", "24h"])
    try:
        c.start()
        for name in NODES:
            zone = name.split("-")[1]
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}},
                    "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                               "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated"}]}}
            c.kubectl("create", "-f", "-", input=json.dumps(node))
        yield c
    finally:
        c.stop()
        netns.delete()
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def ns(sim):
    name = unique("sim")
    sim.kubectl("create", "namespace", name)
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, labels: dict, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def zone_of(node: str) -> str:
    return node.split("-")[1]


def placements(c: Cluster, ns: str, selector: str, version: str = "1.32") -> dict[str, str]:
    out = c.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json", version=version).stdout
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in json.loads(out)["items"]}


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_topology_spread_places_pods_evenly_across_zones(sim, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    items = [pod(f"s{i}", {"app": "spread"}, topologySpreadConstraints=spread) for i in range(6)]
    sim.kubectl("-n", ns, "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                version=version)
    placed = eventually(lambda: (p := placements(sim, ns, "app=spread", version)) and all(p.values()) and p,
                        what="spread pods bound")
    assert Counter(zone_of(n) for n in placed.values()) == Counter({"z1": 2, "z2": 2, "z3": 2})
    wide = sim.kubectl("-n", ns, "get", "pods", "-o", "wide", version=version).stdout
    assert all(n in wide for n in set(placed.values()))


def test_required_anti_affinity_puts_one_pod_per_zone(sim, ns):
    api = k8s.CoreV1Api(sim.python_client())
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}
    for i in range(3):
        api.create_namespaced_pod(ns, pod(f"a{i}", {"app": "solo"}, affinity=anti))
    placed = eventually(lambda: (p := placements(sim, ns, "app=solo")) and all(p.values()) and p, what="three bound")
    assert sorted(zone_of(n) for n in placed.values()) == ZONES
    api.create_namespaced_pod(ns, pod("a3", {"app": "solo"}, affinity=anti))
    msg = ("0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules. "
           "preemption: 0/6 nodes are available: 6 No preemption victims found for incoming pod..")

    def reported():
        p = api.read_namespaced_pod("a3", ns)
        conds = [c for c in (p.status.conditions or []) if c.type == "PodScheduled"]
        return conds and conds[0].message == msg and p

    p = eventually(reported, what="fourth pod reported unschedulable")
    assert p.spec.node_name is None and p.status.conditions[0].reason == "Unschedulable"
    # Deleting one pod frees its zone: the pending pod goes there.
    victim = "a0"
    freed = zone_of(placed[victim])
    api.delete_namespaced_pod(victim, ns, grace_period_seconds=0)
    eventually(lambda: api.read_namespaced_pod("a3", ns).spec.node_name, what="pending pod bound after a delete")
    assert zone_of(api.read_namespaced_pod("a3", ns).spec.node_name) == freed


def test_preferred_affinity_pulls_pods_to_the_zone_of_their_peers(sim, ns):
    sim.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(
        pod("db", {"app": "db"}, nodeSelector={"topology.kubernetes.io/zone": "z2"})))
    eventually(lambda: placements(sim, ns, "app=db").get("db"), what="db bound")
    affinity = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                                            "topologyKey": "topology.kubernetes.io/zone"}}]}}
    items = [pod(f"w{i}", {"app": "web"}, affinity=affinity) for i in range(3)]
    sim.kubectl("-n", ns, "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    placed = eventually(lambda: (p := placements(sim, ns, "app=web")) and all(p.values()) and p, what="web bound")
    assert {zone_of(n) for n in placed.values()} == {"z2"}
