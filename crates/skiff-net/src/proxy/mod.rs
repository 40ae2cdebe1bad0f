//! The service proxy (DESIGN.md §7): programs the node's nftables so that traffic to Service
//! addresses (cluster IPs, node ports, externalIPs, LoadBalancer addresses) reaches the
//! Services' endpoints. No packet passes through skiff's process.
//!
//! [`model`] turns Services and EndpointSlices into per-port records (endpoint choice as
//! upstream's proxies make it), [`render`] turns those into the `ip skiff-proxy` table, and
//! [`sync`] watches the API, applies rate-limited syncs in one transaction each and repairs the
//! table when someone changes it. Only EndpointSlices are read, never Endpoints. What does not
//! live here: pod networking (the crate root), Service address allocation (the API server),
//! LoadBalancer status (`skiff-controllers`).

pub mod model;
pub mod render;
pub mod sync;

pub use sync::{ProxyConfig, repairs, run};
