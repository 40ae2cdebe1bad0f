//! What each pod uses of the resources eviction reclaims, as the kubelet's summary reports it:
//! the memory working set of the pod's cgroup and of each container's, its processes
//! (`pids.current`), and its ephemeral storage split by kind: each container's writable layer
//! and logs, and the pod's local volumes on disk (emptyDirs, configMaps; tmpfs volumes are not
//! disk), in bytes and inodes.
//!
//! What does not live here: node-wide signals ([`super::signals`]) and the ranking that uses
//! these numbers ([`super::rank`]).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use skiff_runtime::cgroups::{Hierarchy, Layout, Mode};

use super::signals::working_set;

/// Bytes and inodes some files take on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Allocated bytes.
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
}

impl DiskUsage {
    fn add(self, other: DiskUsage) -> DiskUsage {
        DiskUsage { bytes: self.bytes + other.bytes, inodes: self.inodes + other.inodes }
    }
}

/// One container's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// Memory working set (when its cgroup could be read).
    pub memory: Option<u64>,
    /// Its writable layer.
    pub rootfs: DiskUsage,
    /// Its log files.
    pub logs: DiskUsage,
}

/// One pod's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStats {
    /// Memory working set of the pod's cgroup.
    pub memory: Option<u64>,
    /// Processes in the pod's cgroup.
    pub processes: Option<u64>,
    /// Its containers, by name.
    pub containers: BTreeMap<String, ContainerStats>,
    /// Its volumes on the node's disk.
    pub volumes: DiskUsage,
}

/// Which kinds of storage a disk signal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsKinds {
    /// Writable layers.
    pub rootfs: bool,
    /// Logs.
    pub logs: bool,
    /// Local volumes.
    pub volumes: bool,
}

impl FsKinds {
    /// Everything (one file system for images and the agent's data).
    pub const ALL: FsKinds = FsKinds { rootfs: true, logs: true, volumes: true };
}

impl PodStats {
    /// The pod's disk usage of the kinds asked for.
    pub fn disk(&self, kinds: FsKinds) -> DiskUsage {
        let mut total = DiskUsage::default();
        for c in self.containers.values() {
            if kinds.rootfs {
                total = total.add(c.rootfs);
            }
            if kinds.logs {
                total = total.add(c.logs);
            }
        }
        if kinds.volumes {
            total = total.add(self.volumes);
        }
        total
    }
}

/// Bytes and inodes under `dir`, not crossing into other file systems (so tmpfs volumes and
/// mounts inside it are not counted), each hard-linked file once. Missing paths count zero.
pub fn disk_usage(dir: &Path) -> DiskUsage {
    fn walk(path: &Path, dev: u64, seen: &mut HashSet<u64>, total: &mut DiskUsage) {
        let Ok(meta) = fs::symlink_metadata(path) else { return };
        if meta.dev() != dev {
            return;
        }
        if seen.insert(meta.ino()) {
            total.bytes = total.bytes.saturating_add(meta.blocks().saturating_mul(512));
            total.inodes += 1;
        }
        if meta.is_dir()
            && let Ok(entries) = fs::read_dir(path)
        {
            for entry in entries.flatten() {
                walk(&entry.path(), dev, seen, total);
            }
        }
    }
    let mut total = DiskUsage::default();
    if let Ok(meta) = fs::metadata(dir) {
        walk(dir, meta.dev(), &mut HashSet::new(), &mut total);
    }
    total
}

/// Reads cgroup files of pods (memory and pids) on this host.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    memory: Option<(Hierarchy, bool)>,
    pids: Option<(Hierarchy, bool)>,
}

impl CgroupReader {
    /// The reader for a cgroup layout.
    pub fn new(layout: &Layout) -> Self {
        let find = |controller: &str| {
            let v1 = layout.hierarchies.iter().find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller));
            match (layout.mode, v1) {
                (Mode::Unified, _) | (_, None) => layout.hierarchies.iter().find(|h| h.v2).map(|h| (h.clone(), true)),
                (_, Some(h)) => Some((h.clone(), false)),
            }
        };
        Self { memory: find("memory"), pids: find("pids") }
    }

    /// Working set of `cgroup` (v1: usage less `total_inactive_file`; v2: `memory.current` less
    /// `inactive_file`).
    pub fn memory(&self, cgroup: &str) -> Option<u64> {
        let (h, v2) = self.memory.as_ref()?;
        let dir = h.dir(cgroup);
        let usage: u64 = fs::read_to_string(dir.join(if *v2 { "memory.current" } else { "memory.usage_in_bytes" }))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        Some(working_set(usage, &stat, *v2))
    }

    /// Processes (tasks) in `cgroup`.
    pub fn processes(&self, cgroup: &str) -> Option<u64> {
        let (h, _) = self.pids.as_ref()?;
        fs::read_to_string(h.dir(cgroup).join("pids.current")).ok()?.trim().parse().ok()
    }
}

/// Where a pod's files are.
#[derive(Debug, Clone)]
pub struct PodPaths {
    /// `<agent>/containers`.
    pub containers: PathBuf,
    /// `<agent>/pods`.
    pub pods: PathBuf,
    /// `/var/log/pods`.
    pub logs: PathBuf,
}

/// Measures `pod` (whose cgroup is `cgroup`); `instances` are the runtime ids of the node's
/// container instances. `None` when the pod has no cgroup (nothing of it runs). Blocking.
pub fn pod_stats(
    pod: &Pod,
    cgroup: &str,
    reader: &CgroupReader,
    paths: &PodPaths,
    instances: &[String],
) -> Option<PodStats> {
    let uid = pod.metadata.uid.as_deref()?;
    let memory = reader.memory(cgroup);
    let processes = reader.processes(cgroup);
    if memory.is_none() && processes.is_none() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let log_dir = paths.logs.join(format!("{ns}_{name}_{uid}"));
    let spec = pod.spec.as_ref();
    let names = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .map(|c| c.name.clone());
    let mut containers = BTreeMap::new();
    for container in names {
        let prefix = format!("{uid}-{container}-");
        let rootfs = instances
            .iter()
            .filter(|id| id.strip_prefix(&prefix).is_some_and(|a| a.parse::<u32>().is_ok()))
            .map(|id| disk_usage(&paths.containers.join(id).join("upper")))
            .fold(DiskUsage::default(), DiskUsage::add);
        let stats = ContainerStats {
            memory: reader.memory(&format!("{}/{container}", cgroup.trim_end_matches('/'))),
            rootfs,
            logs: disk_usage(&log_dir.join(&container)),
        };
        containers.insert(container, stats);
    }
    let volumes = disk_usage(&paths.pods.join(uid).join("volumes"));
    Some(PodStats { memory, processes, containers, volumes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_layout(root: &Path) -> Layout {
        let mountinfo = format!(
            "30 25 0:26 / {0}/memory rw - cgroup cgroup rw,memory\n31 25 0:27 / {0}/pids rw - cgroup cgroup rw,pids\n",
            root.display()
        );
        Layout::from_proc(&mountinfo, "4:memory:/\n8:pids:/\n")
    }

    #[test]
    fn reads_pod_and_container_cgroups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_cg = "/skiff/kubepods/besteffort/poduid";
        let mem = dir.path().join("memory/skiff/kubepods/besteffort/poduid");
        fs::create_dir_all(mem.join("main")).expect("dirs");
        fs::write(mem.join("memory.usage_in_bytes"), "5000\n").expect("usage");
        fs::write(mem.join("memory.stat"), "total_inactive_file 1000\n").expect("stat");
        fs::write(mem.join("main/memory.usage_in_bytes"), "3000\n").expect("usage");
        fs::write(mem.join("main/memory.stat"), "total_inactive_file 500\n").expect("stat");
        let pids = dir.path().join("pids/skiff/kubepods/besteffort/poduid");
        fs::create_dir_all(&pids).expect("dirs");
        fs::write(pids.join("pids.current"), "3\n").expect("pids");
        let reader = CgroupReader::new(&v1_layout(dir.path()));
        assert_eq!(reader.memory(pod_cg), Some(4000));
        assert_eq!(reader.processes(pod_cg), Some(3));

        let paths = PodPaths {
            containers: dir.path().join("containers"),
            pods: dir.path().join("pods"),
            logs: dir.path().join("logs"),
        };
        let upper = paths.containers.join("uid-main-1/upper");
        fs::create_dir_all(&upper).expect("upper");
        fs::write(upper.join("data"), vec![1u8; 8192]).expect("data");
        let logs = paths.logs.join("ns_p_uid/main");
        fs::create_dir_all(&logs).expect("logs");
        fs::write(logs.join("1.log"), vec![b'x'; 4096]).expect("log");
        let vol = paths.pods.join("uid/volumes/kubernetes.io~empty-dir/scratch");
        fs::create_dir_all(&vol).expect("vol");
        fs::write(vol.join("f"), vec![0u8; 4096]).expect("f");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid"},
            "spec": {"containers": [{"name": "main"}]}
        }))
        .expect("pod");
        let instances = vec!["uid-main-1".to_string(), "uid-main2-0".to_string(), "other-main-0".to_string()];
        let stats = pod_stats(&pod, pod_cg, &reader, &paths, &instances).expect("stats");
        assert_eq!(stats.memory, Some(4000));
        assert_eq!(stats.processes, Some(3));
        let main = stats.containers["main"];
        assert_eq!(main.memory, Some(2500));
        assert!(main.rootfs.bytes >= 8192 && main.rootfs.inodes == 2, "{main:?}");
        assert!(main.logs.bytes >= 4096 && main.logs.inodes == 2, "{main:?}");
        assert!(stats.volumes.inodes == 4, "{:?}", stats.volumes);
        let all = stats.disk(FsKinds::ALL);
        assert_eq!(all.inodes, 8);
        let logs_only = stats.disk(FsKinds { rootfs: false, logs: true, volumes: false });
        assert_eq!(logs_only, main.logs);

        assert!(pod_stats(&pod, "/nowhere", &reader, &paths, &instances).is_none(), "no cgroup, no stats");
    }
}
