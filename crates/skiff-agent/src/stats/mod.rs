//! The kubelet's stats endpoints on the streaming server: `/metrics/resource` (what
//! metrics-server scrapes), `/stats/summary` (the `stats/v1alpha1` Summary) and
//! `/metrics/cadvisor` (cAdvisor's container series). All three render one [`Snapshot`] taken
//! when asked (no background sampling), of the pods the pod workers run ([`crate::pods::set`],
//! no API call per scrape): their cgroups, network namespaces, volumes, writable layers and
//! logs, and the node's totals. The kubelet's own `/metrics` ([`kubelet`]) adds counters the pod
//! workers keep ([`activity`]) and the mounted claims' volume stats.
//!
//! [`collect`] takes snapshots (and keeps the previous CPU readings for `usageNanoCores`, as
//! the cAdvisor-less kubelet does, in [`rates`]); [`cgroup`] reads cgroup files (v1 and v2),
//! [`netdev`] `/proc/<pid>/net/dev`, [`node`] `/proc` and file-system totals. [`prometheus`],
//! [`summary`] and [`cadvisor`] render the three documents.
//!
//! What does not live here: the `metrics.k8s.io` API and its rates (`skiff-apiserver`'s
//! `metrics` module), authorization of callers (the streaming server).

pub mod activity;
pub mod cadvisor;
pub mod cgroup;
pub mod collect;
pub mod kubelet;
pub mod netdev;
pub mod node;
pub mod prometheus;
pub mod rates;
pub mod summary;

/// One measurement of the node and its pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// When it was taken (milliseconds since the epoch).
    pub timestamp_ms: i64,
    /// The node's totals.
    pub node: NodeUsage,
    /// The pods that have a cgroup.
    pub pods: Vec<PodUsage>,
    /// Some pod or container could not be measured.
    pub scrape_error: bool,
}

/// Memory of a cgroup (or of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Bytes in use, page cache included.
    pub usage: u64,
    /// The working set: usage less inactive file pages.
    pub working_set: u64,
    /// Anonymous memory and swap cache.
    pub rss: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Major page faults.
    pub major_page_faults: Option<u64>,
}

/// Swap of a cgroup (or of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwapUsage {
    /// Bytes swapped out.
    pub usage: u64,
    /// Bytes it may still swap out: its swap limit less the usage; `None` without a limit.
    pub available: Option<u64>,
}

/// CPU of a cgroup (or of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuUsage {
    /// Cumulative CPU time (ns).
    pub total_nanos: u64,
    /// Average usage since the previous snapshot (billionths of a core); `None` on the first.
    pub nano_cores: Option<u64>,
}

/// Counters of one network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// Space and inodes of some storage: a file system's totals where known, what is used of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    /// Bytes of the file system.
    pub capacity: Option<u64>,
    /// Bytes free for unprivileged users.
    pub available: Option<u64>,
    /// Bytes used by what is measured.
    pub used: Option<u64>,
    /// Inodes of the file system.
    pub inodes: Option<u64>,
    /// Free inodes.
    pub inodes_free: Option<u64>,
    /// Inodes used by what is measured.
    pub inodes_used: Option<u64>,
}

/// One process-wide or cgroup-wide "system container" of the node summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemContainer {
    /// `kubelet`, `pods`, …
    pub name: String,
    /// When it started (milliseconds since the epoch).
    pub start_time_ms: Option<i64>,
    /// Its CPU.
    pub cpu: Option<CpuUsage>,
    /// Its memory.
    pub memory: Option<MemoryUsage>,
}

/// The node's totals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeUsage {
    /// The node's name.
    pub name: String,
    /// When the machine booted (milliseconds since the epoch).
    pub start_time_ms: Option<i64>,
    /// Logical CPUs.
    pub cpu_cores: Option<u64>,
    /// Memory of the machine (bytes).
    pub memory_capacity: Option<u64>,
    /// Non-idle CPU time of the machine.
    pub cpu: Option<CpuUsage>,
    /// Memory of the machine.
    pub memory: Option<MemoryUsage>,
    /// Swap of the machine.
    pub swap: Option<SwapUsage>,
    /// The host's interfaces (loopback left out).
    pub network: Vec<Interface>,
    /// The file system of the agent's data (nodefs).
    pub fs: Option<FsUsage>,
    /// The file system of the image store, `used` being the images' size.
    pub image_fs: Option<FsUsage>,
    /// The file system of the containers' writable layers, `used` being their size.
    pub container_fs: Option<FsUsage>,
    /// The device that file system is mounted from (`/dev/vda1`), as the mount table names it.
    pub container_fs_device: Option<String>,
    /// Most process ids, and processes running.
    pub rlimit: Option<(u64, u64)>,
    /// The agent process and the pods' cgroup.
    pub system_containers: Vec<SystemContainer>,
}

/// One volume of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumeUsage {
    /// The volume's name in the pod.
    pub name: String,
    /// Its file system and what the volume uses of it.
    pub fs: FsUsage,
    /// The claim, for a persistentVolumeClaim volume.
    pub pvc_ref: Option<PvcRef>,
}

/// The claim behind a pod's volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PvcRef {
    /// The claim's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// Usage of one pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodUsage {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its cgroup.
    pub cgroup: String,
    /// `status.startTime` (milliseconds since the epoch).
    pub start_time_ms: Option<i64>,
    /// CPU of the pod's cgroup.
    pub cpu: Option<CpuUsage>,
    /// Memory of the pod's cgroup.
    pub memory: Option<MemoryUsage>,
    /// Swap of the pod's cgroup.
    pub swap: Option<SwapUsage>,
    /// The interfaces of its network namespace (loopback left out).
    pub network: Vec<Interface>,
    /// Its volumes with files on the node.
    pub volumes: Vec<VolumeUsage>,
    /// Local storage it uses: writable layers, logs and volumes on the node's disk.
    pub ephemeral: Option<FsUsage>,
    /// Processes in its cgroup.
    pub processes: Option<u64>,
    /// Its running containers.
    pub containers: Vec<ContainerUsage>,
}

/// Usage of one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerUsage {
    /// The container's name.
    pub name: String,
    /// The image it runs, as the pod's status reports it.
    pub image: String,
    /// The runtime id of the running instance.
    pub instance: String,
    /// Its cgroup.
    pub cgroup: String,
    /// When the running instance started (milliseconds since the epoch).
    pub start_time_ms: Option<i64>,
    /// Its CPU.
    pub cpu: Option<CpuUsage>,
    /// Its memory.
    pub memory: Option<MemoryUsage>,
    /// Its swap.
    pub swap: Option<SwapUsage>,
    /// Its writable layer.
    pub rootfs: Option<FsUsage>,
    /// Its log files.
    pub logs: Option<FsUsage>,
}
