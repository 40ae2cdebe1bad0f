"""The OpenAPI documents as clients use them: custom resources in /openapi/v2 (kubectl 1.20's
client-side validation and `explain`, kubectl 1.32's `explain --output=plaintext-openapiv2`), the
v2 ETag changing with the CRDs (Python client), and upstream's list/patch extensions on built-in
schemas in /openapi/v3.

Each CRD gets its own API group (CRDs are cluster-scoped and the session's server is shared).
"""

from __future__ import annotations

import json
import uuid

from kubernetes import client

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
            description: What the gadget should be.
            properties:
              image: {{type: string, description: The image the gadget runs.}}
              replicas: {{type: integer, minimum: 0}}
              note: {{type: string, nullable: true}}
"""

GADGET = """\
apiVersion: {group}/v1
kind: Gadget
metadata:
  name: {name}
spec:
  image: nginx
  replicas: {replicas}
"""


def group_for() -> str:
    return f"g{uuid.uuid4().hex[:8]}.e2e.example.com"


def definition_name(group: str, version: str, kind: str) -> str:
    """Upstream's definition name of a custom kind: the group's DNS labels reversed."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def create_crd(cluster, group: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=CRD.format(group=group))
    cluster.kubectl("wait", "--for", "condition=established", f"crd/gadgets.{group}", "--timeout=30s")


def test_kubectl_120_validates_custom_resources_client_side(cluster, namespace):
    group = group_for()
    create_crd(cluster, group)

    def kubectl120(*args, **kw):
        return cluster.kubectl("-n", namespace, *args, version="1.20", check=False, **kw)

    bad = GADGET.format(group=group, name="bad", replicas='"three"')
    r = kubectl120("create", "-f", "-", input=bad)
    assert r.returncode != 0
    expected = (
        "ValidationError(Gadget.spec.replicas): invalid type for "
        f'{definition_name(group, "v1", "Gadget")}.spec.replicas: got "string", expected "integer"'
    )
    assert expected in r.stderr, r.stderr
    # Without client-side validation the object reaches the server, which rejects it itself.
    r = kubectl120("create", "--validate=false", "-f", "-", input=bad)
    assert r.returncode != 0
    assert "spec.replicas in body must be of type integer" in r.stderr, r.stderr
    assert kubectl120("get", f"gadgets.{group}", "bad").returncode != 0

    # A well-typed object passes (the nullable field may be null), and so do unknown fields
    # nowhere: the published schema is the CRD's own.
    good = GADGET.format(group=group, name="good", replicas=2) + "  note: null\n"
    r = kubectl120("create", "-f", "-", input=good)
    assert r.returncode == 0, r.stderr
    unknown = GADGET.format(group=group, name="unknown", replicas=1) + "  colour: red\n"
    r = kubectl120("create", "-f", "-", input=unknown)
    assert r.returncode != 0
    assert 'unknown field "colour"' in r.stderr, r.stderr


def test_explain_custom_resource_field_from_openapi_v2(k):
    group = group_for()
    create_crd(k.cluster, group)
    if k.version == "1.20":
        # kubectl 1.20 takes the group from --api-version (`resource.group.field` came later).
        args = ["explain", "gadgets.spec", f"--api-version={group}/v1"]
    else:
        args = ["explain", f"gadgets.{group}.spec", "--output=plaintext-openapiv2"]
    out = eventually(lambda: k.out(*args), timeout=30, what="explain of the custom resource")
    assert "What the gadget should be." in out, out
    assert "The image the gadget runs." in out, out
    assert "replicas" in out and "<integer>" in out, out


def test_openapi_v3_apps_carries_upstream_list_and_patch_extensions(cluster):
    index = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3").stdout)
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = json.loads(cluster.kubectl("get", "--raw", url).stdout)
    schemas = doc["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    finalizers = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"]
    assert finalizers["x-kubernetes-list-type"] == "set"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"] == "atomic"


def openapi_v2(api_client, etag: str | None = None) -> tuple[int, str | None, bytes]:
    """GET /openapi/v2 (JSON) through the Python client's transport: status, ETag and body."""
    headers = {"Accept": "application/json"}
    if etag:
        headers["If-None-Match"] = etag
    request = api_client.param_serialize("GET", "/openapi/v2", header_params=headers, auth_settings=["BearerToken"])
    resp = api_client.call_api(*request)
    resp.read()
    return resp.status, resp.getheader("ETag"), resp.data


def test_openapi_v2_etag_changes_with_custom_resource_definitions(api_client):
    status, etag, body = openapi_v2(api_client)
    assert status == 200 and etag
    assert openapi_v2(api_client, etag)[0] == 304

    group = group_for()
    name = definition_name(group, "v1", "Gadget")
    ext = client.ApiextensionsV1Api(api_client)
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"gadgets.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="gadgets", kind="Gadget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=client.V1JSONSchemaProps(
                    type="object",
                    properties={"spec": client.V1JSONSchemaProps(type="object", properties={
                        "size": client.V1JSONSchemaProps(type="integer"),
                    })},
                )),
            )],
        ),
    )
    ext.create_custom_resource_definition(crd)

    def changed():
        s, new_etag, new_body = openapi_v2(api_client, etag)
        return (s, new_etag, new_body) if s == 200 and new_etag != etag else None

    _, new_etag, new_body = eventually(changed, timeout=10, what="a new /openapi/v2 ETag")
    doc = json.loads(new_body)
    definition = doc["definitions"][name]
    assert definition["x-kubernetes-group-version-kind"] == [{"group": group, "version": "v1", "kind": "Gadget"}]
    assert definition["properties"]["spec"]["properties"]["size"]["type"] == "integer"
    assert f"{name}List" in doc["definitions"]
    item = doc["paths"][f"/apis/{group}/v1/namespaces/{{namespace}}/gadgets/{{name}}"]
    assert item["patch"]["x-kubernetes-action"] == "patch"
    assert "application/strategic-merge-patch+json" not in item["patch"]["consumes"]

    ext.delete_custom_resource_definition(f"gadgets.{group}")

    def gone():
        s, newest, newest_body = openapi_v2(api_client, new_etag)
        return s == 200 and newest != new_etag and name not in json.loads(newest_body)["definitions"]

    eventually(gone, timeout=30, what="the definition gone from /openapi/v2")
