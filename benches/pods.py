#!/usr/bin/env python3
"""Pod startup benchmark (issue 4). Runs a release `skiff server` with its agent in its own network
namespace (the e2e suite's `Cluster`, image GC off), imports the busybox image
(scripts/build-busybox-image.py), then for 1, 10 and 100 pods bound to the node (`sleep 3600`,
created back to back) measures:

- create -> Running as seen by a watch, p50/p99, and when the last one was Running;
- where the time goes: the agent's start-up timings (debug logs of target `skiff_timing`): watch
  delivery, each worker step (volumes, sandbox, network, image, prepare, events, start, status
  patch, ...) and the watch event back to the client; the runtime's container create+start and
  sandbox start;
- CPU per pod: what the server (with the launchers it reaped), the shims, the sandbox holders and
  the containers' processes (until their exec) used during the round, divided by the pods;
- memory: RSS of the whole server (API server, store, controllers and agent in one process) idle
  and with the pods; the agent's share of it (an idle server without the agent, `--disable-agent`,
  is measured too); per pod, the PSS (and private memory, USS) of its shims and sandbox holder.

Prints one JSON line per measurement and a summary.

Usage (as root): /opt/skiff-tools/venv/bin/python benches/pods.py [--skiff PATH] [--rounds 1,10,100]
    [--no-server-only] [--scratch DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def proc_kib(pid: int, file: str, keys: tuple[str, ...]) -> int:
    try:
        text = Path(f"/proc/{pid}/{file}").read_text()
    except OSError:
        return 0
    total = 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            total += int(rest.split()[0])
    return total


def rss_kib(pid: int) -> int:
    return proc_kib(pid, "status", ("VmRSS",))


def pss_kib(pid: int) -> int:
    """Proportional set size: private pages plus a share of the pages shared with others."""
    return proc_kib(pid, "smaps_rollup", ("Pss",))


def uss_kib(pid: int) -> int:
    """Unique set size: the pages only this process maps."""
    return proc_kib(pid, "smaps_rollup", ("Private_Clean", "Private_Dirty"))


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int, children: bool = True) -> float:
    """CPU time of a process (its threads, to the nanosecond from `schedstat`, and with
    `children` the children it reaped, in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own_ns = sum(int(Path(t, "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir())
    except (OSError, IndexError, ValueError):
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) * TICK_MS if children else 0.0
    return own_ns / 1e6 + reaped


def children_of(parents: set[int]) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in parents:
                out.append(int(proc.name))
    return out


def helper_pids(data_dir: Path) -> dict[str, list[int]]:
    """Shims and sandbox processes (holders and shared-PID-namespace inits) of this server."""
    found: dict[str, list[int]] = {"shim": [], "pause": []}
    holders = set()
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(proc.name)
        if len(cmd) > 3 and cmd[0].endswith(b"skiff") and cmd[1] in (b"shim", b"pause") and cmd[2] == b"--foreground" \
                and cmd[3].decode(errors="replace").startswith(str(data_dir)):
            found[cmd[1].decode()].append(pid)
            if cmd[1] == b"pause":
                holders.add(pid)
        elif len(cmd) > 2 and cmd[0].endswith(b"skiff") and cmd[1:3] == [b"pause", b"--init"]:
            parents[pid] = ppid
    found["pause"] += [pid for pid, ppid in parents.items() if ppid in holders]
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values: list[float]) -> dict:
    if not values:
        return {}
    return {"p50": round(statistics.median(values), 1), "p99": round(percentile(values, 99), 1),
            "max": round(max(values), 1)}


FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def timing_lines(log: Path, offset: int) -> tuple[list[dict], int]:
    """The `skiff_timing` debug lines of the server log after byte `offset`, as dicts."""
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    out = []
    for line in data.decode(errors="replace").splitlines():
        if " skiff_timing: " not in line:
            continue
        message = line.split(" skiff_timing: ", 1)[1]
        fields = {k: v.strip('"') for k, v in FIELD.findall(message)}
        fields["message"] = message.split(" ", 2)[0:2]
        out.append(fields)
    return out, offset + len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skiff", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/skiff"))
    ap.add_argument("--rounds", default="1,10,100")
    ap.add_argument("--no-server-only", action="store_true", help="skip the idle server without agent")
    ap.add_argument("--scratch", default=None, help="where the data directory goes (default: the system's temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    os.environ["SKIFF_BIN"] = args.skiff
    os.environ["RUST_LOG"] = "info,skiff_timing=debug"
    from conftest import Cluster, Netns, eventually, run  # noqa: E402 - needs SKIFF_BIN first
    from kubernetes import client as k8s, watch

    print(json.dumps({"measure": "machine", "loadavg": os.getloadavg(), "cpus": os.cpu_count()}), flush=True)
    results: dict = {"rounds": []}
    if not args.no_server_only:
        work = Path(tempfile.mkdtemp(prefix="skiff-bench-server."))
        netns = Netns()
        server = Cluster(work, netns, agent=False, node_name="bench")
        try:
            server.start()
            time.sleep(6)
            results["server_only_rss_kib"] = rss_kib(server.proc.pid)
            print(json.dumps({"measure": "server_without_agent_rss_idle_kib", "value": results["server_only_rss_kib"]}),
                  flush=True)
        finally:
            server.stop()
            netns.delete()
            shutil.rmtree(work, ignore_errors=True)

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-pods.", dir=args.scratch))
    images = work / "data" / "agent" / "images"
    images.mkdir(parents=True)
    run(sys.executable, str(ROOT / "scripts/build-busybox-image.py"), str(images / "busybox.tar"))
    netns = Netns()
    node = "bench"
    cluster = Cluster(work, netns, agent=True, node_name=node)
    try:
        cluster.start()
        api = k8s.CoreV1Api(cluster.python_client())
        eventually(lambda: any(c.type == "Ready" and c.status == "True"
                               for c in api.read_node(node).status.conditions or []), what="node Ready")
        eventually(lambda: "imported dropped image" in cluster.log_path.read_text(), what="image imported")
        time.sleep(6)
        server_pid = cluster.proc.pid
        results["server_rss_idle_kib"] = rss_kib(server_pid)
        print(json.dumps({"measure": "server_rss_idle_kib", "value": results["server_rss_idle_kib"]}), flush=True)
        log_offset = cluster.log_path.stat().st_size
        for n in [int(x) for x in args.rounds.split(",")]:
            ns = f"bench-{n}-{uuid.uuid4().hex[:4]}"
            api.create_namespace({"metadata": {"name": ns}})
            created: dict[str, float] = {}
            running: dict[str, float] = {}
            done = threading.Event()
            ready = threading.Event()

            def watcher():
                w = watch.Watch()
                ready.set()
                for ev in w.stream(api.list_namespaced_pod, ns, timeout_seconds=300):
                    pod = ev["object"]
                    if pod.status and pod.status.phase == "Running" and pod.metadata.name not in running:
                        running[pod.metadata.name] = time.time()
                        if len(running) == n:
                            w.stop()
                done.set()

            t = threading.Thread(target=watcher, daemon=True)
            t.start()
            ready.wait()
            time.sleep(0.5)
            server_cpu0 = cpu_ms(server_pid)
            start = time.time()
            for i in range(n):
                name = f"p{i}"
                body = {"metadata": {"name": name}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                        "command": ["sleep", "3600"]}]}}
                created[name] = time.time()
                api.create_namespaced_pod(ns, body)
            done.wait(300)
            lat = [(running[k] - created[k]) * 1000 for k in running]
            all_running = max(running.values()) - start if running else float("nan")
            time.sleep(1)  # let the last timing lines reach the log
            helpers = helper_pids(cluster.data_dir)
            procs = helpers["shim"] + helpers["pause"]
            server_rss = rss_kib(server_pid)
            # CPU spent on the round: the server (with the launchers it reaped), the shims and
            # holders (with the libcontainer processes they reaped), the containers' processes
            # up to their exec (sleep uses none after).
            containers = children_of(set(helpers["shim"]))
            cpu_split = {"server": cpu_ms(server_pid) - server_cpu0,
                         "shims": sum(cpu_ms(p) for p in helpers["shim"]),
                         "sandboxes": sum(cpu_ms(p) for p in helpers["pause"]),
                         "containers": sum(cpu_ms(p, children=False) for p in containers)}
            cpu_total = sum(cpu_split.values())
            lines, log_offset = timing_lines(cluster.log_path, log_offset)
            # Per pod: watch delivery, each worker step, the watch event back to the client.
            steps: dict[str, list[float]] = {}
            for line in lines:
                if "pod" not in line or "received_unix_ms" not in line:
                    continue
                pod_ns, _, name = line["pod"].partition("/")
                if pod_ns != ns or name not in created:
                    continue
                steps.setdefault("watch_delivery", []).append(int(line["received_unix_ms"]) - created[name] * 1000)
                for part in line.get("steps", "").split(","):
                    step, _, ms = part.partition("=")
                    if step:
                        steps.setdefault(step, []).append(float(ms))
                if name in running:
                    steps.setdefault("watch_event", []).append(running[name] * 1000 - int(line["running_unix_ms"]))
            container = {k: [float(l[k]) for l in lines if "container" in l and k in l]
                         for k in ("prepare_ms", "launch_ms", "wait_ms")}
            create_start = [sum(v) for v in zip(*container.values())]
            sandbox = {k: [float(l[k]) for l in lines if "sandbox" in l and k in l] for k in ("launch_ms", "wait_ms")}
            row = {"measure": "pod_startup", "pods": n, "running": len(running),
                   "p50_ms": round(statistics.median(lat), 1) if lat else None,
                   "p99_ms": round(percentile(lat, 99), 1) if lat else None,
                   "all_running_s": round(all_running, 2), "server_rss_kib": server_rss,
                   "shims": len(helpers["shim"]), "sandbox_processes": len(helpers["pause"]),
                   "cpu_ms_per_pod": round(cpu_total / max(1, n), 1),
                   "cpu_ms_per_pod_by_process": {k: round(v / max(1, n), 1) for k, v in cpu_split.items()},
                   "pod_overhead_pss_kib": round(sum(pss_kib(p) for p in procs) / max(1, n)),
                   "pod_overhead_uss_kib": round(sum(uss_kib(p) for p in procs) / max(1, n)),
                   "shim_pss_kib": round(sum(pss_kib(p) for p in helpers["shim"]) / max(1, len(helpers["shim"]))),
                   "shim_rss_kib": round(sum(rss_kib(p) for p in helpers["shim"]) / max(1, len(helpers["shim"]))),
                   "pause_pss_kib": round(sum(pss_kib(p) for p in helpers["pause"]) / max(1, len(helpers["pause"]))),
                   "container_create_start_ms": spread(create_start),
                   "container_ms": {k: spread(v) for k, v in container.items()},
                   "sandbox_ms": {k: spread(v) for k, v in sandbox.items()},
                   "steps_ms": {k: spread(v) for k, v in steps.items()}}
            print(json.dumps(row), flush=True)
            results["rounds"].append(row)
            api.delete_namespace(ns)
            deadline = time.time() + 300
            while time.time() < deadline and api.list_namespaced_pod(ns).items:
                time.sleep(0.5)
        summary(results)
    finally:
        cluster.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--wait=false", check=False)
        containers = cluster.data_dir / "agent" / "containers"
        try:
            eventually(lambda: not containers.exists() or not any(containers.iterdir()), timeout=120,
                       what="containers removed")
        finally:
            cluster.stop()
            netns.delete()
            if os.environ.get("KEEP"):
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)


def summary(results: dict) -> None:
    mib = lambda kib: f"{kib / 1024:.1f} MiB"  # noqa: E731
    print("\nsummary:")
    idle = results["server_rss_idle_kib"]
    line = f"  server+agent RSS idle: {mib(idle)}"
    if "server_only_rss_kib" in results:
        only = results["server_only_rss_kib"]
        line += f"; server without agent: {mib(only)}; agent's share: {mib(idle - only)}"
    print(line)
    for r in results["rounds"]:
        print(f"  {r['pods']:>3} pods: create->Running p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, all Running after "
              f"{r['all_running_s']} s; server+agent RSS {mib(r['server_rss_kib'])}; CPU {r['cpu_ms_per_pod']} ms per pod "
              f"{r['cpu_ms_per_pod_by_process']}")
        print(f"           container create+start {r['container_create_start_ms']} ms; per pod: PSS "
              f"{mib(r['pod_overhead_pss_kib'])} (USS {mib(r['pod_overhead_uss_kib'])}); shim PSS "
              f"{mib(r['shim_pss_kib'])} (RSS {mib(r['shim_rss_kib'])}), sandbox PSS {mib(r['pause_pss_kib'])}")
        steps = ", ".join(f"{k} {v.get('p50')}/{v.get('p99')}" for k, v in r["steps_ms"].items())
        print(f"           steps p50/p99 ms: {steps}")


if __name__ == "__main__":
    main()
