//! skiff's container runtime (DESIGN.md §6): everything the node agent needs to turn a pod into
//! processes.
//!
//! What lives here: the content-addressed [`images`] store (import of OCI-layout and
//! docker-archive tarballs, references, removal) and the layer [`snapshots`] a container's
//! overlayfs root is built from. What does not: the Kubernetes side (pod workers, status, probes
//! — `skiff-agent`) and pod networking (`skiff-net`).

pub mod images;
pub mod snapshots;
