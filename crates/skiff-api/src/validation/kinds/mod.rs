//! Upstream validation of the built-in kinds (everything but metadata).
//!
//! Implements [`crate::kinds::Validation`] for every built-in type. Field paths and messages
//! follow upstream (`spec.containers[0].image: Required value`). Shared small validators live in
//! [`common`]; each other submodule covers one family of kinds.

mod admissionregistration;
mod batch;
pub mod certificates;
mod cluster;
pub mod common;
mod config;
mod core;
mod jobstatus;
mod networking;
mod pod;
mod rbac;
mod service;
mod workloads;

pub use batch::parse_schedule;
pub use config::MAX_DATA_SIZE;
pub use pod::{validate_pod_spec, validate_pod_template, validate_resources};
pub use workloads::template_matches;

/// Kinds upstream validates only through their metadata.
macro_rules! no_rules {
    ($($t:ty),* $(,)?) => {
        $( impl crate::kinds::Validation for $t {} )*
    };
}

no_rules!(
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::storage::v1::CSIDriver,
    k8s_openapi::api::storage::v1::CSINode,
    k8s_openapi::api::storage::v1::CSIStorageCapacity,
    k8s_openapi::api::storage::v1::VolumeAttachment,
);
