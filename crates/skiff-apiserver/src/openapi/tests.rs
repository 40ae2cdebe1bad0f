//! Tests of the OpenAPI documents against what kubectl reads from them.

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
