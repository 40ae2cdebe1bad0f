"""Structural-schema validation of custom resources, their `metadata`, and `selectableFields`.

A CRD whose schema uses `oneOf`, `x-kubernetes-list-type: set|map`, an embedded resource and a
root `metadata: {type: object}` (as controller-gen writes it): kubectl (both versions) sees
upstream's messages for a `oneOf` violation and for duplicate set items and map keys; unknown
`metadata` fields are dropped (and rejected under `fieldValidation=Strict`) through the Python
client; `kubectl get --field-selector` filters on a selectable field and refuses other labels;
CRDs breaking the schema rules are refused with upstream's messages.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import have_kubectl

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
    selectableFields:
    - jsonPath: .spec.color
    - jsonPath: .spec.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          metadata: {{type: object}}
          spec:
            type: object
            oneOf:
            - required: [a]
            - required: [b]
            properties:
              a: {{type: string}}
              b: {{type: string}}
              color: {{type: string, enum: [red, green, blue]}}
              size: {{type: integer}}
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {{type: string}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {{type: string}}
                    port: {{type: integer}}
              template:
                type: object
                x-kubernetes-embedded-resource: true
                x-kubernetes-preserve-unknown-fields: true
"""

GADGET = """\
apiVersion: {group}/v1
kind: Gadget
metadata:
  name: {name}
spec:
{spec}
"""


def group_for() -> str:
    return f"s{uuid.uuid4().hex[:8]}.e2e.example.com"


def kubectl_version() -> str:
    return "1.32" if have_kubectl("1.32") else "1.20"


def install(cluster, group: str, version: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=CRD.format(group=group), version=version)
    cluster.kubectl("wait", "--for", "condition=established", f"crd/gadgets.{group}", "--timeout=30s", version=version)


def gadget(group: str, name: str, spec: str) -> str:
    body = "\n".join("  " + line for line in spec.strip().splitlines())
    return GADGET.format(group=group, name=name, spec=body)


@pytest.fixture
def group(cluster):
    g = group_for()
    install(cluster, g, kubectl_version())
    yield g
    cluster.kubectl("delete", "crd", f"gadgets.{g}", "--wait=false", version=kubectl_version(), check=False)


def test_schema_violations_are_rejected_with_upstreams_messages(k, group):
    def create(name: str, spec: str):
        return k("create", "-f", "-", input=gadget(group, name, spec), check=False)

    ok = create("fine", "a: x\ntags: [p, q]\nports: [{name: http, port: 80}, {name: https, port: 443}]")
    assert ok.returncode == 0, ok.stderr

    neither = create("neither", "color: red")
    assert neither.returncode != 0
    assert '"spec" must validate one and only one schema (oneOf). Found none valid' in neither.stderr
    both = create("both", "a: x\nb: y")
    assert both.returncode != 0
    assert '"spec" must validate one and only one schema (oneOf). Found 2 valid alternatives' in both.stderr

    dup_set = create("dupset", "a: x\ntags: [p, q, p]")
    assert dup_set.returncode != 0
    assert 'spec.tags[2]: Duplicate value: "p"' in dup_set.stderr

    dup_map = create("dupmap", "a: x\nports: [{name: http, port: 80}, {name: http, port: 81}]")
    assert dup_map.returncode != 0
    assert 'spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}' in dup_map.stderr

    bad_embedded = create("embedded", "a: x\ntemplate: {kind: Pod, metadata: {name: a/b}}")
    assert bad_embedded.returncode != 0
    assert "spec.template.apiVersion: Required value" in bad_embedded.stderr
    assert "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'" in bad_embedded.stderr

    assert k("get", f"gadgets.{group}", "-o", "name").stdout.split() == [f"gadget.{group}/fine"]


def test_field_selector_filters_on_selectable_fields(k, group):
    for name, color, size in [("g1", "red", 1), ("g2", "blue", 2), ("g3", "red", 3)]:
        k("create", "-f", "-", input=gadget(group, name, f"a: x\ncolor: {color}\nsize: {size}"))

    def names(selector: str) -> list[str]:
        out = k.out("get", f"gadgets.{group}", "--field-selector", selector, "-o", "name")
        return sorted(line.split("/")[-1] for line in out.split())

    assert names("spec.color=red") == ["g1", "g3"]
    assert names("spec.color!=red") == ["g2"]
    assert names("spec.color=red,spec.size=3") == ["g3"]
    assert names("metadata.name=g2") == ["g2"]
    refused = k("get", f"gadgets.{group}", "--field-selector", "spec.a=x", check=False)
    assert refused.returncode != 0
    assert "field label not supported: spec.a" in refused.stderr


def test_unknown_metadata_fields_are_pruned(cluster, namespace, group, api_client):
    api = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "m1", "labels": {"app": "x"}, "bogus": "dropped"},
        "spec": {"b": "y", "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}}},
    }
    created = api.create_namespaced_custom_object(group, "v1", namespace, "gadgets", body)
    assert created["metadata"]["name"] == "m1"
    assert created["metadata"]["labels"] == {"app": "x"}
    assert "bogus" not in created["metadata"]
    assert created["spec"]["template"]["metadata"] == {"name": "p"}
    stored = api.get_namespaced_custom_object(group, "v1", namespace, "gadgets", "m1")
    assert "bogus" not in stored["metadata"] and stored["metadata"]["uid"]

    body["metadata"]["name"] = "m2"
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(group, "v1", namespace, "gadgets", body, field_validation="Strict")
    assert err.value.status == 400
    message = json.loads(err.value.body)["message"]
    assert 'unknown field "metadata.bogus"' in message
    assert 'unknown field "spec.template.metadata.junk"' in message


BAD_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: things, kind: Thing}}
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.missing
    schema:
      openAPIV3Schema:
        type: object
        properties:
          metadata:
            type: object
            properties:
              labels: {{type: object}}
          spec:
            type: object
            properties:
              tags: {{type: array, uniqueItems: true, items: {{type: string}}}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items: {{type: object, properties: {{name: {{type: string}}}}}}
            anyOf:
            - properties:
                extra: {{type: string}}
"""


def test_crds_breaking_schema_rules_are_refused(k):
    group = group_for()
    r = k.cluster.kubectl("apply", "-f", "-", input=BAD_CRD.format(group=group), version=k.version, check=False)
    assert r.returncode != 0
    # One version (or identical schemas): upstream reports the schema as `spec.validation`.
    root = "spec.validation.openAPIV3Schema"
    for message in [
        f"{root}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, "
        "but metadata is implicitly specified",
        f"{root}.properties[spec].anyOf[0].properties[extra].type: Forbidden: must be empty to be structural",
        f"{root}.properties[spec].properties[tags].uniqueItems: Forbidden: uniqueItems cannot be set to true "
        "since the runtime complexity becomes quadratic",
        f"{root}.properties[spec].properties[ports].items.properties[name].default: Required value: this property "
        "is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
        "spec.versions[0].selectableFields[0].jsonPath: Invalid value: \".spec.missing\": is an invalid path: "
        "does not refer to a valid field",
    ]:
        assert message in r.stderr, r.stderr


def test_python_client_sees_the_causes(namespace, group, api_client):
    api = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "dup"},
        "spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}], "tags": ["x", "x"]},
    }
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(group, "v1", namespace, "gadgets", body)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    causes = {(c["field"], c["reason"], c["message"]) for c in status["details"]["causes"]}
    assert causes == {
        ("<nil>", "FieldValueInvalid",
         'Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid'),
        ("spec.a", "FieldValueRequired", "Required value"),
        ("spec.ports[1]", "FieldValueDuplicate", 'Duplicate value: map[string]interface {}{"name":"a"}'),
        ("spec.tags[1]", "FieldValueDuplicate", 'Duplicate value: "x"'),
    }
