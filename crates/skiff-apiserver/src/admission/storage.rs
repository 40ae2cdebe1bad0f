//! Storage admission, as upstream's `DefaultStorageClass` and `StorageObjectInUseProtection`
//! plugins:
//! - a PersistentVolumeClaim created without `spec.storageClassName` (and without the beta
//!   class annotation) gets the default StorageClass (annotation
//!   `storageclass.kubernetes.io/is-default-class: "true"`, or its beta spelling; the newest
//!   such class, then the first by name, when there are several); an explicit `""` stays;
//! - created claims get the `kubernetes.io/pvc-protection` finalizer and created
//!   PersistentVolumes the `kubernetes.io/pv-protection` finalizer.
//!
//! What does not live here: removing the finalizers (the controller manager's protection
//! controllers) and the built-in `local-path` class ([`crate::bootstrap`]).

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_store::RangeRequest;

use crate::objects::meta_str;
use crate::state::ApiState;

/// The annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// The claim finalizer.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The volume finalizer.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// Upstream `GetDefaultClass` over StorageClasses in stored form: the name of the default class.
pub fn default_class(classes: &[Value]) -> Option<String> {
    let mut defaults: Vec<(&str, &str)> = classes
        .iter()
        .filter(|c| {
            annotation(c, DEFAULT_CLASS_ANNOTATION) == Some("true")
                || annotation(c, BETA_DEFAULT_CLASS_ANNOTATION) == Some("true")
        })
        .map(|c| (meta_str(c, "creationTimestamp").unwrap_or(""), meta_str(c, "name").unwrap_or("")))
        .collect();
    // Newest first (RFC 3339 UTC timestamps order as strings), then by name.
    defaults.sort_by(|a, b| b.0.cmp(a.0).then_with(|| a.1.cmp(b.1)));
    defaults.first().map(|(_, n)| n.to_string())
}

async fn classes(state: &ApiState) -> Result<Vec<Value>, StatusError> {
    let info = catalogue::find("storage.k8s.io", "v1", "storageclasses")
        .ok_or_else(|| StatusError::internal("storageclasses not served"))?;
    let resp = state
        .store
        .range(RangeRequest { prefix: info.key_prefix(), ..Default::default() })
        .await
        .map_err(StatusError::internal)?;
    Ok(resp.kvs.iter().filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok()).collect())
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|f| f.as_str() == Some(finalizer))
    {
        items.push(json!(finalizer));
    }
}

/// Whether a claim asks for no particular class (so the default one applies).
pub fn wants_default_class(pvc: &Value) -> bool {
    pvc.get("spec").and_then(|s| s.get("storageClassName")).is_none_or(Value::is_null)
        && annotation(pvc, BETA_CLASS_ANNOTATION).is_none()
}

/// Admits a PersistentVolumeClaim create.
pub async fn admit_claim(state: &ApiState, pvc: &mut Value) -> Result<(), StatusError> {
    if wants_default_class(pvc)
        && let Some(name) = default_class(&classes(state).await?)
        && let Some(spec) = pvc.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("storageClassName".into(), json!(name));
    }
    add_finalizer(pvc, PVC_PROTECTION);
    Ok(())
}

/// Admits a PersistentVolume create.
pub fn admit_volume(pv: &mut Value) {
    add_finalizer(pv, PV_PROTECTION);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if let Some(v) = default {
            c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: v});
        }
        c
    }

    #[test]
    fn newest_default_class_wins() {
        assert_eq!(default_class(&[class("a", "2026-01-01T00:00:00Z", None)]), None);
        assert_eq!(default_class(&[class("a", "2026-01-01T00:00:00Z", Some("false"))]), None);
        let list = [
            class("old", "2026-01-01T00:00:00Z", Some("true")),
            class("new-b", "2026-02-01T00:00:00Z", Some("true")),
            class("new-a", "2026-02-01T00:00:00Z", Some("true")),
        ];
        assert_eq!(default_class(&list).as_deref(), Some("new-a"));
    }

    #[test]
    fn only_claims_without_a_class_get_the_default() {
        assert!(wants_default_class(&json!({"spec": {}})));
        assert!(!wants_default_class(&json!({"spec": {"storageClassName": ""}})));
        assert!(!wants_default_class(&json!({"spec": {"storageClassName": "fast"}})));
        assert!(!wants_default_class(&json!({"metadata": {"annotations": {BETA_CLASS_ANNOTATION: "x"}}, "spec": {}})));
    }

    #[test]
    fn finalizers_added_once() {
        let mut pv = json!({"metadata": {"name": "a", "finalizers": ["x"]}});
        admit_volume(&mut pv);
        admit_volume(&mut pv);
        assert_eq!(pv["metadata"]["finalizers"], json!(["x", PV_PROTECTION]));
    }
}
