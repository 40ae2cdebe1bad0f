//! skiff's container runtime (DESIGN.md §6): everything the node agent needs to turn a pod into
//! processes.
//!
//! What lives here: the content-addressed [`images`] store (import of OCI-layout and
//! docker-archive tarballs, references, removal), the layer [`snapshots`] a container's overlayfs
//! root is built from, which images and snapshots containers use ([`image_usage`]), the OCI runtime [`spec`] of a container, the per-container [`shim`]
//! process that runs it with libcontainer, its CRI [`logs`], the agent-side [`container`]
//! handle tying them together, [`exec`] of further processes in a running container, [`attach`]ing to its own process, pod [`sandbox`]es (the `skiff pause` holder of a pod's
//! namespaces), pod [`cgroups`] and [`seccomp`] profiles. What does not: the Kubernetes side (pod workers, status, probes —
//! `skiff-agent`) and pod networking (`skiff-net`).

pub mod attach;
pub mod cgroups;
pub mod container;
pub mod exec;
pub mod image_usage;
pub mod images;
pub mod logs;
pub mod ready;
pub mod reaper;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod snapshots;
pub mod spec;

/// Log target of start-up timings (debug level), shared with the agent's pod workers:
/// `RUST_LOG=info,skiff_timing=debug` shows where a pod's start goes.
pub const TIMING_TARGET: &str = "skiff_timing";
