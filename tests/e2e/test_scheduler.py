"""The scheduler end to end on the real one-node cluster (a `skiff server` with its agent): pods
without `spec.nodeName` are placed and run; a nodeSelector nothing matches, and a NoSchedule taint
the pod does not tolerate, leave it Pending with upstream's message in the PodScheduled condition,
the FailedScheduling event and `kubectl describe`; removing the taint gets it scheduled (the queue
reacts to the node change); a higher-priority pod preempts a lower-priority one on a node filled
by requests. Driven by kubectl 1.32 and 1.20 and the Python client."""

from __future__ import annotations

import json
import math

import pytest
from kubernetes import client as k8s

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-sched"
NOT_HELPFUL = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
SELECTOR_MSG = f"0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {NOT_HELPFUL}"
TAINT_MSG = f"0/1 nodes are available: 1 node(s) had untolerated taint {{e2e-sched: block}}. {NOT_HELPFUL}"


@pytest.fixture(scope="module")
def sched_cluster():
    with running_agent_cluster(NODE) as c:
        eventually(lambda: NODE in c.kubectl("get", "nodes", check=False).stdout, what="node registered")
        yield c


@pytest.fixture
def ns(sched_cluster):
    name = unique("sched")
    sched_cluster.kubectl("create", "namespace", name)
    yield name
    sched_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl(c: Cluster, ns: str, *args: str, version: str = "1.32", **kw):
    return c.kubectl("-n", ns, *args, version=version, **kw)


def manifest(name: str, **spec) -> str:
    body = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"], **spec.pop("container", {})}],
        **spec,
    }
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body})


def get_pod(c: Cluster, ns: str, name: str) -> dict:
    return json.loads(kubectl(c, ns, "get", "pod", name, "-o", "json").stdout)


def condition(pod: dict, kind: str = "PodScheduled") -> dict:
    return next((x for x in pod.get("status", {}).get("conditions", []) if x["type"] == kind), {})


def running(c: Cluster, ns: str, name: str):
    pod = get_pod(c, ns, name)
    return pod if pod.get("status", {}).get("phase") == "Running" else None


def events(c: Cluster, ns: str, name: str, reason: str) -> list[dict]:
    items = json.loads(kubectl(c, ns, "get", "events", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_pod_without_node_name_is_scheduled_and_runs(sched_cluster, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("placed"), version=version)
    pod = eventually(lambda: running(sched_cluster, ns, "placed"), what="pod Running")
    assert pod["spec"]["nodeName"] == NODE
    cond = condition(pod)
    assert cond["status"] == "True" and "reason" not in cond
    assert events(sched_cluster, ns, "placed", "Scheduled")[0]["message"] == f"Successfully assigned {ns}/placed to {NODE}"
    described = kubectl(sched_cluster, ns, "describe", "pod", "placed", version=version).stdout
    assert f"Successfully assigned {ns}/placed to {NODE}" in described
    assert "Scheduled" in described
    if version == "1.32":
        assert "default-scheduler" in described
    wide = kubectl(sched_cluster, ns, "get", "pod", "placed", "-o", "wide", version=version).stdout
    assert NODE in wide


def test_python_client_pods_are_scheduled_and_foreign_schedulers_left_alone(sched_cluster, ns):
    api = k8s.CoreV1Api(sched_cluster.python_client())
    body = json.loads(manifest("py"))
    api.create_namespaced_pod(ns, body)
    eventually(lambda: api.read_namespaced_pod("py", ns).spec.node_name == NODE, what="py bound")

    # A pod for another scheduler is neither bound nor reported on; binding it by hand works.
    other = json.loads(manifest("other", schedulerName="someone-else"))
    api.create_namespaced_pod(ns, other)
    eventually(lambda: api.read_namespaced_pod("py", ns).status.phase == "Running", what="py Running")
    pod = api.read_namespaced_pod("other", ns)
    assert pod.spec.node_name is None
    assert not any(c.type == "PodScheduled" for c in (pod.status.conditions or []))
    binding = k8s.V1Binding(metadata=k8s.V1ObjectMeta(name="other"), target=k8s.V1ObjectReference(kind="Node", name=NODE))
    # The answer is a Status, which this client cannot read as a Binding: skip decoding.
    resp = api.create_namespaced_pod_binding("other", ns, binding, _preload_content=False)
    assert json.loads(resp.data)["status"] == "Success"
    eventually(lambda: api.read_namespaced_pod("other", ns).status.phase == "Running", what="hand-bound pod Running")
    with pytest.raises(k8s.ApiException) as err:
        api.create_namespaced_pod_binding("other", ns, binding, _preload_content=False)
    assert err.value.status == 409
    assert json.loads(err.value.body)["message"] == (
        f"Operation cannot be fulfilled on pods/binding \"other\": pod other is already assigned to node \"{NODE}\""
    )


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_unmatchable_node_selector_stays_pending_with_upstream_message(sched_cluster, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("nowhere", nodeSelector={"disk": "nonexistent"}),
            version=version)
    pod = eventually(lambda: (p := get_pod(sched_cluster, ns, "nowhere")) and condition(p).get("reason") and p,
                     what="PodScheduled condition")
    cond = condition(pod)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", SELECTOR_MSG)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    failed = eventually(lambda: events(sched_cluster, ns, "nowhere", "FailedScheduling"), what="FailedScheduling event")
    assert failed[0]["message"] == SELECTOR_MSG and failed[0]["type"] == "Warning"
    described = kubectl(sched_cluster, ns, "describe", "pod", "nowhere", version=version).stdout
    assert "FailedScheduling" in described and SELECTOR_MSG in described


def test_noschedule_taint_blocks_untolerating_pods_until_removed(sched_cluster, ns):
    sched_cluster.kubectl("taint", "node", NODE, "e2e-sched=block:NoSchedule")
    try:
        kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("blocked"))
        toleration = [{"key": "e2e-sched", "operator": "Equal", "value": "block", "effect": "NoSchedule"}]
        kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("tolerant", tolerations=toleration))
        pod = eventually(lambda: (p := get_pod(sched_cluster, ns, "blocked")) and condition(p).get("reason") and p,
                         what="blocked pod reported")
        assert condition(pod)["message"] == TAINT_MSG
        assert eventually(lambda: running(sched_cluster, ns, "tolerant"), what="tolerant pod Running")
        for version in ("1.32", "1.20"):
            if have_kubectl(version):
                assert TAINT_MSG in kubectl(sched_cluster, ns, "describe", "pod", "blocked", version=version).stdout
        assert not get_pod(sched_cluster, ns, "blocked")["spec"].get("nodeName")
    finally:
        sched_cluster.kubectl("taint", "node", NODE, "e2e-sched=block:NoSchedule-", check=False)
    # The node change wakes the pod (no need to wait for the 5-minute flush).
    pod = eventually(lambda: running(sched_cluster, ns, "blocked"), timeout=60, what="blocked pod Running after untaint")
    assert pod["spec"]["nodeName"] == NODE


def millicpu(q: str) -> int:
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def test_priority_preemption_on_a_node_filled_by_requests(sched_cluster, ns):
    node = json.loads(sched_cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
    alloc = millicpu(node["status"]["allocatable"]["cpu"])
    share = f"{math.floor(alloc * 0.6)}m"
    low, high = unique("low"), unique("high")
    for name, value in ((low, 10), (high, 1000)):
        sched_cluster.kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}))
    try:
        requests = {"resources": {"requests": {"cpu": share}}}
        kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("victim", priorityClassName=low, container=requests))
        victim = eventually(lambda: running(sched_cluster, ns, "victim"), what="victim Running")
        assert victim["spec"]["priority"] == 10
        kubectl(sched_cluster, ns, "create", "-f", "-", input=manifest("urgent", priorityClassName=high, container=requests))
        preempted = eventually(lambda: events(sched_cluster, ns, "victim", "Preempted"), what="Preempted event")
        urgent_uid = get_pod(sched_cluster, ns, "urgent")["metadata"]["uid"]
        assert preempted[0]["message"] == f"Preempted by pod {urgent_uid} on node {NODE}"
        first = eventually(lambda: events(sched_cluster, ns, "urgent", "FailedScheduling"), what="urgent's first failure")
        # Preemption found room, so the message carries no preemption part.
        assert first[0]["message"] == "0/1 nodes are available: 1 Insufficient cpu."
        pod = eventually(lambda: running(sched_cluster, ns, "urgent"), timeout=90, what="urgent Running")
        assert pod["spec"]["nodeName"] == NODE and pod["spec"]["priority"] == 1000
        gone = kubectl(sched_cluster, ns, "get", "pod", "victim", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        kubectl(sched_cluster, ns, "delete", "pods", "--all", "--grace-period=1", "--wait=false", check=False)
        sched_cluster.kubectl("delete", "priorityclass", low, high, check=False)
