"""Node-pressure eviction end to end: servers whose hard eviction thresholds the machine cannot
meet (memory.available<200Gi; nodefs.available<99% and pid.available beyond any pid_max) report
the pressure conditions with the kubelet's reasons, get the condition taints from the node
lifecycle controller, refuse new pods and evict running ones with upstream's reasons, messages,
conditions and events; a server with ordinary thresholds reports no pressure at all."""

from __future__ import annotations

import json
import re

import pytest

from conftest import KUBECTL_VERSIONS, Cluster, eventually, have_kubectl, running_agent_cluster, unique

MEMORY_NODE = "e2e-mem-pressure"
DISK_NODE = "e2e-disk-pressure"
CALM_NODE = "e2e-no-pressure"


@pytest.fixture(scope="module")
def memory_cluster():
    with running_agent_cluster(MEMORY_NODE, ["--eviction-hard", "memory.available<200Gi"]) as c:
        yield c


@pytest.fixture(scope="module")
def disk_cluster():
    with running_agent_cluster(DISK_NODE, ["--eviction-hard", "nodefs.available<99%,pid.available<5000000"]) as c:
        yield c


@pytest.fixture(scope="module")
def calm_cluster():
    with running_agent_cluster(CALM_NODE) as c:
        yield c


def new_namespace(cluster: Cluster) -> str:
    name = unique("evict")
    cluster.kubectl("create", "namespace", name)
    return name


def pod_manifest(name: str, node: str, requests: dict | None = None, pre_stop: list[str] | None = None) -> str:
    container = {"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "sleep 3600"]}
    if requests:
        container["resources"] = {"requests": requests}
    if pre_stop:
        container["lifecycle"] = {"preStop": {"exec": {"command": pre_stop}}}
    spec = {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
            "containers": [container]}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def get_json(cluster: Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def conditions(cluster: Cluster, node: str) -> dict:
    node_obj = get_json(cluster, "get", "node", node)
    return {c["type"]: c for c in node_obj["status"]["conditions"]}


def condition_is(cluster: Cluster, node: str, kind: str, status: str):
    c = conditions(cluster, node).get(kind)
    return c if c and c["status"] == status else None


def taint_keys(cluster: Cluster, node: str) -> set[str]:
    node_obj = get_json(cluster, "get", "node", node)
    return {f"{t['key']}:{t['effect']}" for t in node_obj["spec"].get("taints") or []}


def node_events(cluster: Cluster, node: str) -> list[dict]:
    items = get_json(cluster, "get", "events", "-A", "--field-selector", f"involvedObject.kind=Node,involvedObject.name={node}")
    return items["items"]


def pod_events(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return get_json(cluster, "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}")["items"]


def failed(cluster: Cluster, ns: str, name: str):
    pod = get_json(cluster, "-n", ns, "get", "pod", name)
    return pod if pod.get("status", {}).get("phase") == "Failed" else None


def test_memory_pressure_condition_taint_and_events(memory_cluster):
    c = eventually(lambda: condition_is(memory_cluster, MEMORY_NODE, "MemoryPressure", "True"), timeout=60,
                   what="MemoryPressure True")
    assert c["reason"] == "KubeletHasInsufficientMemory"
    assert c["message"] == "kubelet has insufficient memory available"
    conds = conditions(memory_cluster, MEMORY_NODE)
    assert (conds["DiskPressure"]["status"], conds["DiskPressure"]["reason"]) == ("False", "KubeletHasNoDiskPressure")
    assert (conds["PIDPressure"]["status"], conds["PIDPressure"]["reason"]) == ("False", "KubeletHasSufficientPID")
    assert conds["Ready"]["status"] == "True"
    keys = eventually(lambda: (t := taint_keys(memory_cluster, MEMORY_NODE)) and
                      "node.kubernetes.io/memory-pressure:NoSchedule" in t and t, what="memory-pressure taint")
    assert not any("disk-pressure" in k or "pid-pressure" in k for k in keys), keys
    taint = next(t for t in get_json(memory_cluster, "get", "node", MEMORY_NODE)["spec"]["taints"]
                 if t["key"] == "node.kubernetes.io/memory-pressure")
    assert taint.get("timeAdded"), taint
    for version in KUBECTL_VERSIONS:
        if have_kubectl(version):
            described = memory_cluster.kubectl("describe", "node", MEMORY_NODE, version=version).stdout
            assert "node.kubernetes.io/memory-pressure:NoSchedule" in described, described
            assert "KubeletHasInsufficientMemory" in described

    def events():
        evs = node_events(memory_cluster, MEMORY_NODE)
        by_reason = {e["reason"]: e for e in evs}
        return by_reason if {"NodeHasInsufficientMemory", "EvictionThresholdMet"} <= set(by_reason) else None

    evs = eventually(events, timeout=60, what="node events")
    assert evs["NodeHasInsufficientMemory"]["message"] == f"Node {MEMORY_NODE} status is now: NodeHasInsufficientMemory"
    assert evs["NodeHasInsufficientMemory"]["type"] == "Normal"
    assert evs["EvictionThresholdMet"]["message"] == "Attempting to reclaim memory"
    assert evs["EvictionThresholdMet"]["type"] == "Warning"


def test_best_effort_pods_are_refused_under_memory_pressure(memory_cluster):
    eventually(lambda: condition_is(memory_cluster, MEMORY_NODE, "MemoryPressure", "True"), timeout=60,
               what="MemoryPressure True")
    ns = new_namespace(memory_cluster)
    memory_cluster.kubectl("-n", ns, "apply", "-f", "-", input=pod_manifest("best-effort", MEMORY_NODE))
    pod = eventually(lambda: failed(memory_cluster, ns, "best-effort"), what="pod refused")
    status = pod["status"]
    assert status["reason"] == "Evicted"
    assert status["message"] == "Pod was rejected: The node had condition: [MemoryPressure]. "
    assert not status.get("containerStatuses") or all("running" not in cs["state"] for cs in status["containerStatuses"])
    ev = eventually(lambda: next((e for e in pod_events(memory_cluster, ns, "best-effort") if e["reason"] == "Evicted"), None),
                    what="Evicted event")
    assert ev["type"] == "Warning"
    assert ev["message"] == "The node had condition: [MemoryPressure]. "
    for version in KUBECTL_VERSIONS:
        if have_kubectl(version):
            table = memory_cluster.kubectl("-n", ns, "get", "pod", "best-effort", version=version).stdout
            assert "Evicted" in table, table


def test_running_pods_are_evicted_under_memory_pressure(memory_cluster):
    eventually(lambda: condition_is(memory_cluster, MEMORY_NODE, "MemoryPressure", "True"), timeout=60,
               what="MemoryPressure True")
    ns = new_namespace(memory_cluster)
    # Burstable: admitted under memory pressure, then evicted (it uses more than its request).
    # Its preStop hook runs within the eviction's grace period (it fails, so the hook leaves an event).
    memory_cluster.kubectl("-n", ns, "apply", "-f", "-", input=pod_manifest(
        "burstable", MEMORY_NODE, {"memory": "1Ki"}, pre_stop=["sh", "-c", "exit 3"]))
    pod = eventually(lambda: failed(memory_cluster, ns, "burstable"), timeout=60, what="pod evicted")
    status = pod["status"]
    assert status["reason"] == "Evicted"
    message = status["message"]
    assert re.fullmatch(
        r"The node was low on resource: memory\. Threshold quantity: 200Gi, available: \d+(Ki|Mi|Gi)?\. "
        r"(Container main was using \d+(Ki|Mi)?, request is 1Ki, has larger consumption of memory\. )?",
        message,
    ), message
    disruption = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
    assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
    assert disruption["message"] == message
    ev = eventually(lambda: next((e for e in pod_events(memory_cluster, ns, "burstable") if e["reason"] == "Evicted"), None),
                    what="Evicted event")
    assert (ev["type"], ev["message"]) == ("Warning", message)
    hook = eventually(lambda: next((e for e in pod_events(memory_cluster, ns, "burstable")
                                    if e["reason"] == "FailedPreStopHook"), None), what="FailedPreStopHook event")
    assert "exited with 3" in hook["message"], hook["message"]
    assert any(e["reason"] == "Killing" for e in pod_events(memory_cluster, ns, "burstable"))
    # Its containers are stopped (killed: sleep ignores SIGTERM as PID 1).
    for cs in status.get("containerStatuses") or []:
        assert "running" not in cs["state"], cs


def test_disk_and_pid_pressure(disk_cluster):
    c = eventually(lambda: condition_is(disk_cluster, DISK_NODE, "DiskPressure", "True"), timeout=60,
                   what="DiskPressure True")
    assert (c["reason"], c["message"]) == ("KubeletHasDiskPressure", "kubelet has disk pressure")
    c = eventually(lambda: condition_is(disk_cluster, DISK_NODE, "PIDPressure", "True"), what="PIDPressure True")
    assert (c["reason"], c["message"]) == ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")
    c = conditions(disk_cluster, DISK_NODE)["MemoryPressure"]
    assert (c["status"], c["reason"]) == ("False", "KubeletHasSufficientMemory")
    eventually(lambda: {"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/pid-pressure:NoSchedule"}
               <= taint_keys(disk_cluster, DISK_NODE), what="disk and pid taints")
    assert "node.kubernetes.io/memory-pressure:NoSchedule" not in taint_keys(disk_cluster, DISK_NODE)

    # Under disk pressure every new pod is refused, whatever its QoS class.
    ns = new_namespace(disk_cluster)
    disk_cluster.kubectl("-n", ns, "apply", "-f", "-", input=pod_manifest("burstable", DISK_NODE, {"memory": "1Mi"}))
    pod = eventually(lambda: failed(disk_cluster, ns, "burstable"), what="pod refused")
    assert pod["status"]["reason"] == "Evicted"
    assert pod["status"]["message"] == "Pod was rejected: The node had condition: [DiskPressure PIDPressure]. "

    # The node reclaims first: unused images go (the busybox image is used by no container).
    reclaim = eventually(lambda: next((e for e in node_events(disk_cluster, DISK_NODE)
                                       if e["reason"] == "EvictionThresholdMet"), None), what="EvictionThresholdMet")
    assert reclaim["message"] in {"Attempting to reclaim ephemeral-storage", "Attempting to reclaim pids"}, reclaim

    def images_gone():
        node = get_json(disk_cluster, "get", "node", DISK_NODE)
        names = [n for i in node["status"].get("images") or [] for n in i.get("names", [])]
        return not any("busybox" in n for n in names)

    eventually(images_gone, timeout=90, what="unused images deleted")


def test_no_pressure_with_ordinary_thresholds(calm_cluster):
    def settled():
        conds = conditions(calm_cluster, CALM_NODE)
        return conds if all(k in conds for k in ("MemoryPressure", "DiskPressure", "PIDPressure")) else None

    conds = eventually(settled, what="node conditions")
    expected = {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    }
    for kind, want in expected.items():
        c = conds[kind]
        assert (c["status"], c["reason"], c["message"]) == want, c
    assert list(conds)[-1] == "Ready", "Ready is the last condition, as the kubelet keeps it"
    assert not any(k.startswith("node.kubernetes.io/") for k in taint_keys(calm_cluster, CALM_NODE))
    # A fresh node records the kubelet's initial condition events.
    reasons = eventually(lambda: (r := {e["reason"] for e in node_events(calm_cluster, CALM_NODE)}) >=
                         {"NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID"} and r,
                         what="initial node events")
    assert "EvictionThresholdMet" not in reasons
    ns = new_namespace(calm_cluster)
    calm_cluster.kubectl("-n", ns, "apply", "-f", "-", input=pod_manifest("best-effort", CALM_NODE))
    pod = eventually(lambda: (p := get_json(calm_cluster, "-n", ns, "get", "pod", "best-effort"))
                     ["status"].get("phase") == "Running" and p, what="pod running")
    assert "reason" not in pod["status"]


def test_cordon_taints_the_node(calm_cluster):
    calm_cluster.kubectl("cordon", CALM_NODE)
    try:
        eventually(lambda: "node.kubernetes.io/unschedulable:NoSchedule" in taint_keys(calm_cluster, CALM_NODE),
                   what="unschedulable taint")
    finally:
        calm_cluster.kubectl("uncordon", CALM_NODE)
    eventually(lambda: "node.kubernetes.io/unschedulable:NoSchedule" not in taint_keys(calm_cluster, CALM_NODE),
               what="unschedulable taint removed")
