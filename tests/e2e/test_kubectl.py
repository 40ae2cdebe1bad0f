"""kubectl against the real server: every test runs once per available kubectl version.

Expectations follow upstream kubectl/kube-apiserver behaviour, so a correct server passes them
unchanged.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import textwrap
import time

import yaml

from conftest import eventually, unique

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: busybox:e2e
        command: [sleep, "3600"]
"""


def manifest(mode: str) -> str:
    secret = base64.b64encode(b"s3cret").decode()
    return textwrap.dedent(
        f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: app-config
          labels: {{app: demo}}
        data:
          mode: {mode}
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: app-secret
        type: Opaque
        data:
          password: {secret}
        ---
        """
    ) + DEPLOYMENT.format(name="web")


def rv(k, kind: str, name: str) -> str:
    return k.out("get", kind, name, "-o", "jsonpath={.metadata.resourceVersion}")


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_apply_create_unchanged_configured(k):
    out = k.out("apply", "-f", "-", input=manifest("one"))
    assert "configmap/app-config created" in out
    assert "secret/app-secret created" in out
    assert "deployment.apps/web created" in out

    before = {kind: rv(k, kind, name) for kind, name in
              [("configmap", "app-config"), ("secret", "app-secret"), ("deployment", "web")]}
    out = k.out("apply", "-f", "-", input=manifest("one"))
    assert "configmap/app-config unchanged" in out
    assert "secret/app-secret unchanged" in out
    assert "deployment.apps/web unchanged" in out
    after = {kind: rv(k, kind, name) for kind, name in
             [("configmap", "app-config"), ("secret", "app-secret"), ("deployment", "web")]}
    assert before == after, "an unchanged apply must not write"

    out = k.out("apply", "-f", "-", input=manifest("two"))
    assert "configmap/app-config configured" in out
    assert "secret/app-secret unchanged" in out
    assert k.out("get", "configmap", "app-config", "-o", "jsonpath={.data.mode}") == "two"
    assert rv(k, "configmap", "app-config") != before["configmap"]
    cm = k.json("get", "configmap", "app-config")
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]


def test_get_output_formats(k):
    k("create", "configmap", "fmt", "--from-literal=a=1", "--from-literal=b=2")
    k("apply", "-f", "-", input=DEPLOYMENT.format(name="wide"))

    table = lines_of(k.out("get", "configmap", "fmt"))
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["fmt", "2"]

    wide = lines_of(k.out("get", "deployment", "wide", "-o", "wide"))
    header = wide[0].split()
    for column in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]:
        assert column in header, wide[0]
    assert wide[1].split()[0] == "wide"
    assert "busybox:e2e" in wide[1] and "app=wide" in wide[1]

    as_yaml = yaml.safe_load(k.out("get", "configmap", "fmt", "-o", "yaml"))
    assert as_yaml["kind"] == "ConfigMap" and as_yaml["apiVersion"] == "v1"
    assert as_yaml["data"] == {"a": "1", "b": "2"}
    assert as_yaml["metadata"]["namespace"] == k.namespace

    as_json = json.loads(k.out("get", "configmap", "fmt", "-o", "json"))
    assert as_json["metadata"]["name"] == "fmt"
    assert as_json["metadata"]["uid"] and as_json["metadata"]["creationTimestamp"]

    as_list = json.loads(k.out("get", "configmaps", "-o", "json"))
    assert as_list["kind"] == "List"
    assert "fmt" in [i["metadata"]["name"] for i in as_list["items"]]

    assert k.out("get", "configmap", "fmt", "-o", "name").strip() == "configmap/fmt"
    assert k.out("get", "configmap", "fmt", "-o", "jsonpath={.data.a}") == "1"
    assert k.out("get", "configmaps", "-o", "jsonpath={.items[?(@.metadata.name==\"fmt\")].data.b}") == "2"

    cols = lines_of(k.out("get", "configmap", "fmt", "-o", "custom-columns=NAME:.metadata.name,A:.data.a"))
    assert cols[0].split() == ["NAME", "A"]
    assert cols[1].split() == ["fmt", "1"]


def test_get_watch_sees_new_object(k):
    watch = k.bg("get", "configmaps", "--watch")
    try:
        name = unique("watched")
        k("create", "configmap", name, "--from-literal=k=v")
        line = watch.wait_for(lambda line: line.split()[:1] == [name], timeout=60)
        assert line.split()[1] == "1"  # DATA column
    finally:
        watch.stop()


def test_label_and_field_selectors_and_all_namespaces(k):
    k("create", "configmap", "sel-a", "--from-literal=k=v")
    k("create", "configmap", "sel-b", "--from-literal=k=v")
    k("label", "configmap", "sel-a", "tier=front")
    k("label", "configmap", "sel-b", "tier=back")

    assert lines_of(k.out("get", "configmaps", "-l", "tier=front", "-o", "name")) == ["configmap/sel-a"]
    assert lines_of(k.out("get", "configmaps", "-l", "tier in (front,back)", "-o", "name")) == [
        "configmap/sel-a",
        "configmap/sel-b",
    ]
    assert lines_of(k.out("get", "configmaps", "-l", "tier!=front,tier", "-o", "name")) == ["configmap/sel-b"]
    assert lines_of(k.out("get", "configmaps", "--field-selector", "metadata.name=sel-b", "-o", "name")) == [
        "configmap/sel-b"
    ]

    everywhere = lines_of(k.cluster.kubectl("get", "configmaps", "-A", version=k.version).stdout)
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    rows = [line.split()[:2] for line in everywhere[1:]]
    assert [k.namespace, "sel-a"] in rows and [k.namespace, "sel-b"] in rows

    namespaces = lines_of(k.cluster.kubectl("get", "namespaces", "-o", "name", version=k.version).stdout)
    for ns in ["default", "kube-system", k.namespace]:
        assert f"namespace/{ns}" in namespaces


def test_get_all_lists_workloads(k):
    k("apply", "-f", "-", input=DEPLOYMENT.format(name="everything"))
    out = k.out("get", "all")
    assert "deployment.apps/everything" in out


def test_describe(k):
    k("create", "configmap", "desc", "--from-literal=greeting=hello")
    out = k.out("describe", "configmap", "desc")
    assert out.splitlines()[0].split() == ["Name:", "desc"]
    assert ["Namespace:", k.namespace] in [line.split() for line in out.splitlines()]
    assert "greeting" in out and "hello" in out
    assert "Events:" in out


def test_edit_with_editor_script(k, tmp_path):
    k("create", "configmap", "editme", "--from-literal=color=red")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/^  color: red$/  color: blue/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    env = {"KUBE_EDITOR": str(editor), "EDITOR": str(editor)}
    out = k.out("edit", "configmap", "editme", env=env)
    assert "configmap/editme edited" in out
    assert k.out("get", "configmap", "editme", "-o", "jsonpath={.data.color}") == "blue"


def test_patch_json_and_merge(k):
    k("create", "configmap", "patchme", "--from-literal=a=1")
    out = k.out("patch", "configmap", "patchme", "--type", "json",
                "-p", '[{"op":"replace","path":"/data/a","value":"2"},{"op":"add","path":"/data/b","value":"3"}]')
    assert "configmap/patchme patched" in out
    assert k.json("get", "configmap", "patchme")["data"] == {"a": "2", "b": "3"}

    out = k.out("patch", "configmap", "patchme", "--type", "merge", "-p", '{"data":{"a":null,"c":"4"}}')
    assert "configmap/patchme patched" in out
    assert k.json("get", "configmap", "patchme")["data"] == {"b": "3", "c": "4"}

    bad = k("patch", "configmap", "patchme", "--type", "json",
            "-p", '[{"op":"test","path":"/data/b","value":"nope"}]', check=False)
    assert bad.returncode != 0


def test_label_and_annotate(k):
    k("create", "configmap", "meta", "--from-literal=a=1")
    assert "configmap/meta labeled" in k.out("label", "configmap", "meta", "team=infra")
    assert "configmap/meta annotated" in k.out("annotate", "configmap", "meta", "note=hello world")
    meta = k.json("get", "configmap", "meta")["metadata"]
    assert meta["labels"]["team"] == "infra"
    assert meta["annotations"]["note"] == "hello world"

    overwrite = k("label", "configmap", "meta", "team=other", check=False)
    assert overwrite.returncode != 0, "relabeling without --overwrite must fail"
    k("label", "configmap", "meta", "team=other", "--overwrite")
    k("label", "configmap", "meta", "team-")
    assert "team" not in (k.json("get", "configmap", "meta")["metadata"].get("labels") or {})


def test_scale_deployment(k):
    k("apply", "-f", "-", input=DEPLOYMENT.format(name="scaled"))
    out = k.out("scale", "deployment", "scaled", "--replicas=3")
    assert "deployment.apps/scaled scaled" in out
    assert k.out("get", "deployment", "scaled", "-o", "jsonpath={.spec.replicas}") == "3"


def test_delete_waits_until_gone(k):
    k("create", "configmap", "doomed", "--from-literal=a=1")
    out = k.out("delete", "configmap", "doomed")
    assert 'configmap "doomed" deleted' in out
    r = k("get", "configmap", "doomed", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_create_configmap_from_literal_and_file(k, tmp_path):
    f = tmp_path / "settings.conf"
    f.write_text("x = 1\ny = 2\n")
    out = k.out("create", "configmap", "fromfile", "--from-literal=plain=value", f"--from-file={f}")
    assert "configmap/fromfile created" in out
    data = k.json("get", "configmap", "fromfile")["data"]
    assert data == {"plain": "value", "settings.conf": "x = 1\ny = 2\n"}


def test_create_secret_generic(k):
    out = k.out("create", "secret", "generic", "creds", "--from-literal=username=admin",
                "--from-literal=password=s3cr3t!")
    assert "secret/creds created" in out
    secret = k.json("get", "secret", "creds")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["username"]) == b"admin"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cr3t!"


def test_api_resources_and_versions(k):
    rows = [line.split() for line in lines_of(k.cluster.kubectl("api-resources", version=k.version).stdout)]
    by_name: dict[str, list[str]] = {}
    for row in rows[1:]:
        # The core group comes first; `pods` is also metrics.k8s.io's PodMetrics, as upstream.
        by_name.setdefault(row[0], row)
    assert "po" in by_name["pods"]
    assert any(row[0] == "pods" and "metrics.k8s.io/v1beta1" in row for row in rows[1:])
    assert "deploy" in by_name["deployments"]
    assert any(col.startswith("apps") for col in by_name["deployments"])
    assert "cm" in by_name["configmaps"] and "ns" in by_name["namespaces"]

    versions = lines_of(k.cluster.kubectl("api-versions", version=k.version).stdout)
    for gv in ["v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"]:
        assert gv in versions


def test_raw_readyz(k):
    assert k.cluster.kubectl("get", "--raw", "/readyz", version=k.version).stdout.strip() == "ok"
    assert k.cluster.kubectl("get", "--raw", "/livez", version=k.version).stdout.strip() == "ok"


def test_wait_for_delete_through_finalizer(k):
    k("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: held
          finalizers: [e2e.skiff.dev/hold]
        data: {a: "1"}
        """))
    k("delete", "configmap", "held", "--wait=false")
    held = k.json("get", "configmap", "held")
    assert held["metadata"].get("deletionTimestamp"), "a finalizer keeps the object, marked for deletion"

    waiter = k.bg("wait", "--for=delete", "configmap/held", "--timeout=90s")
    try:
        # kubectl 1.20's wait fails with "no matching resources" if the object is already gone when
        # it first looks; let it find the object before releasing the finalizer.
        time.sleep(2)
        k("patch", "configmap", "held", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
        assert waiter.proc.wait(timeout=100) == 0
    finally:
        waiter.stop()
    r = k("get", "configmap", "held", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_invalid_object_is_rejected(k):
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata: {a: b}\n"
    r = k("create", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert "is invalid" in r.stderr, r.stderr
    assert "metadata.name" in r.stderr, r.stderr


def test_unknown_field_with_strict_validation(k):
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogusField: 1\ndata: {a: b}\n"
    if k.version == "1.20":
        # kubectl 1.20 predates --validate=strict: it validates against /openapi/v2 itself.
        r = k("create", "-f", "-", "--validate=true", input=doc, check=False)
        assert r.returncode != 0
        assert ('error validating data: ValidationError(ConfigMap): unknown field "bogusField" in '
                'io.k8s.api.core.v1.ConfigMap') in r.stderr, r.stderr
    else:
        r = k("create", "-f", "-", "--validate=strict", input=doc, check=False)
        assert r.returncode != 0
        assert "unknown field" in r.stderr, r.stderr
    assert k("get", "configmap", "strict", check=False).returncode != 0


def test_client_side_validation_rejects_wrong_types(k):
    if k.version != "1.20":
        return  # newer kubectl leaves validation to the server (covered above)
    name = unique("badtype")
    doc = DEPLOYMENT.format(name=name).replace("replicas: 1", "replicas: three")
    r = k("apply", "-f", "-", input=doc, check=False)
    assert r.returncode != 0
    assert "ValidationError(Deployment.spec.replicas): invalid type for " in r.stderr, r.stderr
    assert k("get", "deployment", name, check=False).returncode != 0


def test_explain_builtin_field(k):
    out = k.out("explain", "deployment.spec.replicas")
    assert "KIND:" in out and "Deployment" in out, out
    assert re.search(r"FIELD:\s+replicas\s+<integer>", out), out
    assert "desired pods" in out, out
    out = k.out("explain", "configmap")
    assert "data\t<map[string]string>" in out or re.search(r"data\s+<map\[string\]string>", out), out


def test_namespace_lifecycle(cluster, kubectl_version):
    def kc(*args, **kw):
        return cluster.kubectl(*args, version=kubectl_version, **kw)

    ns = unique("lifecycle")
    assert f"namespace/{ns} created" in kc("create", "namespace", ns).stdout
    kc("create", "configmap", "inside", "-n", ns, "--from-literal=a=1")
    assert kc("get", "namespace", ns, "-o", "jsonpath={.status.phase}").stdout == "Active"

    kc("delete", "namespace", ns, "--wait=false")
    eventually(lambda: "NotFound" in kc("get", "namespace", ns, check=False).stderr,
               timeout=90, what=f"namespace {ns} gone")
    r = kc("get", "configmap", "inside", "-n", ns, check=False)
    assert r.returncode != 0

    missing = unique("missing")
    r = kc("create", "configmap", "orphan", "-n", missing, "--from-literal=a=1", check=False)
    assert r.returncode != 0
    assert ("NotFound" in r.stderr or "not found" in r.stderr) and missing in r.stderr, r.stderr


def test_namespace_stuck_on_a_finalizer_reports_why(cluster):
    def kc(*args, **kw):
        return cluster.kubectl(*args, version="1.32", **kw)

    ns = unique("stuck")
    kc("create", "namespace", ns)
    kc("apply", "-n", ns, "-f", "-", input=f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: held, finalizers: [example.com/hold]}}
data: {{a: "1"}}
""")
    kc("delete", "namespace", ns, "--wait=false")

    def conditions():
        got = json.loads(kc("get", "namespace", ns, "-o", "json").stdout)
        conds = {c["type"]: c for c in got.get("status", {}).get("conditions", [])}
        return conds.get("NamespaceFinalizersRemaining", {}).get("status") == "True" and conds
    conds = eventually(conditions, timeout=60, what="deletion conditions")
    assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert conds["NamespaceContentRemaining"]["message"] == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert conds["NamespaceFinalizersRemaining"]["message"] == \
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    assert conds["NamespaceDeletionContentFailure"]["reason"] == "ContentDeleted"
    described = kc("describe", "namespace", ns).stdout
    assert "SomeFinalizersRemain" in described, described

    kc("patch", "configmap", "held", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    eventually(lambda: "NotFound" in kc("get", "namespace", ns, check=False).stderr,
               timeout=60, what=f"namespace {ns} gone once the finalizer is removed")


def test_kubeconfig_file_is_private(cluster):
    mode = stat.S_IMODE(os.stat(cluster.kubeconfig).st_mode)
    assert mode == 0o600
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{cluster.node_ip}:{cluster.port}"
