"""Server-side apply through kubectl: `apply --server-side` (create, unchanged, configured),
conflicts with other managers and `--force-conflicts`, `kubectl diff` (a server-side dry-run
apply), `get --show-managed-fields`, applies to `/scale` (kubectl 1.32's `--subresource=scale`
and the Python client), list-map keys whose `protocol` is omitted, and owners recorded through
another API version (HorizontalPodAutoscaler v1/v2, Event core/v1 and events.k8s.io/v1).

Each test runs once per available kubectl version (1.20 also speaks `--server-side`).
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import eventually

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: busybox:{tag}
        command: [sleep, "3600"]
        ports:
        - containerPort: 80
"""


def deploy(replicas: int = 2, tag: str = "1") -> str:
    return DEPLOY.format(replicas=replicas, tag=tag)


def show_managed(k) -> list[str]:
    """kubectl 1.20 always prints managedFields; `--show-managed-fields` arrived in 1.21."""
    return [] if k.version == "1.20" else ["--show-managed-fields"]


def managers(obj: dict) -> dict[str, dict]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_apply_server_side_creates_then_is_unchanged_then_configured(k):
    out = k.out("apply", "--server-side", "-f", "-", input=deploy())
    assert "deployment.apps/web serverside-applied" in out
    obj = k.json("get", "deployment", "web", *show_managed(k))
    entry = managers(obj)[("kubectl", "Apply")]
    assert entry["apiVersion"] == "apps/v1"
    assert entry["fieldsType"] == "FieldsV1"
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    containers = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert 'k:{"name":"main"}' in containers
    ports = containers['k:{"name":"main"}']["f:ports"]
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in ports

    def settled():
        # The Deployment controller writes the revision annotation and status once; after that
        # the object stays put, so a no-op apply must leave its resourceVersion alone.
        o = k.json("get", "deployment", "web", *show_managed(k))
        done = o.get("status", {}).get("observedGeneration") == o["metadata"]["generation"]
        done = done and "deployment.kubernetes.io/revision" in o["metadata"].get("annotations", {})
        done = done and o["status"].get("replicas") == o["spec"]["replicas"]
        return o if done else None

    obj = eventually(settled, what="the Deployment controller observed the apply")
    rv = obj["metadata"]["resourceVersion"]

    k("apply", "--server-side", "-f", "-", input=deploy())
    again = k.json("get", "deployment", "web", *show_managed(k))
    assert again["metadata"]["resourceVersion"] == rv, "a no-op apply must not write"
    assert managers(again)[("kubectl", "Apply")]["time"] == entry["time"]

    k("apply", "--server-side", "-f", "-", input=deploy(replicas=3, tag="2"))
    obj = k.json("get", "deployment", "web")
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"


def test_field_dropped_from_manifest_is_removed(k):
    k("apply", "--server-side", "--field-manager", "ci", "-f", "-", input=deploy())
    k("label", "deployment", "web", "team=ops")
    manifest = yaml.safe_load(deploy())
    del manifest["metadata"]["labels"]
    k("apply", "--server-side", "--field-manager", "ci", "-f", "-", input=json.dumps(manifest))
    labels = k.json("get", "deployment", "web")["metadata"].get("labels", {})
    assert labels == {"team": "ops"}, "the applier's label goes, the other manager's label stays"


def test_conflict_after_scale_and_force_conflicts(k):
    k("apply", "--server-side", "-f", "-", input=deploy())
    k("scale", "deployment", "web", "--replicas=5")
    r = k("apply", "--server-side", "-f", "-", input=deploy(replicas=2), check=False)
    assert r.returncode != 0
    assert "conflict" in r.stderr.lower()
    assert ".spec.replicas" in r.stderr
    assert k.json("get", "deployment", "web")["spec"]["replicas"] == 5

    k("apply", "--server-side", "--force-conflicts", "-f", "-", input=deploy(replicas=2))
    obj = k.json("get", "deployment", "web", *show_managed(k))
    assert obj["spec"]["replicas"] == 2
    assert "f:replicas" in managers(obj)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    for (name, op), e in managers(obj).items():
        if op == "Update":
            assert "f:replicas" not in e["fieldsV1"].get("f:spec", {}), f"{name} still owns replicas"


def test_diff_shows_a_server_side_change_without_writing(k):
    k("apply", "--server-side", "-f", "-", input=deploy())
    rv = k.json("get", "deployment", "web")["metadata"]["resourceVersion"]
    r = k("diff", "--server-side", "-f", "-", input=deploy(replicas=4), check=False)
    assert r.returncode == 1, r.stderr
    assert "-  replicas: 2" in r.stdout
    assert "+  replicas: 4" in r.stdout
    assert k.json("get", "deployment", "web")["metadata"]["resourceVersion"] == rv


def test_show_managed_fields_lists_update_and_apply_managers(k):
    k("create", "configmap", "cfg", "--from-literal=a=1")
    cm = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  b: "2"
"""
    k("apply", "--server-side", "--field-manager", "mine", "-f", "-", input=cm)
    if k.version != "1.20":
        hidden = k.out("get", "configmap", "cfg", "-o", "yaml")
        assert "managedFields" not in hidden
    shown = k.out("get", "configmap", "cfg", "-o", "yaml", *show_managed(k))
    assert "managedFields" in shown
    obj = yaml.safe_load(shown)
    ms = managers(obj)
    assert ms[("mine", "Apply")]["fieldsV1"] == {"f:data": {"f:b": {}}}
    update = [e for (name, op), e in ms.items() if op == "Update"]
    assert update and "f:a" in update[0]["fieldsV1"]["f:data"]
    assert obj["data"] == {"a": "1", "b": "2"}


def test_python_dynamic_client_server_side_apply(api_client, cluster):
    """The Python dynamic client's `server_side_apply` (apply-patch+yaml with fieldManager)."""
    from kubernetes import dynamic
    from kubernetes.client.rest import ApiException

    from conftest import unique

    ns = unique("e2e-py")
    cluster.kubectl("create", "namespace", ns)
    cms = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py"}, "data": {"a": "1"}}
    dyn = dynamic.DynamicClient(api_client)
    created = dyn.server_side_apply(cms, body=body, name="py", namespace=ns, field_manager="py-mgr")
    assert created.data.a == "1"
    entry = created.metadata.managedFields[0]
    assert (entry.manager, entry.operation) == ("py-mgr", "Apply")

    body["data"] = {"a": "2"}
    try:
        dyn.server_side_apply(cms, body=body, name="py", namespace=ns, field_manager="other")
        raise AssertionError("expected a conflict")
    except ApiException as e:
        assert e.status == 409
        status = json.loads(e.body)
        assert status["details"]["causes"] == [
            {"reason": "FieldManagerConflict", "message": 'conflict with "py-mgr"', "field": ".data.a"}
        ]
    forced = dyn.server_side_apply(cms, body=body, name="py", namespace=ns, field_manager="other", force_conflicts=True)
    assert forced.data.a == "2"
    assert [e.manager for e in forced.metadata.managedFields] == ["other"]
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_server_side_apply_takes_over_from_client_side_apply(k):
    """kubectl's server-side applier may change fields its client-side apply set (upstream's
    last-applied migration); a later client-side apply still works."""
    k("apply", "-f", "-", input=deploy(replicas=2))
    k("apply", "--server-side", "-f", "-", input=deploy(replicas=3))
    obj = k.json("get", "deployment", "web", *show_managed(k))
    assert obj["spec"]["replicas"] == 3
    assert "f:replicas" in managers(obj)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    k("apply", "-f", "-", input=deploy(replicas=2))
    assert k.json("get", "deployment", "web")["spec"]["replicas"] == 2


SCALE = """\
apiVersion: autoscaling/v1
kind: Scale
metadata:
  name: web
spec:
  replicas: {replicas}
"""


def test_kubectl_apply_subresource_scale_is_refused_as_upstream(k):
    """kubectl 1.32 can only send the parent's manifest to /scale, whose apply needs an
    autoscaling/v1 Scale: upstream refuses it with a 400, and so does skiff."""
    if k.version == "1.20":
        pytest.skip("kubectl 1.20 has no `apply --subresource`")
    k("apply", "--server-side", "-f", "-", input=deploy(replicas=2))
    r = k("apply", "--server-side", "--subresource=scale", "--field-manager=hpa", "-f", "-", input=deploy(replicas=4), check=False)
    assert r.returncode != 0
    assert "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: autoscaling/v1" in r.stderr, r.stderr
    assert k.json("get", "deployment", "web")["spec"]["replicas"] == 2
    r = k("apply", "--server-side", "--subresource=scale", "-f", "-", input=SCALE.format(replicas=4), check=False)
    assert r.returncode != 0
    assert 'no matches for kind "Scale"' in r.stderr, r.stderr


def test_python_client_applies_to_the_scale_subresource(api_client, cluster):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from conftest import unique

    ns = unique("e2e-scale")
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("-n", ns, "apply", "--server-side", "--field-manager=ci", "-f", "-", input=deploy(replicas=2))
    apps = client.AppsV1Api(api_client)
    body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 3}}
    apply = {"field_manager": "py-hpa", "_content_type": "application/apply-patch+yaml"}
    try:
        apps.patch_namespaced_deployment_scale("web", ns, body, **apply)
        raise AssertionError("expected a conflict")
    except ApiException as e:
        assert e.status == 409
        causes = json.loads(e.body)["details"]["causes"]
        assert causes == [{"reason": "FieldManagerConflict", "message": 'conflict with "ci"', "field": ".spec.replicas"}]
    scale = apps.patch_namespaced_deployment_scale("web", ns, body, force=True, **apply)
    assert scale.spec.replicas == 3
    assert [e.manager for e in scale.metadata.managed_fields] == ["py-hpa"]
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.spec.replicas == 3
    entry = next(e for e in deployment.metadata.managed_fields if e.manager == "py-hpa")
    assert (entry.operation, entry.subresource, entry.api_version) == ("Apply", "scale", "apps/v1")
    # The deployment's applier now conflicts with the scale applier.
    r = cluster.kubectl("-n", ns, "apply", "--server-side", "--field-manager=ci", "-f", "-", input=deploy(replicas=2), check=False)
    assert r.returncode != 0
    assert 'conflict with "py-hpa" with subresource "scale": .spec.replicas' in r.stderr, r.stderr
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: dns
spec:
  selector: {{app: dns}}
  ports:
  - name: udp
    port: 53
    protocol: UDP
    targetPort: 53
  - name: tcp
    port: 53
    targetPort: {target}
"""


def test_ports_without_protocol_are_keyed_by_its_default(k):
    """An applied port without `protocol` is the TCP item: re-applying updates it in place."""
    k("apply", "--server-side", "-f", "-", input=SERVICE.format(target=53))
    k("apply", "--server-side", "-f", "-", input=SERVICE.format(target=5353))
    obj = k.json("get", "service", "dns", *show_managed(k))
    ports = {(p["port"], p["protocol"]): p["targetPort"] for p in obj["spec"]["ports"]}
    assert ports == {(53, "UDP"): 53, (53, "TCP"): 5353}
    keys = sorted(f for f in managers(obj)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]["f:ports"] if f.startswith("k:"))
    assert keys == ['k:{"port":53,"protocol":"TCP"}', 'k:{"port":53,"protocol":"UDP"}']


HPA_V2 = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
"""

HPA_V1 = """\
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 70
"""


def test_owners_recorded_through_another_version_conflict(k):
    """Fields applied through autoscaling/v2 are owned when applying through autoscaling/v1."""
    k("apply", "--server-side", "-f", "-", input=HPA_V2)
    r = k("apply", "--server-side", "--field-manager=legacy", "-f", "-", input=HPA_V1, check=False)
    assert r.returncode != 0
    assert 'conflict with "kubectl": .spec.metrics' in r.stderr, r.stderr
    k("apply", "--server-side", "--field-manager=legacy", "--force-conflicts", "-f", "-", input=HPA_V1)
    obj = k.json("get", "horizontalpodautoscalers.v2.autoscaling", "web", *show_managed(k))
    assert obj["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    ms = managers(obj)
    assert ms[("legacy", "Apply")]["apiVersion"] == "autoscaling/v1"
    assert "f:targetCPUUtilizationPercentage" in ms[("legacy", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:metrics" not in ms[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:maxReplicas" in ms[("kubectl", "Apply")]["fieldsV1"]["f:spec"], "shared, not taken"


def test_python_events_apply_across_core_and_events_k8s_io(api_client, cluster):
    """An Event applied through core/v1 and then through events.k8s.io/v1 by another manager."""
    from kubernetes import dynamic
    from kubernetes.client.rest import ApiException

    from conftest import unique

    ns = unique("e2e-ev")
    cluster.kubectl("create", "namespace", ns)
    dyn = dynamic.DynamicClient(api_client)
    core = dyn.resources.get(api_version="v1", kind="Event")
    new = dyn.resources.get(api_version="events.k8s.io/v1", kind="Event")
    regarding = {"kind": "Pod", "name": "p", "namespace": ns}
    old_style = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "involvedObject": regarding,
                 "reason": "Started", "type": "Normal", "message": "one"}
    dyn.server_side_apply(core, body=old_style, name="e", namespace=ns, field_manager="a")
    new_style = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "regarding": regarding,
                 "reason": "Started", "type": "Normal", "note": "two"}
    try:
        dyn.server_side_apply(new, body=new_style, name="e", namespace=ns, field_manager="b")
        raise AssertionError("expected a conflict")
    except ApiException as e:
        assert e.status == 409
        assert json.loads(e.body)["message"] == 'Apply failed with 1 conflict: conflict with "a": .message'
    dyn.server_side_apply(new, body=new_style, name="e", namespace=ns, field_manager="b", force_conflicts=True)
    ev = core.get(name="e", namespace=ns).to_dict()
    assert ev["message"] == "two"
    entries = {e["manager"]: e for e in ev["metadata"]["managedFields"]}
    assert entries["b"]["apiVersion"] == "events.k8s.io/v1" and "f:note" in entries["b"]["fieldsV1"]
    assert "f:message" not in entries["a"]["fieldsV1"] and "f:involvedObject" in entries["a"]["fieldsV1"]
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
