"""Container log rotation end to end: a server with a tiny --container-log-max-size and
--container-log-max-files 3 runs a container printing numbered lines fast; its CRI log is rotated
into `<n>.log.<timestamp>` files, older ones gzipped, never more than three files, and
`kubectl logs -f` keeps streaming across rotations without losing or repeating a line."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from conftest import KUBECTL_VERSIONS, Cluster, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-logrotate"
LOG_DIR = Path("/var/log/pods")
MAX_FILES = 3
ROTATED = re.compile(r"^0\.log\.\d{8}-\d{6}(\.gz)?$")


@pytest.fixture(scope="module")
def rotating_cluster():
    args = ["--container-log-max-size", "4Ki", "--container-log-max-files", str(MAX_FILES)]
    with running_agent_cluster(NODE, args) as c:
        yield c


def start_printer(cluster: Cluster, ns: str, name: str) -> dict:
    script = 'i=0; while true; do echo "line $i"; i=$((i+1)); usleep 2000; done'
    spec = {"nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}]}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))

    def running():
        pod = json.loads(cluster.kubectl("-n", ns, "get", "pod", name, "-o", "json").stdout)
        return pod if pod["status"].get("phase") == "Running" else None

    return eventually(running, what="printer running")


def log_dir(ns: str, pod: dict) -> Path:
    meta = pod["metadata"]
    return LOG_DIR / f"{ns}_{meta['name']}_{meta['uid']}" / "main"


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def numbers(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(r"line (\d+)", line))]


def assert_consecutive(nums: list[int]) -> None:
    assert nums, "no lines"
    gaps = [(a, b) for a, b in zip(nums, nums[1:]) if b != a + 1]
    assert not gaps, f"lines lost or repeated around {gaps[:5]}"


def test_logs_rotate_compress_and_stay_bounded(rotating_cluster):
    ns = unique("rotate")
    rotating_cluster.kubectl("create", "namespace", ns)
    pod = start_printer(rotating_cluster, ns, "printer")
    directory = log_dir(ns, pod)

    too_many = []

    def settled_with_gz():
        names = files(directory)
        if len(names) > MAX_FILES:
            too_many.append(names)
        rotated = [n for n in names if n != "0.log"]
        if "0.log" not in names or not all(ROTATED.match(n) for n in rotated):
            return None  # between a rename and the reopen, or compressing
        if not any(n.endswith(".gz") for n in rotated):
            return None
        # Every rotated file but the newest is compressed.
        return names if all(n.endswith(".gz") for n in rotated[:-1]) and not rotated[-1].endswith(".gz") else None

    eventually(settled_with_gz, timeout=90, interval=0.2, what="rotated and compressed logs")

    def compressed_records():
        # The compressed file may go in the next rotation: read whichever is there.
        gz = next(n for n in files(directory) if n.endswith(".gz"))
        with gzip.open(directory / gz, "rt") as f:
            return f.read().splitlines()

    records = eventually(compressed_records, what="compressed records")
    names = files(directory)
    assert records and all(re.fullmatch(r"\S+ stdout F line \d+", r) for r in records), records[:3]
    assert_consecutive([int(r.rsplit(" ", 1)[1]) for r in records])

    # The bound holds over further rotations.
    seen = set(names)
    eventually(lambda: settled_with_gz() and set(files(directory)) - seen - {"0.log"}, timeout=60, interval=0.2,
               what="another rotation")
    assert not too_many, f"more than {MAX_FILES} log files: {too_many[:3]}"

    # `kubectl logs` reads the current file.
    for version in KUBECTL_VERSIONS:
        if have_kubectl(version):
            out = rotating_cluster.kubectl("-n", ns, "logs", "printer", "--tail=50", version=version).stdout
            nums = numbers(out.splitlines())
            assert len(nums) >= 10, out[-300:]
            assert_consecutive(nums)


def test_logs_follow_across_rotations(rotating_cluster):
    ns = unique("follow")
    rotating_cluster.kubectl("create", "namespace", ns)
    pod = start_printer(rotating_cluster, ns, "printer")
    directory = log_dir(ns, pod)
    follower = rotating_cluster.kubectl_bg("-n", ns, "logs", "-f", "printer")
    try:
        follower.wait_for(lambda line: line.startswith("line "), timeout=30)
        before = {n for n in files(directory) if n != "0.log"}
        # Two rotations after the follower started: it must cross them.
        eventually(lambda: len({n.removesuffix(".gz") for n in files(directory) if n != "0.log"} -
                               {n.removesuffix(".gz") for n in before}) >= 2,
                   timeout=90, interval=0.5, what="two rotations while following")
        current = numbers(rotating_cluster.kubectl("-n", ns, "logs", "printer", "--tail=1").stdout.splitlines())
        assert current, "no current line"
        # The follower reaches lines written after the rotations.
        follower.wait_for(lambda line: line == f"line {current[-1]}", timeout=30)
    finally:
        follower.stop()
    nums = numbers(follower.seen)
    assert_consecutive(nums)
    assert nums[-1] - nums[0] > 1000, (nums[0], nums[-1])
