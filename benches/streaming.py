#!/usr/bin/env python3
"""Streaming benchmark (issue 4): round-trip latency of exec and logs through the API server to
the agent. Starts a release `skiff server` with its agent in its own network namespace (the e2e
suite's `Cluster`), imports the busybox image, runs one `sleep` pod, then times:

- `exec true` with the Python client (WebSocket v4, in-process: no client start-up),
- `kubectl exec -- true` with kubectl 1.32 (WebSocket v5) and 1.20 (SPDY/3.1), next to
  `kubectl version --client` (the client's own start-up, which the exec time includes),
- a `pods/log` read with the Python client.

Prints one JSON line per measurement and a summary.

Usage (as root): /opt/skiff-tools/venv/bin/python benches/streaming.py [--skiff PATH] [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

KUBECTLS = [("kubectl 1.32 (WebSocket v5)", "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"),
            ("kubectl 1.20 (SPDY/3.1)", "/opt/skiff-tools/kubectl-1.20/kubectl")]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(name: str, fn, rounds: int) -> dict:
    fn()  # warm up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    result = {"measurement": name, "rounds": rounds, "p50_ms": round(percentile(samples, 50), 1),
              "p90_ms": round(percentile(samples, 90), 1)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skiff", default=str(ROOT / "target" / "release" / "skiff"))
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ["SKIFF_BIN"] = args.skiff
    from conftest import Cluster, Netns, eventually, run  # noqa: E402 - needs SKIFF_BIN first
    from kubernetes import client as k8s
    from kubernetes.stream import stream

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-streaming."))
    images = work / "data" / "agent" / "images"
    images.mkdir(parents=True)
    run(sys.executable, str(ROOT / "scripts" / "build-busybox-image.py"), str(images / "busybox.tar"))
    netns = Netns()
    cluster = Cluster(work, netns, agent=True, node_name="bench")
    results = []
    try:
        cluster.start()
        eventually(lambda: cluster.kubectl("get", "node", "bench", check=False).returncode == 0, what="node")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "target"},
               "spec": {"nodeName": "bench", "terminationGracePeriodSeconds": 1, "containers": [
                   {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo ready; exec sleep 3600"]}]}}
        cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
        api = k8s.CoreV1Api(cluster.python_client())
        eventually(lambda: api.read_namespaced_pod("target", "default").status.phase == "Running", what="pod")

        def py_exec():
            out = stream(api.connect_get_namespaced_pod_exec, "target", "default", command=["true"],
                         stderr=True, stdin=False, stdout=True, tty=False)
            assert out == "", out

        results.append(timed("python exec true", py_exec, args.rounds))
        for name, kubectl in KUBECTLS:
            if not os.access(kubectl, os.X_OK):
                continue
            base = [kubectl, "--kubeconfig", str(cluster.kubeconfig)]
            results.append(timed(f"{name} exec true", lambda: subprocess.run(
                [*base, "exec", "target", "--", "true"], check=True, capture_output=True), args.rounds))
            results.append(timed(f"{name} version --client", lambda: subprocess.run(
                [*base, "version", "--client"], check=True, capture_output=True), args.rounds))
        results.append(timed("python read pod log", lambda: api.read_namespaced_pod_log("target", "default"),
                             args.rounds))
    finally:
        cluster.kubectl("delete", "pod", "target", "--grace-period=1", check=False)
        eventually(lambda: not any((work / "data" / "agent" / "containers").iterdir()), timeout=60,
                   what="container removed")
        cluster.stop()
        netns.delete()
        shutil.rmtree(work, ignore_errors=True)
    print("\nsummary (p50 / p90):")
    for r in results:
        print(f"  {r['measurement']}: {r['p50_ms']} ms / {r['p90_ms']} ms")


if __name__ == "__main__":
    main()
