"""Pod volumes end to end: a `skiff server` with its agent runs busybox pods whose containers
print what they see in their volumes to their logs (read from the CRI log files), while the tests
change ConfigMaps, Secrets, labels and claims through kubectl and look at the host side (the pod's
directory under the data dir and the server's mount table).

Covered: configMap volumes with items that update live (and a subPath of one that does not),
secret volumes with items and modes on a tmpfs, a missing ConfigMap (FailedMount, then recovery),
downwardAPI labels that update, memory emptyDirs shared by two containers, emptyDir sizeLimit
eviction, hostPath types, a PersistentVolumeClaim bound to a hostPath PersistentVolume, subPath and
subPathExpr (and a subPath symlink that escapes), fsGroup ownership, HostToContainer and
Bidirectional propagation, projected volumes, and that nothing stays mounted once the pods are
gone (also across a restart).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import Cluster, eventually, have_kubectl, run, running_agent_cluster, unique

NODE = "e2e-volumes"
LOG_DIR = Path("/var/log/pods")


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        yield c


@pytest.fixture
def ns(agent_cluster):
    name = unique("vol")
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl(cluster: Cluster, ns: str, *args: str, version: str = "1.32", **kw) -> subprocess.CompletedProcess:
    return cluster.kubectl("-n", ns, *args, version=version, **kw)


def container(name: str, command: str, mounts: list, **extra) -> dict:
    return {"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", command], "volumeMounts": mounts, **extra}


def apply_pod(cluster: Cluster, ns: str, name: str, containers: list, volumes: list, **spec) -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"nodeName": NODE, "restartPolicy": spec.pop("restartPolicy", "Always"),
                 "terminationGracePeriodSeconds": 1, "containers": containers, "volumes": volumes, **spec},
    }
    kubectl(cluster, ns, "apply", "-f", "-", input=json.dumps(pod))


def get_pod(cluster: Cluster, ns: str, name: str) -> dict:
    return json.loads(kubectl(cluster, ns, "get", "pod", name, "-o", "json").stdout)


def running(cluster: Cluster, ns: str, name: str) -> dict | None:
    pod = get_pod(cluster, ns, name)
    return pod if pod.get("status", {}).get("phase") == "Running" else None


def log_text(ns: str, pod: dict, container_name: str = "main") -> str:
    meta = pod["metadata"]
    path = LOG_DIR / f"{ns}_{meta['name']}_{meta['uid']}" / container_name / "0.log"
    return path.read_text() if path.exists() else ""


def last_line(ns: str, pod: dict, container_name: str = "main") -> str:
    """The last line a container printed (without the CRI prefix)."""
    lines = [line.split(" ", 3)[3] for line in log_text(ns, pod, container_name).splitlines() if line.count(" ") >= 3]
    return lines[-1] if lines else ""


def events(cluster: Cluster, ns: str, reason: str, version: str = "1.32") -> list[str]:
    items = json.loads(kubectl(cluster, ns, "get", "events", "-o", "json", version=version).stdout)["items"]
    return [e.get("message") or e.get("note") or "" for e in items if e.get("reason") == reason]


def server_mounts(cluster: Cluster) -> str:
    """The mount table of the server's mount namespace."""
    assert cluster.proc is not None
    return Path(f"/proc/{cluster.proc.pid}/mountinfo").read_text()


def pod_dir(cluster: Cluster, pod: dict) -> Path:
    return cluster.data_dir / "agent" / "pods" / pod["metadata"]["uid"]


def waiting_reason(pod: dict, index: int = 0) -> str | None:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if len(statuses) <= index:
        return None
    return statuses[index].get("state", {}).get("waiting", {}).get("reason")


def test_config_map_volume_updates_live_but_sub_path_does_not(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "configmap", "cfg", "--from-literal=greeting=hello", "--from-literal=other=x")
    show = ("while true; do echo items=$(cat /etc/cfg/conf/greeting.txt) all=$(cat /etc/whole/greeting) "
            "pinned=$(cat /etc/pinned.txt) listing=$(ls /etc/cfg | tr '\\n' ,); sleep 0.5; done")
    apply_pod(agent_cluster, ns, "reader", [container("main", show, [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "whole", "mountPath": "/etc/whole"},
        {"name": "whole", "mountPath": "/etc/pinned.txt", "subPath": "greeting"},
    ])], [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "conf/greeting.txt"}]}},
        {"name": "whole", "configMap": {"name": "cfg"}},
    ])
    pod = eventually(lambda: running(agent_cluster, ns, "reader"), what="reader Running")
    eventually(lambda: last_line(ns, pod) == "items=hello all=hello pinned=hello listing=conf,",
               what="first version visible", timeout=30)

    # The kubelet's layout on the host: ..data -> ..<timestamp>, keys are links through ..data.
    volume = pod_dir(agent_cluster, pod) / "volumes" / "kubernetes.io~configmap" / "whole"
    version = os.readlink(volume / "..data")
    assert re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+", version), version
    assert os.readlink(volume / "greeting") == "..data/greeting"
    assert (volume / version / "other").read_text() == "x"

    kubectl(agent_cluster, ns, "patch", "configmap", "cfg", "--type=merge", "-p", '{"data":{"greeting":"bonjour"}}')
    eventually(lambda: last_line(ns, pod) == "items=bonjour all=bonjour pinned=hello listing=conf,",
               what="update visible in the running container, subPath unchanged", timeout=30)
    assert os.readlink(volume / "..data") != version, "a new version directory replaced the old one"
    assert not (volume / version).exists()


def test_secret_volume_items_and_modes_on_tmpfs(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "secret", "generic", "creds",
            "--from-literal=user=admin", "--from-literal=pass=s3cr3t-value")
    show = ("stat -L -c '%n %a' /etc/creds/db/password /etc/creds/user; ls /etc/creds; "
            "echo pass=$(cat /etc/creds/db/password); grep ' /etc/creds ' /proc/mounts; exec sleep 3600")
    apply_pod(agent_cluster, ns, "secretive", [container("main", show, [{"name": "creds", "mountPath": "/etc/creds"}])], [
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                     "items": [{"key": "pass", "path": "db/password", "mode": 0o440},
                                               {"key": "user", "path": "user"}]}},
    ])
    pod = eventually(lambda: running(agent_cluster, ns, "secretive"), what="secretive Running")
    text = eventually(lambda: (t := log_text(ns, pod)) and " /etc/creds " in t and t, what="container output")
    assert "/etc/creds/db/password 440" in text and "/etc/creds/user 400" in text, text
    assert "pass=s3cr3t-value" in text
    mount_line = next(line for line in text.splitlines() if " /etc/creds " in line)
    assert mount_line.split(" ", 3)[3].split()[3].startswith("ro,"), f"mounted read-only: {mount_line}"
    volume = pod_dir(agent_cluster, pod) / "volumes" / "kubernetes.io~secret" / "creds"
    host_line = next((m for m in server_mounts(agent_cluster).splitlines() if f" {volume} " in m), "")
    assert " - tmpfs " in host_line, f"the secret lives on a tmpfs: {host_line!r}"
    assert sorted(p.name for p in volume.iterdir() if not p.name.startswith("..")) == ["db", "user"]
    assert "s3cr3t-value" not in agent_cluster.log_path.read_text(), "secret data never reaches the log"


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_missing_config_map_fails_mount_then_recovers(agent_cluster, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    apply_pod(agent_cluster, ns, "patient", [container("main", "echo $(cat /cfg/key); exec sleep 3600",
                                                       [{"name": "cfg", "mountPath": "/cfg"}])],
              [{"name": "cfg", "configMap": {"name": "late"}}])
    expected = 'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found'
    eventually(lambda: expected in events(agent_cluster, ns, "FailedMount", version), what="FailedMount event")
    pod = get_pod(agent_cluster, ns, "patient")
    assert pod["status"]["phase"] == "Pending"
    assert waiting_reason(pod) == "ContainerCreating"
    assert "ContainerCreating" in kubectl(agent_cluster, ns, "get", "pod", "patient", version=version).stdout

    kubectl(agent_cluster, ns, "create", "configmap", "late", "--from-literal=key=arrived", version=version)
    pod = eventually(lambda: running(agent_cluster, ns, "patient"), what="Running once the ConfigMap exists")
    eventually(lambda: last_line(ns, pod) == "arrived", what="content mounted")


def test_downward_api_labels_update(agent_cluster, ns):
    show = ("while true; do echo labels=[$(cat /info/labels | tr '\\n' ' ')] name=$(cat /info/name) "
            "cpu=$(cat /info/cpu) mem=$(cat /info/mem) tier=$(cat /info/tier); sleep 0.5; done")
    resources = {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
    apply_pod(agent_cluster, ns, "labelled", [container("main", show, [{"name": "info", "mountPath": "/info"}],
                                                        resources=resources)],
              [{"name": "info", "downwardAPI": {"items": [
                  {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                  {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                  {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                  {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "requests.cpu",
                                                       "divisor": "1m"}},
                  {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                                       "divisor": "1Mi"}},
              ]}}],
              metadata={"labels": {"tier": "front", "app": "web"}})
    pod = eventually(lambda: running(agent_cluster, ns, "labelled"), what="labelled Running")
    eventually(lambda: last_line(ns, pod) == 'labels=[app="web" tier="front"] name=labelled cpu=250 mem=64 tier=front',
               what="downward API files")
    kubectl(agent_cluster, ns, "label", "pod", "labelled", "tier=back", "--overwrite")
    eventually(lambda: last_line(ns, pod) == 'labels=[app="web" tier="back"] name=labelled cpu=250 mem=64 tier=back',
               what="labels update reaches the running container", timeout=30)


def test_memory_empty_dir_is_a_shared_tmpfs(agent_cluster, ns):
    writer = "echo from-writer > /cache/note; grep ' /cache ' /proc/mounts; exec sleep 3600"
    reader = "while true; do echo note=$(cat /cache/note 2>/dev/null); sleep 0.5; done"
    mounts = [{"name": "cache", "mountPath": "/cache"}]
    apply_pod(agent_cluster, ns, "scratch", [container("main", writer, mounts), container("reader", reader, mounts)],
              [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}])
    pod = eventually(lambda: running(agent_cluster, ns, "scratch"), what="scratch Running")
    line = eventually(lambda: next((t for t in log_text(ns, pod).splitlines() if " /cache " in t), None),
                      what="/proc/mounts line")
    assert " /cache tmpfs " in line and "size=16384k" in line, line
    eventually(lambda: last_line(ns, pod, "reader") == "note=from-writer", what="both containers share the tmpfs")
    volume = pod_dir(agent_cluster, pod) / "volumes" / "kubernetes.io~empty-dir" / "cache"
    assert any(f" {volume} " in m and " - tmpfs " in m for m in server_mounts(agent_cluster).splitlines())


def test_empty_dir_over_its_size_limit_evicts_the_pod(agent_cluster, ns):
    fill = "dd if=/dev/zero of=/scratch/fill bs=1024 count=3072; exec sleep 3600"
    apply_pod(agent_cluster, ns, "hog", [container("main", fill, [{"name": "scratch", "mountPath": "/scratch"}])],
              [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '

    def evicted():
        pod = get_pod(agent_cluster, ns, "hog")
        return pod if pod["status"].get("reason") == "Evicted" else None

    pod = eventually(evicted, what="pod evicted", timeout=60)
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["message"] == message
    assert message in events(agent_cluster, ns, "Evicted")
    state = pod["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    assert not (pod_dir(agent_cluster, pod) / "volumes").exists(), "the evicted pod's volumes are released"


def test_host_path_types(agent_cluster, ns):
    base = agent_cluster.workdir / f"hostpath-{ns}"
    base.mkdir()
    created = base / "made" / "here"
    apply_pod(agent_cluster, ns, "typed", [container("main", "ls -d /made && exec sleep 3600",
                                                     [{"name": "made", "mountPath": "/made"}])],
              [{"name": "made", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}}])
    eventually(lambda: running(agent_cluster, ns, "typed"), what="DirectoryOrCreate pod Running")
    assert created.is_dir()

    apply_pod(agent_cluster, ns, "mistyped", [container("main", "sleep 3600", [{"name": "h", "mountPath": "/h"}])],
              [{"name": "h", "hostPath": {"path": str(base), "type": "File"}}])
    expected = f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {base} is not a file'
    eventually(lambda: expected in events(agent_cluster, ns, "FailedMount"), what="type check FailedMount")
    assert waiting_reason(get_pod(agent_cluster, ns, "mistyped")) == "ContainerCreating"


def test_claim_bound_to_a_host_path_volume(agent_cluster, ns):
    data = agent_cluster.workdir / f"pv-{ns}"
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim"},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": f"pv-{ns}",
                      "resources": {"requests": {"storage": "1Gi"}}}}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(claim))
    apply_pod(agent_cluster, ns, "writer", [container("main", "echo written-by-pod > /data/out; exec sleep 3600",
                                                      [{"name": "data", "mountPath": "/data"}])],
              [{"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}])
    not_bound = (f"Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "
                 f"failed to process volumes=[data]: error processing PVC {ns}/claim: PVC is not bound")
    eventually(lambda: not_bound in events(agent_cluster, ns, "FailedMount"), what="unbound claim FailedMount")
    assert waiting_reason(get_pod(agent_cluster, ns, "writer")) == "ContainerCreating"

    uid = json.loads(kubectl(agent_cluster, ns, "get", "pvc", "claim", "-o", "json").stdout)["metadata"]["uid"]
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain",
                   "hostPath": {"path": str(data), "type": "DirectoryOrCreate"},
                   "claimRef": {"namespace": ns, "name": "claim", "uid": uid}}}
    agent_cluster.kubectl("apply", "-f", "-", input=json.dumps(pv))
    # The PersistentVolume controller completes the binding both ways.
    eventually(lambda: running(agent_cluster, ns, "writer"), what="writer Running once bound")
    eventually(lambda: (data / "out").exists() and (data / "out").read_text() == "written-by-pod\n",
               what="the pod wrote into the PersistentVolume's host path")

    apply_pod(agent_cluster, ns, "orphan", [container("main", "sleep 3600", [{"name": "data", "mountPath": "/d"}])],
              [{"name": "data", "persistentVolumeClaim": {"claimName": "nope"}}])
    missing = (f'error processing PVC {ns}/nope: failed to fetch PVC from API server: '
               f'persistentvolumeclaims "nope" not found')
    eventually(lambda: any(missing in m for m in events(agent_cluster, ns, "FailedMount")), what="missing claim")
    agent_cluster.kubectl("delete", "pv", f"pv-{ns}", "--wait=false", check=False)


def test_sub_path_and_sub_path_expr(agent_cluster, ns):
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    show = "echo one > /a/file; echo two > /logs/file; echo tree=$(cd /all && find . -type f | sort | tr '\\n' ,); exec sleep 3600"
    apply_pod(agent_cluster, ns, "paths", [container("main", show, [
        {"name": "work", "mountPath": "/a", "subPath": "a"},
        {"name": "work", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)/logs"},
        {"name": "work", "mountPath": "/all", "readOnly": True},
    ], env=env)], [{"name": "work", "emptyDir": {}}])
    pod = eventually(lambda: running(agent_cluster, ns, "paths"), what="paths Running")
    eventually(lambda: "tree=./a/file,./paths/logs/file," in log_text(ns, pod), what="subPath files in the volume")
    volume = pod_dir(agent_cluster, pod) / "volumes" / "kubernetes.io~empty-dir" / "work"
    assert (volume / "paths" / "logs" / "file").read_text() == "two\n"

    # A subPath that is a symlink out of the volume is refused, as upstream.
    init = container("link", "ln -s /etc /work/evil", [{"name": "work", "mountPath": "/work"}])
    apply_pod(agent_cluster, ns, "escape", [container("main", "sleep 3600",
                                                      [{"name": "work", "mountPath": "/x", "subPath": "evil"}])],
              [{"name": "work", "emptyDir": {}}], initContainers=[init])

    def refused():
        reason = waiting_reason(get_pod(agent_cluster, ns, "escape"))
        return reason == "CreateContainerConfigError" and reason

    eventually(refused, what="escaping subPath refused")
    status = get_pod(agent_cluster, ns, "escape")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert status["message"] == 'failed to prepare subPath for volumeMount "work" of container "main"'


def test_fs_group_owns_writable_and_projected_volumes(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "configmap", "owned", "--from-literal=key=v")
    show = "touch /data/new && stat -c 'data=%g %a' /data && stat -c 'new=%g' /data/new && stat -L -c 'cfg=%g %a' /cfg/key; exec sleep 3600"
    apply_pod(agent_cluster, ns, "grouped", [container("main", show, [{"name": "data", "mountPath": "/data"},
                                                                     {"name": "cfg", "mountPath": "/cfg"}])],
              [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "owned", "defaultMode": 0o400}}],
              securityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000})
    pod = eventually(lambda: running(agent_cluster, ns, "grouped"), what="grouped Running")
    text = eventually(lambda: (t := log_text(ns, pod)) and "cfg=" in t and t, what="stat output")
    assert "data=2000 2777" in text, text
    assert "new=2000" in text, text
    assert "cfg=2000 440" in text, "defaultMode gains group read with an fsGroup"


def test_projected_volume(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "configmap", "pcm", "--from-literal=color=blue")
    kubectl(agent_cluster, ns, "create", "secret", "generic", "psec", "--from-literal=token=t0k")
    show = "while true; do echo $(cat /p/color)/$(cat /p/creds/token)/$(cat /p/ns); sleep 0.5; done"
    apply_pod(agent_cluster, ns, "proj", [container("main", show, [{"name": "p", "mountPath": "/p"}])], [
        {"name": "p", "projected": {"sources": [
            {"configMap": {"name": "pcm"}},
            {"secret": {"name": "psec", "items": [{"key": "token", "path": "creds/token"}]}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]}},
    ])
    pod = eventually(lambda: running(agent_cluster, ns, "proj"), what="proj Running")
    eventually(lambda: last_line(ns, pod) == f"blue/t0k/{ns}", what="projected files")
    kubectl(agent_cluster, ns, "patch", "secret", "psec", "--type=merge", "-p", '{"stringData":{"token":"n3w"}}')
    eventually(lambda: last_line(ns, pod) == f"blue/n3w/{ns}", what="secret update", timeout=30)


def test_host_to_container_propagation(agent_cluster, ns):
    shared = agent_cluster.workdir / f"prop-{ns}"
    private = agent_cluster.workdir / f"private-{ns}"
    for d in (shared, private):
        d.mkdir()
        run("mount", "--bind", str(d), str(d))
    run("mount", "--make-shared", str(shared))
    run("mount", "--make-private", str(private))
    inner = shared / "inner"
    try:
        show = "while true; do echo seen=$(cat /prop/inner/file 2>/dev/null); sleep 0.5; done"
        apply_pod(agent_cluster, ns, "slave", [container("main", show, [
            {"name": "prop", "mountPath": "/prop", "mountPropagation": "HostToContainer"}])],
            [{"name": "prop", "hostPath": {"path": str(shared), "type": "Directory"}}])
        pod = eventually(lambda: running(agent_cluster, ns, "slave"), what="slave Running")
        eventually(lambda: last_line(ns, pod) == "seen=", what="container looping")
        inner.mkdir()
        run("mount", "-t", "tmpfs", "tmpfs", str(inner))
        (inner / "file").write_text("from-host\n")
        eventually(lambda: last_line(ns, pod) == "seen=from-host", what="host mount propagated into the container")

        apply_pod(agent_cluster, ns, "stuck", [container("main", "sleep 3600", [
            {"name": "prop", "mountPath": "/prop", "mountPropagation": "HostToContainer"}])],
            [{"name": "prop", "hostPath": {"path": str(private), "type": "Directory"}}])

        def refused():
            s = get_pod(agent_cluster, ns, "stuck").get("status", {}).get("containerStatuses") or [{}]
            w = s[0].get("state", {}).get("waiting", {})
            return w if w.get("reason") == "CreateContainerError" else None

        w = eventually(refused, what="private source refused")
        assert w["message"] == f'path "{private}" is mounted on "{private}" but it is not a shared or slave mount'
    finally:
        kubectl(agent_cluster, ns, "delete", "pod", "slave", "stuck", "--grace-period=1", "--wait=true",
                "--ignore-not-found", check=False)
        run("umount", str(inner), check=False)
        run("umount", str(shared), check=False)
        run("umount", str(private), check=False)


def test_bidirectional_propagation_reaches_the_host_and_is_cleaned_up(agent_cluster, ns):
    maker = ("mkdir -p /shared/inner && mount -t tmpfs tmpfs /shared/inner && echo made > /shared/inner/f "
             "&& exec sleep 3600")
    viewer = "while true; do echo seen=$(cat /view/inner/f 2>/dev/null); sleep 0.5; done"
    apply_pod(agent_cluster, ns, "mounter", [
        container("main", maker, [{"name": "shared", "mountPath": "/shared", "mountPropagation": "Bidirectional"}],
                  securityContext={"privileged": True}),
        container("viewer", viewer, [{"name": "shared", "mountPath": "/view", "mountPropagation": "HostToContainer"}]),
    ], [{"name": "shared", "emptyDir": {}}])
    pod = eventually(lambda: running(agent_cluster, ns, "mounter"), what="mounter Running")
    inner = pod_dir(agent_cluster, pod) / "volumes" / "kubernetes.io~empty-dir" / "shared" / "inner"
    eventually(lambda: any(f" {inner} " in m and " - tmpfs " in m for m in server_mounts(agent_cluster).splitlines()),
               what="the container's mount propagated to the host")
    assert (inner / "f").read_text() == "made\n"
    eventually(lambda: last_line(ns, pod, "viewer") == "seen=made", what="and on to the other container")
    kubectl(agent_cluster, ns, "delete", "pod", "mounter", "--grace-period=1", "--timeout=60s")
    uid = pod["metadata"]["uid"]
    eventually(lambda: uid not in server_mounts(agent_cluster), what="every mount of the pod gone")
    assert not pod_dir(agent_cluster, pod).exists()


def test_nothing_stays_mounted_after_pods_go(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "secret", "generic", "s", "--from-literal=k=v")
    kubectl(agent_cluster, ns, "create", "configmap", "c", "--from-literal=k=v")
    mounts = [{"name": "secret", "mountPath": "/s"}, {"name": "mem", "mountPath": "/m"},
              {"name": "cfg", "mountPath": "/c/k", "subPath": "k"}, {"name": "disk", "mountPath": "/d", "subPath": "x"}]
    volumes = [{"name": "secret", "secret": {"secretName": "s"}}, {"name": "mem", "emptyDir": {"medium": "Memory"}},
               {"name": "cfg", "configMap": {"name": "c"}}, {"name": "disk", "emptyDir": {}}]
    for name in ("left-a", "left-b"):
        apply_pod(agent_cluster, ns, name, [container("main", "exec sleep 3600", mounts)], volumes)
    pods = [eventually(lambda n=n: running(agent_cluster, ns, n), what=f"{n} Running") for n in ("left-a", "left-b")]
    uids = [p["metadata"]["uid"] for p in pods]
    table = server_mounts(agent_cluster)
    assert all(sum(uid in line for line in table.splitlines()) >= 4 for uid in uids), "volumes are mounted"

    # A restart re-adopts the volumes without mounting them twice.
    secret_dir = pod_dir(agent_cluster, pods[0]) / "volumes" / "kubernetes.io~secret" / "secret"
    before = sum(f" {secret_dir} " in line for line in table.splitlines())
    agent_cluster.restart()
    eventually(lambda: running(agent_cluster, ns, "left-a"), what="left-a Running after restart")
    kubectl(agent_cluster, ns, "patch", "secret", "s", "--type=merge", "-p", '{"stringData":{"k":"v2"}}')
    eventually(lambda: (secret_dir / "k").read_text() == "v2", what="refresh after restart")
    assert sum(f" {secret_dir} " in line for line in server_mounts(agent_cluster).splitlines()) == before == 1

    kubectl(agent_cluster, ns, "delete", "pod", "left-a", "left-b", "--grace-period=1", "--timeout=60s")
    eventually(lambda: not any(uid in server_mounts(agent_cluster) for uid in uids), what="every mount gone")
    for p in pods:
        assert not pod_dir(agent_cluster, p).exists(), "the pod's directory is removed"
