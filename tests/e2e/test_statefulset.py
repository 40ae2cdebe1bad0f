"""The StatefulSet controller end to end on a `skiff server` with its agent: a headless Service
and a StatefulSet whose pods come up one at a time in ordinal order (each held unready by a
readiness probe until the test lets it pass), resolve their own `<pod>.<service>` names, keep
their volume claims (pre-created local PersistentVolumes of a `WaitForFirstConsumer` class that
the scheduler binds) across deletion, scale down highest ordinal first with claims retained or
deleted as the retention policy says; and a RollingUpdate with a partition, driven and inspected
with `kubectl rollout status|history|undo|restart` and `kubectl scale`. Checked with kubectl 1.32
and 1.20 and the Python client."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-sts"
POD_TIMEOUT = 120


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        yield c


@pytest.fixture
def ns(agent_cluster):
    name = unique("sts")
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl(c: Cluster, ns: str, *args: str, version: str = "1.32", **kw) -> subprocess.CompletedProcess:
    return c.kubectl("-n", ns, *args, version=version, **kw)


def apply(c: Cluster, ns: str, obj: dict) -> None:
    kubectl(c, ns, "apply", "-f", "-", input=json.dumps(obj))


def get(c: Cluster, ns: str, kind: str, name: str) -> dict | None:
    r = kubectl(c, ns, "get", kind, name, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def pods(c: Cluster, ns: str, app: str) -> dict[str, dict]:
    items = json.loads(kubectl(c, ns, "get", "pods", "-l", f"app={app}", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items}


def is_ready(pod: dict | None) -> bool:
    conds = (pod or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def events(c: Cluster, ns: str, reason: str) -> list[str]:
    out = kubectl(c, ns, "get", "events", "--field-selector", f"reason={reason}",
                  "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}").stdout
    return out.splitlines()


def statefulset(name: str, replicas: int, command: str, claims: list | None = None, **spec) -> dict:
    container = {
        "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", command],
        # Unready until the test (or the command) creates /tmp/ready.
        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1},
    }
    pod_spec = {"terminationGracePeriodSeconds": 1, "containers": [container]}
    if claims:
        # The mount names the claim template: the controller adds the claim's volume.
        container["volumeMounts"] = [{"name": "www", "mountPath": "/data"}]
    body = {
        "replicas": replicas, "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        **spec,
    }
    if claims:
        body["volumeClaimTemplates"] = claims
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": body}


def claim_template(storage_class: str) -> dict:
    return {"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "1Gi"}}}}


def local_volumes(c: Cluster, ns: str, count: int) -> str:
    """A WaitForFirstConsumer StorageClass and `count` local PersistentVolumes on the node."""
    sc = f"local-{ns}"
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": sc},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}))
    for i in range(count):
        path = c.workdir / f"pv-{ns}-{i}"
        path.mkdir(parents=True, exist_ok=True)
        c.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}-{i}"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": sc,
                     "persistentVolumeReclaimPolicy": "Retain", "local": {"path": str(path)},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}]}}}}))
    return sc


def make_ready(c: Cluster, ns: str, name: str) -> None:
    eventually(lambda: (get(c, ns, "pod", name) or {}).get("status", {}).get("phase") == "Running",
               timeout=POD_TIMEOUT, what=f"{name} Running")
    kubectl(c, ns, "exec", name, "--", "touch", "/tmp/ready")
    eventually(lambda: is_ready(get(c, ns, "pod", name)), timeout=POD_TIMEOUT, what=f"{name} Ready")


def test_ordered_start_identity_storage_and_scale_down(agent_cluster, ns):
    c = agent_cluster
    sc = local_volumes(c, ns, 3)
    apply(c, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                  "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    apply(c, ns, statefulset("web", 3, "hostname >> /data/starts; exec sleep 3600", [claim_template(sc)]))

    # OrderedReady: each pod is created only once its predecessor is Running and Ready.
    for i in range(3):
        name = f"web-{i}"
        eventually(lambda n=name: get(c, ns, "pod", n), timeout=POD_TIMEOUT, what=f"{name} created")
        eventually(lambda n=name: (get(c, ns, "pod", n) or {}).get("status", {}).get("phase") == "Running",
                   timeout=POD_TIMEOUT, what=f"{name} Running")
        if i < 2:
            # Running but not Ready: the next ordinal must not appear.
            assert get(c, ns, "pod", f"web-{i + 1}") is None, f"web-{i + 1} created before {name} was Ready"
        make_ready(c, ns, name)
    creates = events(c, ns, "SuccessfulCreate")
    for i in range(3):
        assert f"create Pod web-{i} in StatefulSet web successful" in creates, creates
        assert f"create Claim www-web-{i} Pod web-{i} in StatefulSet web success" in creates, creates

    sts = eventually(lambda: (s := get(c, ns, "sts", "web")) and s["status"].get("readyReplicas") == 3 and s,
                     timeout=POD_TIMEOUT, what="status readyReplicas 3")
    st = sts["status"]
    assert st["replicas"] == 3 and st["availableReplicas"] == 3 and st["currentReplicas"] == 3
    assert st["updatedReplicas"] == 3 and st["observedGeneration"] == sts["metadata"]["generation"]
    assert st["currentRevision"] == st["updateRevision"] and st["currentRevision"].startswith("web-")
    assert st["collisionCount"] == 0

    # Identity: names, labels, hostname/subdomain, claims bound and mounted.
    all_pods = pods(c, ns, "web")
    for i in range(3):
        p = all_pods[f"web-{i}"]
        labels = p["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert labels["apps.kubernetes.io/pod-index"] == str(i)
        assert labels["controller-revision-hash"] == st["currentRevision"]
        assert p["spec"]["hostname"] == f"web-{i}" and p["spec"]["subdomain"] == "web"
        owner = p["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "web", True)
        vols = {v["name"]: v for v in p["spec"]["volumes"]}
        assert vols["www"]["persistentVolumeClaim"]["claimName"] == f"www-web-{i}"
        pvc = get(c, ns, "pvc", f"www-web-{i}")
        assert pvc["metadata"]["labels"] == {"app": "web"}
        assert pvc["status"]["phase"] == "Bound"
        assert not pvc["metadata"].get("ownerReferences"), "Retain/Retain leaves claims unowned"
        assert kubectl(c, ns, "exec", f"web-{i}", "--", "hostname").stdout.strip() == f"web-{i}"

    # The pods' own names resolve through the cluster DNS (headless service records).
    ip0 = all_pods["web-0"]["status"]["podIP"]
    fqdn = f"web-0.web.{ns}.svc.cluster.local"
    eventually(lambda: ip0 in kubectl(c, ns, "exec", "web-1", "--", "nslookup", fqdn, check=False).stdout,
               timeout=60, what=f"{fqdn} resolves to {ip0}")

    # kubectl get sts, both versions; the Python client reads the status.
    for version in ("1.32", "1.20"):
        if have_kubectl(version):
            out = kubectl(c, ns, "get", "sts", version=version).stdout.splitlines()
            assert out[0].split() == ["NAME", "READY", "AGE"], out
            assert out[1].split()[:2] == ["web", "3/3"], out
            wide = kubectl(c, ns, "get", "sts", "-o", "wide", version=version).stdout.splitlines()
            assert wide[0].split() == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"], wide
    from kubernetes import client as k8s
    api = k8s.AppsV1Api(c.python_client())
    s = api.read_namespaced_stateful_set("web", ns)
    assert (s.status.replicas, s.status.ready_replicas, s.status.available_replicas) == (3, 3, 3)
    assert s.status.current_revision == s.status.update_revision == st["updateRevision"]
    assert s.spec.pod_management_policy == "OrderedReady" and s.spec.update_strategy.type == "RollingUpdate"

    # web-0's data survives its deletion: the new web-0 gets the same claim.
    uid0 = all_pods["web-0"]["metadata"]["uid"]
    kubectl(c, ns, "delete", "pod", "web-0", "--wait=false")
    eventually(lambda: (p := get(c, ns, "pod", "web-0")) and p["metadata"]["uid"] != uid0
               and p["status"].get("phase") == "Running", timeout=POD_TIMEOUT, what="web-0 recreated")
    starts = kubectl(c, ns, "exec", "web-0", "--", "cat", "/data/starts").stdout.split()
    assert starts == ["web-0", "web-0"], starts
    make_ready(c, ns, "web-0")

    # Scale down: highest ordinal first, one at a time; claims retained by default.
    kubectl(c, ns, "scale", "sts/web", "--replicas=1")
    seen_web2_gone = False

    def scaled_down():
        nonlocal seen_web2_gone
        current = pods(c, ns, "web")
        if "web-2" in current:
            assert "deletionTimestamp" not in current["web-1"]["metadata"], "web-1 deleted before web-2 was gone"
        else:
            seen_web2_gone = True
        return set(current) == {"web-0"}
    eventually(scaled_down, timeout=POD_TIMEOUT, what="scaled down to web-0")
    assert seen_web2_gone
    deletes = events(c, ns, "SuccessfulDelete")
    assert "delete Pod web-2 in StatefulSet web successful" in deletes, deletes
    assert all(get(c, ns, "pvc", f"www-web-{i}") for i in range(3)), "claims are retained on scale-down"
    eventually(lambda: (s := get(c, ns, "sts", "web")) and s["status"]["replicas"] == 1, what="status replicas 1")

    # whenScaled: Delete hands the claims of condemned pods to the pods, so they go with them.
    kubectl(c, ns, "scale", "sts/web", "--replicas=2")
    eventually(lambda: get(c, ns, "pod", "web-1"), timeout=POD_TIMEOUT, what="web-1 back")
    make_ready(c, ns, "web-1")
    starts = kubectl(c, ns, "exec", "web-1", "--", "cat", "/data/starts").stdout.split()
    assert starts == ["web-1", "web-1"], "web-1 got its old claim back"
    kubectl(c, ns, "patch", "sts", "web", "--type=merge", "-p",
            json.dumps({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete",
                                                                          "whenDeleted": "Delete"}}}))

    def owned_by_set():
        refs = (get(c, ns, "pvc", "www-web-0") or {}).get("metadata", {}).get("ownerReferences", [])
        return [(r["kind"], r["name"], r.get("controller")) for r in refs] == [("StatefulSet", "web", True)]
    eventually(owned_by_set, what="whenDeleted: Delete makes the set own the claims")
    kubectl(c, ns, "scale", "sts/web", "--replicas=1")
    eventually(lambda: get(c, ns, "pvc", "www-web-1") is None, timeout=POD_TIMEOUT,
               what="www-web-1 deleted with web-1")
    assert get(c, ns, "pvc", "www-web-0") is not None
    assert get(c, ns, "pvc", "www-web-2") is not None, "a claim of a pod scaled down earlier stays"


def test_rolling_update_partition_and_rollout_commands(agent_cluster, ns):
    c = agent_cluster
    apply(c, ns, statefulset("roll", 3, "touch /tmp/ready; exec sleep 3600", podManagementPolicy="Parallel"))

    def settled(n_updated=None):
        s = get(c, ns, "sts", "roll")
        if not s:
            return None
        st = s.get("status", {})
        if st.get("observedGeneration") != s["metadata"]["generation"] or st.get("readyReplicas") != 3:
            return None
        if n_updated is not None and st.get("updatedReplicas") != n_updated:
            return None
        return s
    s = eventually(settled, timeout=POD_TIMEOUT, what="3 ready pods")
    rev1 = s["status"]["currentRevision"]
    out = kubectl(c, ns, "rollout", "status", "sts/roll", "--timeout=60s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated..." in out, out

    # Partition 2: only roll-2 moves to the new revision.
    kubectl(c, ns, "patch", "sts", "roll", "--type=merge", "-p",
            '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
    kubectl(c, ns, "annotate", "sts", "roll", "kubernetes.io/change-cause=set VERSION=2")
    kubectl(c, ns, "set", "env", "sts/roll", "VERSION=2")
    s = eventually(lambda: settled(1), timeout=POD_TIMEOUT, what="one pod updated")
    rev2 = s["status"]["updateRevision"]
    assert rev2 != rev1 and s["status"]["currentRevision"] == rev1
    revs = {n: p["metadata"]["labels"]["controller-revision-hash"] for n, p in pods(c, ns, "roll").items()}
    assert revs == {"roll-0": rev1, "roll-1": rev1, "roll-2": rev2}, revs
    out = kubectl(c, ns, "rollout", "status", "sts/roll", "--timeout=60s").stdout
    assert "partitioned roll out complete: 1 new pods have been updated..." in out, out

    # Partition 0: the rest follow, highest ordinal first, and the update completes.
    kubectl(c, ns, "patch", "sts", "roll", "--type=merge", "-p",
            '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    out = kubectl(c, ns, "rollout", "status", "sts/roll", "--timeout=120s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated..." in out, out
    s = eventually(lambda: (s := settled(3)) and s["status"]["currentRevision"] == rev2 and s,
                   timeout=POD_TIMEOUT, what="currentRevision becomes the update revision")
    env = kubectl(c, ns, "exec", "roll-0", "--", "sh", "-c", "echo $VERSION").stdout.strip()
    assert env == "2"

    # History and undo.
    for version in ("1.32", "1.20"):
        if have_kubectl(version):
            hist = kubectl(c, ns, "rollout", "history", "sts/roll", version=version).stdout
            lines = [line.split(None, 1) for line in hist.splitlines()[2:] if line.strip()]
            assert [line[0] for line in lines] == ["1", "2"], hist
            assert lines[1][1].strip() == "set VERSION=2", hist
    revisions = json.loads(kubectl(c, ns, "get", "controllerrevisions", "-o", "json").stdout)["items"]
    assert {r["metadata"]["name"] for r in revisions} == {rev1, rev2}
    kubectl(c, ns, "rollout", "undo", "sts/roll")
    s = eventually(lambda: (s := settled(3)) and s["status"]["updateRevision"] == rev1
                   and s["status"]["currentRevision"] == rev1 and s, timeout=POD_TIMEOUT, what="rolled back")
    assert kubectl(c, ns, "exec", "roll-0", "--", "sh", "-c", "echo ${VERSION:-none}").stdout.strip() == "none"
    revisions = json.loads(kubectl(c, ns, "get", "controllerrevisions", "-o", "json").stdout)["items"]
    assert {r["metadata"]["name"]: r["revision"] for r in revisions} == {rev1: 3, rev2: 2}

    # restart: a new revision rolls every pod.
    uids = {n: p["metadata"]["uid"] for n, p in pods(c, ns, "roll").items()}
    kubectl(c, ns, "rollout", "restart", "sts/roll")
    s = eventually(lambda: (s := settled(3)) and s["status"]["currentRevision"] not in (rev1, rev2)
                   and s["status"]["currentRevision"] == s["status"]["updateRevision"] and s,
                   timeout=POD_TIMEOUT, what="restart rolled out")
    assert all(p["metadata"]["uid"] != uids[n] for n, p in pods(c, ns, "roll").items())

    # scale through the scale subresource, kubectl 1.20 too.
    version = "1.20" if have_kubectl("1.20") else "1.32"
    kubectl(c, ns, "scale", "sts/roll", "--replicas=1", version=version)
    eventually(lambda: set(pods(c, ns, "roll")) == {"roll-0"}, timeout=POD_TIMEOUT, what="scaled to 1")


def test_parallel_rolling_update_with_max_unavailable(agent_cluster, ns):
    c = agent_cluster
    # Pods of the old revision become ready by themselves; updated ones wait for the test.
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    apply(c, ns, statefulset("wide", 4, '[ "$VERSION" = 2 ] || touch /tmp/ready; exec sleep 3600',
                             podManagementPolicy="Parallel", updateStrategy=strategy))
    eventually(lambda: (s := get(c, ns, "sts", "wide")) and s.get("status", {}).get("readyReplicas") == 4,
               timeout=POD_TIMEOUT, what="4 ready pods")
    rev1 = get(c, ns, "sts", "wide")["status"]["currentRevision"]
    names = [f"wide-{i}" for i in range(4)]
    most_unavailable = 0

    def sample() -> dict[str, dict]:
        """The pods now; records how many of the four are missing, terminating or unready."""
        nonlocal most_unavailable
        ps = pods(c, ns, "wide")
        down = sum(1 for n in names
                   if n not in ps or ps[n]["metadata"].get("deletionTimestamp") or not is_ready(ps[n]))
        most_unavailable = max(most_unavailable, down)
        return ps

    def revision(p: dict) -> str:
        return p["metadata"]["labels"]["controller-revision-hash"]

    def updated_and_running(ps: dict[str, dict], which: list[str]) -> bool:
        return all(n in ps and revision(ps[n]) != rev1 and not ps[n]["metadata"].get("deletionTimestamp")
                   and ps[n].get("status", {}).get("phase") == "Running" for n in which)

    kubectl(c, ns, "set", "env", "sts/wide", "VERSION=2")
    # The two highest ordinals go together; while they are unready nothing else is touched.
    ps = eventually(lambda: ps if updated_and_running(ps := sample(), ["wide-2", "wide-3"]) else None,
                    timeout=POD_TIMEOUT, interval=0.2, what="wide-2 and wide-3 updated")
    for n in ("wide-0", "wide-1"):
        assert revision(ps[n]) == rev1 and not ps[n]["metadata"].get("deletionTimestamp"), ps[n]["metadata"]
    assert most_unavailable == 2, most_unavailable
    for n in ("wide-2", "wide-3"):
        kubectl(c, ns, "exec", n, "--", "touch", "/tmp/ready")
    eventually(lambda: updated_and_running(sample(), ["wide-0", "wide-1"]), timeout=POD_TIMEOUT, interval=0.2,
               what="wide-0 and wide-1 updated")
    for n in ("wide-0", "wide-1"):
        kubectl(c, ns, "exec", n, "--", "touch", "/tmp/ready")
    out = kubectl(c, ns, "rollout", "status", "sts/wide", "--timeout=120s").stdout
    assert "partitioned roll out complete: 4 new pods have been updated..." in out, out
    sample()
    assert most_unavailable == 2, f"more than maxUnavailable pods were down at once: {most_unavailable}"
    r = kubectl(c, ns, "patch", "sts", "wide", "--type=merge", "-p",
                '{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":0}}}}', check=False)
    assert "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0" in r.stderr, r.stderr
