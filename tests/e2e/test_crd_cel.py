"""CEL validation rules (`x-kubernetes-validations`) on CustomResourceDefinitions, end to end:
kubectl (each available version) applies a CRD with rules, an invalid object and a change of an
immutable field are rejected with upstream's messages, a CRD whose rule does not compile is
rejected naming the rule, and the Python client sees the 422 causes.

Each test uses its own API group (CRDs are cluster-scoped).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from conftest import eventually

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.replicas"
              messageExpression: "'minReplicas ' + string(self.minReplicas) + ' exceeds replicas ' + string(self.replicas)"
              fieldPath: .minReplicas
            - rule: "!has(self.memory) || quantity(self.memory).isLessThan(quantity('1Gi'))"
              message: memory must be below 1Gi
              reason: FieldValueForbidden
            properties:
              replicas:
                type: integer
                x-kubernetes-validations:
                - {{rule: "self <= 10", message: "must be at most 10"}}
              minReplicas: {{type: integer, default: 0}}
              memory: {{type: string}}
              mode:
                type: string
                x-kubernetes-validations:
                - {{rule: "self == oldSelf", message: "mode is immutable"}}
"""

GADGET = """\
apiVersion: {group}/v1
kind: Gadget
metadata:
  name: {name}
spec:
  replicas: {replicas}
  mode: {mode}
"""


def group_for() -> str:
    return f"c{uuid.uuid4().hex[:8]}.e2e.example.com"


def apply_crd(k, group: str) -> None:
    k("apply", "-f", "-", input=CRD.format(group=group))
    k("wait", "--for", "condition=established", f"crd/gadgets.{group}", "--timeout=30s")


def test_cel_rules_reject_invalid_objects_and_immutable_changes(k):
    group = group_for()
    apply_crd(k, group)
    bad = k("apply", "-f", "-", input=GADGET.format(group=group, name="g1", replicas=11, mode="fast"), check=False)
    assert bad.returncode != 0
    assert 'The Gadget "g1" is invalid' in bad.stderr, bad.stderr
    assert 'spec.replicas: Invalid value: "integer": must be at most 10' in bad.stderr, bad.stderr

    k("apply", "-f", "-", input=GADGET.format(group=group, name="g1", replicas=3, mode="fast"))
    # The transition rule: `mode` may not change once set.
    changed = k("apply", "-f", "-", input=GADGET.format(group=group, name="g1", replicas=3, mode="slow"), check=False)
    assert changed.returncode != 0
    assert 'spec.mode: Invalid value: "string": mode is immutable' in changed.stderr, changed.stderr
    # Other fields still change; messageExpression and fieldPath shape the error.
    k("patch", f"gadgets.{group}", "g1", "--type", "merge", "-p", '{"spec":{"replicas":5}}')
    assert k.json("get", f"gadgets.{group}", "g1")["spec"]["replicas"] == 5
    low = k("patch", f"gadgets.{group}", "g1", "--type", "merge", "-p", '{"spec":{"minReplicas":6}}', check=False)
    assert low.returncode != 0
    assert 'spec.minReplicas: Invalid value: "object": minReplicas 6 exceeds replicas 5' in low.stderr, low.stderr
    big = k("patch", f"gadgets.{group}", "g1", "--type", "merge", "-p", '{"spec":{"memory":"2Gi"}}', check=False)
    assert big.returncode != 0
    assert "spec: Forbidden: memory must be below 1Gi" in big.stderr, big.stderr
    k.cluster.kubectl("delete", "crd", f"gadgets.{group}", "--timeout=60s", version=k.version)


def test_crd_with_a_broken_rule_is_rejected(k):
    group = group_for()
    broken = CRD.format(group=group).replace('"self <= 10"', '"self <="')
    out = k("apply", "-f", "-", input=broken, check=False)
    assert out.returncode != 0
    assert f'"gadgets.{group}" is invalid' in out.stderr, out.stderr
    field = "spec.validation.openAPIV3Schema.properties[spec].properties[replicas].x-kubernetes-validations[0].rule"
    assert f'{field}: Invalid value: apiextensions.ValidationRule{{Rule:"self <=", Message:"must be at most 10"' in out.stderr, out.stderr
    assert "compilation failed: ERROR: <input>:1:8: Syntax error" in out.stderr, out.stderr
    gone = k.cluster.kubectl("get", "crd", f"gadgets.{group}", version=k.version, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_python_client_sees_the_rule_causes(api_client, cluster):
    from kubernetes import client, utils
    from kubernetes.client.rest import ApiException
    import yaml

    group = group_for()
    utils.create_from_dict(api_client, yaml.safe_load(CRD.format(group=group)))
    ext = client.ApiextensionsV1Api(api_client)

    def established():
        crd = ext.read_custom_resource_definition(f"gadgets.{group}")
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    eventually(established, what="CRD established")
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "p1"},
        "spec": {"replicas": 12, "minReplicas": 13, "memory": "4Gi"},
    }
    # Registration of the new resource's routes can trail Established by a moment.
    deadline = time.time() + 30
    while True:
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(group, "v1", "default", "gadgets", body)
        if err.value.status != 404 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    causes = {(c["reason"], c["field"], c["message"]) for c in status["details"]["causes"]}
    assert causes == {
        ("FieldValueInvalid", "spec.replicas", 'Invalid value: "integer": must be at most 10'),
        ("FieldValueInvalid", "spec.minReplicas", 'Invalid value: "object": minReplicas 13 exceeds replicas 12'),
        ("FieldValueForbidden", "spec", "Forbidden: memory must be below 1Gi"),
    }, causes
    ext.delete_custom_resource_definition(f"gadgets.{group}")
