"""Resource metrics end to end on one agent cluster scraped every 2 s: the agent's cgroup
readings through the API server's `metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics), `kubectl top
node|pod` with kubectl 1.32 and 1.20, the Python client's CustomObjectsApi, upstream's 404s, and a
HorizontalPodAutoscaler scaling a Deployment up under CPU load and back down when it stops.

A busy loop (`while :; do :; done`) under a CPU limit of 300m uses a known share of a core without
taking the shared test machine's cores."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client as k8s

from conftest import KUBECTL_VERSIONS, eventually, have_kubectl, running_agent_cluster, unique

NODE = "e2e-metrics"
RESOLUTION = "2s"


@pytest.fixture(scope="module")
def metrics_cluster():
    with running_agent_cluster(NODE, extra_args=["--metric-resolution", RESOLUTION]) as c:
        yield c


@pytest.fixture(scope="module")
def ns(metrics_cluster):
    name = unique("metrics")
    metrics_cluster.kubectl("create", "namespace", name)
    yield name
    metrics_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def burner(name: str) -> str:
    spec = {
        "nodeName": NODE,
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "while :; do :; done"],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "300m", "memory": "64Mi"}},
        }],
    }
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": {"app": "burner"}}, "spec": spec})


def millicores(q: str) -> float:
    if q.endswith("n"):
        return int(q[:-1]) / 1e6
    if q.endswith("u"):
        return int(q[:-1]) / 1e3
    if q.endswith("m"):
        return float(q[:-1])
    return float(q) * 1000


@pytest.fixture(scope="module")
def burning(metrics_cluster, ns):
    """A pod burning CPU, with metrics."""
    name = "burner"
    metrics_cluster.kubectl("-n", ns, "apply", "-f", "-", input=burner(name))
    api = k8s.CustomObjectsApi(metrics_cluster.python_client())

    def busy():
        try:
            m = api.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods", name)
        except k8s.ApiException:
            return None
        return millicores(m["containers"][0]["usage"]["cpu"]) > 100 and m
    eventually(busy, timeout=90, what="PodMetrics with more than 100m")
    return name


def test_metrics_api_is_discovered_and_served(metrics_cluster, ns, burning):
    groups = json.loads(metrics_cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io").stdout)
    assert groups["preferredVersion"]["version"] == "v1beta1"
    resources = json.loads(metrics_cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1").stdout)
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["pods"]["kind"] == "PodMetrics" and by_name["pods"]["namespaced"]
    assert by_name["nodes"]["kind"] == "NodeMetrics" and not by_name["nodes"]["namespaced"]
    assert sorted(by_name["pods"]["verbs"]) == ["get", "list"]

    api = k8s.CustomObjectsApi(metrics_cluster.python_client())
    pods = api.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods", label_selector="app=burner")
    assert pods["kind"] == "PodMetricsList"
    [item] = pods["items"]
    assert item["metadata"]["name"] == burning and item["metadata"]["labels"] == {"app": "burner"}
    assert re.fullmatch(r"[0-9.]+(ms|s)", item["window"]), item["window"]
    usage = item["containers"][0]["usage"]
    assert millicores(usage["cpu"]) > 100
    assert re.fullmatch(r"[0-9]+(Ki|Mi)?", usage["memory"]), usage
    # The 300m limit holds (with slack for sampling).
    assert millicores(usage["cpu"]) < 450

    assert api.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods",
                                             label_selector="app=other")["items"] == []
    everywhere = api.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods",
                                                field_selector=f"metadata.name={burning}")
    assert [i["metadata"]["namespace"] for i in everywhere["items"]] == [ns]

    node = api.get_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", NODE)
    assert node["kind"] == "NodeMetrics" and millicores(node["usage"]["cpu"]) > 100
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE

    with pytest.raises(k8s.ApiException) as missing:
        api.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods", "no-such-pod")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'pods "no-such-pod" not found'


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_kubectl_top(metrics_cluster, ns, burning, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")
    out = metrics_cluster.kubectl("-n", ns, "top", "pod", version=version).stdout
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0][:3] == ["NAME", "CPU(cores)", "MEMORY(bytes)"], out
    row = next(r for r in rows[1:] if r[0] == burning)
    assert millicores(row[1]) > 100, out

    out = metrics_cluster.kubectl("-n", ns, "top", "pod", burning, "--containers", version=version).stdout
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0][:4] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], out
    assert rows[1][:2] == [burning, "main"] and millicores(rows[1][2]) > 100, out

    out = metrics_cluster.kubectl("top", "pod", "-A", "-l", "app=burner", version=version).stdout
    assert any(line.split()[:2] == [ns, burning] for line in out.splitlines()), out

    out = metrics_cluster.kubectl("top", "node", version=version).stdout
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0][0] == "NAME" and rows[0][1] == "CPU(cores)", out
    node = next(r for r in rows[1:] if r[0] == NODE)
    assert millicores(node[1]) > 100 and node[2].endswith("%"), out

    missing = metrics_cluster.kubectl("-n", ns, "top", "pod", "no-such-pod", version=version, check=False)
    assert missing.returncode != 0
    assert 'pods "no-such-pod" not found' in missing.stderr, missing.stderr


def test_hpa_scales_up_under_load_and_back_down(metrics_cluster, ns, burning):
    # The load switch: pods burn while the ConfigMap has the key `burn`.
    name = "web"
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "while [ -f /switch/burn ]; do :; done; exec sleep 3600"],
                        "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}},
                        "volumeMounts": [{"name": "switch", "mountPath": "/switch"}],
                    }],
                    "volumes": [{"name": "switch", "configMap": {"name": "switch"}}],
                },
            },
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0},
                "scaleDown": {"stabilizationWindowSeconds": 0,
                              "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]},
            },
        },
    }
    kubectl = lambda *a, **kw: metrics_cluster.kubectl("-n", ns, *a, **kw)  # noqa: E731
    # The burner pod of the other tests is done with: it would share the node's CPU.
    kubectl("delete", "pod", burning, "--wait=false")
    kubectl("create", "configmap", "switch", "--from-literal=burn=1")
    kubectl("apply", "-f", "-", input=json.dumps(deployment))
    kubectl("apply", "-f", "-", input=json.dumps(hpa))

    def replicas() -> int:
        return json.loads(kubectl("get", "deployment", name, "-o", "json").stdout)["spec"]["replicas"]

    eventually(lambda: replicas() == 2, timeout=150, what="scaled up to 2 under load")
    status = json.loads(kubectl("get", "hpa", name, "-o", "json").stdout)["status"]
    assert status["desiredReplicas"] == 2
    current = status["currentMetrics"][0]["resource"]
    assert current["name"] == "cpu" and current["current"]["averageUtilization"] > 50, status
    events = kubectl("get", "events", "--field-selector", f"involvedObject.name={name},reason=SuccessfulRescale").stdout
    assert "New size: 2; reason: cpu resource utilization (percentage of request) above target" in events, events

    # Load off: the volume drops the key, the loops end, usage falls, the HPA scales down.
    kubectl("patch", "configmap", "switch", "--type=json", "-p", '[{"op": "remove", "path": "/data/burn"}]')
    eventually(lambda: replicas() == 1, timeout=180, what="scaled back down to 1")
    events = kubectl("get", "events", "--field-selector", f"involvedObject.name={name},reason=SuccessfulRescale").stdout
    assert "New size: 1; reason: All metrics below target" in events, events
