"""Node maintenance and node loss end to end: `kubectl cordon|uncordon|drain` against a one-node
agent cluster (a Deployment's pods evicted through `pods/eviction`, their replacements Pending
while the node is cordoned, a drain blocked by a PodDisruptionBudget with upstream's message),
`kubectl get pdb` with kubectl 1.32 and 1.20, the Python client's `create_namespaced_pod_eviction`,
and node loss on a simulated Node (a Node and Lease registered through the API that stop being
renewed: Unknown conditions, the `unreachable:NoExecute` taint, pods deleted after their
`tolerationSeconds`). The server runs with a short `--node-monitor-grace-period`."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-drain"
FAKE = "e2e-drain-lost"
GRACE = 20
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget"


@pytest.fixture(scope="module")
def dc():
    with running_agent_cluster(NODE, ["--node-monitor-grace-period", f"{GRACE}s"]) as c:
        yield c


@pytest.fixture
def ns(dc):
    name = unique("drain")
    dc.kubectl("create", "namespace", name)
    yield name
    dc.kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployment(name: str, replicas: int) -> str:
    pod = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "sleep 3600"],
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}},
    })


def pdb(name: str, app: str, min_available) -> str:
    return json.dumps({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                       "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}}})


def pods(c: Cluster, ns: str, app: str) -> list[dict]:
    return c.kubectl_json("-n", ns, "get", "pods", "-l", f"app={app}")["items"]


def ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def ready_pods(c: Cluster, ns: str, app: str, n: int) -> list[dict] | None:
    items = [p for p in pods(c, ns, app) if ready(p) and not p["metadata"].get("deletionTimestamp")]
    return items if len(items) == n else None


def pdb_status(c: Cluster, ns: str, name: str) -> dict:
    return c.kubectl_json("-n", ns, "get", "pdb", name).get("status", {})


def test_cordon_and_uncordon(dc):
    for version in ["1.32", "1.20"]:
        if not have_kubectl(version):
            continue
        out = dc.kubectl("cordon", NODE, version=version).stdout
        assert f"node/{NODE} cordoned" in out, out
        node = dc.kubectl_json("get", "node", NODE)
        assert node["spec"].get("unschedulable") is True
        assert "SchedulingDisabled" in dc.kubectl("get", "node", NODE, version=version).stdout
        out = dc.kubectl("uncordon", NODE, version=version).stdout
        assert f"node/{NODE} uncordoned" in out, out
        assert not dc.kubectl_json("get", "node", NODE)["spec"].get("unschedulable")


def test_pdb_status_columns_and_blocked_drain(dc, ns):
    api = k8s.CoreV1Api(dc.python_client())
    dc.kubectl("-n", ns, "apply", "-f", "-", input=deployment("web", 2))
    eventually(lambda: ready_pods(dc, ns, "web", 2), timeout=120, what="two ready pods")
    dc.kubectl("-n", ns, "apply", "-f", "-", input=pdb("web-pdb", "web", 2))
    st = eventually(lambda: (s := pdb_status(dc, ns, "web-pdb")).get("observedGeneration") == 1
                    and s.get("currentHealthy") == 2 and s, what="pdb status")
    assert (st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"]) == (2, 2, 0), st
    cond = {c["type"]: c for c in st["conditions"]}["DisruptionAllowed"]
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods"), cond
    for version in ["1.32", "1.20"]:
        if not have_kubectl(version):
            continue
        lines = dc.kubectl("-n", ns, "get", "pdb", version=version).stdout.splitlines()
        assert lines[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"], lines
        assert lines[1].split()[:4] == ["web-pdb", "2", "N/A", "0"], lines

    # The eviction API refuses: 429 with the budget as the cause.
    victim = pods(dc, ns, "web")[0]["metadata"]["name"]
    body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=victim, namespace=ns))
    with pytest.raises(ApiException) as err:
        api.create_namespaced_pod_eviction(victim, ns, body)
    assert err.value.status == 429
    status = json.loads(err.value.body)
    assert status["reason"] == "TooManyRequests" and status["message"] == VIOLATION + ".", status
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget",
                                            "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]

    # kubectl drain retries until its timeout, printing upstream's message.
    try:
        for version in ["1.32", "1.20"]:
            if not have_kubectl(version):
                continue
            r = dc.kubectl("drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--pod-selector", "app=web",
                           "--timeout=12s", version=version, check=False, timeout=60)
            assert r.returncode != 0, r.stdout
            assert VIOLATION in r.stderr, r.stderr
            assert ready_pods(dc, ns, "web", 2), "the budget kept both pods"
    finally:
        dc.kubectl("uncordon", NODE)

    # With room in the budget one eviction goes through.
    dc.kubectl("-n", ns, "patch", "pdb", "web-pdb", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    eventually(lambda: pdb_status(dc, ns, "web-pdb").get("disruptionsAllowed") == 1, what="one disruption allowed")
    other = next(p["metadata"]["name"] for p in ready_pods(dc, ns, "web", 2) if p["metadata"]["name"] != victim)
    body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=victim, namespace=ns),
                          delete_options=k8s.V1DeleteOptions(grace_period_seconds=30))
    api.create_namespaced_pod_eviction(victim, ns, body)
    # The one disruption is spent: the other pod stays until the replacement is ready.
    with pytest.raises(ApiException) as err:
        api.create_namespaced_pod_eviction(other, ns, k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=other, namespace=ns)))
    assert err.value.status == 429, err.value.body
    gone = api.read_namespaced_pod(victim, ns)
    assert gone.metadata.deletion_timestamp and gone.metadata.deletion_grace_period_seconds == 30, gone.metadata
    conds = {c.type: c for c in gone.status.conditions}
    assert conds["DisruptionTarget"].reason == "EvictionByEvictionAPI", conds
    eventually(lambda: ready_pods(dc, ns, "web", 2), timeout=120, what="replacement ready")


def test_drain_evicts_and_replacements_stay_pending(dc, ns):
    dc.kubectl("-n", ns, "apply", "-f", "-", input=deployment("app", 2))
    before = {p["metadata"]["name"] for p in eventually(lambda: ready_pods(dc, ns, "app", 2), timeout=120,
                                                        what="two ready pods")}
    try:
        r = dc.kubectl("drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--pod-selector", "app=app",
                       "--timeout=90s", timeout=120)
        for name in before:
            assert f"pod/{name} evicted" in r.stdout, r.stdout
        assert f"node/{NODE} drained" in r.stdout, r.stdout

        def replaced_and_pending():
            items = pods(dc, ns, "app")
            names = {p["metadata"]["name"] for p in items}
            pending = [p for p in items if p["status"].get("phase") == "Pending" and not p["spec"].get("nodeName")]
            return not (names & before) and len(pending) == 2 and pending

        pending = eventually(replaced_and_pending, timeout=90, what="replacements Pending")
        sched = {c["type"]: c for c in pending[0]["status"].get("conditions", [])}.get("PodScheduled", {})
        assert sched.get("reason") == "Unschedulable", pending[0]["status"]
    finally:
        dc.kubectl("uncordon", NODE)
    eventually(lambda: ready_pods(dc, ns, "app", 2), timeout=120, what="replacements running after uncordon")


def test_lost_node_is_tainted_and_its_pods_evicted(dc, ns):
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": FAKE, "labels": {"kubernetes.io/hostname": FAKE}},
            "spec": {"taints": [{"key": "e2e/simulated", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "simulated"}]}}
    dc.kubectl("create", "-f", "-", input=json.dumps(node))
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": FAKE, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": FAKE, "leaseDurationSeconds": 40}}
    dc.kubectl("create", "-f", "-", input=json.dumps(lease))
    short = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": 3}]
    for name, tolerations in [("short", short), ("default", None)]:
        spec = {"nodeName": FAKE, "containers": [{"name": "c", "image": "busybox"}]}
        if tolerations:
            spec["tolerations"] = tolerations
        dc.kubectl("-n", ns, "create", "-f", "-",
                   input=json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
    api = k8s.CoreV1Api(dc.python_client())
    try:
        # DefaultTolerationSeconds admission: 300 s for both taints, unless the pod has its own.
        default = dc.kubectl_json("-n", ns, "get", "pod", "default")
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300} in default["spec"]["tolerations"]
        keys = [t["key"] for t in dc.kubectl_json("-n", ns, "get", "pod", "short")["spec"]["tolerations"]]
        assert keys == ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"], keys
        # The simulated kubelet reports both pods ready, then falls silent.
        for name in ["short", "default"]:
            api.patch_namespaced_pod_status(name, ns, {"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"}]}})

        def unknown():
            n = dc.kubectl_json("get", "node", FAKE)
            conds = {c["type"]: c for c in n["status"]["conditions"]}
            return conds["Ready"]["status"] == "Unknown" and n

        n = eventually(unknown, timeout=GRACE + 30, what="node Unknown")
        conds = {c["type"]: c for c in n["status"]["conditions"]}
        assert conds["Ready"]["reason"] == "NodeStatusUnknown", conds
        assert conds["Ready"]["message"] == "Kubelet stopped posting node status.", conds
        assert conds["MemoryPressure"]["status"] == "Unknown", conds
        taints = eventually(lambda: [t for t in dc.kubectl_json("get", "node", FAKE)["spec"].get("taints", [])
                                     if t["effect"] == "NoExecute"], what="NoExecute taint")
        assert [t["key"] for t in taints] == ["node.kubernetes.io/unreachable"], taints
        no_schedule = [t["key"] for t in dc.kubectl_json("get", "node", FAKE)["spec"]["taints"] if t["effect"] == "NoSchedule"]
        assert "node.kubernetes.io/unreachable" in no_schedule, no_schedule

        # Pods on the lost node are marked not ready; the one with 3 s of toleration is deleted.
        eventually(lambda: not ready(dc.kubectl_json("-n", ns, "get", "pod", "default")), what="pod not ready")
        short_pod = eventually(lambda: (p := dc.kubectl_json("-n", ns, "get", "pod", "short"))["metadata"].get(
            "deletionTimestamp") and p, timeout=30, what="short pod deleted")
        conds = {c["type"]: c for c in short_pod["status"]["conditions"]}
        assert conds["DisruptionTarget"]["reason"] == "DeletionByTaintManager", conds
        events = dc.kubectl_json("-n", ns, "get", "events", "--field-selector", "involvedObject.name=short")["items"]
        assert any(e["reason"] == "TaintManagerEviction" and e["message"] == f"Marking for deletion Pod {ns}/short"
                   for e in events), events
        assert not dc.kubectl_json("-n", ns, "get", "pod", "default")["metadata"].get("deletionTimestamp"), \
            "300 s of toleration keep the other pod"
        # The agent's own node keeps heartbeating and stays Ready and untainted.
        own = dc.kubectl_json("get", "node", NODE)
        assert {c["type"]: c["status"] for c in own["status"]["conditions"]}["Ready"] == "True"
        assert not [t for t in own["spec"].get("taints", []) if t["effect"] == "NoExecute"]
    finally:
        dc.kubectl("-n", ns, "delete", "pod", "--all", "--force", "--grace-period=0", check=False)
        dc.kubectl("delete", "node", FAKE, check=False)
        dc.kubectl("-n", "kube-node-lease", "delete", "lease", FAKE, check=False)
