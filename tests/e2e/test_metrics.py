"""Resource metrics end to end on one agent cluster scraped every 2 s: the agent's cgroup
readings through the API server's `metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics), `kubectl top
node|pod` with kubectl 1.32 and 1.20, the Python client's CustomObjectsApi, upstream's 404s, and a
HorizontalPodAutoscaler scaling a Deployment up under CPU load and back down when it stops.
Also the agent's kubelet stats endpoints through the node proxy (`kubectl get --raw
/api/v1/nodes/<node>/proxy/stats/summary`, `/metrics/cadvisor`, `/metrics/resource`, the kubelet's
`/metrics` with its `kubelet_volume_stats_*` series) and who may read them.

A busy loop (`while :; do :; done`) under a CPU limit of 300m uses a known share of a core without
taking the shared test machine's cores."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request

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


STATS_POD = "stats"


@pytest.fixture(scope="module")
def stats_pod(metrics_cluster, ns):
    """A sleeping pod with a 64 KiB file in an emptyDir and a configMap volume."""
    metrics_cluster.kubectl("-n", ns, "create", "configmap", "stats-config", "--from-literal=k=v")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": STATS_POD},
        "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "dd if=/dev/zero of=/scratch/f bs=1024 count=64 && exec sleep 3600"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                                 {"name": "config", "mountPath": "/config"}],
            }],
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "stats-config"}}],
        },
    }
    metrics_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(pod))
    metrics_cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", f"pod/{STATS_POD}", "--timeout=90s")
    return STATS_POD


def raw(cluster, path: str, version: str = "1.32") -> str:
    return cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy{path}", version=version).stdout


def summary_pod(summary: dict, ns: str, name: str) -> dict | None:
    refs = ((p, p["podRef"]) for p in summary["pods"])
    return next((p for p, ref in refs if (ref["namespace"], ref["name"]) == (ns, name)), None)


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_stats_summary_through_the_node_proxy(metrics_cluster, ns, stats_pod, version):
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")

    def listed():
        summary = json.loads(raw(metrics_cluster, "/stats/summary", version))
        pod = summary_pod(summary, ns, stats_pod)
        scratch = pod and next((v for v in pod.get("volume", []) if v["name"] == "scratch"), None)
        # The 64 KiB file is written once the container runs.
        return scratch and scratch["usedBytes"] >= 64 * 1024 and (summary, pod)
    summary, pod = eventually(listed, timeout=60, what="the stats pod and its written volume in the summary")

    node = summary["node"]
    assert node["nodeName"] == NODE
    assert node["cpu"]["usageCoreNanoSeconds"] > 0
    assert 0 < node["memory"]["workingSetBytes"] and node["memory"]["availableBytes"] > 0
    assert node["fs"]["capacityBytes"] > node["fs"]["availableBytes"] > 0
    assert "imageFs" in node["runtime"] and node["rlimit"]["maxpid"] > node["rlimit"]["curproc"] > 0
    # The writable layers' file system beside the images'.
    container_fs = node["runtime"]["containerFs"]
    assert container_fs["capacityBytes"] >= container_fs["availableBytes"] > 0 and container_fs["usedBytes"] > 0
    assert container_fs["inodesUsed"] > 0, container_fs
    assert node["swap"]["swapUsageBytes"] >= 0 and node["swap"]["swapAvailableBytes"] >= 0, node["swap"]
    assert {"kubelet", "pods"} <= {c["name"] for c in node["systemContainers"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", node["startTime"]), node["startTime"]

    assert pod["podRef"]["uid"] and pod["startTime"]
    [container] = pod["containers"]
    assert container["name"] == "main" and container["memory"]["workingSetBytes"] > 0
    assert container["cpu"]["usageCoreNanoSeconds"] > 0
    assert "rootfs" in container and "logs" in container
    # This host accounts swap per cgroup (memsw on v1, memory.swap.* on v2).
    assert container["swap"]["swapUsageBytes"] >= 0 and pod["swap"]["swapUsageBytes"] >= 0, (container, pod)
    assert pod["memory"]["workingSetBytes"] > 0
    volumes = {v["name"]: v for v in pod["volume"]}
    # The pod's own volumes, and the projected ServiceAccount token volume, as kubelet lists it.
    assert {"scratch", "config"} <= set(volumes), volumes
    assert any(name.startswith("kube-api-access-") for name in volumes), volumes
    assert volumes["scratch"]["capacityBytes"] > 0 and volumes["scratch"]["inodesUsed"] >= 2
    assert pod["ephemeral-storage"]["usedBytes"] >= 64 * 1024
    assert pod["network"]["name"] == "eth0" and pod["network"]["rxBytes"] >= 0
    assert pod["process_stats"]["process_count"] >= 1

    # The second summary has a rate against the first.
    again = json.loads(raw(metrics_cluster, "/stats/summary", version))
    assert "usageNanoCores" in again["node"]["cpu"]

    small = json.loads(raw(metrics_cluster, "/stats/summary?only_cpu_and_memory=true", version))
    pod = summary_pod(small, ns, stats_pod)
    assert pod["containers"][0]["memory"]["workingSetBytes"] > 0
    assert "volume" not in pod and "network" not in pod and "ephemeral-storage" not in pod and "swap" not in pod
    assert "fs" not in small["node"] and "network" not in small["node"]


@pytest.fixture(scope="module")
def claimer(metrics_cluster, ns):
    """A pod with a local-path claim (the default StorageClass), `stats-data`, that wrote 32 KiB
    to it."""
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "stats-data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "claimer"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "dd if=/dev/zero of=/data/f bs=1024 count=32 && exec sleep 3600"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "stats-data"}}],
        },
    }
    for obj in (claim, pod):
        metrics_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj))
    metrics_cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/claimer", "--timeout=120s")
    return "stats-data"


def test_stats_summary_lists_claim_volumes_with_their_claim(metrics_cluster, ns, claimer):
    """The claim's volume in the summary names the claim (`pvcRef`) and is measured at the
    PersistentVolume's directory."""
    def written():
        pod = summary_pod(json.loads(raw(metrics_cluster, "/stats/summary")), ns, "claimer")
        data = pod and next((v for v in pod.get("volume", []) if v["name"] == "data"), None)
        return data and data["usedBytes"] >= 32 * 1024 and data
    data = eventually(written, timeout=60, what="the claim volume, written, in the summary")
    assert data["pvcRef"] == {"name": claimer, "namespace": ns}, data
    assert data["capacityBytes"] >= data["availableBytes"] > 0, data
    assert data["inodes"] > 0 and data["inodesUsed"] >= 2, data


def prometheus_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of each sample line."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_kubelet_metrics_have_volume_stats_and_pod_counts(metrics_cluster, ns, claimer, stats_pod, version):
    """The kubelet's `/metrics`: one `kubelet_volume_stats_*` series per mounted claim with sane
    values, the running pods and containers, what the agent started, its node's name."""
    if not have_kubectl(version):
        pytest.skip(f"kubectl {version} not installed")
    labels = f'{{namespace="{ns}",persistentvolumeclaim="{claimer}"}}'

    def written():
        text = raw(metrics_cluster, "/metrics", version)
        samples = prometheus_samples(text)
        return samples.get(f"kubelet_volume_stats_used_bytes{labels}", 0) >= 32 * 1024 and (text, samples)
    text, samples = eventually(written, timeout=60, what="the claim's used bytes in /metrics")

    def volume(name: str) -> float:
        return samples[f"kubelet_volume_stats_{name}{labels}"]
    assert volume("capacity_bytes") >= volume("available_bytes") > 0, text
    assert volume("capacity_bytes") >= volume("used_bytes"), text
    assert volume("inodes") >= volume("inodes_free") > 0 and volume("inodes_used") >= 2, text
    assert volume("health_status_abnormal") == 0, text
    for name in ("capacity_bytes", "available_bytes", "used_bytes", "inodes", "inodes_free", "inodes_used"):
        assert f"# TYPE kubelet_volume_stats_{name} gauge" in text, name
    # The stats pod and the claimer run (the burner too, when its tests ran first).
    assert samples["kubelet_running_pods"] >= 2, text
    assert samples['kubelet_running_containers{container_state="running"}'] >= 2, text
    assert samples["kubelet_started_pods_total"] >= 2, text
    assert samples['kubelet_started_containers_total{container_type="container"}'] >= 2, text
    assert samples[f'kubelet_node_name{{node="{NODE}"}}'] == 1, text
    assert "# TYPE kubelet_pod_start_duration_seconds histogram" in text
    assert samples["kubelet_pod_start_duration_seconds_count"] >= 2, text
    assert samples['kubelet_pod_start_duration_seconds_bucket{le="+Inf"}'] == \
        samples["kubelet_pod_start_duration_seconds_count"]


def test_cadvisor_and_resource_metrics_through_the_node_proxy(metrics_cluster, ns, stats_pod):
    text = raw(metrics_cluster, "/metrics/cadvisor")
    pattern = (r'container_memory_working_set_bytes\{container="main",id="[^"]+",image="[^"]+",'
               rf'name="[^"]+",namespace="{ns}",pod="{stats_pod}"\}} ([0-9]+) [0-9]+')
    match = re.search(pattern, text)
    assert match and int(match.group(1)) > 0, text
    for series in ("container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_memory_rss",
                   "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
                   "container_fs_usage_bytes", "container_start_time_seconds"):
        assert re.search(rf'^{series}\{{[^}}]*pod="{stats_pod}"', text, re.M), series
    fs_usage = rf'^container_fs_usage_bytes\{{container="main",device="[^"]+",id="[^"]+",[^}}]*pod="{stats_pod}"\}} [1-9]'
    assert re.search(fs_usage, text, re.M), text
    assert re.search(r"^machine_cpu_cores [1-9][0-9]* ", text, re.M), text
    assert re.search(r"^machine_memory_bytes [1-9][0-9]* ", text, re.M), text

    resource = raw(metrics_cluster, "/metrics/resource")
    assert re.search(rf'^pod_memory_working_set_bytes\{{namespace="{ns}",pod="{stats_pod}"\}} [1-9]', resource, re.M)


def test_stats_need_node_permissions(metrics_cluster):
    for path in ("/stats/summary", "/metrics/cadvisor", "/metrics"):
        denied = metrics_cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy{path}", "--as", "nobody",
                                         check=False)
        assert denied.returncode != 0
        assert 'cannot get resource "nodes/proxy"' in denied.stderr, denied.stderr

    # On the agent itself, a client other than the API server is checked against the kubelet's
    # subresources.
    tls = metrics_cluster.data_dir / "server" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    paths = (("/stats/summary", "stats"), ("/metrics/cadvisor", "metrics"), ("/metrics", "metrics"))
    for path, subresource in paths:
        with pytest.raises(urllib.error.HTTPError) as forbidden:
            urllib.request.urlopen(f"https://{metrics_cluster.node_ip}:10250{path}", context=ctx, timeout=10)
        assert forbidden.value.code == 403
        assert f"subresource={subresource}" in forbidden.value.read().decode()


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
