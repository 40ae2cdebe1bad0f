"""Static pods end to end: manifests dropped into the running server's pod-manifest directory
(`<data-dir>/agent/pod-manifests/`) run as real containers without any API call, and the agent
keeps their mirror pods in the API server. Checked through kubectl (1.32 and 1.20), the Python
client, the pod's HTTP server, and the host's container directories, sandboxes, veths and IPAM."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conftest import Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-static"
MIRROR = "kubernetes.io/config.mirror"
HASH = "kubernetes.io/config.hash"


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        try:
            yield c
        finally:
            # Static pods go with their files (deleting their mirrors would not stop them).
            for f in manifests(c).glob("*"):
                f.unlink()


def manifests(cluster: Cluster) -> Path:
    return cluster.data_dir / "agent" / "pod-manifests"


def web_manifest(name: str, greeting: str = "static") -> str:
    serve = f"mkdir -p /www && echo {greeting}-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "{serve}"]
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo stopping"]
"""


def mirror_name(name: str) -> str:
    return f"{name}-{NODE}"


def get_mirror(cluster: Cluster, name: str, version: str = "1.32") -> dict | None:
    r = cluster.kubectl("-n", "default", "get", "pod", mirror_name(name), "-o", "json", version=version, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def running_mirror(cluster: Cluster, name: str, **kw) -> dict | None:
    pod = get_mirror(cluster, name)
    if not pod or pod.get("status", {}).get("phase") != "Running":
        return None
    statuses = pod["status"].get("containerStatuses") or [{}]
    if "running" not in statuses[0].get("state", {}):
        return None
    return pod if all(pod["metadata"]["annotations"].get(k) == v for k, v in kw.items()) else None


def container_pid(cluster: Cluster, uid: str, attempt: int = 0) -> int:
    started = cluster.data_dir / "agent" / "containers" / f"{uid}-httpd-{attempt}" / "started.json"
    return json.loads(started.read_text())["pid"]


def veth_of(uid: str) -> str:
    """The host end of a pod's veth pair, named as skiff-net names it."""
    return "veth" + hashlib.sha256(b"skiff0\x00" + uid.encode()).hexdigest()[:11]


def http_get(cluster: Cluster, ip: str) -> str:
    code = f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8080/', timeout=5).read().decode())"
    return cluster.netns.exec(sys.executable, "-c", code).stdout.strip()


def drop(cluster: Cluster, file: str, text: str) -> Path:
    manifests(cluster).mkdir(parents=True, exist_ok=True)
    path = manifests(cluster) / file
    tmp = path.with_name("." + file + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)
    return path


def test_static_pod_runs_with_a_mirror_pod(agent_cluster):
    name = unique("web")
    # A broken manifest and a duplicate name are skipped; the agent keeps going.
    drop(agent_cluster, "0-broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n")
    path = drop(agent_cluster, f"{name}.yaml", web_manifest(name))
    drop(agent_cluster, f"{name}.z-duplicate.yaml", web_manifest(name, greeting="duplicate"))
    try:
        pod = eventually(lambda: running_mirror(agent_cluster, name), timeout=90, what="mirror pod Running")
        meta = pod["metadata"]
        annotations = meta["annotations"]
        static_uid = annotations[HASH]
        assert len(static_uid) == 32 and annotations[MIRROR] == static_uid
        assert meta["uid"] != static_uid, "the mirror has an API server UID of its own"
        assert annotations["kubernetes.io/config.source"] == "file"
        assert "kubernetes.io/config.seen" in annotations
        assert meta["namespace"] == "default" and meta["labels"] == {"app": name}
        node = agent_cluster.kubectl_json("get", "node", NODE)
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                                            "uid": node["metadata"]["uid"], "controller": True}]
        spec = pod["spec"]
        assert spec["nodeName"] == NODE
        assert {"operator": "Exists", "effect": "NoExecute"} in spec["tolerations"]
        assert "serviceAccountName" not in spec

        # The containers run under the static pod's UID; the pod answers on its address.
        ip = pod["status"]["podIP"]
        assert ip.startswith("10.42.0."), ip
        body = eventually(lambda: http_get(agent_cluster, ip), what="HTTP from the node")
        assert body == f"static-{mirror_name(name)}"
        assert (agent_cluster.data_dir / "agent" / "containers" / f"{static_uid}-httpd-0").exists()

        # kubectl 1.20 and the Python client see the same mirror.
        wide = agent_cluster.kubectl("-n", "default", "get", "pod", mirror_name(name), version="1.20").stdout
        assert "Running" in wide
        api = k8s.CoreV1Api(agent_cluster.python_client())
        py = api.read_namespaced_pod(mirror_name(name), "default")
        assert py.metadata.annotations[MIRROR] == static_uid
        assert (py.metadata.owner_references[0].kind, py.metadata.owner_references[0].controller) == ("Node", True)
        assert py.status.phase == "Running" and py.status.pod_ip == ip

        # Events name the static pod (its own UID), as the kubelet's do; logs go through the mirror.
        def events():
            items = agent_cluster.kubectl_json("-n", "default", "get", "events")["items"]
            return [e for e in items if e["involvedObject"].get("name") == mirror_name(name)]

        reasons = eventually(lambda: {e["reason"] for e in events()} >= {"Started", "FailedValidation"} and
                             {e["reason"] for e in events()}, what="events")
        assert "Created" in reasons
        started = next(e for e in events() if e["reason"] == "Started")
        assert started["involvedObject"]["uid"] == static_uid
        duplicate = next(e for e in events() if e["reason"] == "FailedValidation")
        assert duplicate["type"] == "Warning"
        assert duplicate["message"].startswith(f"Error validating pod {mirror_name(name)}_default(")
        assert duplicate["message"].endswith(f"from file due to duplicate pod name \"{mirror_name(name)}\", ignoring")
        served = agent_cluster.kubectl("-n", "default", "exec", mirror_name(name), "--", "cat", "/www/index.html").stdout
        assert served.strip() == f"static-{mirror_name(name)}"
    finally:
        for f in manifests(agent_cluster).iterdir():
            f.unlink()
    eventually(lambda: get_mirror(agent_cluster, name) is None, what="mirror gone")


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_deleting_the_mirror_recreates_it_and_keeps_the_containers(agent_cluster, version):
    name = unique("keep")
    path = drop(agent_cluster, f"{name}.yaml", web_manifest(name))
    try:
        pod = eventually(lambda: running_mirror(agent_cluster, name), timeout=90, what="mirror pod Running")
        static_uid = pod["metadata"]["annotations"][HASH]
        before = pod["status"]["containerStatuses"][0]
        pid = container_pid(agent_cluster, static_uid)

        agent_cluster.kubectl("-n", "default", "delete", "pod", mirror_name(name), "--timeout=60s", version=version)
        again = eventually(lambda: (p := running_mirror(agent_cluster, name)) and
                           p["metadata"]["uid"] != pod["metadata"]["uid"] and
                           p["status"].get("containerStatuses") and p, what="mirror recreated")
        after = again["status"]["containerStatuses"][0]
        assert again["metadata"]["annotations"][MIRROR] == static_uid
        assert after["restartCount"] == before["restartCount"] == 0
        assert after["containerID"] == before["containerID"]
        assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
        assert Path(f"/proc/{pid}").exists(), "the container kept running"
        assert container_pid(agent_cluster, static_uid) == pid
    finally:
        path.unlink()
    eventually(lambda: get_mirror(agent_cluster, name) is None, what="mirror gone")


def test_editing_the_manifest_replaces_the_pod(agent_cluster):
    name = unique("edit")
    path = drop(agent_cluster, f"{name}.yaml", web_manifest(name))
    try:
        pod = eventually(lambda: running_mirror(agent_cluster, name), timeout=90, what="mirror pod Running")
        old_uid = pod["metadata"]["annotations"][HASH]
        old_pid = container_pid(agent_cluster, old_uid)

        drop(agent_cluster, f"{name}.yaml", web_manifest(name, greeting="edited"))
        new = eventually(lambda: (p := running_mirror(agent_cluster, name)) and
                         p["metadata"]["annotations"][HASH] != old_uid and p, timeout=90, what="new pod Running")
        new_uid = new["metadata"]["annotations"][HASH]
        assert new["metadata"]["annotations"][MIRROR] == new_uid
        assert new["status"]["containerStatuses"][0]["restartCount"] == 0
        assert not Path(f"/proc/{old_pid}").exists(), "the old container stopped"
        assert not (agent_cluster.data_dir / "agent" / "containers" / f"{old_uid}-httpd-0").exists()
        assert container_pid(agent_cluster, new_uid) != old_pid
        body = eventually(lambda: http_get(agent_cluster, new["status"]["podIP"]), what="HTTP from the new pod")
        assert body == f"edited-{mirror_name(name)}"
    finally:
        path.unlink()
    eventually(lambda: get_mirror(agent_cluster, name) is None, what="mirror gone")


def test_removing_the_manifest_stops_the_pod_and_releases_everything(agent_cluster):
    name = unique("gone")
    path = drop(agent_cluster, f"{name}.yaml", web_manifest(name))
    pod = eventually(lambda: running_mirror(agent_cluster, name), timeout=90, what="mirror pod Running")
    uid = pod["metadata"]["annotations"][HASH]
    pid = container_pid(agent_cluster, uid)
    assert veth_of(uid) in agent_cluster.netns.exec("ip", "-o", "link").stdout

    path.unlink()
    eventually(lambda: get_mirror(agent_cluster, name) is None, what="mirror deleted")
    agent = agent_cluster.data_dir / "agent"
    eventually(lambda: not (agent / "sandboxes" / uid).exists(), what="sandbox removed")
    assert not Path(f"/proc/{pid}").exists(), "the container stopped"
    assert not any(p.name.startswith(uid) for p in (agent / "containers").iterdir())
    assert not any(uid in f.read_text() for f in (agent / "ipam").iterdir() if f.is_file()), "address released"
    assert veth_of(uid) not in agent_cluster.netns.exec("ip", "-o", "link").stdout, "veth removed"
    events = agent_cluster.kubectl_json("-n", "default", "get", "events")["items"]
    assert any(e["reason"] == "Killing" and e["involvedObject"].get("uid") == uid for e in events)


def test_static_pod_survives_a_server_restart(agent_cluster):
    name = unique("stay")
    path = drop(agent_cluster, f"{name}.yaml", web_manifest(name))
    try:
        pod = eventually(lambda: running_mirror(agent_cluster, name), timeout=90, what="mirror pod Running")
        uid = pod["metadata"]["annotations"][HASH]
        pid = container_pid(agent_cluster, uid)
        started_at = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]

        agent_cluster.stop()
        assert Path(f"/proc/{pid}").exists(), "the container outlives the server"
        agent_cluster.start()

        def restarted():
            p = running_mirror(agent_cluster, name)
            return p if p and p["status"]["containerStatuses"][0].get("containerID") else None

        again = eventually(restarted, timeout=90, what="static pod Running after restart")
        assert again["metadata"]["annotations"][HASH] == uid, "same static pod"
        status = again["status"]["containerStatuses"][0]
        assert status["restartCount"] == 0
        assert status["state"]["running"]["startedAt"] == started_at
        assert Path(f"/proc/{pid}").exists() and container_pid(agent_cluster, uid) == pid
        assert not (agent_cluster.data_dir / "agent" / "containers" / f"{uid}-httpd-1").exists()
    finally:
        path.unlink()
    eventually(lambda: get_mirror(agent_cluster, name) is None, what="mirror gone")


def test_api_server_guards_mirror_pods(agent_cluster):
    ns = unique("mirrors")
    agent_cluster.kubectl("create", "namespace", ns)

    def mirror_pod(name: str, **spec) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "annotations": {MIRROR: "0123456789abcdef0123456789abcdef"}},
            "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox"}], **spec}})

    try:
        cases = [
            ({"serviceAccountName": "default"}, "a mirror pod may not reference service accounts"),
            ({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}, "a mirror pod may not reference secrets"),
            ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
             "a mirror pod may not use ServiceAccountToken volume projections"),
        ]
        for version in ("1.32", "1.20"):
            for spec, message in cases:
                r = agent_cluster.kubectl("-n", ns, "create", "-f", "-", input=mirror_pod("m", **spec),
                                          version=version, check=False)
                assert r.returncode != 0
                assert f'pods "m" is forbidden: {message}' in r.stderr, r.stderr
        unbound = json.loads(mirror_pod("u"))
        del unbound["spec"]["nodeName"]
        r = agent_cluster.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(unbound), check=False)
        assert "must set spec.nodeName if mirror pod annotation is set" in r.stderr, r.stderr

        # A mirror pod (of another node) is created without a service account, and its
        # annotation can be neither removed nor changed.
        agent_cluster.kubectl("-n", ns, "create", "-f", "-", input=mirror_pod("m"))
        created = agent_cluster.kubectl_json("-n", ns, "get", "pod", "m")
        assert "serviceAccountName" not in created["spec"]
        r = agent_cluster.kubectl("-n", ns, "annotate", "pod", "m", f"{MIRROR}-", check=False)
        assert "may not remove or update mirror pod annotation" in r.stderr, r.stderr
        r = agent_cluster.kubectl("-n", ns, "annotate", "pod", "m", "--overwrite", f"{MIRROR}=x", check=False)
        assert "may not remove or update mirror pod annotation" in r.stderr, r.stderr
        agent_cluster.kubectl("-n", ns, "run", "plain", "--image=busybox", "--overrides",
                              json.dumps({"spec": {"nodeName": "ghost"}}))
        r = agent_cluster.kubectl("-n", ns, "annotate", "pod", "plain", f"{MIRROR}=x", check=False)
        assert "may not add mirror pod annotation" in r.stderr, r.stderr
    finally:
        # No agent runs node "ghost": remove its pods at once.
        agent_cluster.kubectl("-n", ns, "delete", "pods", "--all", "--grace-period=0", "--force", check=False)
        agent_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
