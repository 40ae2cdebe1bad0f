//! Upstream defaulting and registry strategies for the built-in kinds.
//!
//! Implements [`crate::kinds::Defaulting`] and [`crate::kinds::Strategy`] for every built-in
//! type. Validation lives in [`crate::validation::kinds`].
//!
//! Submodules group kinds the way upstream groups its `SetDefaults_*` functions: the pod spec
//! (shared by every kind with a pod template), the apps workloads, batch, services and endpoints,
//! the remaining core kinds, and the cluster-scoped odds and ends.

mod admissionregistration;
mod apps;
mod batch;
mod certificates;
mod cluster;
mod core;
mod pod;
mod service;

pub use self::core::NAMESPACE_NAME_LABEL;
pub use batch::{CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL};
pub use pod::{default_pod, default_pod_spec, default_pod_template, pod_qos_class};

/// Kinds upstream neither defaults nor prepares.
macro_rules! no_rules {
    ($($t:ty),* $(,)?) => {
        $(
            impl crate::kinds::Defaulting for $t {}
            impl crate::kinds::Strategy for $t {}
        )*
    };
}

no_rules!(
    k8s_openapi::api::core::v1::Binding,
    k8s_openapi::api::core::v1::ConfigMap,
    k8s_openapi::api::core::v1::Event,
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::apps::v1::ControllerRevision,
    k8s_openapi::api::networking::v1::IngressClass,
    k8s_openapi::api::networking::v1::Ingress,
    k8s_openapi::api::rbac::v1::ClusterRoleBinding,
    k8s_openapi::api::rbac::v1::ClusterRole,
    k8s_openapi::api::rbac::v1::RoleBinding,
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::storage::v1::CSINode,
    k8s_openapi::api::storage::v1::CSIStorageCapacity,
    k8s_openapi::api::storage::v1::VolumeAttachment,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
);

/// Sets `*slot` to `value` when it is `None`.
fn or_set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Sets a string field to `value` when it is unset or empty (Go's zero value).
fn or_str(slot: &mut Option<String>, value: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(value.to_string());
    }
}
