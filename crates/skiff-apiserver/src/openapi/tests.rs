//! Tests of the OpenAPI documents against what kubectl reads from them.

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::catalogue::ResourceInfo;

use super::*;
use crate::discovery::builtin_resources;

fn all() -> Vec<&'static ResourceInfo> {
    builtin_resources()
}

fn doc(path: &str) -> Value {
    let cached = OpenApiCache::builtin().v3_document(path).unwrap_or_else(|| panic!("no document {path}"));
    serde_json::from_slice(&cached.body).expect("json")
}

/// kubectl's check (cli-runtime `supportsQueryParamV3`): the first PATCH operation carrying the
/// GVK decides whether the parameter is supported.
fn patch_ops_for<'a>(doc: &'a Value, gvk: &Value) -> Vec<&'a Value> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .filter_map(|item| item.get("patch"))
        .filter(|op| op["x-kubernetes-group-version-kind"] == *gvk)
        .collect()
}

fn param_names(op: &Value) -> Vec<&str> {
    op["parameters"].as_array().expect("parameters").iter().filter_map(|p| p["name"].as_str()).collect()
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if k == "$ref" {
                    if let Some(s) = val.as_str() {
                        out.push(s);
                    }
                } else {
                    refs(val, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn index_lists_served_documents_with_matching_hashes() {
    let cache = OpenApiCache::builtin();
    let index = cache.index();
    let paths = index["paths"].as_object().expect("paths");
    for key in ["api", "apis", "api/v1", "apis/apps", "apis/apps/v1", "apis/autoscaling/v1", "apis/autoscaling/v2"] {
        assert!(paths.contains_key(key), "missing {key}");
    }
    assert!(!paths.contains_key("apis/apps/v1beta1"));
    for (key, entry) in paths {
        let cached = cache.v3_document(key).expect("document");
        let url = entry["serverRelativeURL"].as_str().expect("url");
        assert_eq!(url, format!("/openapi/v3/{key}?hash={}", hash_hex(&cached.body)));
        assert!(cached.hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(cached.hash.len(), 64);
    }
    // The free function renders the same documents.
    let fresh = v3_group_version("apps", "v1", &all()).expect("apps/v1");
    let fresh_hash = hash_hex(&serde_json::to_vec(&fresh).expect("json"));
    assert_eq!(fresh_hash, cache.v3_document("apis/apps/v1").expect("apps").hash);
    assert_eq!(cache.v3_document("/api/v1/"), cache.v3_document("api/v1"));
    assert_eq!(serde_json::from_slice::<Value>(cache.index_body()).expect("index"), *index);
}

#[test]
fn hashes_are_stable_across_renders() {
    let only_apps: Vec<&ResourceInfo> = all().into_iter().filter(|r| r.group == "apps").collect();
    let a = OpenApiCache::new(&only_apps);
    let b = OpenApiCache::new(&only_apps);
    assert_eq!(a.index(), b.index());
    assert_eq!(v3_index(&only_apps), *a.index());
    assert!(a.v3_document("api/v1").is_none());
    assert_eq!(a.v3_paths().collect::<Vec<_>>(), vec!["api", "apis", "apis/apps", "apis/apps/v1"]);
}

#[test]
fn unserved_group_versions_have_no_document() {
    assert!(v3_group_version("apps", "v1beta1", &all()).is_none());
    assert!(v3::v3_group("nope.example.com", &all()).is_none());
}

#[test]
fn patch_on_namespaced_item_is_what_kubectl_needs() {
    let d = doc("api/v1");
    assert_eq!(d["openapi"], "3.0.0");
    let op = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(op["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
    assert_eq!(op["x-kubernetes-action"], "patch");
    let names = param_names(op);
    for p in ["name", "namespace", "fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(names.contains(&p), "missing {p}");
    }
    let field_validation = op["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .find(|p| p["name"] == "fieldValidation")
        .expect("fieldValidation");
    assert_eq!(field_validation["in"], "query");
    let content = op["requestBody"]["content"].as_object().expect("content");
    let mut types: Vec<&str> = content.keys().map(String::as_str).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        vec!["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
    );
    for verb in ["get", "put", "delete"] {
        assert_eq!(
            d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"][verb]["x-kubernetes-group-version-kind"]["kind"],
            "Pod",
            "{verb}"
        );
    }
    let collection = &d["paths"]["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(collection["post"]["x-kubernetes-action"], "post");
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert!(d["paths"]["/api/v1/pods"]["get"].is_object());
    assert!(d["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    assert!(d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"].is_object());
}

#[test]
fn every_served_kind_supports_field_validation_on_every_patch() {
    let cache = OpenApiCache::builtin();
    for r in all() {
        let d = doc(&gv_key(r.group, r.version));
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let ops = patch_ops_for(&d, &gvk);
        if r.supports("patch") {
            assert!(!ops.is_empty(), "no PATCH for {}", r.kind);
        }
        for op in ops {
            assert!(param_names(op).contains(&"fieldValidation"), "{}", r.kind);
            let content = op["requestBody"]["content"].as_object().expect("content");
            assert!(!content.contains_key("application/strategic-merge-patch+json"));
        }
    }
    // Subresource patches carry it too (kubectl stops at the first match, in map order).
    let apps = doc("apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(param_names(scale).contains(&"fieldValidation"));
    assert!(cache.v3_document("apis/apps/v1").is_some());
}

#[test]
fn schemas_are_tagged_and_every_ref_resolves() {
    for path in OpenApiCache::builtin().v3_paths() {
        let d = doc(path);
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        let mut found = Vec::new();
        refs(&d, &mut found);
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("bad ref {r}"));
            assert!(schemas.contains_key(name), "{path}: unresolved {r}");
        }
    }
    let core = doc("api/v1");
    let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Pod"}]));
    assert!(pod["properties"]["spec"].is_object());
    for r in all() {
        let d = doc(&gv_key(r.group, r.version));
        let tagged = d["components"]["schemas"].as_object().expect("schemas").values().any(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|a| a.contains(&json!({"group": r.group, "version": r.version, "kind": r.kind})))
        });
        assert!(tagged, "no schema for {}/{} {}", r.group, r.version, r.kind);
    }
}

#[test]
fn hpa_versions_use_their_own_schemas() {
    let v1 = doc("apis/autoscaling/v1");
    let v2 = doc("apis/autoscaling/v2");
    assert!(v1["components"]["schemas"]["io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"].is_object());
    assert!(v2["components"]["schemas"]["io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"].is_object());
    let events = doc("apis/events.k8s.io/v1");
    assert!(
        events["components"]["schemas"]["io.k8s.api.events.v1.Event"]["x-kubernetes-group-version-kind"].is_array()
    );
}

/// Registers a CRD for `crontabs.<group>` (served v1 with status and scale, v2 served without a
/// schema change) in the global registry and returns the cache of everything served.
pub(super) fn with_crontabs(group: &str) -> OpenApiCache {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("crontabs.{group}")},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList"},
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "The schedule.",
                                "required": ["cronSpec"],
                                "properties": {
                                    "cronSpec": {"type": "string", "description": "When to run.", "default": "* * * * *"},
                                    "replicas": {"type": "integer", "nullable": true},
                                    "image": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
                                    "port": {"x-kubernetes-int-or-string": true},
                                    "args": {"type": "array", "x-kubernetes-preserve-unknown-fields": true},
                                    "settings": {"type": "object", "nullable": true, "properties": {"a": {"type": "string"}}},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "template": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": true,
                                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                                    },
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        },
                    }},
                }],
            },
        }))
        .expect("crd");
    skiff_api::catalogue::register_custom(&format!("crontabs.{group}"), skiff_api::crd::resources_from_crd(&crd));
    OpenApiCache::builtin().with_custom(&skiff_api::catalogue::all())
}

fn v2_of(cache: &OpenApiCache) -> Value {
    serde_json::from_slice(&cache.v2().json.body).expect("json")
}

#[test]
fn custom_resource_v2_definition_is_its_crd_schema_in_swagger_form() {
    let cache = with_crontabs("v2def.example.com");
    let doc = v2_of(&cache);
    let defs = doc["definitions"].as_object().expect("definitions");
    let def = &defs["com.example.v2def.v1.CronTab"];
    assert_eq!(
        def["x-kubernetes-group-version-kind"],
        json!([{"group": "v2def.example.com", "version": "v1", "kind": "CronTab"}])
    );
    assert_eq!(def["type"], "object");
    let spec = &def["properties"]["spec"];
    assert_eq!(spec["description"], "The schedule.");
    assert_eq!(spec["required"], json!(["cronSpec"]));
    // Defaults are pruned, `nullable` values lose their type, junctors are dropped.
    assert_eq!(spec["properties"]["cronSpec"], json!({"type": "string", "description": "When to run."}));
    assert_eq!(spec["properties"]["replicas"], json!({}));
    assert_eq!(spec["properties"]["image"], json!({"type": "string"}));
    assert_eq!(def["properties"]["status"], json!({"x-kubernetes-preserve-unknown-fields": true}));
    assert_eq!(def["properties"]["metadata"]["$ref"], "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert_eq!(def["properties"]["apiVersion"]["type"], "string");
    assert_eq!(def["properties"]["kind"]["type"], "string");
    let list = &defs["com.example.v2def.v1.CronTabList"];
    assert_eq!(list["x-kubernetes-group-version-kind"][0]["kind"], "CronTabList");
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/definitions/com.example.v2def.v1.CronTab");
    // The built-in definitions are still there, once.
    assert!(defs.contains_key("io.k8s.api.apps.v1.Deployment"));
    assert_ne!(cache.v2().json.etag, OpenApiCache::builtin().v2().json.etag);
    assert_ne!(cache.v2().protobuf.etag, OpenApiCache::builtin().v2().protobuf.etag);
}

#[test]
fn custom_resource_v2_paths_carry_actions_and_gvk_like_builtins() {
    let cache = with_crontabs("v2paths.example.com");
    let doc = v2_of(&cache);
    let paths = &doc["paths"];
    let gvk = json!({"group": "v2paths.example.com", "version": "v1", "kind": "CronTab"});
    let collection = "/apis/v2paths.example.com/v1/namespaces/{namespace}/crontabs";
    let item = format!("{collection}/{{name}}");
    let expected = [
        ("/apis/v2paths.example.com/v1/crontabs", "get", "list"),
        (collection, "get", "list"),
        (collection, "post", "post"),
        (collection, "delete", "deletecollection"),
        (&item, "get", "get"),
        (&item, "put", "put"),
        (&item, "patch", "patch"),
        (&item, "delete", "delete"),
        (&format!("{item}/status"), "get", "get"),
        (&format!("{item}/status"), "patch", "patch"),
    ];
    for (path, method, action) in expected {
        let op = &paths[path][method];
        assert_eq!(op["x-kubernetes-action"], action, "{method} {path}");
        assert_eq!(op["x-kubernetes-group-version-kind"], gvk, "{method} {path}");
    }
    let list_params: Vec<&str> = paths[collection]["get"]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(list_params.contains(&"watch") && list_params.contains(&"labelSelector"), "{list_params:?}");
    let scale = &paths[format!("{item}/scale")]["put"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    // Swagger 2.0 operations: typed parameters, a body parameter, consumes/produces, and no
    // strategic merge patch for custom resources.
    let patch = &paths[&item]["patch"];
    let params = patch["parameters"].as_array().expect("params");
    assert!(params.iter().any(|p| p["name"] == "dryRun" && p["in"] == "query" && p["type"] == "string"));
    let body = params.iter().find(|p| p["in"] == "body").expect("body");
    assert_eq!(body["schema"]["$ref"], "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    let consumes = patch["consumes"].as_array().expect("consumes");
    assert!(consumes.contains(&json!("application/merge-patch+json")));
    assert!(!consumes.contains(&json!("application/strategic-merge-patch+json")));
    assert_eq!(patch["responses"]["200"]["schema"]["$ref"], "#/definitions/com.example.v2paths.v1.CronTab");
}

#[test]
fn current_document_follows_the_custom_registry() {
    let crd_name = "crontabs.v2current.example.com";
    let before = OpenApiCache::current().v2();
    with_crontabs("v2current.example.com");
    let after = OpenApiCache::current().v2();
    assert_ne!(before.json.etag, after.json.etag);
    assert!(String::from_utf8_lossy(&after.json.body).contains("com.example.v2current.v1.CronTab"));
    // The same registry state serves the same rendering without rendering again (other tests
    // register CRDs concurrently: only compare when the registry did not change meanwhile).
    let generation = skiff_api::catalogue::generation();
    let (a, b) = (OpenApiCache::current().v2(), OpenApiCache::current().v2());
    if skiff_api::catalogue::generation() == generation {
        assert!(Arc::ptr_eq(&a, &b));
    }
    skiff_api::catalogue::unregister_custom(crd_name);
    let gone = OpenApiCache::current().v2();
    assert!(!String::from_utf8_lossy(&gone.json.body).contains("com.example.v2current.v1.CronTab"));
}

#[test]
fn builtin_schemas_carry_upstream_list_map_and_patch_extensions() {
    let apps = doc("apis/apps/v1");
    let schemas = &apps["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(containers["type"], "array");
    let volumes = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["containerPort", "protocol"]));
    let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
    assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
    assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
    assert!(meta["finalizers"].get("x-kubernetes-patch-merge-key").is_none());
    assert_eq!(meta["ownerReferences"]["x-kubernetes-list-map-keys"], json!(["uid"]));
    assert_eq!(meta["ownerReferences"]["x-kubernetes-patch-merge-key"], "uid");
    // Fields without markers get nothing; atomic structs and unions are marked on the type.
    assert!(meta["name"].as_object().expect("name").keys().all(|k| !k.starts_with("x-")));
    assert_eq!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"], "atomic");
    assert_eq!(
        schemas["io.k8s.api.core.v1.SeccompProfile"]["x-kubernetes-unions"],
        json!([{"discriminator": "type", "fields-to-discriminateBy": {"localhostProfile": "LocalhostProfile"}}])
    );
    let selector = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["selector"];
    assert!(selector.get("x-kubernetes-patch-strategy").is_none());

    let core = doc("api/v1");
    let service_ports = &core["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(service_ports["x-kubernetes-list-map-keys"], json!(["port", "protocol"]));
    assert_eq!(service_ports["x-kubernetes-patch-merge-key"], "port");
    let node_selector = &core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["nodeSelector"];
    assert_eq!(node_selector["x-kubernetes-map-type"], "atomic");
    let policy = doc("apis/policy/v1");
    let pdb_selector =
        &policy["components"]["schemas"]["io.k8s.api.policy.v1.PodDisruptionBudgetSpec"]["properties"]["selector"];
    assert_eq!(pdb_selector["x-kubernetes-patch-strategy"], "replace");
}
