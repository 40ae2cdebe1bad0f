//! Resource metrics of the node and its pods, served on the streaming server's
//! `/metrics/resource` as the kubelet does: cumulative CPU time and memory working set per
//! container, per pod and for the node, read from cgroups and `/proc` when asked (no background
//! sampling: the caller, the API server's metrics scraper, computes rates from two scrapes).
//!
//! [`collect`] measures (pods of this node from the API, their cgroups through [`cgroup`] and the
//! eviction manager's memory reader, node totals through [`node`]); [`prometheus`] renders the
//! text document.
//!
//! What does not live here: the `metrics.k8s.io` API and the rates (`skiff-apiserver`'s
//! `metrics` module), `/stats/summary` (not served).

pub mod cgroup;
pub mod collect;
pub mod node;
pub mod prometheus;

/// One measurement of the node and its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was taken (milliseconds since the epoch).
    pub timestamp_ms: i64,
    /// The node's cumulative CPU time (ns).
    pub node_cpu_nanos: Option<u64>,
    /// The node's memory working set (bytes).
    pub node_memory_bytes: Option<u64>,
    /// The pods that have a cgroup.
    pub pods: Vec<PodUsage>,
    /// Some pod or container could not be measured.
    pub scrape_error: bool,
}

/// Usage of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Cumulative CPU time of the pod's cgroup (ns).
    pub cpu_nanos: Option<u64>,
    /// Memory working set of the pod's cgroup (bytes).
    pub memory_bytes: Option<u64>,
    /// Its running containers.
    pub containers: Vec<ContainerUsage>,
}

/// Usage of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// The container's name.
    pub name: String,
    /// Cumulative CPU time (ns).
    pub cpu_nanos: Option<u64>,
    /// Memory working set (bytes).
    pub memory_bytes: Option<u64>,
    /// When the running instance started (milliseconds since the epoch).
    pub start_time_ms: Option<i64>,
}
