//! Defaults and strategies of the remaining core/v1 kinds: Secret, Namespace, PersistentVolume,
//! PersistentVolumeClaim, Node, LimitRange and ResourceQuota.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, NamespaceSpec, NamespaceStatus, Node, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeStatus, ResourceQuota, Secret,
};

use super::or_str;
use crate::kinds::{Defaulting, Strategy};

/// Label upstream puts on every namespace, carrying its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Defaulting for Secret {
    fn set_defaults(&mut self) {
        // Upstream folds the write-only `stringData` into `data` while converting, before
        // defaulting; skiff stores the typed object, so it happens here.
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        or_str(&mut self.type_, "Opaque");
    }
}

impl Strategy for Secret {}

impl Defaulting for Namespace {
    fn set_defaults(&mut self) {
        let status = self.status.get_or_insert_with(NamespaceStatus::default);
        or_str(&mut status.phase, "Active");
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata.labels.get_or_insert_with(BTreeMap::new).insert(NAMESPACE_NAME_LABEL.to_string(), name);
        }
    }
}

impl Strategy for Namespace {
    fn prepare_for_create(&mut self) {
        self.status = Some(NamespaceStatus { phase: Some("Active".to_string()), ..Default::default() });
        let spec = self.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push("kubernetes".to_string());
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        // Finalizers change only through the `finalize` subresource.
        self.spec.clone_from(&old.spec);
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`: volumeMode Filesystem.
pub(crate) fn default_pvc_spec(spec: &mut PersistentVolumeClaimSpec) {
    or_str(&mut spec.volume_mode, "Filesystem");
}

impl Defaulting for PersistentVolumeClaim {
    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            default_pvc_spec(spec);
        }
        let status = self.status.get_or_insert_with(PersistentVolumeClaimStatus::default);
        or_str(&mut status.phase, "Pending");
    }
}

impl Strategy for PersistentVolumeClaim {
    fn prepare_for_create(&mut self) {
        self.status = Some(PersistentVolumeClaimStatus { phase: Some("Pending".to_string()), ..Default::default() });
    }
}

impl Defaulting for PersistentVolume {
    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            or_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
            or_str(&mut spec.volume_mode, "Filesystem");
        }
        let status = self.status.get_or_insert_with(PersistentVolumeStatus::default);
        or_str(&mut status.phase, "Pending");
    }
}

impl Strategy for PersistentVolume {
    fn prepare_for_create(&mut self) {
        self.status = Some(PersistentVolumeStatus { phase: Some("Pending".to_string()), ..Default::default() });
    }
}

impl Defaulting for Node {
    fn set_defaults(&mut self) {
        if let Some(status) = self.status.as_mut()
            && status.allocatable.is_none()
        {
            status.allocatable.clone_from(&status.capacity);
        }
    }
}

/// Nodes register with their status, so upstream keeps it on create; nothing to prepare.
impl Strategy for Node {}

impl Defaulting for LimitRange {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        for item in spec.limits.iter_mut().filter(|i| i.type_ == "Container") {
            let mut default = item.default.take().unwrap_or_default();
            let mut default_request = item.default_request.take().unwrap_or_default();
            for (k, v) in item.max.iter().flatten() {
                default.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in default.iter().chain(item.min.iter().flatten()) {
                default_request.entry(k.clone()).or_insert_with(|| v.clone());
            }
            item.default = Some(default).filter(|m| !m.is_empty());
            item.default_request = Some(default_request).filter(|m| !m.is_empty());
        }
    }
}

impl Strategy for LimitRange {}

impl Defaulting for ResourceQuota {}

/// Upstream's strategy: a new quota starts without status (the quota controller fills it).
impl Strategy for ResourceQuota {
    fn prepare_for_create(&mut self) {
        self.status = Some(Default::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_defaults_type_and_folds_string_data() {
        let mut s: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}})).expect("secret");
        s.set_defaults();
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["data"], json!({"a": "aGk="}));
        assert!(v.get("stringData").is_none());
    }

    #[test]
    fn namespace_defaults_and_create() {
        let mut ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
        ns.set_defaults();
        ns.prepare_for_create();
        let v = serde_json::to_value(&ns).expect("json");
        assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(v["status"], json!({"phase": "Active"}));
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
    }

    #[test]
    fn namespace_update_keeps_finalizers() {
        let mut old: Namespace = serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("ns");
        old.prepare_for_create();
        let mut new: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"finalizers": []}})).expect("ns");
        new.prepare_for_update(&old);
        assert_eq!(new.spec, old.spec);
    }

    #[test]
    fn volume_defaults() {
        let mut pvc: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {}})).expect("pvc");
        pvc.set_defaults();
        let v = serde_json::to_value(&pvc).expect("json");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["status"]["phase"], "Pending");
        let mut pv: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": {}})).expect("pv");
        pv.set_defaults();
        let v = serde_json::to_value(&pv).expect("json");
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["status"]["phase"], "Pending");
    }

    #[test]
    fn limit_range_defaults_follow_max_default_min() {
        let mut lr: LimitRange = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}, "default": {"memory": "1Gi"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}}))
        .expect("limitrange");
        lr.set_defaults();
        let v = serde_json::to_value(&lr).expect("json")["spec"]["limits"].clone();
        assert_eq!(v[0]["default"], json!({"cpu": "2", "memory": "1Gi"}));
        assert_eq!(v[0]["defaultRequest"], json!({"cpu": "2", "memory": "1Gi"}));
        assert!(v[1].get("default").is_none());
    }
}
