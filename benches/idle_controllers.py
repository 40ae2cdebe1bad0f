#!/usr/bin/env python3
"""Controller idle cost (issue 6): runs `skiff server --disable-agent` on 127.0.0.1 in a temp
data dir, creates N Deployments (default 50, 2 replicas each, so 100 pods that stay Pending: no
agent, no scheduler), waits until every Deployment's status has caught up, lets the cluster
settle, then samples the server's CPU time (utime+stime from /proc) over a window and prints the
idle CPU as a percentage of one core. One JSON line per measurement.

Usage: /opt/skiff-tools/venv/bin/python benches/idle_controllers.py [--skiff PATH]
       [--deployments 50] [--window 60]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s, config as k8s_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "main", "image": "busybox:idle"}]}},
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skiff", default=str(Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/skiff-target")) / "release/skiff"))
    ap.add_argument("--deployments", type=int, default=50)
    ap.add_argument("--window", type=float, default=60)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-idle."))
    port = free_port()
    kubeconfig = work / "kubeconfig"
    (work / "none.yaml").write_text("# bench: settings come from flags\n")
    server = subprocess.Popen(
        [args.skiff, "server", "--disable-agent", "--data-dir", str(work / "data"), "--https-listen-port", str(port),
         "--bind-address", "127.0.0.1", "--write-kubeconfig", str(kubeconfig)],
        stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT, env={**os.environ, "SKIFF_CONFIG": str(work / "none.yaml")})
    try:
        deadline = time.time() + 60
        while "skiff is running" not in (work / "server.log").read_text() and time.time() < deadline:
            if server.poll() is not None:
                sys.exit("skiff server exited:\n" + (work / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        k8s_config.load_kube_config(str(kubeconfig))
        apps = k8s.AppsV1Api()
        core = k8s.CoreV1Api()
        ns = "idle"
        core.create_namespace({"metadata": {"name": ns}})
        start = time.time()
        for i in range(args.deployments):
            apps.create_namespaced_deployment(ns, deployment(f"d{i}"))

        def settled() -> bool:
            items = apps.list_namespaced_deployment(ns).items
            return len(items) == args.deployments and all(
                (d.status.observed_generation or 0) >= d.metadata.generation and (d.status.replicas or 0) == 2
                for d in items)
        while not settled():
            if time.time() - start > 300:
                sys.exit("deployments did not settle")
            time.sleep(0.5)
        pods = len(core.list_namespaced_pod(ns).items)
        print(json.dumps({"measure": "deployments_settled_s", "value": round(time.time() - start, 2),
                          "deployments": args.deployments, "pods": pods}), flush=True)
        time.sleep(10)
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.window)
        c1, t1 = cpu_seconds(server.pid), time.monotonic()
        pct = 100 * (c1 - c0) / (t1 - t0)
        print(json.dumps({"measure": "server_idle_cpu_percent_of_core", "value": round(pct, 3),
                          "window_s": args.window, "deployments": args.deployments}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
