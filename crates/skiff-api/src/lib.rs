//! The Kubernetes API model shared by every skiff component.
//!
//! What lives here: the resource catalogue (which kinds exist and how they are served), label and
//! field selectors, resource quantities, the `Status` error shape, and per-kind defaulting and
//! validation. Nothing here does I/O; the HTTP layer lives in `skiff-apiserver` and persistence in
//! `skiff-store`.

pub mod catalogue;
pub mod certificates;
pub mod crd;
pub mod defaults;
pub mod kinds;
pub mod mirror;
pub mod quantity;
pub mod quota;
pub mod selector;
pub mod status;
pub mod unknown;
pub mod validation;

pub use k8s_openapi;
pub use status::{StatusError, StatusResult};
