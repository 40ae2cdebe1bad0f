"""Schedulers outside the server: `skiff server --disable-scheduler` with its agent, and two
`skiff scheduler` processes on the host sharing the `kube-system/kube-scheduler` Lease. One
leads and binds pods; when it dies without releasing the lease, the standby takes over once the
15 s lease expires; a scheduler stopped with SIGTERM releases the lease. `--scheduler-config`
adds a second profile whose pods get bound too, while pods naming an unknown scheduler are left
alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SKIFF_BIN, Cluster, Netns, build_busybox, eventually, stop_agent_cluster, unique

NODE = "e2e-ha"
CONFIG = """apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: e2e-other
  plugins:
    score:
      disabled: [{name: ImageLocality}]
"""


@pytest.fixture(scope="module")
def ha_cluster():
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-ha."))
    images = workdir / "data" / "agent" / "images"
    images.mkdir(parents=True)
    build_busybox(images / "busybox.tar")
    netns = Netns()
    c = Cluster(workdir, netns, agent=True, node_name=NODE, extra_args=["--disable-scheduler"])
    try:
        c.start()
        eventually(lambda: NODE in c.kubectl("get", "nodes", check=False).stdout, what="node registered")
        yield c
    finally:
        stop_agent_cluster(c, netns, workdir)


class Scheduler:
    def __init__(self, cluster: Cluster, name: str) -> None:
        cfg = cluster.workdir / "scheduler-config.yaml"
        cfg.write_text(CONFIG)
        self.log = open(cluster.workdir / f"{name}.log", "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKIFF_")}
        self.proc = subprocess.Popen([SKIFF_BIN, "scheduler", "--kubeconfig", str(cluster.kubeconfig),
                                      "--scheduler-config", str(cfg)], stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def lease_holder(c: Cluster) -> str | None:
    r = c.kubectl("get", "lease", "-n", "kube-system", "kube-scheduler", "-o", "json", check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)["spec"].get("holderIdentity", "")


def create_pod(c: Cluster, ns: str, name: str, scheduler: str = "default-scheduler") -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}
    c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(body))


def node_of(c: Cluster, ns: str, name: str) -> str:
    return json.loads(c.kubectl("-n", ns, "get", "pod", name, "-o", "json").stdout)["spec"].get("nodeName", "")


def test_standby_takes_over_after_the_leader_dies(ha_cluster):
    c = ha_cluster
    ns = unique("ha")
    c.kubectl("create", "namespace", ns)
    first = Scheduler(c, "first")
    second = None
    try:
        holder = eventually(lambda: lease_holder(c), what="a leader")
        create_pod(c, ns, "one")
        eventually(lambda: node_of(c, ns, "one") == NODE, what="pod bound by the leader")
        second = Scheduler(c, "second")
        # The standby does not take the valid lease.
        assert lease_holder(c) == holder
        first.stop(signal.SIGKILL)
        new = eventually(lambda: (h := lease_holder(c)) and h != holder and h, timeout=45, what="standby takes over")
        assert new.split("_")[0] == holder.split("_")[0]
        create_pod(c, ns, "two")
        eventually(lambda: node_of(c, ns, "two") == NODE, what="pod bound by the new leader")
        create_pod(c, ns, "other", scheduler="e2e-other")
        eventually(lambda: node_of(c, ns, "other") == NODE, what="second profile's pod bound")
        create_pod(c, ns, "foreign", scheduler="not-configured")
        second.stop(signal.SIGTERM)
        # A clean stop releases the lease at once.
        eventually(lambda: lease_holder(c) == "", timeout=20, what="lease released")
        assert node_of(c, ns, "foreign") == ""
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop(signal.SIGKILL)
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
