"""ResourceQuota and LimitRange end to end on the shared cluster (no agent: pods stay Pending,
which is all quota and LimitRange admission look at): the ResourceQuota admission's refusals with
upstream's messages, the quota controller's `status.used` (kubectl describe 1.32 and 1.20, the
Python client), replenishment on deletes, atomic charging under concurrent creates, LimitRange
defaults and minimums, and a Deployment whose ReplicaSet runs into a quota.
"""

from __future__ import annotations

import concurrent.futures
import json

from conftest import eventually, unique


def pod(name: str, cpu: str | None = "100m") -> str:
    resources = f"resources: {{requests: {{cpu: {cpu}}}}}" if cpu else ""
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: main
    image: busybox:v1
    command: [sleep, "3600"]
    {resources}
"""


def used(k, name: str) -> dict:
    return k.json("get", "resourcequota", name).get("status", {}).get("used", {})


def describe_rows(k, name: str) -> dict[str, tuple[str, str]]:
    """`kubectl describe quota` as {resource: (used, hard)}."""
    out = k.out("describe", "quota", name)
    rows = {}
    seen_header = False
    for line in out.splitlines():
        parts = line.split()
        if parts[:3] == ["Resource", "Used", "Hard"]:
            seen_header = True
            continue
        if seen_header and len(parts) == 3 and not parts[0].startswith("-"):
            rows[parts[0]] = (parts[1], parts[2])
    return rows


def test_quota_refuses_the_pod_over_the_limit(k):
    k("create", "quota", "q", "--hard=pods=2,requests.cpu=1")
    eventually(lambda: used(k, "q") == {"pods": "0", "requests.cpu": "0"}, what="quota status computed")
    k("apply", "-f", "-", input=pod("p1"))
    k("apply", "-f", "-", input=pod("p2"))

    r = k("apply", "-f", "-", input=pod("p3"), check=False)
    assert r.returncode != 0
    assert ('pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr), r.stderr

    r = k("apply", "-f", "-", input=pod("nocpu", cpu=None), check=False)
    assert r.returncode != 0
    assert 'pods "nocpu" is forbidden: failed quota: q: must specify requests.cpu for: main' in r.stderr, r.stderr

    assert used(k, "q") == {"pods": "2", "requests.cpu": "200m"}
    assert describe_rows(k, "q") == {"pods": ("2", "2"), "requests.cpu": ("200m", "1")}

    # Deleting a pod gives its share back (the controller recomputes on deletes).
    k("delete", "pod", "p1", "--wait=false")
    k("delete", "pod", "p1", "--grace-period=0", "--force", check=False)
    eventually(lambda: used(k, "q").get("pods") == "1", what="usage after the delete")
    k("apply", "-f", "-", input=pod("p3"))
    assert describe_rows(k, "q")["pods"] == ("2", "2")


def test_limitrange_defaults_and_minimum(k):
    k("apply", "-f", "-", input="""\
apiVersion: v1
kind: LimitRange
metadata:
  name: limits
spec:
  limits:
  - type: Container
    default: {cpu: 300m, memory: 128Mi}
    defaultRequest: {cpu: 200m}
    min: {cpu: 100m}
""")
    k("apply", "-f", "-", input=pod("defaulted", cpu=None))
    p = k.json("get", "pod", "defaulted")
    res = p["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "200m", "memory": "128Mi"}
    assert res["limits"] == {"cpu": "300m", "memory": "128Mi"}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main")

    # Defaulting runs before the LimitRanger, as upstream: a container with only a cpu limit gets
    # its request from that limit, not from the LimitRange's defaultRequest.
    limited = pod("limited", cpu=None).replace("command:", "resources: {limits: {cpu: 500m}}\n    command:")
    k("apply", "-f", "-", input=limited)
    p = k.json("get", "pod", "limited")
    res = p["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "500m", "memory": "128Mi"}, res
    assert res["limits"] == {"cpu": "500m", "memory": "128Mi"}, res
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container main; memory limit for container main")

    r = k("apply", "-f", "-", input=pod("tiny", cpu="50m"), check=False)
    assert r.returncode != 0
    assert ('pods "tiny" is forbidden: minimum cpu usage per Container is 100m, but request is 50m'
            in r.stderr), r.stderr
    assert k("get", "pod", "tiny", check=False).returncode != 0


def test_deployment_replicaset_reports_the_quota(k):
    k("create", "quota", "few", "--hard=pods=1")
    eventually(lambda: used(k, "few") == {"pods": "0"}, what="quota status computed")
    name = unique("capped")
    k("create", "deployment", name, "--image=busybox:v1", "--replicas=3")

    def rs():
        items = k.json("get", "rs", "-l", f"app={name}")["items"]
        return items[0] if items else None

    def failure():
        r = rs()
        conds = (r or {}).get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "ReplicaFailure"), None)

    cond = eventually(failure, what="ReplicaFailure condition")
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert "exceeded quota: few, requested: pods=1, used: pods=1, limited: pods=1" in cond["message"]
    rs_name = rs()["metadata"]["name"]
    events = k.out("get", "events", "--field-selector", f"involvedObject.name={rs_name}")
    assert "FailedCreate" in events and "exceeded quota: few" in events, events
    assert len(k.json("get", "pods", "-l", f"app={name}")["items"]) == 1
    assert used(k, "few") == {"pods": "1"}


def test_python_client_and_concurrent_charges(cluster, namespace, api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(namespace, {
        "metadata": {"name": "svc"},
        "spec": {"hard": {"services": "1", "pods": "5", "count/secrets": "10"}},
    })

    def status():
        q = core.read_namespaced_resource_quota("svc", namespace)
        return q.status.used if q.status and q.status.used else None

    eventually(lambda: status() and status().get("pods") == "0", what="status.used via the Python client")
    secrets = len(core.list_namespaced_secret(namespace).items)
    assert status() == {"services": "0", "pods": "0", "count/secrets": str(secrets)}

    svc = {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}
    core.create_namespaced_service(namespace, svc)
    try:
        core.create_namespaced_service(namespace, {**svc, "metadata": {"name": "b"}})
        raise AssertionError("second service admitted")
    except ApiException as e:
        assert e.status == 403
        assert json.loads(e.body)["message"] == (
            'services "b" is forbidden: exceeded quota: svc, requested: services=1, used: services=1, limited: services=1')

    # Ten concurrent pod creates against five free pods: exactly five pass.
    def create(i: int) -> bool:
        body = {"metadata": {"name": f"c{i}"},
                "spec": {"containers": [{"name": "main", "image": "busybox:v1"}]}}
        try:
            core.create_namespaced_pod(namespace, body)
            return True
        except ApiException as e:
            assert e.status == 403, e.body
            assert "exceeded quota: svc, requested: pods=1, used: pods=5, limited: pods=5" in e.body, e.body
            return False

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(create, range(10)))
    assert results.count(True) == 5, results
    assert status()["pods"] == "5"
    assert len(core.list_namespaced_pod(namespace).items) == 5
