"""Workload controllers end to end: Deployments, ReplicaSets, ReplicationControllers, the garbage
collector, Endpoints/EndpointSlices, ServiceAccounts and the root CA ConfigMap, driven by kubectl
(1.32 and 1.20) and the Python client.

The shared cluster runs without an agent (and there is no scheduler yet), so pods never start:
tests play the kubelet's part where they need ready pods, patching pod status to Running/Ready
with an address through the API (`make_ready`). Everything else is the controllers' own work.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json

import yaml

from conftest import eventually, unique

_ips = itertools.count(2)


def deployment(name: str, replicas: int = 3, image: str = "busybox:v1", strategy: str = "") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{kubernetes.io/change-cause: "create {image}"}}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels: {{app: {name}}}
  {strategy or "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: '25%'}}"}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
        command: [sleep, "3600"]
        ports:
        - {{name: http, containerPort: 8080}}
"""


def pods(k, selector: str) -> list[dict]:
    return k.json("get", "pods", "-l", selector)["items"]


def make_ready(api_client, namespace: str, selector: str, ready: bool = True) -> int:
    """Plays the kubelet: every active pod matching `selector` becomes Running and Ready (or not
    ready) with an address. Returns how many pods match."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    items = core.list_namespaced_pod(namespace, label_selector=selector).items
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for p in items:
        if p.metadata.deletion_timestamp:
            continue
        conds = {c.type: c.status for c in (p.status.conditions or [])}
        want = "True" if ready else "False"
        if conds.get("Ready") == want and p.status.pod_ip:
            continue
        n = next(_ips)
        ip = p.status.pod_ip or f"10.77.{n // 250}.{n % 250 + 1}"
        body = {"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": want, "lastTransitionTime": now}],
        }}
        core.patch_namespaced_pod_status(p.metadata.name, namespace, body)
    return len([p for p in items if not p.metadata.deletion_timestamp])


def rollout_done(k, api_client, name: str, replicas: int) -> bool:
    make_ready(api_client, k.namespace, f"app={name}")
    d = k.json("get", "deployment", name)
    s = d.get("status", {})
    return (
        s.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and s.get("updatedReplicas", 0) == replicas
        and s.get("replicas", 0) == replicas
        and s.get("availableReplicas", 0) == replicas
    )


def replicasets(k, name: str) -> list[dict]:
    return sorted(
        k.json("get", "rs", "-l", f"app={name}")["items"],
        key=lambda r: int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
    )


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def test_rollout_forward_history_and_undo(k, api_client):
    name = unique("web")
    k("apply", "-f", "-", input=deployment(name))
    eventually(lambda: rollout_done(k, api_client, name, 3), what="first rollout")
    out = k.out("rollout", "status", f"deployment/{name}", "--timeout=30s")
    assert "successfully rolled out" in out

    d = k.json("get", "deployment", name)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    [rs1] = replicasets(k, name)
    h1 = rs1["metadata"]["labels"]["pod-template-hash"]
    assert rs1["metadata"]["name"] == f"{name}-{h1}"
    assert rs1["spec"]["selector"]["matchLabels"]["pod-template-hash"] == h1
    ref = rs1["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "Deployment", d["metadata"]["uid"], True, True)
    assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"
    assert rs1["metadata"]["annotations"]["kubernetes.io/change-cause"] == "create busybox:v1"
    assert len(pods(k, f"app={name}")) == 3

    k("set", "image", f"deployment/{name}", "main=busybox:v2")
    k("annotate", "deployment", name, "--overwrite", "kubernetes.io/change-cause=image v2")
    eventually(lambda: rollout_done(k, api_client, name, 3) and len(replicasets(k, name)) == 2, what="second rollout")
    old, new = replicasets(k, name)
    eventually(lambda: k.json("get", "rs", old["metadata"]["name"])["spec"]["replicas"] == 0, what="old RS scaled down")
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:v2"
    eventually(lambda: k.json("get", "rs", new["metadata"]["name"])["metadata"]["annotations"].get(
        "kubernetes.io/change-cause") == "image v2", what="change cause copied")
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={name}")
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 1" in events
    assert f"Scaled down replica set {old['metadata']['name']} from" in events

    history = k.out("rollout", "history", f"deployment/{name}")
    lines = [line.split(None, 1) for line in history.splitlines() if line[:1].isdigit()]
    assert [(rev, cause.strip()) for rev, cause in lines] == [("1", "create busybox:v1"), ("2", "image v2")], history

    k("rollout", "undo", f"deployment/{name}", "--to-revision=1")
    eventually(lambda: rollout_done(k, api_client, name, 3)
               and k.json("get", "deployment", name)["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3",
               what="rollback to revision 1")
    d = k.json("get", "deployment", name)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:v1"
    back = k.json("get", "rs", rs1["metadata"]["name"])
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert len(replicasets(k, name)) == 2, "the rollback reuses the first ReplicaSet"
    history = k.out("rollout", "history", f"deployment/{name}")
    revs = [line.split(None, 1)[0] for line in history.splitlines() if line[:1].isdigit()]
    assert revs == ["2", "3"], history


def test_pause_resume_restart_and_scale(k, api_client):
    name = unique("pr")
    k("apply", "-f", "-", input=deployment(name, replicas=2))
    eventually(lambda: rollout_done(k, api_client, name, 2), what="first rollout")

    k("rollout", "pause", f"deployment/{name}")
    k("set", "image", f"deployment/{name}", "main=busybox:paused")

    def paused_observed():
        d = k.json("get", "deployment", name)
        return (d["status"].get("observedGeneration") == d["metadata"]["generation"]
                and condition(d, "Progressing").get("reason") == "DeploymentPaused")
    eventually(paused_observed, what="pause observed")
    assert condition(k.json("get", "deployment", name), "Progressing")["message"] == "Deployment is paused"
    assert len(replicasets(k, name)) == 1, "a paused Deployment does not roll out"

    # Scaling works while paused (the old template's ReplicaSet grows; nothing is updated).
    k("scale", f"deployment/{name}", "--replicas=4")

    def scaled_while_paused():
        make_ready(api_client, k.namespace, f"app={name}")
        s = k.json("get", "deployment", name)["status"]
        return s.get("replicas") == 4 and s.get("availableReplicas") == 4 and not s.get("updatedReplicas")
    eventually(scaled_while_paused, what="scaled up while paused")
    assert len(replicasets(k, name)) == 1

    k("rollout", "resume", f"deployment/{name}")
    eventually(lambda: rollout_done(k, api_client, name, 4) and len(replicasets(k, name)) == 2, what="resumed rollout")
    assert replicasets(k, name)[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:paused"

    k("rollout", "restart", f"deployment/{name}")
    eventually(lambda: rollout_done(k, api_client, name, 4) and len(replicasets(k, name)) == 3, what="restart")
    newest = replicasets(k, name)[-1]
    assert "kubectl.kubernetes.io/restartedAt" in newest["spec"]["template"]["metadata"]["annotations"]

    k("scale", f"deployment/{name}", "--replicas=1")
    eventually(lambda: rollout_done(k, api_client, name, 1) and len(pods(k, f"app={name}")) == 1, what="scaled down")
    rs = k.json("get", "rs", newest["metadata"]["name"])
    assert rs["status"]["replicas"] == 1 and rs["status"]["readyReplicas"] == 1
    assert rs["status"]["observedGeneration"] == rs["metadata"]["generation"]


def test_recreate_strategy(k, api_client):
    name = unique("rc")
    k("apply", "-f", "-", input=deployment(name, replicas=2, strategy="strategy: {type: Recreate}"))
    eventually(lambda: rollout_done(k, api_client, name, 2), what="first rollout")
    k("set", "image", f"deployment/{name}", "main=busybox:v2")
    eventually(lambda: rollout_done(k, api_client, name, 2) and len(replicasets(k, name)) == 2, what="recreate")
    old, new = replicasets(k, name)
    assert k.json("get", "rs", old["metadata"]["name"])["spec"]["replicas"] == 0
    assert all(p["metadata"]["ownerReferences"][0]["name"] == new["metadata"]["name"] for p in pods(k, f"app={name}"))


def test_cascading_delete_orphan_and_foreground(k, api_client):
    name = unique("gc")
    k("apply", "-f", "-", input=deployment(name, replicas=2))
    eventually(lambda: len(pods(k, f"app={name}")) == 2 and len(replicasets(k, name)) == 1, what="pods created")
    [rs] = replicasets(k, name)

    k("delete", "deployment", name, "--cascade=orphan")
    eventually(lambda: not k.json("get", "rs", rs["metadata"]["name"])["metadata"].get("ownerReferences"),
               what="ReplicaSet orphaned")
    assert k("get", "deployment", name, check=False).returncode != 0
    assert len(pods(k, f"app={name}")) == 2, "orphaned ReplicaSet keeps its pods"

    k("delete", "rs", rs["metadata"]["name"], "--cascade=foreground")
    # kubectl waited for the ReplicaSet to go; foreground deletion removed the pods first.
    assert pods(k, f"app={name}") == []

    other = unique("bg")
    k("apply", "-f", "-", input=deployment(other, replicas=2))
    eventually(lambda: len(pods(k, f"app={other}")) == 2, what="pods created")
    k("delete", "deployment", other)
    eventually(lambda: not replicasets(k, other) and not pods(k, f"app={other}"), what="background cascade")


def test_replication_controller_and_adoption(k, api_client):
    name = unique("legacy")
    k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: busybox:v1}}]
""")
    eventually(lambda: make_ready(api_client, k.namespace, f"app={name}") == 2
               and k.json("get", "rc", name).get("status", {}).get("readyReplicas") == 2, what="RC ready")
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={name}")
    assert "SuccessfulCreate" in events and "Created pod: " + name in events
    # A pod deleted by hand is replaced.
    victim = pods(k, f"app={name}")[0]["metadata"]["name"]
    k("delete", "pod", victim, "--wait=false")
    eventually(lambda: victim not in [p["metadata"]["name"] for p in pods(k, f"app={name}")]
               and len(pods(k, f"app={name}")) == 2, what="replacement pod")
    # Releasing a pod by relabelling it: the RC lets it go and makes another.
    keep = pods(k, f"app={name}")[0]["metadata"]["name"]
    k("label", "pod", keep, "--overwrite", "app=released")
    eventually(lambda: not k.json("get", "pod", keep)["metadata"].get("ownerReferences")
               and len(pods(k, f"app={name}")) == 2, what="pod released")
    # Adoption: relabel it back and the RC owns it again and deletes one surplus pod.
    k("label", "pod", keep, "--overwrite", f"app={name}")
    eventually(lambda: len(pods(k, f"app={name}")) == 2
               and any(p["metadata"]["name"] == keep and p["metadata"].get("ownerReferences")
                       for p in pods(k, f"app={name}")), what="pod adopted")


def test_endpoints_and_slices_follow_pod_readiness(k, api_client):
    name = unique("svc")
    k("apply", "-f", "-", input=deployment(name, replicas=2))
    k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, labels: {{tier: web}}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: web, port: 80, targetPort: http}}]
""")
    eventually(lambda: make_ready(api_client, k.namespace, f"app={name}") == 2, what="pods")

    def endpoints():
        make_ready(api_client, k.namespace, f"app={name}")
        ep = k.json("get", "endpoints", name)
        subsets = ep.get("subsets") or []
        return subsets and len(subsets[0].get("addresses", [])) == 2 and ep
    ep = eventually(endpoints, what="ready addresses")
    assert ep["subsets"][0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert ep["metadata"]["labels"] == {"tier": "web"}
    ips = sorted(a["ip"] for a in ep["subsets"][0]["addresses"])

    def slices():
        items = k.json("get", "endpointslices", "-l", f"kubernetes.io/service-name={name}")["items"]
        return items if len(items) == 1 and len(items[0].get("endpoints") or []) == 2 else None
    [s] = eventually(slices, what="EndpointSlice")
    assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert s["metadata"]["labels"]["tier"] == "web"
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert sorted(e["addresses"][0] for e in s["endpoints"]) == ips
    assert all(e["conditions"] == {"ready": True, "serving": True, "terminating": False} for e in s["endpoints"])

    # One pod turns unready: it moves to notReadyAddresses and its endpoint is not ready.
    victim = pods(k, f"app={name}")[0]["metadata"]["name"]
    from kubernetes import client
    client.CoreV1Api(api_client).patch_namespaced_pod_status(victim, k.namespace, {"status": {"conditions": [
        {"type": "Ready", "status": "False"}]}})

    def not_ready():
        ep = k.json("get", "endpoints", name)
        sub = ep["subsets"][0]
        return len(sub.get("addresses", [])) == 1 and len(sub.get("notReadyAddresses", [])) == 1
    eventually(not_ready, what="not-ready address")
    eventually(lambda: sorted(e["conditions"]["ready"] for e in slices()[0]["endpoints"]) == [False, True],
               what="slice condition")
    desc = k.out("describe", "service", name)
    assert "Endpoints:" in desc

    # A Service without a selector: its hand-made Endpoints are mirrored into a slice.
    manual = unique("manual")
    k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: Service
metadata: {{name: {manual}}}
spec:
  ports: [{{port: 5432}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {manual}}}
subsets:
- addresses: [{{ip: 192.0.2.10}}]
  ports: [{{port: 5432}}]
""")

    def mirrored():
        items = k.json("get", "endpointslices", "-l", f"kubernetes.io/service-name={manual}")["items"]
        return items and items[0]
    m = eventually(mirrored, what="mirrored slice")
    assert m["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslicemirroring-controller.k8s.io"
    assert m["endpoints"][0]["addresses"] == ["192.0.2.10"]
    assert m["ports"][0]["port"] == 5432


def test_default_serviceaccount_and_root_ca(cluster, api_client):
    from kubernetes import client

    ns = unique("fresh")
    cluster.kubectl("create", "namespace", ns)
    try:
        core = client.CoreV1Api(api_client)
        sa = eventually(lambda: core.read_namespaced_service_account("default", ns), what="default ServiceAccount")
        assert sa.metadata.name == "default"
        cm = eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns), what="kube-root-ca.crt")
        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        assert cm.data["ca.crt"].strip() == ca.strip()
        # Deleted: recreated; edited: restored.
        core.delete_namespaced_service_account("default", ns)
        eventually(lambda: core.read_namespaced_service_account("default", ns).metadata.uid != sa.metadata.uid,
                   what="default ServiceAccount recreated")
        core.patch_namespaced_config_map("kube-root-ca.crt", ns, {"data": {"ca.crt": "tampered"}})
        eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns).data["ca.crt"].strip() == ca.strip(),
                   what="kube-root-ca.crt restored")
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_controller_manager_holds_its_lease(cluster):
    lease = json.loads(cluster.kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager", "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"].startswith(cluster.node_name + "_")
    assert lease["spec"]["leaseDurationSeconds"] == 15


def test_progress_deadline_exceeded(k):
    name = unique("stuck")
    manifest = deployment(name, replicas=1).replace("  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  progressDeadlineSeconds: 3\n")
    k("apply", "-f", "-", input=manifest)

    # Nobody makes the pod ready: the rollout stalls and times out.
    def timed_out():
        c = condition(k.json("get", "deployment", name), "Progressing")
        return c.get("reason") == "ProgressDeadlineExceeded" and c
    c = eventually(timed_out, timeout=60, what="progress deadline")
    assert c["status"] == "False"
    [rs] = replicasets(k, name)
    assert c["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.'
    d = k.json("get", "deployment", name)
    assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"
    r = k("rollout", "status", f"deployment/{name}", "--timeout=20s", check=False)
    assert r.returncode != 0 and "exceeded its progress deadline" in r.stderr


GADGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_garbage_collection_across_custom_resources(k):
    group = f"gc{unique('g').split('-')[1]}.example.com"
    k("apply", "-f", "-", input=GADGET_CRD.format(group=group))
    k("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=60s")
    try:
        # A custom resource owning a ConfigMap, and a custom resource owned by a ConfigMap.
        eventually(lambda: k("apply", "-f", "-", check=False, input=f"""\
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: owner}}
""").returncode == 0, what="custom resource accepted")
        owner = k.json("get", f"gadgets.{group}", "owner")
        k("create", "configmap", "holder", "--from-literal=a=b")
        holder = k.json("get", "configmap", "holder")
        k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned-by-gadget
  ownerReferences:
  - {{apiVersion: {group}/v1, kind: Gadget, name: owner, uid: {owner["metadata"]["uid"]}}}
---
apiVersion: {group}/v1
kind: Gadget
metadata:
  name: owned-by-configmap
  ownerReferences:
  - {{apiVersion: v1, kind: ConfigMap, name: holder, uid: {holder["metadata"]["uid"]}}}
""")
        k("delete", f"gadgets.{group}", "owner")
        eventually(lambda: k("get", "configmap", "owned-by-gadget", check=False).returncode != 0,
                   what="dependent of a deleted custom resource collected")
        k("delete", "configmap", "holder")
        eventually(lambda: k("get", f"gadgets.{group}", "owned-by-configmap", check=False).returncode != 0,
                   what="custom resource with a deleted owner collected")
        # An owner reference whose owner never existed (UID mismatch) is dangling too.
        k("create", "configmap", "real-owner", "--from-literal=a=b")
        k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: wrong-uid
  ownerReferences:
  - {{apiVersion: v1, kind: ConfigMap, name: real-owner, uid: 00000000-0000-0000-0000-000000000000}}
""")
        eventually(lambda: k("get", "configmap", "wrong-uid", check=False).returncode != 0, what="dangling owner")
        assert k("get", "configmap", "real-owner", check=False).returncode == 0
    finally:
        k.cluster.kubectl("delete", "crd", f"gadgets.{group}", "--wait=false", version=k.version, check=False)
