//! The replicas of a pod's controller read through its `/scale` subresource, for owners that are
//! not one of the built-in workloads the disruption controller reads from its informers (upstream
//! `getScaleController` and `implementsScale`): the ownerReference's `apiVersion` and `kind` are
//! mapped to a resource through discovery of that group-version, the owner's `/scale` is read,
//! and a 404 is told apart — a missing owner (no controller found) from a resource that has no
//! `/scale` (an error the budget's status reports).
//!
//! What does not live here: the built-in owners and the budget's status ([`super`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList, OwnerReference};
use kube::api::{Api, ApiResource, DynamicObject};

use crate::apierr;

/// The group and version of an `apiVersion` (`v1` is the core group), or upstream's
/// `ParseGroupVersion` error.
pub fn group_version(api_version: &str) -> Result<(&str, &str), String> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [version] => Ok(("", version)),
        [group, version] => Ok((group, version)),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// The top-level resource serving `kind` in a group-version's discovery document (upstream's
/// REST mapping for one version).
pub fn resource_of<'a>(list: &'a APIResourceList, kind: &str) -> Option<&'a APIResource> {
    list.resources.iter().find(|r| r.kind == kind && !r.name.contains('/'))
}

/// Whether discovery lists `<resource>/scale` answering an `autoscaling/v1` `Scale` (upstream
/// `implementsScale`).
pub fn implements_scale(list: &APIResourceList, resource: &str) -> bool {
    let name = format!("{resource}/scale");
    list.resources.iter().any(|r| {
        r.name == name
            && r.kind == "Scale"
            && r.group.as_deref() == Some("autoscaling")
            && r.version.as_deref() == Some("v1")
    })
}

/// A group-resource as Go's `GroupResource.String()` prints it: `resource.group`, or `resource`
/// in the core group.
pub fn group_resource(resource: &str, group: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

/// The error a REST mapping gives for a kind its group-version does not serve.
fn no_match(kind: &str, api_version: &str) -> String {
    format!("no matches for kind {kind:?} in version {api_version:?}")
}

/// The owner `r` (in namespace `ns`) and its `spec.replicas` read through its `/scale`:
/// `Ok(None)` when the owner is missing or is another object by that name, an error when its
/// kind cannot be mapped or has no `/scale`.
pub async fn owner_scale(client: &kube::Client, ns: &str, r: &OwnerReference) -> Result<Option<(String, i32)>, String> {
    let (group, version) = group_version(&r.api_version)?;
    let listed = if group.is_empty() {
        client.list_core_api_resources(version).await
    } else {
        client.list_api_group_resources(&r.api_version).await
    };
    let list = match listed {
        Ok(list) => list,
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(no_match(&r.kind, &r.api_version)),
        Err(e) => return Err(apierr::message(&e)),
    };
    let Some(resource) = resource_of(&list, &r.kind) else { return Err(no_match(&r.kind, &r.api_version)) };
    let ar = ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        plural: resource.name.clone(),
    };
    let api: Api<DynamicObject> = if resource.namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    match api.get_scale(&r.name).await {
        Ok(scale) if scale.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
            Ok(Some((r.uid.clone(), scale.spec.and_then(|s| s.replicas).unwrap_or(0))))
        }
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            if implements_scale(&list, &resource.name) {
                Ok(None)
            } else {
                Err(format!("{} does not implement the scale subresource", group_resource(&resource.name, group)))
            }
        }
        Err(e) => Err(apierr::message(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> APIResourceList {
        serde_json::from_value(json!({"groupVersion": "example.com/v1", "resources": [
            {"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget", "verbs": ["get"]},
            {"name": "widgets/status", "singularName": "", "namespaced": true, "kind": "Widget", "verbs": ["get"]},
            {"name": "widgets/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
                "version": "v1", "kind": "Scale", "verbs": ["get"]},
            {"name": "gadgets", "singularName": "gadget", "namespaced": true, "kind": "Gadget", "verbs": ["get"]},
            {"name": "gadgets/status", "singularName": "", "namespaced": true, "kind": "Gadget", "verbs": ["get"]},
        ]}))
        .expect("list")
    }

    #[test]
    fn api_versions_split_into_group_and_version() {
        assert_eq!(group_version("v1"), Ok(("", "v1")));
        assert_eq!(group_version("example.com/v1"), Ok(("example.com", "v1")));
        assert_eq!(group_version("a/b/c"), Err("unexpected GroupVersion string: a/b/c".to_string()));
    }

    #[test]
    fn kinds_map_to_top_level_resources() {
        let l = list();
        assert_eq!(resource_of(&l, "Widget").map(|r| r.name.as_str()), Some("widgets"));
        assert_eq!(resource_of(&l, "Gadget").map(|r| r.name.as_str()), Some("gadgets"));
        assert!(resource_of(&l, "Scale").is_none(), "a subresource's kind maps to nothing");
        assert!(resource_of(&l, "Sprocket").is_none());
        assert_eq!(
            no_match("Sprocket", "example.com/v1"),
            r#"no matches for kind "Sprocket" in version "example.com/v1""#
        );
    }

    #[test]
    fn scale_support_comes_from_discovery() {
        let l = list();
        assert!(implements_scale(&l, "widgets"));
        assert!(!implements_scale(&l, "gadgets"));
        assert_eq!(group_resource("gadgets", "example.com"), "gadgets.example.com");
        assert_eq!(group_resource("daemonsets", "apps"), "daemonsets.apps");
        assert_eq!(group_resource("pods", ""), "pods");
    }
}
