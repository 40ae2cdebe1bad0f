"""The official Python client against the real server: CRUD, selectors, watches, restarts."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import unique


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def ns(core):
    name = unique("py")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except Exception:  # noqa: BLE001 - best-effort cleanup (the server may have restarted)
        pass


def configmap(name: str, data: dict, labels: dict | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_configmap_crud(core, ns):
    created = core.create_namespaced_config_map(ns, configmap("crud", {"a": "1"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.namespace == ns

    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map(ns, configmap("crud", {"a": "1"}))
    assert conflict.value.status == 409

    read = core.read_namespaced_config_map("crud", ns)
    assert read.data == {"a": "1"}

    read.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("crud", ns, read)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    # A replace carrying a stale resourceVersion is a conflict.
    read.data["c"] = "3"
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("crud", ns, read)
    assert stale.value.status == 409

    patched = core.patch_namespaced_config_map("crud", ns, {"metadata": {"labels": {"p": "yes"}}})
    assert patched.metadata.labels == {"p": "yes"}
    assert patched.data == {"a": "1", "b": "2"}

    core.delete_namespaced_config_map("crud", ns)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("crud", ns)
    assert gone.value.status == 404


def test_list_with_label_and_field_selectors(core, ns):
    for i in range(6):
        core.create_namespaced_config_map(
            ns, configmap(f"sel-{i}", {"i": str(i)}, labels={"parity": "even" if i % 2 == 0 else "odd", "n": str(i)})
        )

    def names(**kw):
        return sorted(cm.metadata.name for cm in core.list_namespaced_config_map(ns, **kw).items)

    assert names(label_selector="parity=even") == ["sel-0", "sel-2", "sel-4"]
    assert names(label_selector="parity=odd,n!=3") == ["sel-1", "sel-5"]
    assert names(label_selector="n in (1,2)") == ["sel-1", "sel-2"]
    assert names(field_selector="metadata.name=sel-3") == ["sel-3"]
    assert names(field_selector="metadata.name!=sel-3", label_selector="parity=odd") == ["sel-1", "sel-5"]

    page = core.list_namespaced_config_map(ns, label_selector="parity", limit=4)
    assert len(page.items) == 4 and page.metadata._continue
    rest = core.list_namespaced_config_map(ns, label_selector="parity", limit=4, _continue=page.metadata._continue)
    assert len(rest.items) == 2
    assert {c.metadata.name for c in page.items + rest.items} == {f"sel-{i}" for i in range(6)}


def test_watch_from_list_resource_version(core, ns):
    listed = core.list_namespaced_config_map(ns)
    rv = listed.metadata.resource_version
    wanted = {f"w-{i}" for i in range(3)}
    for name in sorted(wanted):
        core.create_namespaced_config_map(ns, configmap(name, {"k": "v"}))
    core.delete_namespaced_config_map("w-0", ns)

    events = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=30):
        events.append((event["type"], event["object"].metadata.name))
        if ("DELETED", "w-0") in events:
            w.stop()
    added = {name for kind, name in events if kind == "ADDED"}
    assert wanted <= added, events
    assert events.index(("ADDED", "w-0")) < events.index(("DELETED", "w-0"))


def relist_and_watch(core, ns: str, resource_version: str, until: str) -> list[tuple[str, str]]:
    """An informer's loop in miniature: watch from resource_version; on 410 Gone, list again and
    watch from the list's resourceVersion. Returns events until a `until` object is ADDED."""
    events: list[tuple[str, str]] = []
    relisted = False
    for _attempt in range(3):
        w = watch.Watch()
        try:
            for event in w.stream(core.list_namespaced_config_map, ns, resource_version=resource_version,
                                  timeout_seconds=20):
                events.append((event["type"], event["object"].metadata.name))
                if event["type"] == "ADDED" and event["object"].metadata.name == until:
                    w.stop()
                    return events
        except ApiException as e:
            assert e.status == 410, f"expected 410 Gone, got {e.status}: {e.reason}"
            assert not relisted, "a fresh list's resourceVersion must be watchable"
            relisted = True
            listed = core.list_namespaced_config_map(ns)
            events.extend(("LISTED", cm.metadata.name) for cm in listed.items)
            if any(cm.metadata.name == until for cm in listed.items):
                return events
            resource_version = listed.metadata.resource_version
    raise AssertionError(f"never saw {until}: {events}")


def test_watch_too_old_resource_version_relists(cluster, core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, configmap(f"old-{i}", {"i": str(i)}))
    # After a restart the watch cache starts at the current revision, so revision 1 is too old:
    # the server must answer the watch with an in-stream 410 and the client must list again.
    cluster.restart()
    core.create_namespaced_config_map(ns, configmap("target", {"k": "v"}))
    events = relist_and_watch(core, ns, "1", until="target")
    assert ("LISTED", "target") in events, events
    assert ("LISTED", "old-0") in events, events


def test_watch_after_relist_gets_new_events(core, ns):
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("late", {"k": "v"}))
    events = relist_and_watch(core, ns, rv, until="late")
    assert ("ADDED", "late") in events


def test_restart_keeps_every_object(cluster, core, ns):
    names = [f"keep-{i:02d}" for i in range(50)]
    for name in names:
        core.create_namespaced_config_map(ns, configmap(name, {"name": name}, labels={"set": "restart"}))
    before = {cm.metadata.name: (cm.metadata.resource_version, cm.metadata.uid, cm.data)
              for cm in core.list_namespaced_config_map(ns, label_selector="set=restart").items}
    assert sorted(before) == names

    exit_code = cluster.restart()
    assert exit_code == 0, f"SIGTERM must shut down cleanly, got exit code {exit_code}"

    # A fresh client: the old one's pooled connections died with the server.
    fresh = client.CoreV1Api(cluster.python_client())
    after = {cm.metadata.name: (cm.metadata.resource_version, cm.metadata.uid, cm.data)
             for cm in fresh.list_namespaced_config_map(ns, label_selector="set=restart").items}
    assert after == before

    # Writes continue with larger resourceVersions.
    newer = fresh.create_namespaced_config_map(ns, configmap("after-restart", {"k": "v"}))
    assert int(newer.metadata.resource_version) > max(int(v[0]) for v in before.values())
