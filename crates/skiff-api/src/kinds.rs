//! Per-kind behaviour hooks, implemented for every built-in k8s-openapi type.
//!
//! The API server's write path is generic; what differs between kinds is captured by three
//! traits, each implemented for every built-in type (with an empty body where upstream has no
//! rule):
//! - [`Defaulting`] (upstream `SetDefaults_*`), in [`crate::defaults`];
//! - [`Strategy`] (registry `PrepareForCreate`/`PrepareForUpdate`), in [`crate::defaults`];
//! - [`Validation`] (upstream `ValidateX`, `ValidateXUpdate`, `ValidateXStatusUpdate`), in
//!   [`crate::validation::kinds`].
//!
//! What the generic path already does, so the hooks must not: validating `metadata` (names,
//! labels, annotations, finalizers, owner references), filling uid/creationTimestamp/generation,
//! bumping generation on spec changes, and for kinds with a `status` subresource keeping the old
//! status on main-resource updates and the old everything-but-status on `/status` updates.

use crate::validation::ErrorList;

/// Upstream defaulting: fills fields the client left empty.
pub trait Defaulting {
    /// Applies the defaults in place. Must be idempotent.
    fn set_defaults(&mut self) {}
}

/// Kind-specific registry strategy, applied after defaulting and before validation.
pub trait Strategy {
    /// Prepares a new object for creation (e.g. resets status to its initial value).
    fn prepare_for_create(&mut self) {}

    /// Prepares an update of the main resource given the stored object.
    fn prepare_for_update(&mut self, _old: &Self) {}

    /// The built-in admission plugins' verdict on creating this object, after defaulting and
    /// before validation: `Err(why)` forbids it (403 `<resource> "<name>" is forbidden: <why>`).
    fn admit_create(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Upstream validation of everything but `metadata`.
pub trait Validation {
    /// Validates a new object.
    fn validate_create(&self) -> ErrorList {
        ErrorList::new()
    }

    /// Validates an update of the main resource (including immutable fields).
    fn validate_update(&self, _old: &Self) -> ErrorList {
        self.validate_create()
    }

    /// Validates an update through the `status` subresource.
    fn validate_status_update(&self, _old: &Self) -> ErrorList {
        ErrorList::new()
    }

    /// Validates an update through the `approval` subresource (CertificateSigningRequest).
    fn validate_approval_update(&self, _old: &Self) -> ErrorList {
        ErrorList::new()
    }
}

/// Everything the API server needs of a built-in type.
pub trait BuiltinKind:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + Default
    + Send
    + Sync
    + Defaulting
    + Strategy
    + Validation
    + 'static
{
}

impl<T> BuiltinKind for T where
    T: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Default
        + Send
        + Sync
        + Defaulting
        + Strategy
        + Validation
        + 'static
{
}

/// Calls `$m!(group, version, Type)` once per built-in type stored as served.
///
/// Views (events.k8s.io/v1 Event, autoscaling/v1 HorizontalPodAutoscaler) are converted to their
/// storage type before these hooks run, so they are not listed.
#[macro_export]
macro_rules! for_each_builtin_kind {
    ($m:ident) => {
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Binding);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::ConfigMap);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Endpoints);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Event);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::LimitRange);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Namespace);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Node);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::PersistentVolumeClaim);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::PersistentVolume);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Pod);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::PodTemplate);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::ReplicationController);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::ResourceQuota);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Secret);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::ServiceAccount);
        $m!("", "v1", $crate::k8s_openapi::api::core::v1::Service);
        $m!("apps", "v1", $crate::k8s_openapi::api::apps::v1::ControllerRevision);
        $m!("apps", "v1", $crate::k8s_openapi::api::apps::v1::DaemonSet);
        $m!("apps", "v1", $crate::k8s_openapi::api::apps::v1::Deployment);
        $m!("apps", "v1", $crate::k8s_openapi::api::apps::v1::ReplicaSet);
        $m!("apps", "v1", $crate::k8s_openapi::api::apps::v1::StatefulSet);
        $m!("autoscaling", "v2", $crate::k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler);
        $m!("batch", "v1", $crate::k8s_openapi::api::batch::v1::CronJob);
        $m!("batch", "v1", $crate::k8s_openapi::api::batch::v1::Job);
        $m!("networking.k8s.io", "v1", $crate::k8s_openapi::api::networking::v1::IngressClass);
        $m!("networking.k8s.io", "v1", $crate::k8s_openapi::api::networking::v1::Ingress);
        $m!("networking.k8s.io", "v1", $crate::k8s_openapi::api::networking::v1::NetworkPolicy);
        $m!("discovery.k8s.io", "v1", $crate::k8s_openapi::api::discovery::v1::EndpointSlice);
        $m!("rbac.authorization.k8s.io", "v1", $crate::k8s_openapi::api::rbac::v1::ClusterRoleBinding);
        $m!("rbac.authorization.k8s.io", "v1", $crate::k8s_openapi::api::rbac::v1::ClusterRole);
        $m!("rbac.authorization.k8s.io", "v1", $crate::k8s_openapi::api::rbac::v1::RoleBinding);
        $m!("rbac.authorization.k8s.io", "v1", $crate::k8s_openapi::api::rbac::v1::Role);
        $m!("coordination.k8s.io", "v1", $crate::k8s_openapi::api::coordination::v1::Lease);
        $m!("storage.k8s.io", "v1", $crate::k8s_openapi::api::storage::v1::CSIDriver);
        $m!("storage.k8s.io", "v1", $crate::k8s_openapi::api::storage::v1::CSINode);
        $m!("storage.k8s.io", "v1", $crate::k8s_openapi::api::storage::v1::CSIStorageCapacity);
        $m!("storage.k8s.io", "v1", $crate::k8s_openapi::api::storage::v1::StorageClass);
        $m!("storage.k8s.io", "v1", $crate::k8s_openapi::api::storage::v1::VolumeAttachment);
        $m!("policy", "v1", $crate::k8s_openapi::api::policy::v1::PodDisruptionBudget);
        $m!("scheduling.k8s.io", "v1", $crate::k8s_openapi::api::scheduling::v1::PriorityClass);
        $m!(
            "admissionregistration.k8s.io",
            "v1",
            $crate::k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration
        );
        $m!(
            "admissionregistration.k8s.io",
            "v1",
            $crate::k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration
        );
        $m!(
            "admissionregistration.k8s.io",
            "v1",
            $crate::k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy
        );
        $m!(
            "admissionregistration.k8s.io",
            "v1",
            $crate::k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding
        );
        $m!("certificates.k8s.io", "v1", $crate::k8s_openapi::api::certificates::v1::CertificateSigningRequest);
        $m!(
            "apiextensions.k8s.io",
            "v1",
            $crate::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
        );
    };
}

#[cfg(test)]
mod tests {
    fn assert_builtin<T: super::BuiltinKind>() {}

    macro_rules! check {
        ($g:expr, $v:expr, $t:ty) => {
            assert_builtin::<$t>();
            assert!(
                crate::catalogue::find_kind($g, $v, <$t as k8s_openapi::Resource>::KIND).is_some(),
                "{} missing from the catalogue",
                <$t as k8s_openapi::Resource>::KIND
            );
        };
    }

    #[test]
    fn every_builtin_kind_has_hooks_and_a_catalogue_entry() {
        crate::for_each_builtin_kind!(check);
    }
}
