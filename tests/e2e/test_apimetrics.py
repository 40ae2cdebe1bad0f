"""The API server's `/metrics` (Prometheus text format, upstream's series names and labels),
readable by `system:masters` and the `system:monitoring` group and refused to other users, and
the reasons RBAC gives for allowed access reviews."""

import re

from conftest import eventually, unique
from test_rbac import as_user, user_kubeconfig

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict, float]]:
    """Every sample of a text exposition: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def value(found: list, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, ls, v in found if n == name and all(ls.get(k) == w for k, w in labels.items()))


def scrape(cluster) -> list:
    return samples(cluster.kubectl("get", "--raw", "/metrics").stdout)


def test_requests_are_counted_with_upstream_labels(cluster, namespace):
    pods = dict(verb="LIST", dry_run="", group="", version="v1", resource="pods", subresource="",
                scope="namespace", component="apiserver", code="200")
    before = value(scrape(cluster), "apiserver_request_total", **pods)
    for _ in range(3):
        cluster.kubectl("get", "pods", "-n", namespace)
    found = scrape(cluster)
    assert value(found, "apiserver_request_total", **pods) >= 3 + before
    del pods["code"]
    assert value(found, "apiserver_request_duration_seconds_count", **pods) >= 3
    buckets = [ls["le"] for n, ls, _ in found
               if n == "apiserver_request_duration_seconds_bucket" and all(ls.get(k) == v for k, v in pods.items())]
    assert buckets[0] == "0.005" and buckets[-2:] == ["60", "+Inf"] and len(buckets) == 24, buckets
    # The scrape itself is a read in flight.
    assert value(found, "apiserver_current_inflight_requests", request_kind="readOnly") >= 1
    assert any(n == "apiserver_current_inflight_requests" and ls == {"request_kind": "mutating"} for n, ls, _ in found)
    assert value(found, "apiserver_storage_objects", resource="namespaces") >= 1
    assert value(found, "apiserver_audit_event_total") == 0
    assert value(found, "process_start_time_seconds") > 1.5e9
    assert value(found, "process_resident_memory_bytes") > 1e6


def test_watches_are_long_running_while_they_stream(cluster, namespace):
    watch = dict(verb="WATCH", resource="pods", scope="namespace", group="", version="v1")
    w = cluster.kubectl_bg("get", "pods", "-n", namespace, "-w", "--output-watch-events")
    try:
        eventually(lambda: value(scrape(cluster), "apiserver_longrunning_requests", **watch) >= 1,
                   timeout=30, what="the watch is counted as long-running")
    finally:
        w.stop()
    eventually(lambda: value(scrape(cluster), "apiserver_longrunning_requests", **watch) == 0,
               timeout=30, what="the ended watch is no longer counted")
    # Watches are counted but not timed.
    found = scrape(cluster)
    assert value(found, "apiserver_request_total", **watch) >= 1
    assert value(found, "apiserver_request_duration_seconds_count", verb="WATCH") == 0


def test_content_type_is_the_text_format(cluster):
    # kubectl at -v=8 logs the response headers.
    r = cluster.kubectl("get", "--raw", "/metrics", "-v=8")
    assert "text/plain; version=0.0.4; charset=utf-8" in r.stderr, r.stderr[-2000:]
    assert "# TYPE apiserver_request_total counter" in r.stdout


def test_only_monitoring_users_may_read_metrics(cluster):
    nobody = user_kubeconfig(cluster, unique("nobody"))
    r = as_user(cluster, nobody, "get", "--raw", "/metrics")
    assert r.returncode != 0
    assert 'cannot get path "/metrics"' in r.stderr, r.stderr
    assert "Forbidden" in r.stderr or "forbidden" in r.stderr, r.stderr
    monitor = user_kubeconfig(cluster, unique("prometheus"), groups=("system:monitoring",))
    r = as_user(cluster, monitor, "get", "--raw", "/metrics", check=True)
    assert "apiserver_request_total{" in r.stdout


def test_allowed_access_reviews_carry_the_rbac_reason(cluster, namespace):
    from kubernetes import client, config

    admin = client.AuthorizationV1Api(cluster.python_client())
    user = unique("reader")
    cluster.kubectl("create", "rolebinding", "readers", "--clusterrole=view", f"--user={user}", "-n", namespace)

    def review():
        sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=["system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="list", resource="pods")))
        return admin.create_subject_access_review(sar).status

    status = eventually(lambda: (s := review()).allowed and s, timeout=30, what="the binding applies")
    assert status.reason == f'RBAC: allowed by RoleBinding "readers/{namespace}" of ClusterRole "view" to User "{user}"'
    # The caller's own review, through a group binding of the default policy.
    monitor = config.new_client_from_config(
        config_file=str(user_kubeconfig(cluster, unique("scraper"), groups=("system:monitoring",))))
    ssar = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path="/metrics", verb="get")))
    status = client.AuthorizationV1Api(monitor).create_self_subject_access_review(ssar).status
    assert status.allowed is True
    assert status.reason == ('RBAC: allowed by ClusterRoleBinding "system:monitoring" of ClusterRole '
                             '"system:monitoring" to Group "system:monitoring"')
    # Denials still say nothing when no binding applies; masters are allowed without a reason.
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="delete", resource="pods")))
    assert admin.create_subject_access_review(sar).status.allowed is False
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user="root", groups=["system:masters"],
        resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="delete", resource="pods")))
    status = admin.create_subject_access_review(sar).status
    assert status.allowed is True and not status.reason
