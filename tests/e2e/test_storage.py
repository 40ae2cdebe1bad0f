"""Persistent storage end to end on an agent cluster: the PersistentVolume controller (static
binding by class and size, `storageClassName: ""`, Retain → Released, a claim that can never
bind), the built-in local-path provisioner behind the default StorageClass `local-path`
(WaitForFirstConsumer, data surviving pods, Delete removing the volume and its directory), the
protection finalizers, and `kubectl get pv,pvc,storageclass` with kubectl 1.32 and 1.20 and the
Python client. Pods are placed by the scheduler (no `nodeName`), which drives WaitForFirstConsumer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import KUBECTL_VERSIONS, Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-storage"


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        yield c


@pytest.fixture
def ns(agent_cluster):
    name = unique("storage")
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl(cluster: Cluster, ns: str, *args: str, version: str = "1.32", **kw) -> subprocess.CompletedProcess:
    return cluster.kubectl("-n", ns, *args, version=version, **kw)


def apply(cluster: Cluster, ns: str | None, obj: dict) -> None:
    args = ("-n", ns) if ns else ()
    cluster.kubectl(*args, "apply", "-f", "-", input=json.dumps(obj))


def claim(name: str, size: str = "1Gi", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": spec.pop("accessModes", ["ReadWriteOnce"]),
                     "resources": {"requests": {"storage": size}}, **spec}}


def volume(name: str, path: Path, size: str, class_name: str = "", policy: str = "Retain") -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": {"test": name}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": class_name, "persistentVolumeReclaimPolicy": policy,
                     "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}}


def pod(name: str, command: str, claim_name: str, restart: str = "Never") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", command],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}}


def get(cluster: Cluster, ns: str | None, kind: str, name: str) -> dict | None:
    args = ("-n", ns) if ns else ()
    r = cluster.kubectl(*args, "get", kind, name, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def phase(cluster: Cluster, ns: str | None, kind: str, name: str) -> str | None:
    obj = get(cluster, ns, kind, name)
    return obj and obj.get("status", {}).get("phase")


def events_for(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = json.loads(kubectl(cluster, ns, "get", "events", "-o", "json").stdout)["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


def test_default_class_is_local_path(agent_cluster):
    sc = get(agent_cluster, None, "storageclass", "local-path")
    assert sc["provisioner"] == "rancher.io/local-path"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer" and sc["reclaimPolicy"] == "Delete"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    for version in KUBECTL_VERSIONS:
        out = agent_cluster.kubectl("get", "storageclass", version=version).stdout
        header, row = out.splitlines()[0].split(), next(l for l in out.splitlines() if l.startswith("local-path"))
        assert header[:5] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION"], out
        assert row.split()[:5] == ["local-path", "(default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer"]


def test_local_path_claim_waits_for_its_first_consumer_then_outlives_pods(agent_cluster, ns):
    apply(agent_cluster, ns, claim("data"))
    pvc = get(agent_cluster, ns, "pvc", "data")
    assert pvc["spec"]["storageClassName"] == "local-path", "DefaultStorageClass admission"
    assert "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    wait = ("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
    eventually(lambda: wait in events_for(agent_cluster, ns, "data"), what="WaitForFirstConsumer event")
    assert phase(agent_cluster, ns, "pvc", "data") == "Pending"

    apply(agent_cluster, ns, pod("writer", "echo kept-across-pods > /data/file && exec sleep 3600", "data"))
    eventually(lambda: phase(agent_cluster, ns, "pvc", "data") == "Bound", what="claim Bound", timeout=90)
    pvc = get(agent_cluster, ns, "pvc", "data")
    uid, pv_name = pvc["metadata"]["uid"], pvc["spec"]["volumeName"]
    assert pv_name == f"pvc-{uid}"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert pvc["status"]["capacity"]["storage"] == "1Gi" and pvc["status"]["accessModes"] == ["ReadWriteOnce"]
    pv = get(agent_cluster, None, "pv", pv_name)
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["claimRef"]["uid"] == uid and pv["status"]["phase"] == "Bound"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [NODE]
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert directory == agent_cluster.data_dir / "storage" / f"pvc-{uid}_{ns}_data"
    reasons = [r for _, r, _ in events_for(agent_cluster, ns, "data")]
    assert {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"} <= set(reasons), reasons

    eventually(lambda: (directory / "file").exists() and (directory / "file").read_text() == "kept-across-pods\n",
               what="the pod wrote into the volume's directory")
    kubectl(agent_cluster, ns, "delete", "pod", "writer", "--wait=true")
    apply(agent_cluster, ns, pod("reader", "cat /data/file", "data"))
    eventually(lambda: get(agent_cluster, ns, "pod", "reader")["status"].get("phase") == "Succeeded",
               what="reader Succeeded", timeout=90)
    assert kubectl(agent_cluster, ns, "logs", "reader").stdout == "kept-across-pods\n"

    # The claim is protected while a pod uses it.
    apply(agent_cluster, ns, pod("holder", "exec sleep 3600", "data", restart="Always"))
    eventually(lambda: get(agent_cluster, ns, "pod", "holder")["status"].get("phase") == "Running",
               what="holder Running", timeout=90)
    kubectl(agent_cluster, ns, "delete", "pvc", "data", "--wait=false")
    held = get(agent_cluster, ns, "pvc", "data")
    assert held["metadata"].get("deletionTimestamp") and held["status"]["phase"] == "Bound"
    kubectl(agent_cluster, ns, "delete", "pod", "reader", "holder", "--wait=true")

    # Delete reclaim: the volume and its directory go.
    eventually(lambda: get(agent_cluster, ns, "pvc", "data") is None, what="claim gone once unused")
    eventually(lambda: get(agent_cluster, None, "pv", pv_name) is None, what="provisioned volume deleted")
    assert not directory.exists()


def test_static_volume_bound_by_class_and_size_then_released(agent_cluster, ns):
    base = agent_cluster.workdir / f"static-{ns}"
    names = {"small": f"{ns}-small", "fit": f"{ns}-fit", "big": f"{ns}-big", "classy": f"{ns}-classy"}
    apply(agent_cluster, None, volume(names["small"], base / "small", "500Mi"))
    apply(agent_cluster, None, volume(names["fit"], base / "fit", "2Gi"))
    apply(agent_cluster, None, volume(names["big"], base / "big", "10Gi"))
    apply(agent_cluster, None, volume(names["classy"], base / "classy", "1Gi", class_name="fast"))
    try:
        apply(agent_cluster, ns, claim("static", "1Gi", storageClassName=""))
        eventually(lambda: phase(agent_cluster, ns, "pvc", "static") == "Bound", what="static claim Bound")
        pvc = get(agent_cluster, ns, "pvc", "static")
        assert pvc["spec"]["volumeName"] == names["fit"], "the smallest volume of no class that fits"
        assert pvc["status"]["capacity"]["storage"] == "2Gi"
        assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
        pv = get(agent_cluster, None, "pv", names["fit"])
        assert pv["spec"]["claimRef"]["name"] == "static" and pv["spec"]["claimRef"]["namespace"] == ns
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
        assert phase(agent_cluster, None, "pv", names["big"]) == "Available"

        core = __import__("kubernetes").client.CoreV1Api(agent_cluster.python_client())
        assert core.read_namespaced_persistent_volume_claim("static", ns).status.phase == "Bound"
        assert core.read_persistent_volume(names["fit"]).status.phase == "Bound"

        for version in KUBECTL_VERSIONS:
            out = agent_cluster.kubectl("get", "pv", names["fit"], names["big"], version=version).stdout
            header = out.splitlines()[0]
            assert header.split()[:2] == ["NAME", "CAPACITY"] and "STATUS" in header and "CLAIM" in header, out
            rows = {l.split()[0]: l for l in out.splitlines()[1:]}
            assert "Bound" in rows[names["fit"]] and f"{ns}/static" in rows[names["fit"]], out
            assert "Available" in rows[names["big"]], out
            out = kubectl(agent_cluster, ns, "get", "pvc", "static", version=version).stdout
            header = out.splitlines()[0].split()
            assert header[:4] == ["NAME", "STATUS", "VOLUME", "CAPACITY"], out
            assert out.splitlines()[1].split()[:4] == ["static", "Bound", names["fit"], "2Gi"], out

        kubectl(agent_cluster, ns, "delete", "pvc", "static")
        eventually(lambda: phase(agent_cluster, None, "pv", names["fit"]) == "Released", what="volume Released")
        pv = get(agent_cluster, None, "pv", names["fit"])
        assert pv["spec"]["claimRef"]["name"] == "static", "Retain keeps the claimRef"
        assert core.read_persistent_volume(names["fit"]).status.phase == "Released"
        for version in KUBECTL_VERSIONS:
            row = agent_cluster.kubectl("get", "pv", names["fit"], "--no-headers", version=version).stdout
            assert "Released" in row, row

        # A new claim of the same name does not get the released volume back.
        apply(agent_cluster, ns, claim("static", "1Gi", storageClassName=""))
        eventually(lambda: phase(agent_cluster, ns, "pvc", "static") == "Bound", what="new claim Bound")
        assert get(agent_cluster, ns, "pvc", "static")["spec"]["volumeName"] == names["big"]
    finally:
        for name in names.values():
            agent_cluster.kubectl("delete", "pv", name, "--wait=false", check=False)


def test_claim_that_can_never_bind_stays_pending(agent_cluster, ns):
    apply(agent_cluster, ns, claim("never", "100Ti", storageClassName="", accessModes=["ReadWriteMany"]))
    expected = ("Normal", "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
    eventually(lambda: expected in events_for(agent_cluster, ns, "never"), what="FailedBinding event")
    assert phase(agent_cluster, ns, "pvc", "never") == "Pending"
    for version in KUBECTL_VERSIONS:
        row = kubectl(agent_cluster, ns, "get", "pvc", "never", "--no-headers", version=version).stdout.split()
        assert row[:2] == ["never", "Pending"], row
    described = kubectl(agent_cluster, ns, "describe", "pvc", "never").stdout
    assert "no persistent volumes available for this claim and no storage class is set" in described

    apply(agent_cluster, ns, claim("nowhere", "1Gi", storageClassName="gold"))
    missing = ("Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "gold" not found')
    eventually(lambda: missing in events_for(agent_cluster, ns, "nowhere"), what="ProvisioningFailed event")


def test_volume_name_pre_binding(agent_cluster, ns):
    base = agent_cluster.workdir / f"named-{ns}"
    names = [f"{ns}-wanted", f"{ns}-tiny"]
    apply(agent_cluster, None, volume(names[0], base / "wanted", "5Gi"))
    apply(agent_cluster, None, volume(names[1], base / "tiny", "100Mi"))
    try:
        apply(agent_cluster, ns, claim("named", "1Gi", storageClassName="", volumeName=names[0]))
        eventually(lambda: phase(agent_cluster, ns, "pvc", "named") == "Bound", what="pre-bound claim Bound")
        pvc = get(agent_cluster, ns, "pvc", "named")
        assert "pv.kubernetes.io/bound-by-controller" not in pvc["metadata"].get("annotations", {})
        pv = get(agent_cluster, None, "pv", names[0])
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"

        apply(agent_cluster, ns, claim("too-big", "1Gi", storageClassName="", volumeName=names[1]))
        mismatch = ("Warning", "VolumeMismatch", f'Cannot bind to requested volume "{names[1]}": requested PV is too small')
        eventually(lambda: mismatch in events_for(agent_cluster, ns, "too-big"), what="VolumeMismatch event")
        assert phase(agent_cluster, ns, "pvc", "too-big") == "Pending"
    finally:
        for name in names:
            agent_cluster.kubectl("delete", "pv", name, "--wait=false", check=False)
