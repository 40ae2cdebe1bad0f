"""End-to-end fixtures: the real `skiff` binary in its own network namespace, real clients.

The server runs inside a fresh network namespace (so its ports never collide with anything on the
host) joined to the host by a veth pair: the host side is 10.213.N.1, the namespace side
10.213.N.2. The server binds 0.0.0.0 and advertises 10.213.N.2, so the kubeconfig it writes points
at an address the host reaches over the veth; kubectl and the Python client therefore run directly
on the host.

Environment (set by scripts/e2e.sh):
  SKIFF_BIN    the binary under test (required)
  KUBECTL_132  current kubectl (tests for it skip if unset or missing)
  KUBECTL_120  kubectl 1.20 (tests for it skip if unset or missing)

Needs root (network namespaces).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import sys
from pathlib import Path

import pytest

SKIFF_BIN = os.environ.get("SKIFF_BIN", "")
KUBECTL = {
    "1.32": os.environ.get("KUBECTL_132") or "/usr/bin/kubectl",
    "1.20": os.environ.get("KUBECTL_120") or "/opt/skiff-tools/kubectl-1.20/kubectl",
}
KUBECTL_VERSIONS = ["1.32", "1.20"]
READY_TIMEOUT = 90
# Thresholds no healthy test machine crosses.
E2E_EVICTION_HARD = "memory.available<100Mi,nodefs.available<512Mi,imagefs.available<512Mi,nodefs.inodesFree<1%"
CMD_TIMEOUT = 120


def have_kubectl(version: str) -> bool:
    path = KUBECTL.get(version, "")
    return bool(path) and os.access(path, os.X_OK)


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, **kw)


def eventually(fn, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Calls fn until it returns a truthy value (returned) or timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried, reported below
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last error: {last_exc!r})")


class Netns:
    """A network namespace joined to the host by a veth pair (see module doc)."""

    def __init__(self) -> None:
        used = run("ip", "netns", "list", check=False).stdout
        host_addrs = run("ip", "-4", "-o", "addr", check=False).stdout
        for _ in range(50):
            n = random.randint(20, 250)
            name = f"skiffe2e{n}"
            if name not in used and f"10.213.{n}." not in host_addrs:
                break
        else:
            raise RuntimeError("no free 10.213.N.0/24 subnet for the test namespace")
        self.name = name
        self.host_if = f"v{name}"
        self.host_ip = f"10.213.{n}.1"
        self.node_ip = f"10.213.{n}.2"
        run("ip", "netns", "add", name)
        try:
            run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", name)
            run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
            run("ip", "link", "set", self.host_if, "up")
            self.exec("ip", "addr", "add", f"{self.node_ip}/24", "dev", "eth0")
            self.exec("ip", "link", "set", "eth0", "up")
            self.exec("ip", "link", "set", "lo", "up")
            self.exec("ip", "route", "add", "default", "via", self.host_ip)
        except Exception:
            self.delete()
            raise

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.name, *cmd, check=check)

    def delete(self) -> None:
        pids = run("ip", "netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run("ip", "link", "del", self.host_if, check=False)
        run("ip", "netns", "del", self.name, check=False)


class Cluster:
    """One `skiff server` under test, plus helpers to drive it."""

    def __init__(self, workdir: Path, netns: Netns, agent: bool = False, node_name: str = "e2e",
                 extra_args: list[str] | None = None, server_args: list[str] | None = None) -> None:
        self.agent = agent
        # Flags for any server, with or without agent (extra_args only reach agent clusters).
        self.server_args = list(server_args or [])
        # Image GC watches the whole disk, which the machine shares with everything else: off
        # unless a test asks for it, so images never vanish under a test.
        extra_args = list(extra_args or [])
        if "--image-gc-high-threshold" not in extra_args:
            extra_args += ["--image-gc-high-threshold", "100"]
        # The kubelet's default disk thresholds are percentages of a disk the machine shares
        # (and may already cross): e2e clusters only feel pressure when a test asks for it.
        if "--eviction-hard" not in extra_args:
            extra_args += ["--eviction-hard", E2E_EVICTION_HARD]
        self.extra_args = extra_args
        self.node_name = node_name
        self.workdir = workdir
        self.netns = netns
        self.data_dir = workdir / "data"
        self.kubeconfig = workdir / "kubeconfig.yaml"
        self.log_path = workdir / "server.log"
        self.port = random.randint(20000, 40000)
        self.node_ip = netns.node_ip
        self.proc: subprocess.Popen | None = None
        self._log = None

    # --- server lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a")
        self._log.write(f"--- start {time.strftime('%H:%M:%S')}\n")
        self._log.flush()
        # `ip netns exec` would also give the server a private /sys without cgroups; an agent
        # needs the host's mounts, so it only enters the network namespace.
        enter = (["nsenter", f"--net=/run/netns/{self.netns.name}"] if self.agent
                 else ["ip", "netns", "exec", self.netns.name])
        cmd = [
            *enter,
            SKIFF_BIN, "server",
            *([] if self.agent else ["--disable-agent"]),
            "--data-dir", str(self.data_dir),
            "--https-listen-port", str(self.port),
            "--write-kubeconfig", str(self.kubeconfig),
            "--advertise-address", self.node_ip,
            "--node-name", self.node_name,
            *(self.extra_args if self.agent else []),
            *self.server_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKIFF_")}
        # The default config file must not leak into the test's settings.
        env["SKIFF_CONFIG"] = str(self.workdir / "config.yaml")
        (self.workdir / "config.yaml").write_text("# e2e: settings come from flags\n")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        version = "1.32" if have_kubectl("1.32") else "1.20"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"skiff server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.kubeconfig.exists():
                r = self.kubectl("get", "--raw", "/readyz", version=version, check=False, timeout=10)
                if r.returncode == 0 and r.stdout.strip() == "ok":
                    return
            time.sleep(0.3)
        raise RuntimeError(f"skiff server not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            # `ip netns exec` execs the binary, so this pid is the server itself.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return proc.returncode

    def restart(self) -> int | None:
        """Stops the server (SIGTERM) and starts it again on the same data dir."""
        code = self.stop()
        self.start()
        return code

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # --- clients ----------------------------------------------------------------------------

    def kubectl_cmd(self, *args: str, version: str = "1.32") -> list[str]:
        if not have_kubectl(version):
            pytest.skip(f"kubectl {version} not available ({KUBECTL.get(version)})")
        cache = self.workdir / f"kube-cache-{version}"
        return [KUBECTL[version], "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(cache), *args]

    def kubectl(
        self,
        *args: str,
        version: str = "1.32",
        input: str | None = None,
        check: bool = True,
        env: dict | None = None,
        timeout: float = CMD_TIMEOUT,
    ) -> subprocess.CompletedProcess:
        """Runs kubectl against the server. With check=True a non-zero exit fails the test."""
        cmd = self.kubectl_cmd(*args, version=version)
        full_env = dict(os.environ)
        full_env.pop("KUBECONFIG", None)
        if env:
            full_env.update(env)
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=full_env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(
                f"kubectl {version} {' '.join(args)} failed ({r.returncode}):\n"
                f"stdout: {r.stdout}\nstderr: {r.stderr}"
            )
        return r

    def kubectl_json(self, *args: str, version: str = "1.32") -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", version=version).stdout)

    def kubectl_bg(self, *args: str, version: str = "1.32") -> "Background":
        """Starts a long-running kubectl (e.g. `get -w`); read its output with Background.wait_for."""
        return Background(self.kubectl_cmd(*args, version=version))

    def python_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


class Background:
    """A process whose stdout lines are collected by a thread."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 60) -> str:
        """Returns the first line (since the last call) matching predicate."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line within {timeout}s; got: {self.seen!r}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    stderr = self.proc.stderr.read() if self.proc.stderr else ""
                    raise AssertionError(f"process exited ({self.proc.returncode}); got {self.seen!r}; stderr: {stderr}")
                continue
            self.seen.append(line)
            if predicate(line):
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    if not SKIFF_BIN or not os.access(SKIFF_BIN, os.X_OK):
        pytest.fail(f"SKIFF_BIN={SKIFF_BIN!r} is not an executable; run through scripts/e2e.sh")
    if shutil.which("ip") is None:
        pytest.fail("iproute2 (`ip`) is missing; run scripts/deps.sh")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-e2e."))
    netns = Netns()
    c = Cluster(workdir, netns)
    try:
        c.start()
        yield c
    finally:
        code = c.stop()
        netns.delete()
        if os.environ.get("KEEP_E2E_WORKDIR"):
            print(f"\n[e2e] kept {workdir} (server exit code {code})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=KUBECTL_VERSIONS, ids=lambda v: f"kubectl-{v}")
def kubectl_version(request) -> str:
    if not have_kubectl(request.param):
        pytest.skip(f"kubectl {request.param} not available ({KUBECTL.get(request.param)})")
    return request.param


class Kubectl:
    """kubectl bound to one version and one test namespace."""

    def __init__(self, cluster: Cluster, version: str, namespace: str) -> None:
        self.cluster = cluster
        self.version = version
        self.namespace = namespace

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.cluster.kubectl("-n", self.namespace, *args, version=self.version, **kw)

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.out(*args, "-o", "json"))

    def bg(self, *args: str) -> Background:
        return self.cluster.kubectl_bg("-n", self.namespace, *args, version=self.version)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace(cluster):
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = unique("e2e")
    cluster.kubectl("create", "namespace", name, version="1.32" if have_kubectl("1.32") else "1.20")
    yield name
    cluster.kubectl(
        "delete", "namespace", name, "--wait=false",
        version="1.32" if have_kubectl("1.32") else "1.20", check=False,
    )


@pytest.fixture
def k(cluster, kubectl_version, namespace) -> Kubectl:
    """kubectl (each supported version in turn) in a fresh namespace."""
    return Kubectl(cluster, kubectl_version, namespace)


@pytest.fixture(scope="session")
def api_client(cluster):
    """A kubernetes.client.ApiClient configured from the server's kubeconfig."""
    return cluster.python_client()


# --- agent clusters ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def build_busybox(out: Path) -> Path:
    """Builds the busybox test image (OCI tarball from apt's busybox-static) at `out`."""
    run(sys.executable, str(ROOT / "scripts" / "build-busybox-image.py"), str(out))
    return out


def stop_agent_cluster(c: "Cluster", netns: "Netns", workdir: Path) -> None:
    """Deletes every pod, waits until the agent has removed their containers, then stops the
    server, deletes the network namespace and (unless KEEP_E2E_WORKDIR) the work directory."""
    c.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false", check=False)
    containers = c.data_dir / "agent" / "containers"
    try:
        eventually(lambda: not containers.exists() or not any(containers.iterdir()), timeout=60,
                   what="containers removed")
    finally:
        c.stop()
        netns.delete()
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running_agent_cluster(node: str, extra_args: list[str] | None = None):
    """A `skiff server` with its agent (node `node`, extra server flags `extra_args`) and the
    busybox image dropped into its image directory; skips when not root. Pods are removed and
    everything cleaned up on exit."""
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    workdir = Path(tempfile.mkdtemp(prefix=f"skiff-{node}."))
    images = workdir / "data" / "agent" / "images"
    images.mkdir(parents=True)
    build_busybox(images / "busybox.tar")
    netns = Netns()
    c = Cluster(workdir, netns, agent=True, node_name=node, extra_args=extra_args)
    try:
        c.start()
        yield c
    finally:
        stop_agent_cluster(c, netns, workdir)
