//! API discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}`, the per-group-version
//! `APIResourceList`s and the aggregated `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
//!
//! Everything here is a pure function of a resource list, so custom resources can be added to
//! the built-in catalogue by the caller. The HTTP layer chooses between the legacy and the
//! aggregated form with [`wants_aggregated`] and answers the latter with
//! [`AGGREGATED_V2_CONTENT_TYPE`] (kubectl decides by the response `Content-Type` only).
//!
//! Invariant: a group or group-version is advertised only when at least one resource of the
//! list is served in it.

use std::cmp::Ordering;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::catalogue::{ResourceInfo, Subresource};

/// Kubernetes minor version skiff implements (major is always 1).
pub const KUBE_MINOR: &str = "33";

/// The Kubernetes release skiff reports, without the skiff suffix.
pub const KUBE_VERSION: &str = "v1.33.0";

/// `Content-Type` of an aggregated discovery (`APIGroupDiscoveryList`) response.
pub const AGGREGATED_V2_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Every built-in resource as the reference list the functions of this module take.
pub fn builtin_resources() -> Vec<&'static ResourceInfo> {
    skiff_api::catalogue::builtin().iter().collect()
}

/// The `/version` document.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("{KUBE_VERSION}-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("SKIFF_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": option_env!("SKIFF_GIT_TREE_STATE").unwrap_or(""),
        "buildDate": option_env!("SKIFF_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `os/arch` in Go's spelling (`linux/amd64`, `linux/arm64`).
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// The `/api` document (`APIVersions`), advertising `server_address` for every client.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Orders two API versions by Kubernetes priority: GA before beta before alpha, higher numbers
/// first; versions not of the `vN[alpha|betaM]` shape come last, alphabetically.
/// [`Ordering::Less`] means `a` is preferred.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        let (rank, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((rank, major, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ra, ma, na)), Some((rb, mb, nb))) => ra.cmp(&rb).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Groups of `resources` in first-seen order, each with its versions, preferred first.
/// The core group is the empty string.
pub fn group_versions<'a>(resources: &[&'a ResourceInfo]) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
    for r in resources {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => groups.push((r.group, vec![r.version])),
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by(|a, b| compare_versions(a, b));
    }
    groups
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let entries: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": group_version(group, v), "version": v})).collect();
    let preferred = entries.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": entries, "preferredVersion": preferred})
}

/// The `/apis` document (`APIGroupList`): every non-core group with its versions.
pub fn api_group_list(resources: &[&ResourceInfo]) -> Value {
    let groups: Vec<Value> = group_versions(resources)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_json(g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The `/apis/{group}` document (`APIGroup`), or `None` when no resource is served in `group`
/// (or it is the core group, which has no such document).
pub fn api_group(group: &str, resources: &[&ResourceInfo]) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let (_, versions) = group_versions(resources).into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_json(group, &versions);
    if let Value::Object(map) = &mut doc {
        map.insert("kind".into(), "APIGroup".into());
        map.insert("apiVersion".into(), "v1".into());
    }
    Some(doc)
}

/// The storage version hash upstream advertises: base64 of the first 8 bytes of
/// `sha256("group/version/kind")` of the storage representation.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// Storage hash of a resource: from its storage `group/version` (views share their target's).
fn resource_storage_hash(r: &ResourceInfo) -> String {
    let (group, version) = match r.storage.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.storage.api_version),
    };
    storage_version_hash(group, version, r.kind)
}

/// The resources of one group-version, sorted by plural name.
fn resources_in<'a>(group: &str, version: &str, resources: &[&'a ResourceInfo]) -> Vec<&'a ResourceInfo> {
    let mut out: Vec<&ResourceInfo> =
        resources.iter().copied().filter(|r| r.group == group && r.version == version).collect();
    out.sort_by(|a, b| a.plural.cmp(b.plural));
    out
}

/// `(group, version, kind)` a subresource answers with.
fn sub_gvk<'a>(parent: &'a ResourceInfo, sub: &'a Subresource) -> (&'a str, &'a str, &'a str) {
    if sub.group.is_empty() && sub.version.is_empty() {
        (parent.group, parent.version, sub.kind)
    } else {
        let version = if sub.version.is_empty() { parent.version } else { sub.version };
        (sub.group, version, sub.kind)
    }
}

fn sorted_subresources(r: &ResourceInfo) -> Vec<&Subresource> {
    let mut subs: Vec<&Subresource> = r.subresources.iter().collect();
    subs.sort_by(|a, b| a.name.cmp(b.name));
    subs
}

fn legacy_resource(r: &ResourceInfo) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), r.plural.into());
    m.insert("singularName".into(), r.singular.into());
    m.insert("namespaced".into(), r.namespaced.into());
    m.insert("kind".into(), r.kind.into());
    m.insert("verbs".into(), json!(r.verbs));
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), json!(r.categories));
    }
    m.insert("storageVersionHash".into(), resource_storage_hash(r).into());
    Value::Object(m)
}

fn legacy_subresource(r: &ResourceInfo, sub: &Subresource) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), format!("{}/{}", r.plural, sub.name).into());
    m.insert("singularName".into(), "".into());
    m.insert("namespaced".into(), r.namespaced.into());
    if !sub.group.is_empty() || !sub.version.is_empty() {
        let (group, version, _) = sub_gvk(r, sub);
        m.insert("group".into(), group.into());
        m.insert("version".into(), version.into());
    }
    m.insert("kind".into(), sub.kind.into());
    m.insert("verbs".into(), json!(sub.verbs));
    Value::Object(m)
}

/// The `/api/v1` or `/apis/{group}/{version}` document (`APIResourceList`), or `None` when no
/// resource is served in that group-version. Subresources are separate entries
/// (`deployments/scale`) right after their resource.
pub fn api_resource_list(group: &str, version: &str, resources: &[&ResourceInfo]) -> Option<Value> {
    let served = resources_in(group, version, resources);
    if served.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in served {
        entries.push(legacy_resource(r));
        for sub in sorted_subresources(r) {
            entries.push(legacy_subresource(r, sub));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": entries,
    }))
}

fn gvk_json(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut m = Map::new();
    m.insert("resource".into(), r.plural.into());
    m.insert("responseKind".into(), gvk_json(r.group, r.version, r.kind));
    m.insert("scope".into(), (if r.namespaced { "Namespaced" } else { "Cluster" }).into());
    m.insert("singularResource".into(), r.singular.into());
    m.insert("verbs".into(), json!(r.verbs));
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), json!(r.categories));
    }
    let subs: Vec<Value> = sorted_subresources(r)
        .into_iter()
        .map(|sub| {
            let (g, v, k) = sub_gvk(r, sub);
            json!({"subresource": sub.name, "responseKind": gvk_json(g, v, k), "verbs": sub.verbs})
        })
        .collect();
    if !subs.is_empty() {
        m.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(m)
}

fn aggregated_group(group: &str, versions: &[&str], resources: &[&ResourceInfo]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let entries: Vec<Value> = resources_in(group, v, resources).into_iter().map(aggregated_resource).collect();
            json!({"version": v, "resources": entries, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() { json!({}) } else { json!({"name": group}) };
    json!({"metadata": metadata, "versions": versions})
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`):
/// for `/api` when `core`, holding only the core group; for `/apis` otherwise, holding every
/// other group. Versions are listed preferred first; every resource and subresource carries a
/// `responseKind`.
pub fn aggregated_discovery(core: bool, resources: &[&ResourceInfo]) -> Value {
    let items: Vec<Value> = group_versions(resources)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| aggregated_group(g, &versions, resources))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// What one entry of an `Accept` header asks for, as far as discovery cares.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    /// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.
    Aggregated,
    /// Plain JSON or a wildcard: the legacy documents.
    Plain,
    /// Something skiff does not serve for discovery (protobuf, v2beta1, tables, …).
    Other,
}

fn classify(media: &str) -> (Offer, f32) {
    let mut parts = media.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("").to_ascii_lowercase();
    let (mut g, mut v, mut r#as, mut q) = (None, None, None, 1.0_f32);
    for p in parts {
        let Some((k, val)) = p.split_once('=') else {
            continue;
        };
        let val = val.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "g" => g = Some(val.to_string()),
            "v" => v = Some(val.to_string()),
            "as" => r#as = Some(val.to_string()),
            "q" => q = val.parse().unwrap_or(1.0),
            _ => {}
        }
    }
    let offer = match mime.as_str() {
        "application/json" => match (g.as_deref(), v.as_deref(), r#as.as_deref()) {
            (None, None, None) => Offer::Plain,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => Offer::Aggregated,
            _ => Offer::Other,
        },
        "*/*" | "application/*" => Offer::Plain,
        _ => Offer::Other,
    };
    (offer, q)
}

/// Whether an `Accept` header asks for the aggregated discovery document: it offers
/// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` with a quality at
/// least as high as, and listed before, any plain JSON or wildcard entry. Protobuf and
/// `v2beta1` offers are ignored (not served).
pub fn wants_aggregated(accept: &str) -> bool {
    let mut offers: Vec<(Offer, f32)> = accept
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(classify)
        .filter(|(o, q)| *o != Offer::Other && *q > 0.0)
        .collect();
    // Stable: equal qualities keep the client's order.
    offers.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));
    matches!(offers.first(), Some((Offer::Aggregated, _)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<&'static ResourceInfo> {
        builtin_resources()
    }

    fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

    #[test]
    fn version_has_every_field() {
        let v = version_info();
        for f in [
            "major",
            "minor",
            "gitVersion",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ] {
            assert!(v[f].is_string(), "{f}");
        }
        assert_eq!(v["major"], "1");
        assert!(v["gitVersion"].as_str().expect("gitVersion").starts_with("v1.33.0-skiff."));
        assert!(v["platform"].as_str().expect("platform").contains('/'));
    }

    #[test]
    fn api_versions_has_server_address_by_client_cidrs() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(v["serverAddressByClientCIDRs"][0]["clientCIDR"], "0.0.0.0/0");
        assert_eq!(v["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
    }

    #[test]
    fn version_priority_prefers_ga_then_beta_then_alpha() {
        let mut vs = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo", "v10"];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(vs, vec!["v10", "v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn group_list_excludes_core_and_prefers_autoscaling_v2() {
        let list = api_group_list(&all());
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().expect("groups");
        assert!(groups.iter().all(|g| g["name"] != ""));
        let autoscaling = groups.iter().find(|g| g["name"] == "autoscaling").expect("autoscaling");
        assert_eq!(autoscaling["preferredVersion"], json!({"groupVersion": "autoscaling/v2", "version": "v2"}));
        assert_eq!(autoscaling["versions"][1]["groupVersion"], "autoscaling/v1");
        let apps = api_group("apps", &all()).expect("apps");
        assert_eq!(apps["kind"], "APIGroup");
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(api_group("nope.example.com", &all()).is_none());
        assert!(api_group("", &all()).is_none());
    }

    #[test]
    fn resource_list_entries_have_required_fields() {
        for (group, versions) in group_versions(&all()) {
            for version in versions {
                let list = api_resource_list(group, version, &all()).expect("served");
                assert_eq!(list["groupVersion"], group_version(group, version));
                for e in list["resources"].as_array().expect("resources") {
                    for f in ["name", "singularName", "kind"] {
                        assert!(e[f].is_string(), "{f} in {e}");
                    }
                    assert!(e["namespaced"].is_boolean());
                    assert!(e["verbs"].is_array());
                    assert!(!e["kind"].as_str().unwrap_or("").is_empty());
                    if e["shortNames"].is_array() {
                        assert!(!e["shortNames"].as_array().expect("short").is_empty());
                    }
                    if e["categories"].is_array() {
                        assert!(!e["categories"].as_array().expect("cat").is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn scale_subresource_is_autoscaling_v1_scale() {
        let list = api_resource_list("apps", "v1", &all()).expect("apps/v1");
        let scale = entry(&list, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["singularName"], "");
        let status = entry(&list, "deployments/status");
        assert_eq!(status["kind"], "Deployment");
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        assert!(status.get("group").is_none());
        let deploy = entry(&list, "deployments");
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["storageVersionHash"], storage_version_hash("apps", "v1", "Deployment"));
    }

    #[test]
    fn pods_carry_category_all_and_log_subresource() {
        let list = api_resource_list("", "v1", &all()).expect("v1");
        assert_eq!(list["groupVersion"], "v1");
        let pods = entry(&list, "pods");
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["singularName"], "pod");
        let log = entry(&list, "pods/log");
        assert_eq!(log["kind"], "Pod");
        assert_eq!(log["verbs"], json!(["get"]));
        let eviction = entry(&list, "pods/eviction");
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        // Entries without short names omit the field.
        assert!(entry(&list, "secrets").get("shortNames").is_none());
        for name in ["pods", "services", "replicationcontrollers"] {
            assert_eq!(entry(&list, name)["categories"], json!(["all"]), "{name}");
        }
        let apps = api_resource_list("apps", "v1", &all()).expect("apps");
        for name in ["deployments", "replicasets", "statefulsets", "daemonsets"] {
            assert_eq!(entry(&apps, name)["categories"], json!(["all"]), "{name}");
        }
    }

    #[test]
    fn storage_hash_matches_upstream_for_pods() {
        // Value served by upstream kube-apiserver for core/v1 pods.
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
    }

    #[test]
    fn unserved_group_versions_have_no_documents() {
        assert!(api_resource_list("apps", "v1beta1", &all()).is_none());
        assert!(api_resource_list("", "v2", &all()).is_none());
        let only_pods: Vec<&ResourceInfo> =
            all().into_iter().filter(|r| r.group.is_empty() && r.plural == "pods").collect();
        assert_eq!(api_group_list(&only_pods)["groups"], json!([]));
        let agg = aggregated_discovery(false, &only_pods);
        assert_eq!(agg["items"], json!([]));
    }

    #[test]
    fn aggregated_every_response_kind_is_non_empty() {
        for core in [true, false] {
            let doc = aggregated_discovery(core, &all());
            assert_eq!(doc["kind"], "APIGroupDiscoveryList");
            assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
            let items = doc["items"].as_array().expect("items");
            assert!(!items.is_empty());
            for item in items {
                let name = item["metadata"]["name"].as_str().unwrap_or("");
                assert_eq!(name.is_empty(), core);
                let versions = item["versions"].as_array().expect("versions");
                assert!(!versions.is_empty());
                for v in versions {
                    assert_eq!(v["freshness"], "Current");
                    let resources = v["resources"].as_array().expect("resources");
                    assert!(!resources.is_empty(), "advertised empty version {name}/{}", v["version"]);
                    for r in resources {
                        assert!(!r["responseKind"]["kind"].as_str().unwrap_or("").is_empty(), "{r}");
                        assert!(!r["responseKind"]["version"].as_str().unwrap_or("").is_empty(), "{r}");
                        assert!(r["scope"] == "Namespaced" || r["scope"] == "Cluster");
                        assert!(r["singularResource"].is_string());
                        for s in r["subresources"].as_array().into_iter().flatten() {
                            assert!(!s["responseKind"]["kind"].as_str().unwrap_or("").is_empty(), "{s}");
                            assert!(!s["responseKind"]["version"].as_str().unwrap_or("").is_empty(), "{s}");
                            assert!(s["verbs"].is_array());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn aggregated_lists_preferred_version_first_and_scale_kind() {
        let doc = aggregated_discovery(false, &all());
        let items = doc["items"].as_array().expect("items");
        let autoscaling = items.iter().find(|i| i["metadata"]["name"] == "autoscaling").expect("autoscaling");
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
        assert_eq!(autoscaling["versions"][1]["version"], "v1");
        let apps = items.iter().find(|i| i["metadata"]["name"] == "apps").expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        let scale = deploy["subresources"]
            .as_array()
            .expect("subs")
            .iter()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
        assert_eq!(deploy["responseKind"], json!({"group": "apps", "version": "v1", "kind": "Deployment"}));
        assert_eq!(deploy["categories"], json!(["all"]));
    }

    #[test]
    fn accept_negotiation_for_aggregated_discovery() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        let proto_first = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(proto_first));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(""));
        assert!(!wants_aggregated("*/*"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(
            "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(wants_aggregated(
            "application/json;q=0.5, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0"));
    }
}
