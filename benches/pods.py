#!/usr/bin/env python3
"""Pod startup benchmark (issue 4): runs `skiff server` with its agent in a temp data dir, imports
a busybox image (scripts/build-busybox-image.py), then for 1, 10 and 100 pods bound to the node
measures the time from create to Running as seen by a watch, and the memory of the server and of
the per-container shims. Prints one JSON line per measurement and a summary.

Usage (as root): /opt/skiff-tools/venv/bin/python benches/pods.py [--skiff PATH] [--rounds 1,10,100]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client as k8s, config as k8s_config, watch

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: private pages plus a share of the pages shared with others."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def shim_pids(kind: bytes = b"shim") -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(cmd) > 2 and cmd[1] == kind and cmd[0].endswith(b"skiff"):
                out.append(int(proc.name))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skiff", default=str(Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/skiff-target")) / "release/skiff"))
    ap.add_argument("--rounds", default="1,10,100")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-pods."))
    images = work / "data" / "agent" / "images"
    images.mkdir(parents=True)
    subprocess.run([sys.executable, str(ROOT / "scripts/build-busybox-image.py"), str(images / "busybox.tar")], check=True)
    node = f"bench-{uuid.uuid4().hex[:6]}"
    port = free_port()
    kubeconfig = work / "kubeconfig"
    (work / "none.yaml").write_text("# bench: settings come from flags\n")
    server = subprocess.Popen(
        [args.skiff, "server", "--data-dir", str(work / "data"), "--https-listen-port", str(port),
         "--bind-address", "127.0.0.1", "--write-kubeconfig", str(kubeconfig), "--node-name", node],
        stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT, env={**os.environ, "SKIFF_CONFIG": str(work / "none.yaml")})
    try:
        deadline = time.time() + 60
        while "skiff is running" not in (work / "server.log").read_text() and time.time() < deadline:
            if server.poll() is not None:
                sys.exit("skiff server exited:\n" + (work / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        k8s_config.load_kube_config(str(kubeconfig))
        api = k8s.CoreV1Api()
        while time.time() < deadline:
            try:
                if any(c.type == "Ready" and c.status == "True" for c in api.read_node(node).status.conditions or []):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.2)
        time.sleep(6)  # the drop directory is scanned at start
        idle = rss_kib(server.pid)
        print(json.dumps({"measure": "server_rss_idle_kib", "value": idle}), flush=True)
        summary = []
        for n in [int(x) for x in args.rounds.split(",")]:
            ns = f"bench-{n}-{uuid.uuid4().hex[:4]}"
            api.create_namespace({"metadata": {"name": ns}})
            created: dict[str, float] = {}
            running: dict[str, float] = {}
            done = threading.Event()

            def watcher():
                w = watch.Watch()
                for ev in w.stream(api.list_namespaced_pod, ns, timeout_seconds=300):
                    pod = ev["object"]
                    if pod.status and pod.status.phase == "Running" and pod.metadata.name not in running:
                        running[pod.metadata.name] = time.monotonic()
                        if len(running) == n:
                            w.stop()
                done.set()

            t = threading.Thread(target=watcher, daemon=True)
            t.start()
            time.sleep(0.5)
            start = time.monotonic()
            for i in range(n):
                name = f"p{i}"
                body = {"metadata": {"name": name}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                        "command": ["sleep", "3600"]}]}}
                created[name] = time.monotonic()
                api.create_namespaced_pod(ns, body)
            done.wait(300)
            lat = [running[k] - created[k] for k in running]
            all_running = max(running.values()) - start if running else float("nan")
            shims = shim_pids()
            shim_rss = sum(rss_kib(p) for p in shims)
            holders = shim_pids(b"pause")
            # Per pod: its shims and its sandbox holder(s), by PSS (shared binary pages split).
            overhead_pss = sum(pss_kib(p) for p in shims + holders)
            server_rss = rss_kib(server.pid)
            row = {"measure": "pod_startup", "pods": n, "running": len(running),
                   "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                   "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
                   "all_running_s": round(all_running, 2), "server_rss_kib": server_rss,
                   "shims": len(shims), "shim_rss_kib_per_container": round(shim_rss / max(1, len(shims))),
                   "sandboxes": len(holders), "pod_overhead_pss_kib": round(overhead_pss / max(1, n))}
            print(json.dumps(row), flush=True)
            summary.append(row)
            api.delete_namespace(ns)
            deadline = time.time() + 300
            while time.time() < deadline and api.list_namespaced_pod(ns).items:
                time.sleep(0.5)
        print("\nsummary:")
        print(f"  server+agent RSS idle: {idle / 1024:.1f} MiB")
        for r in summary:
            print(f"  {r['pods']:>3} pods: create->Running p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, all Running after "
                  f"{r['all_running_s']} s; server+agent RSS {r['server_rss_kib'] / 1024:.1f} MiB; "
                  f"shim RSS {r['shim_rss_kib_per_container'] / 1024:.1f} MiB per container; "
                  f"per-pod overhead (shim + sandbox PSS) {r['pod_overhead_pss_kib'] / 1024:.1f} MiB")
    finally:
        server.terminate()
        server.wait(30)
        # The containers outlive the server by design: stop what is left.
        for pid in shim_pids() + shim_pids(b"pause"):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
