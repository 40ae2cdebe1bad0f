"""The DaemonSet controller end to end on an agent cluster: a DaemonSet runs one real busybox pod
on the node (status counts, `kubectl get ds` columns with kubectl 1.32 and 1.20, the Python
client), Nodes registered through the API (simulated, with a Lease) get their daemon pods bound
by the scheduler unless their labels miss the `nodeSelector` or they carry an untolerated taint,
`kubectl set image` + `rollout status` + `rollout history` + `rollout undo --to-revision=1` and
`rollout restart` on the real node, OnDelete leaving pods alone until deleted, and a cascading
delete."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from kubernetes import client as k8s

from conftest import KUBECTL_VERSIONS, Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-ds"
NEW_IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def ds_cluster():
    # The simulated nodes' Leases are never renewed: keep them Ready however long the module runs
    # (the node-health controller would mark them Unknown and taint them after 40 s).
    with running_agent_cluster(NODE, ["--node-monitor-grace-period", "24h"]) as c:
        yield c


@pytest.fixture
def ns(ds_cluster):
    name = unique("ds")
    ds_cluster.kubectl("create", "namespace", name)
    yield name
    ds_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def daemonset(name: str, node_selector: dict | None = None, strategy: dict | None = None,
              tolerations: list | None = None, change_cause: str = "") -> str:
    spec = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "sleep 3600"]}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    meta = {"name": name}
    if change_cause:
        meta["annotations"] = {"kubernetes.io/change-cause": change_cause}
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
          "spec": {"selector": {"matchLabels": {"app": name}},
                   "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}
    if strategy:
        ds["spec"]["updateStrategy"] = strategy
    return json.dumps(ds)


def get_json(c: Cluster, ns: str, *args: str) -> dict:
    return json.loads(c.kubectl("-n", ns, *args, "-o", "json").stdout)


def ds_pods(c: Cluster, ns: str, name: str) -> list[dict]:
    return [p for p in get_json(c, ns, "get", "pods", "-l", f"app={name}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def status(c: Cluster, ns: str, name: str) -> dict:
    return get_json(c, ns, "get", "ds", name).get("status", {})


def rolled_out(c: Cluster, ns: str, name: str, image: str) -> list[dict] | None:
    """The DaemonSet's pods once exactly one runs `image`, ready, and the status says so."""
    ds = get_json(c, ns, "get", "ds", name)
    s = ds.get("status", {})
    pods = ds_pods(c, ns, name)
    ok = (s.get("observedGeneration") == ds["metadata"]["generation"] and s.get("desiredNumberScheduled") == 1
          and s.get("updatedNumberScheduled") == 1 and s.get("numberAvailable") == 1 and len(pods) == 1
          and pods[0]["spec"]["containers"][0]["image"] == image
          and any(cd["type"] == "Ready" and cd["status"] == "True" for cd in pods[0]["status"].get("conditions", [])))
    return pods if ok else None


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_daemonset_runs_one_pod_on_the_node(ds_cluster, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    c = ds_cluster
    name = unique("d")
    c.kubectl("-n", ns, "create", "-f", "-", input=daemonset(name, {"kubernetes.io/hostname": NODE}), version=version)
    pods = eventually(lambda: rolled_out(c, ns, name, "busybox"), timeout=90, what="daemon pod running")
    pod = pods[0]
    assert re.fullmatch(rf"{name}-[a-z0-9]{{5}}", pod["metadata"]["name"]), pod["metadata"]["name"]
    assert pod["spec"]["nodeName"] == NODE
    labels = pod["metadata"]["labels"]
    assert labels["pod-template-generation"] == "1"
    revs = get_json(c, ns, "get", "controllerrevisions")["items"]
    assert len(revs) == 1 and revs[0]["revision"] == 1
    assert labels["controller-revision-hash"] == revs[0]["metadata"]["labels"]["controller-revision-hash"]
    assert revs[0]["metadata"]["name"] == f"{name}-{labels['controller-revision-hash']}"
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("DaemonSet", name, True)
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE]}]}]}
    tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule")} <= tolerations
    s = status(c, ns, name)
    assert (s["currentNumberScheduled"], s["numberMisscheduled"], s["numberReady"]) == (1, 0, 1)
    assert "numberUnavailable" not in s
    ds = get_json(c, ns, "get", "ds", name)
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    out = c.kubectl("-n", ns, "get", "ds", name, version=version).stdout.splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR",
                              "AGE"]
    assert out[1].split()[:7] == [name, "1", "1", "1", "1", "1", f"kubernetes.io/hostname={NODE}"]
    events = get_json(c, ns, "get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    assert any(e["reason"] == "SuccessfulCreate" and e["message"] == f"Created pod: {pod['metadata']['name']}"
               and e["source"]["component"] == "daemonset-controller" for e in events), events
    # The Python client reads the same status.
    api = k8s.AppsV1Api(c.python_client())
    st = api.read_namespaced_daemon_set(name, ns).status
    assert (st.desired_number_scheduled, st.current_number_scheduled, st.number_ready, st.number_available,
            st.updated_number_scheduled, st.number_misscheduled) == (1, 1, 1, 1, 1, 0)
    # A deleted daemon pod is replaced.
    c.kubectl("-n", ns, "delete", "pod", pod["metadata"]["name"], "--wait=false")
    again = eventually(lambda: (p := rolled_out(c, ns, name, "busybox")) and p[0]["metadata"]["name"]
                        != pod["metadata"]["name"] and p, timeout=90, what="pod replaced")
    assert again[0]["spec"]["nodeName"] == NODE
    # Deleting the DaemonSet cascades to its pods and revisions.
    c.kubectl("-n", ns, "delete", "ds", name, version=version)
    eventually(lambda: not get_json(c, ns, "get", "pods", "-l", f"app={name}")["items"], timeout=90,
               what="pods deleted with the DaemonSet")
    eventually(lambda: not get_json(c, ns, "get", "controllerrevisions")["items"], what="revisions deleted")


def fake_node(c: Cluster, name: str, labels: dict, taints: list | None = None) -> None:
    """Registers a simulated Node (ready, with a Lease) that no agent runs."""
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"taints": taints or []},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "simulated"}]}}
    c.kubectl("create", "-f", "-", input=json.dumps(node))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}
    c.kubectl("create", "-f", "-", input=json.dumps(lease))


def placement(c: Cluster, ns: str, name: str) -> dict[str, str]:
    """Target node -> pod name (bound pods only). Pods the controller deleted are force-removed
    first: no kubelet runs on simulated nodes to finish their graceful deletion."""
    for p in get_json(c, ns, "get", "pods", "-l", f"app={name}")["items"]:
        if p["metadata"].get("deletionTimestamp"):
            c.kubectl("-n", ns, "delete", "pod", p["metadata"]["name"], "--grace-period=0", "--force",
                      "--wait=false", check=False)
    return {p["spec"].get("nodeName", ""): p["metadata"]["name"] for p in ds_pods(c, ns, name)}


def test_simulated_nodes_get_daemon_pods_by_selector_and_taints(ds_cluster, ns):
    c = ds_cluster
    nodes = ["ds-sim-a", "ds-sim-b", "ds-sim-c", "ds-sim-d"]
    try:
        fake_node(c, "ds-sim-a", {"role": "edge"})
        fake_node(c, "ds-sim-b", {"role": "edge"}, [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        fake_node(c, "ds-sim-c", {"role": "core"})
        fake_node(c, "ds-sim-d", {"role": "edge"}, [{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
        name = unique("edge")
        c.kubectl("-n", ns, "create", "-f", "-", input=daemonset(name, {"role": "edge"}))
        eventually(lambda: placement(c, ns, name).keys() == {"ds-sim-a"}, what="pod bound to ds-sim-a only")
        s = eventually(lambda: (s := status(c, ns, name)).get("desiredNumberScheduled") == 1
                       and s.get("currentNumberScheduled") == 1 and s, what="status counts")
        assert (s["numberReady"], s.get("numberAvailable", 0), s["numberUnavailable"]) == (0, 0, 1)
        # A node whose labels start matching gets a pod.
        c.kubectl("label", "node", "ds-sim-c", "role=edge", "--overwrite")
        eventually(lambda: placement(c, ns, name).keys() == {"ds-sim-a", "ds-sim-c"}, what="pod on relabelled node")
        # Removing the NoSchedule taint lets ds-sim-b have one too.
        c.kubectl("taint", "node", "ds-sim-b", "dedicated-")
        eventually(lambda: placement(c, ns, name).keys() == {"ds-sim-a", "ds-sim-b", "ds-sim-c"},
                   what="pod on untainted node")
        # A NoSchedule taint keeps a running pod; a NoExecute one removes it.
        c.kubectl("taint", "node", "ds-sim-b", "dedicated=db:NoSchedule")
        c.kubectl("taint", "node", "ds-sim-c", "dedicated=db:NoExecute")
        eventually(lambda: placement(c, ns, name).keys() == {"ds-sim-a", "ds-sim-b"}, what="NoExecute evicts")
        s = eventually(lambda: (s := status(c, ns, name)).get("desiredNumberScheduled") == 1
                       and s.get("numberMisscheduled") == 1 and s, what="misscheduled counted")
        assert s["currentNumberScheduled"] == 1
        # A toleration brings the daemon back to the tainted nodes.
        c.kubectl("-n", ns, "patch", "ds", name, "--type=merge", "-p", json.dumps({"spec": {"template": {"spec": {
            "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}}))
        eventually(lambda: placement(c, ns, name).keys() == {"ds-sim-a", "ds-sim-b", "ds-sim-c", "ds-sim-d"},
                   timeout=90, what="tolerating pods everywhere the label matches")
        assert NODE not in placement(c, ns, name)
    finally:
        for n in nodes:
            c.kubectl("delete", "node", n, "--wait=false", check=False)
            c.kubectl("-n", "kube-node-lease", "delete", "lease", n, "--wait=false", check=False)


def revisions(c: Cluster, ns: str) -> list[dict]:
    return sorted(get_json(c, ns, "get", "controllerrevisions")["items"], key=lambda r: r["revision"])


def test_rolling_update_history_undo_and_restart(ds_cluster, ns):
    c = ds_cluster
    name = unique("roll")
    c.kubectl("-n", ns, "create", "-f", "-",
              input=daemonset(name, {"kubernetes.io/hostname": NODE}, change_cause="create busybox"))
    first = eventually(lambda: rolled_out(c, ns, name, "busybox"), timeout=90, what="first rollout")
    out = c.kubectl("-n", ns, "rollout", "status", f"ds/{name}", "--timeout=60s").stdout
    assert f'daemon set "{name}" successfully rolled out' in out
    # The change cause first (no new template), then the new image: revision 2 carries the cause.
    c.kubectl("-n", ns, "annotate", f"ds/{name}", f"kubernetes.io/change-cause=set image {NEW_IMAGE}", "--overwrite")
    c.kubectl("-n", ns, "set", "image", f"ds/{name}", f"main={NEW_IMAGE}")
    out = c.kubectl("-n", ns, "rollout", "status", f"ds/{name}", "--timeout=120s", timeout=150).stdout
    assert f'daemon set "{name}" successfully rolled out' in out
    second = eventually(lambda: rolled_out(c, ns, name, NEW_IMAGE), timeout=90, what="second rollout")
    assert second[0]["metadata"]["name"] != first[0]["metadata"]["name"]
    assert second[0]["metadata"]["labels"]["pod-template-generation"] == "2"
    revs = revisions(c, ns)
    assert [r["revision"] for r in revs] == [1, 2]
    assert second[0]["metadata"]["labels"]["controller-revision-hash"] == \
        revs[1]["metadata"]["labels"]["controller-revision-hash"]
    history = c.kubectl("-n", ns, "rollout", "history", f"ds/{name}").stdout
    assert re.search(r"^1\s+create busybox$", history, re.M), history
    assert re.search(rf"^2\s+set image {NEW_IMAGE}$", history, re.M), history
    # Undo to revision 1: the old template comes back as revision 3.
    out = c.kubectl("-n", ns, "rollout", "undo", f"ds/{name}", "--to-revision=1").stdout
    assert "rolled back" in out, out
    eventually(lambda: rolled_out(c, ns, name, "busybox"), timeout=120, what="undo rolled out")
    revs = eventually(lambda: (rv := revisions(c, ns)) and [r["revision"] for r in rv] == [2, 3] and rv,
                      what="revision 1 renumbered 3")
    assert revs[1]["metadata"]["name"] == f"{name}-{first[0]['metadata']['labels']['controller-revision-hash']}"
    history = c.kubectl("-n", ns, "rollout", "history", f"ds/{name}").stdout
    assert re.search(r"^3\s+", history, re.M) and not re.search(r"^1\s+", history, re.M), history
    # Restart: a new template (restartedAt annotation), a new pod.
    before = ds_pods(c, ns, name)[0]["metadata"]["name"]
    c.kubectl("-n", ns, "rollout", "restart", f"ds/{name}")
    out = c.kubectl("-n", ns, "rollout", "status", f"ds/{name}", "--timeout=120s", timeout=150).stdout
    assert "successfully rolled out" in out
    after = eventually(lambda: (p := rolled_out(c, ns, name, "busybox")) and p[0]["metadata"]["name"] != before and p,
                       timeout=90, what="restarted pod")
    assert "kubectl.kubernetes.io/restartedAt" in after[0]["metadata"]["annotations"]
    assert [r["revision"] for r in revisions(c, ns)] == [2, 3, 4]


def test_on_delete_leaves_pods_until_deleted(ds_cluster, ns):
    c = ds_cluster
    name = unique("ondel")
    c.kubectl("-n", ns, "create", "-f", "-",
              input=daemonset(name, {"kubernetes.io/hostname": NODE}, strategy={"type": "OnDelete"}))
    first = eventually(lambda: rolled_out(c, ns, name, "busybox"), timeout=90, what="first pod")[0]
    c.kubectl("-n", ns, "set", "image", f"ds/{name}", f"main={NEW_IMAGE}")
    s = eventually(lambda: (s := status(c, ns, name)).get("observedGeneration") == 2 and s, what="update observed")
    assert s.get("updatedNumberScheduled", 0) == 0 and s["desiredNumberScheduled"] == 1
    eventually(lambda: len(revisions(c, ns)) == 2, what="second revision")
    pods = ds_pods(c, ns, name)
    assert [p["metadata"]["name"] for p in pods] == [first["metadata"]["name"]]
    assert pods[0]["spec"]["containers"][0]["image"] == "busybox"
    c.kubectl("-n", ns, "delete", "pod", first["metadata"]["name"], "--wait=false")
    new = eventually(lambda: rolled_out(c, ns, name, NEW_IMAGE), timeout=120, what="replacement runs new template")
    assert new[0]["metadata"]["labels"]["pod-template-generation"] == "2"


def test_surge_starts_the_new_pod_before_the_old_one_goes(ds_cluster, ns):
    c = ds_cluster
    name = unique("surge")
    c.kubectl("-n", ns, "create", "-f", "-", input=daemonset(name, {"kubernetes.io/hostname": NODE}, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    old = eventually(lambda: rolled_out(c, ns, name, "busybox"), timeout=90, what="first pod")[0]["metadata"]["name"]
    # Watch the pods: name|deletionTimestamp|Ready, in the order the API server saw the changes.
    w = c.kubectl_bg("-n", ns, "get", "pods", "-l", f"app={name}", "-w", "-o",
                     'jsonpath={.metadata.name}|{.metadata.deletionTimestamp}|'
                     '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}')
    try:
        w.wait_for(lambda line: line.startswith(old + "|"))
        c.kubectl("-n", ns, "set", "image", f"ds/{name}", f"main={NEW_IMAGE}")
        fields = lambda line: (line.split("|") + ["", "", ""])[:3]  # noqa: E731
        w.wait_for(lambda line: fields(line)[0] != old and fields(line)[2] == "True", timeout=90)
        new_ready_at = len(w.seen) - 1
        w.wait_for(lambda line: fields(line)[0] == old and fields(line)[1] != "", timeout=90)
        early = [line for line in w.seen[:new_ready_at] if fields(line)[0] == old and fields(line)[1]]
        assert not early, f"the old pod was deleted before the new one was ready: {w.seen}"
    finally:
        w.stop()
    out = c.kubectl("-n", ns, "rollout", "status", f"ds/{name}", "--timeout=120s", timeout=150).stdout
    assert f'daemon set "{name}" successfully rolled out' in out
    eventually(lambda: rolled_out(c, ns, name, NEW_IMAGE), timeout=60, what="old pod removed")
    # The revision's template can be shown through a dry-run patch.
    shown = c.kubectl("-n", ns, "rollout", "history", f"ds/{name}", "--revision=2").stdout
    assert NEW_IMAGE in shown, shown


def pods_by_node(c: Cluster, ns: str, name: str) -> dict[str, list[dict]]:
    """Target node -> live pods (bound ones only), after force-removing the deleted ones (no
    kubelet finishes a graceful deletion on a simulated node)."""
    placement(c, ns, name)
    out: dict[str, list[dict]] = {}
    for p in ds_pods(c, ns, name):
        if p["spec"].get("nodeName"):
            out.setdefault(p["spec"]["nodeName"], []).append(p)
    return out


def mark_ready(c: Cluster, ns: str, pod: dict) -> None:
    """What a kubelet would report for a started pod on a simulated node."""
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    c.kubectl("-n", ns, "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
              "-p", json.dumps(ready))


def test_surge_leaves_nodes_that_should_not_run_the_pod(ds_cluster, ns):
    """Upstream's surge rollout on four simulated nodes, two of which stop qualifying (NoSchedule,
    so their pods may stay): the unavailable old pod there is deleted, the available one too since
    three pods are available for two nodes, neither is replaced; maxSurge 34% of 2 nodes rounds up
    to one new pod at a time, next to the old pod, which goes once the new one is Ready."""
    c = ds_cluster
    role = unique("leave")
    nodes = [f"{role}-{x}" for x in "abcd"]
    keep, leave = nodes[:2], nodes[2:]
    try:
        for n in nodes:
            fake_node(c, n, {"role": role})
        name = unique("surge")
        c.kubectl("-n", ns, "create", "-f", "-", input=daemonset(name, {"role": role}, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "34%", "maxUnavailable": 0}}))
        first = eventually(lambda: (p := pods_by_node(c, ns, name)).keys() == set(nodes) and p,
                           what="a pod on each node")
        for n in nodes[:3]:  # the pod on the last node never becomes ready
            mark_ready(c, ns, first[n][0])
        eventually(lambda: status(c, ns, name).get("numberAvailable") == 3, what="three available")
        for n in leave:
            c.kubectl("taint", "node", n, "dedicated=db:NoSchedule")
        s = eventually(lambda: (s := status(c, ns, name)).get("desiredNumberScheduled") == 2 and s,
                       what="two nodes should run the pod")
        assert s["numberMisscheduled"] == 2
        assert pods_by_node(c, ns, name).keys() == set(nodes), "NoSchedule keeps running pods"
        c.kubectl("-n", ns, "set", "image", f"ds/{name}", f"main={NEW_IMAGE}")

        def surged_once():
            by = pods_by_node(c, ns, name)
            if set(by) != set(keep) or sorted(len(by[n]) for n in keep) != [1, 2]:
                return None
            return next(n for n in keep if len(by[n]) == 2), by
        node, by = eventually(surged_once, timeout=90, what="leaving nodes emptied, one node surged")
        images = sorted(p["spec"]["containers"][0]["image"] for p in by[node])
        assert images == sorted(["busybox", NEW_IMAGE]), images
        new_pod = lambda pods: next(p for p in pods if p["spec"]["containers"][0]["image"] == NEW_IMAGE)  # noqa: E731
        first_new = new_pod(by[node])
        mark_ready(c, ns, first_new)
        other = next(n for n in keep if n != node)
        # The old pod next to the ready new one goes; then the other node surges.
        by = eventually(lambda: (b := pods_by_node(c, ns, name))
                        and [p["metadata"]["name"] for p in b.get(node, [])] == [first_new["metadata"]["name"]]
                        and len(b.get(other, [])) == 2 and b,
                        timeout=90, what="second node surged after the first new pod was ready")
        mark_ready(c, ns, new_pod(by[other]))
        final = eventually(lambda: (b := pods_by_node(c, ns, name)) and set(b) == set(keep)
                           and all(len(b[n]) == 1 and b[n][0]["spec"]["containers"][0]["image"] == NEW_IMAGE
                                   for n in keep) and b, timeout=90, what="rolled out on the two nodes")
        assert set(final) == set(keep)
        s = eventually(lambda: (s := status(c, ns, name)).get("updatedNumberScheduled") == 2 and s,
                       what="status after the rollout")
        assert (s["desiredNumberScheduled"], s["numberMisscheduled"], s.get("numberAvailable")) == (2, 0, 2), s
    finally:
        for n in nodes:
            c.kubectl("delete", "node", n, "--wait=false", check=False)
            c.kubectl("-n", "kube-node-lease", "delete", "lease", n, "--wait=false", check=False)
