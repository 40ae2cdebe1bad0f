"""CustomResourceDefinitions through kubectl and kopf: apply a CRD, wait for Established, list its
objects by short name with the printer columns, `explain` (kubectl 1.32), merge patches, and
`kubectl delete crd` removing the objects; a tiny kopf operator with a finalizer and status.

Each kubectl test runs once per available kubectl version, each with its own API group (the CRD
is cluster-scoped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from conftest import eventually, have_kubectl

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [{short}]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    additionalPrinterColumns:
    - {{name: Image, type: string, jsonPath: .spec.image}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the widget should be.
            required: [image]
            properties:
              image: {{type: string, description: The image to run.}}
              replicas: {{type: integer, minimum: 0, default: 1}}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""

WIDGET = """\
apiVersion: {group}/v1
kind: Widget
metadata:
  name: {name}
spec:
  image: {image}
"""


def group_for() -> str:
    return f"g{uuid.uuid4().hex[:8]}.e2e.example.com"


def apply_crd(k, group: str, short: str) -> None:
    k("apply", "-f", "-", input=CRD.format(group=group, short=short))
    k("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=30s")


def test_crd_apply_get_patch_explain_and_delete(k):
    group = group_for()
    short = "wd" + uuid.uuid4().hex[:4]
    apply_crd(k, group, short)
    crd = json.loads(k.cluster.kubectl("get", "crd", f"widgets.{group}", "-o", "json", version=k.version).stdout)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]

    out = k.out("apply", "-f", "-", input=WIDGET.format(group=group, name="w1", image="nginx"))
    assert f"widget.{group}/w1 created" in out
    table = k.out("get", short)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "IMAGE", "REPLICAS", "AGE"]
    assert row.split()[:3] == ["w1", "nginx", "1"]

    k("patch", f"widgets.{group}", "w1", "--type", "merge", "-p", '{"spec":{"replicas":3}}')
    obj = k.json("get", f"widgets.{group}", "w1")
    assert obj["spec"]["replicas"] == 3
    # A re-apply of the manifest keeps the patched field (client-side apply on a CR merges).
    k("apply", "-f", "-", input=WIDGET.format(group=group, name="w1", image="redis"))
    obj = k.json("get", f"widgets.{group}", "w1")
    assert (obj["spec"]["image"], obj["spec"]["replicas"]) == ("redis", 3)

    bad = k("patch", f"widgets.{group}", "w1", "--type", "merge", "-p", '{"spec":{"replicas":"x"}}', check=False)
    assert bad.returncode != 0
    assert "spec.replicas in body must be of type integer" in bad.stderr

    if k.version == "1.32":
        explain = k.out("explain", f"widgets.{group}.spec")
        assert "image" in explain and "The image to run." in explain

    k.cluster.kubectl("delete", "crd", f"widgets.{group}", "--timeout=60s", version=k.version)
    gone = k.cluster.kubectl("get", "crd", f"widgets.{group}", version=k.version, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    # The objects went with it: the store holds nothing under the resource any more.
    again = k("get", f"widgets.{group}", check=False)
    assert again.returncode != 0


OPERATOR = """\
import kopf

GROUP = {group!r}

@kopf.on.startup()
def configure(settings, **_):
    settings.persistence.finalizer = "e2e.example.com/kopf-finalizer"
    settings.watching.server_timeout = 30

@kopf.on.create(GROUP, "v1", "widgets")
def created(spec, name, **_):
    return {{"seen": spec.get("image", "")}}

@kopf.on.delete(GROUP, "v1", "widgets")
def deleted(name, **_):
    pass
"""


def test_kopf_operator_handles_create_with_finalizer_and_status(cluster, namespace, tmp_path):
    pytest.importorskip("kopf")
    version = "1.32" if have_kubectl("1.32") else "1.20"
    group = group_for()
    cluster.kubectl("apply", "-f", "-", input=CRD.format(group=group, short="kw" + uuid.uuid4().hex[:4]), version=version)
    cluster.kubectl("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=30s", version=version)
    script = tmp_path / "operator.py"
    script.write_text(textwrap.dedent(OPERATOR.format(group=group)))
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace, str(script)]
    op = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        cluster.kubectl(
            "-n", namespace, "apply", "-f", "-", input=WIDGET.format(group=group, name="k1", image="nginx"), version=version
        )

        def handled():
            r = cluster.kubectl("-n", namespace, "get", f"widgets.{group}", "k1", "-o", "json", version=version)
            obj = json.loads(r.stdout)
            fins = obj["metadata"].get("finalizers", [])
            seen = obj.get("status", {}).get("created", {}).get("seen")
            return "e2e.example.com/kopf-finalizer" in fins and seen == "nginx"

        eventually(handled, timeout=60, what="kopf added its finalizer and status")
        cluster.kubectl("-n", namespace, "delete", f"widgets.{group}", "k1", "--timeout=60s", version=version)
        gone = cluster.kubectl("-n", namespace, "get", f"widgets.{group}", "k1", version=version, check=False)
        assert gone.returncode != 0
    finally:
        op.terminate()
        try:
            out, _ = op.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            op.kill()
            out, _ = op.communicate()
        if sys.exc_info()[0] is not None:
            print(out[-4000:])
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", version=version, check=False)
