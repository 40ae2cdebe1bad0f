"""securityContext, seccomp, resources and hostPort end to end: pods on the agent of a real
`skiff server` (the agent-cluster fixture of test_pods.py), checked from inside the containers
(`id`, /proc/self/status, failing writes and syscalls), from the host (the containers' cgroup
files, nftables in the node's network namespace) and through the API (reasons and messages, with
kubectl 1.32 and 1.20 and the Python client)."""

from __future__ import annotations

import json
import random
import sys
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conftest import KUBECTL_VERSIONS, eventually, have_kubectl
from test_pods import agent_cluster, get_pod, kubectl, log_text, ns, phase_is, pod_manifest  # noqa: F401

CGROUP = Path("/sys/fs/cgroup")


def pod_with(name: str, command: str, restart: str = "Never", pod_security: dict | None = None,
             **container) -> str:
    pod = json.loads(pod_manifest(name, command, restart=restart, **container))
    if pod_security is not None:
        pod["spec"]["securityContext"] = pod_security
    return json.dumps(pod)


def run_to_completion(cluster, ns: str, manifest: str, name: str) -> tuple[dict, str]:
    kubectl(cluster, ns, "apply", "-f", "-", input=manifest)
    pod = eventually(lambda: (p := get_pod(cluster, ns, name)).get("status", {}).get("phase") in ("Succeeded", "Failed") and p,
                     timeout=60, what=f"{name} finished")
    return pod, log_text(ns, pod)


def status_line(log: str, field: str) -> str:
    """The value of `field:` from /proc/self/status lines in a CRI log."""
    for line in log.splitlines():
        text = line.split(" ", 3)[-1]
        if text.startswith(field + ":"):
            return text.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in {log!r}")


def waiting_reason(cluster, ns: str, name: str, reason: str) -> dict | None:
    statuses = get_pod(cluster, ns, name).get("status", {}).get("containerStatuses") or [{}]
    waiting = statuses[0].get("state", {}).get("waiting", {})
    return waiting if waiting.get("reason") == reason else None


def container_cgroup(cluster, uid: str, controller: str, container: str = "main") -> Path:
    """The host directory of a running container's cgroup in one v1 controller hierarchy."""
    started = cluster.data_dir / "agent" / "containers" / f"{uid}-{container}-0" / "started.json"
    pid = json.loads(started.read_text())["pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP / controller / path.lstrip("/")
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def proc_status(pid: int | str, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} for {pid}")


def own_cgroup(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def test_identity_comes_from_the_security_context(agent_cluster, ns):
    manifest = pod_with("ids", "id", pod_security={"runAsUser": 1000, "runAsGroup": 3000,
                                                   "supplementalGroups": [4000], "fsGroup": 2000})
    pod, log = run_to_completion(agent_cluster, ns, manifest, "ids")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    line = next(l for l in log.splitlines() if "uid=" in l)
    assert "uid=1000 gid=3000" in line, line
    groups = line.split("groups=")[1]
    assert "2000" in groups and "4000" in groups, line

    # The container's own runAsUser wins over the pod's.
    manifest = pod_with("ids-override", "id -u", pod_security={"runAsUser": 1000},
                        securityContext={"runAsUser": 1234})
    _, log = run_to_completion(agent_cluster, ns, manifest, "ids-override")
    assert " stdout F 1234\n" in log, log


def test_read_only_root_filesystem(agent_cluster, ns):
    command = "touch /probe; echo rc=$?; echo ok > /dev/shm/probe && echo tmpfs-writable"
    manifest = pod_with("ro", command, securityContext={"readOnlyRootFilesystem": True})
    _, log = run_to_completion(agent_cluster, ns, manifest, "ro")
    assert "Read-only file system" in log, log
    assert "rc=1" in log and "tmpfs-writable" in log, log
    _, log = run_to_completion(agent_cluster, ns, pod_with("rw", "touch /probe; echo rc=$?"), "rw")
    assert "rc=0" in log, log


def test_capabilities_privilege_and_no_new_privs(agent_cluster, ns):
    show = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
    cases = {
        "caps-default": ({}, "00000000a80425fb", "0"),
        "caps-narrow": ({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                         "allowPrivilegeEscalation": False}, "0000000000000400", "1"),
        # Every capability the node may grant (this host may withhold some, e.g. CAP_SYS_RESOURCE).
        "caps-privileged": ({"privileged": True}, proc_status(agent_cluster.proc.pid, "CapBnd"), "0"),
    }
    for name, (sc, cap_eff, nnp) in cases.items():
        kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_with(name, show, securityContext=sc))
    for name, (sc, cap_eff, nnp) in cases.items():
        pod = eventually(lambda: phase_is(agent_cluster, ns, name, "Succeeded"), what=f"{name} Succeeded")
        log = log_text(ns, pod)
        assert status_line(log, "CapEff") == cap_eff, (name, log)
        assert status_line(log, "NoNewPrivs") == nnp, (name, log)


def test_default_proc_hardening_and_unmasked(agent_cluster, ns):
    check = ("wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
             "echo 1 > /proc/sys/kernel/domainname && echo sys-writable || echo sys-readonly")
    _, log = run_to_completion(agent_cluster, ns, pod_with("masked", check), "masked")
    lines = [l.split(" ", 3)[-1] for l in log.splitlines() if " stdout " in l]
    assert lines[:2] == ["0", "0"], log
    assert "sys-readonly" in log, log
    _, log = run_to_completion(agent_cluster, ns, pod_with("unmasked", "wc -c < /proc/timer_list",
                                                           securityContext={"procMount": "Unmasked"}), "unmasked")
    sizes = [l.split(" ", 3)[-1] for l in log.splitlines() if " stdout " in l]
    assert sizes and int(sizes[0]) > 0, log


def test_seccomp_profiles(agent_cluster, ns):
    probe = "grep '^Seccomp:' /proc/self/status; unshare -U true; echo unshare-rc=$?"
    runtime_default = {"seccompProfile": {"type": "RuntimeDefault"}}
    # Pod-level RuntimeDefault: filtered, and the user-namespace unshare (allowed without any
    # capability, so only seccomp refuses it) fails.
    _, log = run_to_completion(agent_cluster, ns, pod_with("sc-default", probe, pod_security=runtime_default),
                               "sc-default")
    assert status_line(log, "Seccomp") == "2", log
    assert "unshare-rc=1" in log and "Operation not permitted" in log, log
    # The container's Unconfined wins over the pod's RuntimeDefault.
    manifest = pod_with("sc-unconfined", probe, pod_security=runtime_default,
                        securityContext={"seccompProfile": {"type": "Unconfined"}})
    _, log = run_to_completion(agent_cluster, ns, manifest, "sc-unconfined")
    assert status_line(log, "Seccomp") == "0", log
    assert "unshare-rc=0" in log, log
    # No profile anywhere: unconfined (the deprecated annotation is ignored).
    annotated = json.loads(pod_with("sc-annotated", probe))
    annotated["metadata"]["annotations"] = {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}
    _, log = run_to_completion(agent_cluster, ns, json.dumps(annotated), "sc-annotated")
    assert status_line(log, "Seccomp") == "0", log

    # A Localhost profile from the node's seccomp directory.
    profiles = agent_cluster.data_dir / "agent" / "seccomp" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"}}
    manifest = pod_with("sc-local", "mkdir /tmp/d; echo mkdir-rc=$?; touch /tmp/f && echo touch-ok",
                        securityContext=local)
    _, log = run_to_completion(agent_cluster, ns, manifest, "sc-local")
    assert "mkdir-rc=1" in log and "touch-ok" in log, log

    # A missing profile file: the container cannot be created, and says why.
    missing = {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/absent.json"}}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_with("sc-missing", "true", securityContext=missing))
    waiting = eventually(lambda: waiting_reason(agent_cluster, ns, "sc-missing", "CreateContainerError"),
                         timeout=30, what="CreateContainerError")
    path = profiles / "absent.json"
    assert waiting["message"] == (f'failed to generate seccomp spec opts: cannot load seccomp profile "{path}": '
                                  f"open {path}: no such file or directory"), waiting


def test_run_as_non_root_refusals(agent_cluster, ns):
    manifest = pod_with("root-user", "true", securityContext={"runAsNonRoot": True, "runAsUser": 0})
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=manifest)
    waiting = eventually(lambda: waiting_reason(agent_cluster, ns, "root-user", "CreateContainerConfigError"),
                         timeout=30, what="CreateContainerConfigError")
    uid = get_pod(agent_cluster, ns, "root-user")["metadata"]["uid"]
    assert waiting["message"] == (f"container's runAsUser breaks non-root policy "
                                  f'(pod: "root-user_{ns}({uid})", container: main)'), waiting
    # A non-root user from the pod passes.
    manifest = pod_with("non-root", "id -u", pod_security={"runAsNonRoot": True, "runAsUser": 65534})
    pod, log = run_to_completion(agent_cluster, ns, manifest, "non-root")
    assert pod["status"]["phase"] == "Succeeded" and " stdout F 65534\n" in log, log


def test_sysctls_safe_applied_unsafe_rejected(agent_cluster, ns):
    safe = {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "99"},
                        {"name": "kernel/shm_rmid_forced", "value": "1"}]}
    manifest = pod_with("sysctl-safe", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced",
                        pod_security=safe)
    pod, log = run_to_completion(agent_cluster, ns, manifest, "sysctl-safe")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert " stdout F 99\n" in log and " stdout F 1\n" in log, log

    unsafe = {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_with("sysctl-unsafe", "true", pod_security=unsafe))
    pod = eventually(lambda: phase_is(agent_cluster, ns, "sysctl-unsafe", "Failed"), what="rejected")
    assert pod["status"]["reason"] == "SysctlForbidden"
    assert pod["status"]["message"] == 'Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted'
    assert not pod["status"].get("containerStatuses"), "no container ran"
    events = kubectl(agent_cluster, ns, "get", "events", "-o", "json").stdout
    assert "SysctlForbidden" in events


def test_oom_killed(agent_cluster, ns):
    resources = {"limits": {"memory": "32Mi"}}
    body = json.loads(pod_with("oom", "head -c 200m /dev/zero | tail", resources=resources))
    api = k8s.CoreV1Api(agent_cluster.python_client())
    api.create_namespaced_pod(ns, body)
    pod = eventually(lambda: (p := api.read_namespaced_pod("oom", ns)).status.phase == "Failed" and p,
                     timeout=60, what="oom Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137), terminated
    for version in KUBECTL_VERSIONS:
        if have_kubectl(version):
            assert "OOMKilled" in kubectl(agent_cluster, ns, "get", "pod", "oom", version=version).stdout


def test_cgroups_follow_resources_and_qos(agent_cluster, ns):
    guaranteed = {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}}
    kubectl(agent_cluster, ns, "apply", "-f", "-",
            input=pod_with("guaranteed", "exec sleep 3000", restart="Always", resources=guaranteed))
    burstable = {"requests": {"cpu": "100m"}, "limits": {"memory": "48Mi"}}
    kubectl(agent_cluster, ns, "apply", "-f", "-",
            input=pod_with("burstable", "exec sleep 3000", restart="Always", resources=burstable))
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_with("besteffort", "exec sleep 3000", restart="Always"))
    pods = {name: eventually(lambda: phase_is(agent_cluster, ns, name, "Running"), what=f"{name} Running")
            for name in ["guaranteed", "burstable", "besteffort"]}
    assert [pods[n]["status"]["qosClass"] for n in pods] == ["Guaranteed", "Burstable", "BestEffort"]

    # Pods live under the agent's own cgroup, in a parent per QoS class.
    agent_memory = own_cgroup(agent_cluster.proc.pid, "memory").rstrip("/")
    root = f"{agent_memory}/skiff/kubepods"
    expected_parent = {"guaranteed": root, "burstable": f"{root}/burstable", "besteffort": f"{root}/besteffort"}
    cgroups = {}
    for name, pod in pods.items():
        uid = pod["metadata"]["uid"]
        memory = container_cgroup(agent_cluster, uid, "memory")
        assert str(memory) == f"{CGROUP}/memory{expected_parent[name]}/pod{uid}/main", memory
        cgroups[name] = (uid, memory, container_cgroup(agent_cluster, uid, "cpu"))

    read = lambda d, f: (d / f).read_text().strip()  # noqa: E731
    _, memory, cpu = cgroups["guaranteed"]
    assert read(memory, "memory.limit_in_bytes") == str(64 << 20)
    assert (read(cpu, "cpu.shares"), read(cpu, "cpu.cfs_quota_us"), read(cpu, "cpu.cfs_period_us")) == \
        ("256", "25000", "100000")
    # The pod's own cgroup: the sum of its containers' limits.
    assert read(memory.parent, "memory.limit_in_bytes") == str(64 << 20)
    assert (read(cpu.parent, "cpu.shares"), read(cpu.parent, "cpu.cfs_quota_us")) == ("256", "25000")

    _, memory, cpu = cgroups["burstable"]
    assert read(memory, "memory.limit_in_bytes") == str(48 << 20)
    assert (read(cpu, "cpu.shares"), read(cpu, "cpu.cfs_quota_us")) == ("102", "-1")
    assert read(memory.parent, "memory.limit_in_bytes") == str(48 << 20), "every container limits memory"
    assert read(cpu.parent, "cpu.cfs_quota_us") == "-1", "no container limits cpu"

    _, memory, cpu = cgroups["besteffort"]
    assert read(cpu, "cpu.shares") == "2" and read(cpu.parent, "cpu.shares") == "2"
    assert int(read(memory, "memory.limit_in_bytes")) > 1 << 50, "unlimited"
    # OOM score adjustment by QoS class.
    adj = {}
    for name, (uid, _, _) in cgroups.items():
        started = agent_cluster.data_dir / "agent" / "containers" / f"{uid}-main-0" / "started.json"
        adj[name] = int(Path(f"/proc/{json.loads(started.read_text())['pid']}/oom_score_adj").read_text())
    # Lowering it needs CAP_SYS_RESOURCE, which this host may withhold from the agent: then
    # containers get at least the agent's own (as containerd's restrict_oom_score_adj).
    agent = agent_cluster.proc.pid
    lowest = -997 if int(proc_status(agent, "CapEff"), 16) & (1 << 24) else \
        max(-997, int(Path(f"/proc/{agent}/oom_score_adj").read_text()))
    assert (adj["guaranteed"], adj["besteffort"]) == (lowest, 1000), adj
    assert 2 < adj["burstable"] < 1000, adj

    # Deleting the pods removes their cgroups from every hierarchy.
    kubectl(agent_cluster, ns, "delete", "pod", "guaranteed", "burstable", "besteffort", "--grace-period=1",
            "--timeout=60s")
    for name, (uid, memory, cpu) in cgroups.items():
        for hierarchy in CGROUP.iterdir():
            rel = memory.parent.relative_to(CGROUP / "memory")
            assert not (hierarchy / rel).exists(), f"{name}'s cgroup is left in {hierarchy}"


def test_host_port_reaches_the_pod_and_goes_with_it(agent_cluster, ns):
    host_port = random.randint(20000, 29999)
    serve = "mkdir -p /www && echo hello-host-port > /www/index.html && exec httpd -f -p 8080 -h /www"
    manifest = pod_with("hp", serve, restart="Always",
                        ports=[{"containerPort": 8080, "hostPort": host_port, "protocol": "TCP"}])
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=manifest)
    pod = eventually(lambda: phase_is(agent_cluster, ns, "hp", "Running"), what="hp Running")
    uid = pod["metadata"]["uid"]
    rules = agent_cluster.netns.exec("nft", "list", "table", "ip", "skiff-hostport").stdout
    assert f'comment "{uid}"' in rules and f"dnat to {pod['status']['podIP']}:8080" in rules, rules

    def fetch(host: str) -> str:
        code = (f"import urllib.request; "
                f"print(urllib.request.urlopen('http://{host}:{host_port}/', timeout=5).read().decode())")
        return agent_cluster.netns.exec(sys.executable, "-c", code).stdout

    # From the node itself, at its address and at localhost.
    assert eventually(lambda: fetch(agent_cluster.node_ip), what="hostPort at the node IP").strip() == "hello-host-port"
    assert eventually(lambda: fetch("127.0.0.1"), what="hostPort at localhost").strip() == "hello-host-port"
    # From outside the node (the test host, over the node's veth).
    url = f"http://{agent_cluster.node_ip}:{host_port}/"
    body = eventually(lambda: urllib.request.urlopen(url, timeout=5).read().decode(), what="hostPort from outside")
    assert body.strip() == "hello-host-port"

    kubectl(agent_cluster, ns, "delete", "pod", "hp", "--grace-period=1", "--timeout=60s")
    listing = agent_cluster.netns.exec("nft", "list", "ruleset").stdout
    assert "skiff-hostport" not in listing and uid not in listing, listing
    assert not any((agent_cluster.data_dir / "agent" / "hostports").iterdir()), "the record is gone"


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_kubectl_shows_rejections(agent_cluster, ns, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not available")
    name = f"unsafe-{version.replace('.', '')}"
    unsafe = {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=pod_with(name, "true", pod_security=unsafe), version=version)
    eventually(lambda: phase_is(agent_cluster, ns, name, "Failed"), what="rejected")
    table = kubectl(agent_cluster, ns, "get", "pod", name, version=version).stdout
    assert "SysctlForbidden" in table, table
