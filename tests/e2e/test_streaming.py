"""Streaming end to end: `kubectl logs/exec/attach/port-forward/cp` (1.32 and 1.20) and the
Python client's `stream()` and `portforward()`, through the API server to the agent's streaming
server (TLS, port 10250) and into real busybox containers."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import ssl
import struct
import subprocess
import termios
import time
import urllib.request

import pytest

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-stream"


@pytest.fixture(scope="module")
def cluster_a():
    with running_agent_cluster(NODE) as c:
        eventually(lambda: c.kubectl("get", "node", NODE, check=False).returncode == 0, what="node registered")
        yield c


@pytest.fixture(params=["1.32", "1.20"], ids=lambda v: f"kubectl-{v}")
def version(request) -> str:
    if not have_kubectl(request.param):
        pytest.skip(f"kubectl {request.param} not available")
    return request.param


@pytest.fixture
def ns(cluster_a):
    name = unique("stream")
    cluster_a.kubectl("create", "namespace", name)
    yield name
    cluster_a.kubectl("delete", "namespace", name, "--wait=false", check=False)


def container(name: str, command: str, **extra) -> dict:
    return {"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command],
            **extra}


def create_pod(c: Cluster, ns: str, name: str, containers: list[dict], restart: str = "Never", wait: bool = True,
               **spec) -> dict:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                         "containers": containers, **spec}}
    c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(manifest))
    if wait:
        return eventually(lambda: running(c, ns, name), timeout=60, what=f"pod {name} running")
    return manifest


def get_pod(c: Cluster, ns: str, name: str) -> dict:
    return json.loads(c.kubectl("-n", ns, "get", "pod", name, "-o", "json").stdout)


def running(c: Cluster, ns: str, name: str):
    pod = get_pod(c, ns, name)
    statuses = pod.get("status", {}).get("containerStatuses", [])
    ok = pod["status"].get("phase") == "Running" and statuses and all("running" in s["state"] for s in statuses)
    return pod if ok else None


def k(c: Cluster, ns: str, version: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return c.kubectl("-n", ns, *args, version=version, **kw)


# --- logs ---------------------------------------------------------------------------------------

def test_node_reports_the_streaming_port(cluster_a):
    node = cluster_a.kubectl_json("get", "node", NODE)
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


def test_logs_with_options(cluster_a, ns, version):
    # Standard error first, then (a second later, so the two pipes cannot interleave) standard output.
    script = "echo err-line >&2; sleep 1; for i in 1 2 3 4 5; do echo line-$i; done; exec sleep 3600"
    create_pod(cluster_a, ns, "logs", [container("main", script)])
    want = "err-line\nline-1\nline-2\nline-3\nline-4\nline-5\n"
    assert eventually(lambda: k(cluster_a, ns, version, "logs", "logs").stdout == want, what="logs")
    assert k(cluster_a, ns, version, "logs", "logs", "--tail=2").stdout == "line-4\nline-5\n"
    assert k(cluster_a, ns, version, "logs", "logs", "-c", "main", "--limit-bytes=12").stdout == "err-line\nlin"
    stamped = k(cluster_a, ns, version, "logs", "logs", "--timestamps", "--tail=1").stdout
    stamp, text = stamped.rstrip("\n").split(" ", 1)
    assert text == "line-5" and stamp.endswith("Z") and "T" in stamp, stamped
    assert k(cluster_a, ns, version, "logs", "logs", "--since=1h").stdout == want
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert k(cluster_a, ns, version, "logs", "logs", f"--since-time={future}").stdout == ""


def test_logs_follow_streams_new_lines(cluster_a, ns, version):
    create_pod(cluster_a, ns, "ticker", [container("main", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done")])
    bg = cluster_a.kubectl_bg("-n", ns, "logs", "-f", "ticker", version=version)
    try:
        bg.wait_for(lambda line: line == "tick-1", timeout=30)
        bg.wait_for(lambda line: line == "tick-8", timeout=30)
    finally:
        bg.stop()


def test_logs_follow_ends_when_the_container_ends(cluster_a, ns, version):
    create_pod(cluster_a, ns, "brief", [container("main", "sleep 2; echo done-now")])
    r = k(cluster_a, ns, version, "logs", "-f", "brief", timeout=60)
    assert r.stdout == "done-now\n"


def test_logs_previous_and_all_containers(cluster_a, ns, version):
    counter = "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run-$n; sleep 2; exit 1"
    create_pod(cluster_a, ns, "restarts", [container("main", counter, volumeMounts=[{"name": "d", "mountPath": "/data"}])],
               restart="Always", wait=False, volumes=[{"name": "d", "emptyDir": {}}])

    def restarted():
        pod = get_pod(cluster_a, ns, "restarts")
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        count = statuses[0].get("restartCount", 0)
        return count if count >= 1 and "running" in statuses[0].get("state", {}) else None

    count = eventually(restarted, timeout=90, what="a restart")
    assert k(cluster_a, ns, version, "logs", "restarts", "--previous").stdout == f"run-{count}\n"
    assert k(cluster_a, ns, version, "logs", "restarts").stdout == f"run-{count + 1}\n"

    create_pod(cluster_a, ns, "two", [container("a", "echo from-a; exec sleep 3600"),
                                      container("b", "echo from-b; exec sleep 3600")])
    out = eventually(lambda: (o := k(cluster_a, ns, version, "logs", "two", "--all-containers").stdout).count("from-") == 2 and o,
                     what="both containers' logs")
    assert sorted(out.splitlines()) == ["from-a", "from-b"]
    assert k(cluster_a, ns, version, "logs", "two", "-c", "b").stdout == "from-b\n"


def test_log_errors(cluster_a, ns):
    create_pod(cluster_a, ns, "two", [container("a", "exec sleep 3600"), container("b", "exec sleep 3600")])
    raw = f"/api/v1/namespaces/{ns}/pods/two/log"
    r = cluster_a.kubectl("get", "--raw", raw, check=False)
    assert r.returncode != 0
    assert "a container name must be specified for pod two, choose one of: [a b]" in r.stderr
    r = cluster_a.kubectl("get", "--raw", raw + "?container=nope", check=False)
    assert "container nope is not valid for pod two" in r.stderr
    r = cluster_a.kubectl("get", "--raw", raw + "?container=a&tailLines=-5", check=False)
    assert 'PodLogOptions "two" is invalid: tailLines: Invalid value: -5: must be greater than or equal to 0' in r.stderr
    r = cluster_a.kubectl("-n", ns, "logs", "two", "-c", "a", "--previous", check=False)
    assert r.returncode != 0 and 'previous terminated container "a" in pod "two" not found' in r.stderr
    create_pod(cluster_a, ns, "waiting", [{"name": "main", "image": "no-such-image:1", "imagePullPolicy": "Never"}],
               wait=False)
    r = eventually(lambda: (r := cluster_a.kubectl("-n", ns, "logs", "waiting", check=False)).returncode != 0
                   and "is waiting to start" in r.stderr and r, what="waiting error")
    assert 'container "main" in pod "waiting" is waiting to start' in r.stderr


# --- exec ---------------------------------------------------------------------------------------

def test_exec_output_exit_codes_and_stdin(cluster_a, ns, version):
    create_pod(cluster_a, ns, "sh", [container("main", "exec sleep 3600", env=[{"name": "GREETING", "value": "hi"}])])
    r = k(cluster_a, ns, version, "exec", "sh", "--", "sh", "-c", "echo out-$GREETING; echo err >&2")
    assert r.stdout == "out-hi\n" and "err" in r.stderr
    r = k(cluster_a, ns, version, "exec", "sh", "--", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert "command terminated with exit code 3" in r.stderr
    r = k(cluster_a, ns, version, "exec", "-i", "sh", "--", "sh", "-c", "cat; echo end", input="hello\nworld\n")
    assert r.stdout == "hello\nworld\nend\n"
    r = k(cluster_a, ns, version, "exec", "sh", "--", "no-such-command", check=False)
    assert r.returncode != 0 and "no-such-command" in r.stderr


def run_in_pty(cmd: list[str], send: bytes, rows: int = 33, cols: int = 91, timeout: float = 60,
               after: bytes | None = None) -> str:
    """Runs cmd with a pseudo-terminal of the given size as its terminal, types `send` once it
    printed `after` (or two seconds in), and returns what it printed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(cmd[0], cmd)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        due = (after in out) if after is not None else time.monotonic() > deadline - timeout + 2
        if not sent and due:
            os.write(fd, send)
            sent = True
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_exec_with_a_terminal(cluster_a, ns, version):
    create_pod(cluster_a, ns, "tty", [container("main", "exec sleep 3600")])
    cmd = cluster_a.kubectl_cmd("-n", ns, "exec", "-it", "tty", "--", "sh", "-c", "read x; echo got-$x; tty; stty size",
                                version=version)
    out = run_in_pty(cmd, b"abc\r")
    assert "got-abc" in out, out
    assert "/dev/pts/" in out, out
    assert "33 91" in out, out


def test_python_stream_exec(cluster_a, ns):
    from kubernetes import client as k8s
    from kubernetes.stream import stream

    create_pod(cluster_a, ns, "py", [container("main", "exec sleep 3600")])
    api = k8s.CoreV1Api(cluster_a.python_client())
    out = stream(api.connect_get_namespaced_pod_exec, "py", ns, command=["sh", "-c", "echo py-out"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "py-out\n"
    resp = stream(api.connect_get_namespaced_pod_exec, "py", ns, command=["sh", "-c", "read x; echo got-$x; exit 5"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    resp.write_stdin("ping\n")
    deadline = time.monotonic() + 30
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
    assert resp.read_stdout() == "got-ping\n"
    assert resp.returncode == 5


# --- port-forward -------------------------------------------------------------------------------

HTTPD = "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"


def test_port_forward(cluster_a, ns, version):
    create_pod(cluster_a, ns, "web", [container("main", HTTPD)])
    bg = cluster_a.kubectl_bg("-n", ns, "port-forward", "pod/web", ":8080", version=version)
    try:
        line = bg.wait_for(lambda l: l.startswith("Forwarding from 127.0.0.1:"), timeout=30)
        local = int(line.split("127.0.0.1:")[1].split(" ")[0])
        for _ in range(3):
            body = eventually(lambda: urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10).read(),
                              timeout=30, what="a page through the forward")
            assert body == b"hello-from-pod\n"
    finally:
        bg.stop()


def test_port_forward_refused_port_reports_an_error(cluster_a, ns, version):
    create_pod(cluster_a, ns, "quiet", [container("main", "exec sleep 3600")])
    bg = cluster_a.kubectl_bg("-n", ns, "port-forward", "pod/quiet", ":9999", version=version)
    try:
        line = bg.wait_for(lambda l: l.startswith("Forwarding from 127.0.0.1:"), timeout=30)
        local = int(line.split("127.0.0.1:")[1].split(" ")[0])
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10).read()
    finally:
        bg.stop()
    assert "error forwarding port 9999" in (bg.proc.stderr.read() if bg.proc.stderr else "")


def test_python_port_forward(cluster_a, ns):
    from kubernetes import client as k8s
    from kubernetes.stream import portforward

    create_pod(cluster_a, ns, "pyweb", [container("main", HTTPD)])
    api = k8s.CoreV1Api(cluster_a.python_client())

    def fetch():
        pf = portforward(api.connect_get_namespaced_pod_portforward, "pyweb", ns, ports="8080")
        sock = pf.socket(8080)
        sock.setblocking(True)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        return data

    data = eventually(lambda: (d := fetch()) and b"hello-from-pod" in d and d, timeout=30, what="python port-forward")
    assert data.startswith(b"HTTP/1.") and data.endswith(b"hello-from-pod\n")


# --- attach -----------------------------------------------------------------------------------

def test_attach_with_stdin_once(cluster_a, ns, version):
    echo = container("main", 'while read line; do echo "echo:$line"; done; echo bye', stdin=True, stdinOnce=True)
    create_pod(cluster_a, ns, "echo", [echo])
    r = k(cluster_a, ns, version, "attach", "-i", "echo", input="hello\nworld\n", timeout=60)
    assert "echo:hello\necho:world\nbye\n" in r.stdout, (r.stdout, r.stderr)
    # The container's output also went to its log.
    assert k(cluster_a, ns, version, "logs", "echo").stdout == "echo:hello\necho:world\nbye\n"


def test_run_interactive_with_a_terminal(cluster_a, ns, version):
    overrides = json.dumps({"spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1}})
    cmd = cluster_a.kubectl_cmd("-n", ns, "run", "shell", "-it", "--image=busybox", "--image-pull-policy=IfNotPresent",
                                "--restart=Never", f"--overrides={overrides}", "--", "sh", version=version)
    out = run_in_pty(cmd, b"stty size; echo sum-$((40+2)); exit\r", rows=27, cols=77, after=b"pressing enter")
    assert "sum-42" in out, out
    assert "27 77" in out, out
    pod = eventually(lambda: (p := get_pod(cluster_a, ns, "shell"))["status"].get("phase") == "Succeeded" and p,
                     what="the shell ended")
    assert pod["spec"]["containers"][0]["tty"] is True


# --- cp -----------------------------------------------------------------------------------------

def test_cp_both_ways(cluster_a, ns, version, tmp_path):
    create_pod(cluster_a, ns, "files", [container("main", "exec sleep 3600")])
    src = tmp_path / "up.txt"
    payload = "".join(f"line {i} of the upload\n" for i in range(2000))
    src.write_text(payload)
    k(cluster_a, ns, version, "cp", str(src), f"{ns}/files:/tmp/up.txt")
    assert k(cluster_a, ns, version, "exec", "files", "--", "wc", "-l", "/tmp/up.txt").stdout.split()[0] == "2000"
    k(cluster_a, ns, version, "exec", "files", "--", "sh", "-c", "echo made-in-pod > /tmp/down.txt")
    dest = tmp_path / "down.txt"
    k(cluster_a, ns, version, "cp", f"{ns}/files:/tmp/down.txt", str(dest))
    assert dest.read_text() == "made-in-pod\n"


# --- errors and authentication ------------------------------------------------------------------

def test_exec_errors(cluster_a, ns, version):
    create_pod(cluster_a, ns, "two", [container("a", "exec sleep 3600"), container("b", "exec sleep 3600")])
    r = k(cluster_a, ns, version, "exec", "two", "-c", "nope", "--", "true", check=False)
    assert r.returncode != 0 and "container nope is not valid for pod two" in r.stderr, r.stderr
    create_pod(cluster_a, ns, "done", [container("main", "true")], wait=False)
    eventually(lambda: get_pod(cluster_a, ns, "done")["status"].get("phase") == "Succeeded", what="pod done")
    r = k(cluster_a, ns, version, "exec", "done", "--", "true", check=False)
    assert r.returncode != 0


def test_unscheduled_pod_has_no_host(cluster_a, ns):
    # A nodeSelector no node matches keeps the scheduler from placing it.
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
                "spec": {"nodeSelector": {"e2e": "nowhere"}, "containers": [{"name": "main", "image": "busybox"}]}}
    cluster_a.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(manifest))
    r = cluster_a.kubectl("-n", ns, "exec", "nowhere", "--", "true", check=False)
    assert r.returncode != 0 and "does not have a host assigned" in r.stderr, r.stderr
    assert cluster_a.kubectl("-n", ns, "logs", "nowhere").stdout == ""


def test_agent_admits_only_the_api_server(cluster_a):
    url = f"https://{cluster_a.node_ip}:10250/containerLogs/default/x/y"
    ctx = ssl.create_default_context(cafile=str(cluster_a.data_dir / "server" / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(url, context=ctx, timeout=10)
    assert anonymous.value.code == 401
    tls = cluster_a.data_dir / "server" / "tls"
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    with pytest.raises(urllib.error.HTTPError) as admin:
        urllib.request.urlopen(url, context=ctx, timeout=10)
    assert admin.value.code == 403
    assert "user=system:admin" in admin.value.read().decode()
