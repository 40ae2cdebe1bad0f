//! The scheduler's own model of pods and nodes, parsed once from the API objects: resource
//! vectors, node selection rules, taints and tolerations, pods ([`PodInfo`]) and nodes
//! ([`NodeSpec`]). Nothing here does I/O or knows about the cache.

pub mod node;
pub mod nodeaffinity;
pub mod pod;
pub mod resources;
pub mod taints;

pub use node::NodeSpec;
pub use pod::PodInfo;
pub use resources::Resources;
