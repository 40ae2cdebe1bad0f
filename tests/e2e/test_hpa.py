"""HorizontalPodAutoscaler end to end on the shared cluster: `kubectl autoscale`, the bounds the
controller enforces (min and max replicas), and how it reports missing resource metrics (the
shared cluster has no agent, so `metrics.k8s.io` has no usage for its pods): conditions, events
and `kubectl get hpa` columns with kubectl 1.32 and 1.20, and status fields through the Python
client. Scaling on real metrics is in test_metrics.py.

The replica arithmetic from metrics (utilization ratios, tolerance, missing and unready pods,
stabilization windows, scaling policies) is covered by the controller's unit tests against a
fake metrics source.
"""

from __future__ import annotations

from conftest import eventually, unique
from test_workloads import deployment


def replicas(k, name: str) -> int:
    return k.json("get", "deployment", name)["spec"]["replicas"]


def condition(hpa: dict, type_: str) -> dict:
    return next((c for c in hpa.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def test_autoscale_enforces_bounds_and_reports_missing_metrics(k, api_client):
    name = unique("web")
    k("apply", "-f", "-", input=deployment(name, replicas=1))
    k("autoscale", "deployment", name, "--min=2", "--max=4", "--cpu-percent=50")

    # Below the minimum: scaled up without needing any metric.
    eventually(lambda: replicas(k, name) == 2, timeout=60, what="scaled to minReplicas")
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={name},reason=SuccessfulRescale")
    assert "New size: 2; reason: Current number of replicas below Spec.MinReplicas" in events

    # Within bounds, the CPU metric is needed and the resource metrics API has none.
    def metrics_missing():
        hpa = k.json("get", "hpa", name)
        active = condition(hpa, "ScalingActive")
        return active.get("status") == "False" and active.get("reason") == "FailedGetResourceMetric" and hpa
    hpa = eventually(metrics_missing, timeout=60, what="ScalingActive=False")
    assert "unable to get metrics for resource cpu" in condition(hpa, "ScalingActive")["message"]
    assert condition(hpa, "AbleToScale")["status"] == "True"
    assert hpa["status"]["currentReplicas"] == 2
    assert hpa["status"]["observedGeneration"] == hpa["metadata"]["generation"]
    table = k.out("get", "hpa", name)
    assert "<unknown>/50%" in table, table
    assert replicas(k, name) == 2, "a failing metric never scales"

    # Above the maximum: scaled down to it.
    k("scale", "deployment", name, "--replicas=7")
    eventually(lambda: replicas(k, name) == 4, timeout=60, what="scaled to maxReplicas")
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={name},reason=SuccessfulRescale")
    assert "New size: 4; reason: Current number of replicas above Spec.MaxReplicas" in events

    from kubernetes import client

    v2 = client.AutoscalingV2Api(api_client)
    status = eventually(
        lambda: (s := v2.read_namespaced_horizontal_pod_autoscaler(name, k.namespace).status).desired_replicas == 4
        and s,
        timeout=30,
        what="desiredReplicas 4",
    )
    assert status.last_scale_time is not None
    assert {c.type for c in status.conditions} >= {"AbleToScale", "ScalingActive"}


def test_scale_target_errors_are_reported(k):
    name = unique("ghost")
    k("apply", "-f", "-", input=f"""\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {{name: memory, target: {{type: AverageValue, averageValue: 100Mi}}}}
""")

    def unable():
        able = condition(k.json("get", "hpa", name), "AbleToScale")
        return able.get("status") == "False" and able
    able = eventually(unable, timeout=60, what="AbleToScale=False")
    assert able["reason"] == "FailedGetScale"
    assert f"failed to query scale subresource for Deployment/{k.namespace}/{name}" in able["message"]
    assert "not found" in able["message"]
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={name},reason=FailedGetScale")
    assert name in events

    # The target appears: the autoscaler picks it up on its next period.
    k("apply", "-f", "-", input=deployment(name, replicas=0))
    def disabled():
        active = condition(k.json("get", "hpa", name), "ScalingActive")
        return active.get("reason") == "ScalingDisabled" and active
    active = eventually(disabled, timeout=60, what="ScalingDisabled for a target at zero")
    assert active["message"] == "scaling is disabled since the replica count of the target is zero"
    assert replicas(k, name) == 0
