"""The node agent end to end: a `skiff server` with its agent, a busybox image dropped into the
image directory before start (imported automatically), and pods bound to the node by
`spec.nodeName` running as real containers. Checked through kubectl (1.32 and 1.20), the Python
client, the CRI log files and the host's process table, mounts and container directories."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conftest import KUBECTL_VERSIONS, Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-agent"
LOG_DIR = Path("/var/log/pods")


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        yield c


def kubectl(cluster: Cluster, ns: str, *args: str, version: str = "1.32", **kw) -> subprocess.CompletedProcess:
    return cluster.kubectl("-n", ns, *args, version=version, **kw)


@pytest.fixture
def ns(agent_cluster):
    name = unique("pods")
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod_manifest(name: str, command: str, restart: str = "Never", **extra) -> str:
    spec = {
        "nodeName": NODE,
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": extra.pop("grace", 2),
        "containers": [{
            "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", command], **extra,
        }],
    }
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def get_pod(cluster: Cluster, ns: str, name: str) -> dict:
    return json.loads(kubectl(cluster, ns, "get", "pod", name, "-o", "json").stdout)


def log_text(ns: str, pod: dict, container: str = "main", attempt: int = 0) -> str:
    meta = pod["metadata"]
    path = LOG_DIR / f"{ns}_{meta['name']}_{meta['uid']}" / container / f"{attempt}.log"
    return path.read_text() if path.exists() else ""


def veth_of(uid: str) -> str:
    """The host end of a pod's veth pair, named as skiff-net names it."""
    return "veth" + hashlib.sha256(b"skiff0\x00" + uid.encode()).hexdigest()[:11]


def phase_is(cluster, ns, name, phase):
    pod = get_pod(cluster, ns, name)
    return pod if pod.get("status", {}).get("phase") == phase else None


def test_node_registers_with_lease(agent_cluster):
    node = eventually(lambda: json.loads(agent_cluster.kubectl("get", "node", NODE, "-o", "json", check=False).stdout or "null"),
                      what="node registered")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == NODE and labels["kubernetes.io/os"] == "linux"
    assert "node-role.kubernetes.io/control-plane" in labels
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "KubeletReady"
    assert conditions["MemoryPressure"]["status"] == "False"
    assert int(node["status"]["capacity"]["pods"]) == 110
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("skiff://")
    assert {"type": "InternalIP", "address": agent_cluster.node_ip} in node["status"]["addresses"]
    lease = eventually(lambda: json.loads(agent_cluster.kubectl("get", "lease", "-n", "kube-node-lease", NODE, "-o", "json",
                                                                check=False).stdout or "null"), what="lease")
    assert lease["spec"]["holderIdentity"] == NODE
    for version in KUBECTL_VERSIONS:
        if have_kubectl(version):
            out = agent_cluster.kubectl("get", "nodes", version=version).stdout
            assert NODE in out and "Ready" in out


def test_pod_runs_to_completion_with_env_and_logs(agent_cluster, ns):
    kubectl(agent_cluster, ns, "create", "configmap", "cfg", "--from-literal=color=blue")
    kubectl(agent_cluster, ns, "create", "secret", "generic", "sec", "--from-literal=token=s3cr3t")
    env = [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hi $(ME)"},
    ]
    manifest = pod_manifest("done", "echo color=$COLOR token=$TOKEN $GREETING host=$(hostname); cat /etc/hostname", env=env)
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=manifest)
    pod = eventually(lambda: phase_is(agent_cluster, ns, "done", "Succeeded"), what="pod Succeeded")
    status = pod["status"]["containerStatuses"][0]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"
    assert status["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert status["containerID"].startswith("skiff://")
    text = log_text(ns, pod)
    assert " stdout F color=blue token=s3cr3t hi done host=done\n" in text, text
    assert " stdout F done\n" in text, text
    reasons = kubectl(agent_cluster, ns, "get", "events", "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert {"Pulled", "Created", "Started"} <= set(reasons)
    table = kubectl(agent_cluster, ns, "get", "pod", "done").stdout
    assert "Completed" in table


def test_crash_loop_backs_off_and_records_last_state(agent_cluster, ns):
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_manifest("crash", "echo boom; exit 3", restart="Always"))

    def backing_off():
        pod = get_pod(agent_cluster, ns, "crash")
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        s = statuses[0]
        waiting = s.get("state", {}).get("waiting", {})
        return s if s.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff" else None

    s = eventually(backing_off, timeout=60, what="CrashLoopBackOff")
    assert s["lastState"]["terminated"]["exitCode"] == 3
    assert s["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off 10s restarting failed container=main" in s["state"]["waiting"]["message"]
    assert "CrashLoopBackOff" in kubectl(agent_cluster, ns, "get", "pod", "crash").stdout


@pytest.mark.parametrize("case, expected_reason, expected_message", [
    ("never-pull", "ErrImageNeverPull", 'Container image "not-imported:1" is not present with pull policy of Never'),
    ("missing-configmap", "CreateContainerConfigError", 'configmap "absent" not found'),
    ("non-root", "CreateContainerConfigError", "container has runAsNonRoot and image will run as root"),
    ("bad-image-name", "InvalidImageName", "Failed to apply default image tag"),
])
def test_unstartable_containers_say_why(agent_cluster, ns, case, expected_reason, expected_message):
    pod = json.loads(pod_manifest(case, "true"))
    c = pod["spec"]["containers"][0]
    if case == "never-pull":
        c.update(image="not-imported:1", imagePullPolicy="Never")
    elif case == "missing-configmap":
        c["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    elif case == "non-root":
        c["securityContext"] = {"runAsNonRoot": True}
    else:
        c["image"] = "Bad_Name:1"
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))

    def waiting():
        statuses = get_pod(agent_cluster, ns, case).get("status", {}).get("containerStatuses") or [{}]
        w = statuses[0].get("state", {}).get("waiting", {})
        return w if w.get("reason") == expected_reason else None

    w = eventually(waiting, timeout=30, what=expected_reason)
    assert expected_message in w["message"]
    events = kubectl(agent_cluster, ns, "get", "events", "-o", "json").stdout
    assert expected_message.split('"')[0] in events


def test_delete_stops_within_grace_and_cleans_up(agent_cluster, ns):
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_manifest("sleeper", "exec sleep 3000", restart="Always", grace=3))
    pod = eventually(lambda: phase_is(agent_cluster, ns, "sleeper", "Running"), what="Running")
    uid = pod["metadata"]["uid"]
    containers = agent_cluster.data_dir / "agent" / "containers"
    instance = containers / f"{uid}-main-0"
    started = json.loads((instance / "started.json").read_text())
    assert Path(f"/proc/{started['pid']}").exists()

    assert veth_of(uid) in agent_cluster.netns.exec("ip", "-o", "link").stdout
    t0 = time.monotonic()
    kubectl(agent_cluster, ns, "delete", "pod", "sleeper", "--timeout=60s")
    elapsed = time.monotonic() - t0
    assert elapsed < 30, elapsed
    assert not Path(f"/proc/{started['pid']}").exists(), "the container's process is gone"
    assert not instance.exists(), "the container directory is removed"
    assert not (agent_cluster.data_dir / "agent" / "pods" / uid).exists()
    assert not (LOG_DIR / f"{ns}_sleeper_{uid}").exists(), "the pod's logs go with it"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert uid not in mounts, "no mount of the pod is left"
    for root in Path("/sys/fs/cgroup").iterdir():
        # Pod cgroups sit below the agent's own cgroup, in a parent per QoS class.
        left = list(root.glob(f"**/pod{uid}"))
        assert not left, f"cgroup left: {left}"
    assert not (agent_cluster.data_dir / "agent" / "sandboxes" / uid).exists(), "the sandbox is gone"
    ipam = agent_cluster.data_dir / "agent" / "ipam"
    assert not any(uid in f.read_text() for f in ipam.iterdir() if f.is_file()), "the address is released"
    assert veth_of(uid) not in agent_cluster.netns.exec("ip", "-o", "link").stdout, "the veth pair is gone"


def test_agent_restart_keeps_containers_running(agent_cluster, ns):
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_manifest("keeper", "exec sleep 3000", restart="Always"))
    pod = eventually(lambda: phase_is(agent_cluster, ns, "keeper", "Running"), what="Running")
    instance = agent_cluster.data_dir / "agent" / "containers" / f"{pod['metadata']['uid']}-main-0"
    pid = json.loads((instance / "started.json").read_text())["pid"]

    agent_cluster.stop()
    assert Path(f"/proc/{pid}").exists(), "the container outlives the server"
    agent_cluster.start()

    def still_running():
        p = get_pod(agent_cluster, ns, "keeper")
        s = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        return p if "running" in s.get("state", {}) else None

    p = eventually(still_running, what="pod still Running after restart")
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    assert Path(f"/proc/{pid}").exists(), "the same process keeps running"
    assert not (agent_cluster.data_dir / "agent" / "containers" / f"{pod['metadata']['uid']}-main-1").exists()


def test_python_client_sees_pod_status(agent_cluster, ns):
    api = k8s.CoreV1Api(agent_cluster.python_client())
    body = json.loads(pod_manifest("py", "echo from python; sleep 1"))
    api.create_namespaced_pod(ns, body)
    pod = eventually(lambda: (p := api.read_namespaced_pod("py", ns)).status.phase == "Succeeded" and p,
                     what="Succeeded via Python")
    cs = pod.status.container_statuses[0]
    assert cs.state.terminated.exit_code == 0
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["Initialized"] == "True" and conditions["Ready"] == "False"
    assert pod.status.host_ip == agent_cluster.node_ip


def test_node_gets_a_pod_cidr(agent_cluster):
    node = eventually(lambda: (n := json.loads(agent_cluster.kubectl("get", "node", NODE, "-o", "json").stdout))
                      ["spec"].get("podCIDR") and n, what="podCIDR assigned")
    assert node["spec"]["podCIDR"] == "10.42.0.0/24"
    assert node["spec"]["podCIDRs"] == ["10.42.0.0/24"]


def in_server_netns(cluster: Cluster, code: str) -> str:
    """Runs Python `code` in the server's network namespace (the node's host network)."""
    return cluster.netns.exec(sys.executable, "-c", code).stdout


def test_pods_get_addresses_and_reach_each_other(agent_cluster, ns):
    serve = ("mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && grep web /etc/hosts "
             "&& exec httpd -f -p 8080 -h /www")
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_manifest("web", serve, restart="Always"))
    pod = eventually(lambda: phase_is(agent_cluster, ns, "web", "Running"), what="web Running")
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.42.0.") and ip != "10.42.0.1", ip
    assert pod["status"]["podIPs"] == [{"ip": ip}]
    assert pod["status"]["hostIP"] == agent_cluster.node_ip
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["PodReadyToStartContainers"] == "True"
    eventually(lambda: f"{ip}\tweb" in log_text(ns, pod), what="/etc/hosts names the pod's address")
    assert ip in kubectl(agent_cluster, ns, "get", "pod", "web", "-o", "wide").stdout

    # From the node.
    fetch = f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8080/', timeout=5).read().decode())"
    body = eventually(lambda: in_server_netns(agent_cluster, fetch), what="HTTP from the node")
    assert body.strip() == "hello-from-web"

    # From another pod (busybox nc; its wget is unusable here).
    client = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 8080"
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_manifest("client", client))
    other = eventually(lambda: phase_is(agent_cluster, ns, "client", "Succeeded"), what="client Succeeded")
    assert other["status"]["podIP"] != ip
    assert "hello-from-web" in log_text(ns, other)


def test_host_network_and_shared_process_namespace(agent_cluster, ns):
    hostnet = json.loads(pod_manifest("hostnet", "cat /proc/net/dev"))
    hostnet["spec"]["hostNetwork"] = True
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(hostnet))
    pod = eventually(lambda: phase_is(agent_cluster, ns, "hostnet", "Succeeded"), what="hostnet Succeeded")
    assert pod["status"]["podIP"] == agent_cluster.node_ip
    assert "skiff0" in log_text(ns, pod), "the host's interfaces are visible"

    shared = json.loads(pod_manifest("shared", "sleep 1; ps"))
    shared["spec"]["shareProcessNamespace"] = True
    # `busybox` means :latest, which pulls Always unless told otherwise; the node has it imported.
    shared["spec"]["containers"].append({"name": "sidecar", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                         "command": ["sleep", "4242"]})
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(shared))
    pod = eventually(lambda: (p := get_pod(agent_cluster, ns, "shared"))
                     and "sleep 4242" in log_text(ns, p) and p, what="ps sees the other container")
    kubectl(agent_cluster, ns, "delete", "pod", "shared", "--grace-period=1")
