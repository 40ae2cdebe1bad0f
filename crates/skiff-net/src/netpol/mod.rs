//! NetworkPolicy enforcement (`networking.k8s.io/v1`, DESIGN.md §7): each node programs the
//! nftables table `ip skiff-netpol` so that its pods receive and send only what the policies
//! selecting them allow. No packet passes through skiff's process.
//!
//! [`model`] resolves NetworkPolicies against Pods and Namespaces (selectors, ipBlocks, named
//! ports) for this node's pods, [`render`] turns that into the table (sets of addresses per
//! policy and rule, so Pod changes are element changes) and the difference from the last one,
//! and [`sync`] watches the API and applies and repairs the table. What does not live here: the
//! service proxy ([`crate::proxy`]), whose DNAT runs before these rules.

pub mod model;
pub mod render;
pub mod sync;

pub use sync::{NetpolConfig, repairs, run, syncs};
