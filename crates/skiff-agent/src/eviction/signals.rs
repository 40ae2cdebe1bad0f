//! Measuring the eviction signals on this node, as the kubelet's summary provider does:
//!
//! - `memory.available`: the node's memory capacity less the working set of the root cgroup
//!   (usage less inactive file pages). With a v1 memory controller that is the root's
//!   `memory.usage_in_bytes` less `total_inactive_file`; on a v2-only host the root cgroup has
//!   no usage file, so usage is `MemTotal − MemFree` and the inactive file pages come from
//!   `/proc/meminfo` (as runc reports the root).
//! - `nodefs.*`: `statvfs` of the agent's data directory (which holds pod volumes; the log
//!   directory is measured too when it is on another file system, the smaller wins);
//!   `imagefs.*`: `statvfs` of the image store. Available bytes are what unprivileged users may
//!   use, as cAdvisor reports them.
//! - `pid.available`: the smaller of `kernel.pid_max` and `kernel.threads-max`, less the tasks
//!   running (`sysinfo`'s process count).
//!
//! The readers take their roots as parameters, so tests feed them fixture files. What does not
//! live here: per-pod usage ([`super::stats`]) and the decisions ([`super::EvictionManager`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use skiff_runtime::cgroups::{Layout, Mode};

use super::thresholds::Signal;

/// One measured signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// What is left (bytes, inodes, pids).
    pub available: i64,
    /// The total it is a part of.
    pub capacity: i64,
}

/// Every signal measured in one pass.
pub type Observations = BTreeMap<Signal, Observation>;

/// The value of `key` in a `key value` file (`memory.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Working set of a cgroup from its usage and `memory.stat` (v1 `total_inactive_file`, v2
/// `inactive_file`), never below zero.
pub fn working_set(usage: u64, stat: &str, v2: bool) -> u64 {
    let inactive = stat_value(stat, if v2 { "inactive_file" } else { "total_inactive_file" }).unwrap_or(0);
    usage.saturating_sub(inactive)
}

/// Where the node's memory accounting is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemorySource {
    /// The root of a v1 memory hierarchy mounted at this directory.
    V1(PathBuf),
    /// A v2-only host: `/proc/meminfo`.
    Meminfo,
}

impl MemorySource {
    /// The source on this host.
    pub fn host() -> Self {
        let layout = Layout::host();
        match layout.hierarchies.iter().find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory")) {
            Some(h) if layout.mode != Mode::Unified => Self::V1(h.mount.clone()),
            _ => Self::Meminfo,
        }
    }
}

/// `memory.available` from `meminfo` (the text of `/proc/meminfo`) and the source.
pub fn memory(source: &MemorySource, meminfo: &str) -> Option<Observation> {
    let capacity = meminfo_bytes(meminfo, "MemTotal")?;
    let working_set = match source {
        MemorySource::V1(root) => {
            let usage: u64 = fs::read_to_string(root.join("memory.usage_in_bytes")).ok()?.trim().parse().ok()?;
            let stat = fs::read_to_string(root.join("memory.stat")).unwrap_or_default();
            working_set(usage, &stat, false)
        }
        MemorySource::Meminfo => {
            let usage = capacity.saturating_sub(meminfo_bytes(meminfo, "MemFree")?);
            usage.saturating_sub(meminfo_bytes(meminfo, "Inactive(file)").unwrap_or(0))
        }
    };
    Some(Observation { available: capacity as i64 - working_set as i64, capacity: capacity as i64 })
}

/// Bytes and inodes of one file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes free for unprivileged users, and the total.
    pub bytes: Observation,
    /// Free inodes, and the total.
    pub inodes: Observation,
    /// The device (to tell a dedicated image file system apart).
    pub device: u64,
}

/// `statvfs` of the file system holding `path`.
pub fn fs_stats(path: &Path) -> io::Result<FsStats> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let block = st.fragment_size() as i64;
    Ok(FsStats {
        bytes: Observation { available: st.blocks_available() as i64 * block, capacity: st.blocks() as i64 * block },
        inodes: Observation { available: st.files_free() as i64, capacity: st.files() as i64 },
        device: fs::metadata(path)?.dev(),
    })
}

/// `pid.available` from the texts of `pid_max` and `threads-max` and the running task count.
pub fn pids(pid_max: &str, threads_max: &str, running: u64) -> Option<Observation> {
    let limits = [pid_max, threads_max].map(|t| t.trim().parse::<i64>().ok());
    let max = limits.iter().flatten().copied().min()?;
    Some(Observation { available: max - running as i64, capacity: max })
}

/// Tasks (processes and threads) on the host.
fn running_tasks() -> Option<u64> {
    nix::sys::sysinfo::sysinfo().ok().map(|i| i.process_count() as u64)
}

/// The paths the node's signals are measured at.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The agent's data directory (nodefs).
    pub node_fs: PathBuf,
    /// The container log directory (also nodefs).
    pub log_dir: PathBuf,
    /// The image store (imagefs).
    pub image_fs: PathBuf,
}

/// What one pass measured: the signals, and whether images live on their own file system.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// The signals measured (a signal that could not be read is absent).
    pub observations: Observations,
    /// The image store is on another file system than the data directory.
    pub dedicated_image_fs: bool,
}

/// Measures every signal on this host. Blocking.
pub fn measure(paths: &Paths, memory_source: &MemorySource) -> Measurement {
    let mut out = Observations::new();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(m) = memory(memory_source, &meminfo) {
        out.insert(Signal::MemoryAvailable, m);
    }
    let node = fs_stats(&paths.node_fs).ok();
    // The log directory counts when it is on another file system: the fuller one decides.
    let logs = fs_stats(&paths.log_dir).ok().filter(|l| node.is_none_or(|n| n.device != l.device));
    let node = match (node, logs) {
        (Some(n), Some(l)) if l.bytes.available < n.bytes.available => Some(l),
        (n, l) => n.or(l),
    };
    if let Some(n) = node {
        out.insert(Signal::NodeFsAvailable, n.bytes);
        out.insert(Signal::NodeFsInodesFree, n.inodes);
    }
    let image = fs_stats(&paths.image_fs).ok();
    if let Some(i) = image {
        out.insert(Signal::ImageFsAvailable, i.bytes);
        out.insert(Signal::ImageFsInodesFree, i.inodes);
    }
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    if let Some(p) =
        running_tasks().and_then(|n| pids(&read("/proc/sys/kernel/pid_max"), &read("/proc/sys/kernel/threads-max"), n))
    {
        out.insert(Signal::PidAvailable, p);
    }
    let dedicated_image_fs = matches!((node, image), (Some(n), Some(i)) if n.device != i.device);
    Measurement { observations: out, dedicated_image_fs }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:          202148 kB\n\
                           MemAvailable:   23590936 kB\nInactive(file): 12211044 kB\n";

    #[test]
    fn memory_from_a_v1_root_cgroup() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("memory.usage_in_bytes"), "24109682688\n").expect("usage");
        fs::write(
            dir.path().join("memory.stat"),
            "cache 1\ninactive_file 5\ntotal_cache 23516680192\ntotal_inactive_file 11783090176\n",
        )
        .expect("stat");
        let m = memory(&MemorySource::V1(dir.path().into()), MEMINFO).expect("observation");
        let capacity = 24_684_096 * 1024;
        assert_eq!(m.capacity, capacity);
        assert_eq!(m.available, capacity - (24_109_682_688 - 11_783_090_176));
        assert!(memory(&MemorySource::V1(dir.path().join("missing")), MEMINFO).is_none());
    }

    #[test]
    fn memory_from_meminfo_on_v2() {
        let m = memory(&MemorySource::Meminfo, MEMINFO).expect("observation");
        // available = MemFree + Inactive(file).
        assert_eq!(m.available, (202_148 + 12_211_044) * 1024);
        assert_eq!(m.capacity, 24_684_096 * 1024);
        assert!(memory(&MemorySource::Meminfo, "").is_none());
    }

    #[test]
    fn working_sets_subtract_inactive_file_pages() {
        assert_eq!(working_set(1000, "total_inactive_file 300\n", false), 700);
        assert_eq!(working_set(1000, "anon 5\ninactive_file 400\n", true), 600);
        assert_eq!(working_set(100, "inactive_file 400\n", true), 0);
        assert_eq!(working_set(100, "", true), 100);
    }

    #[test]
    fn pids_take_the_lower_limit() {
        assert_eq!(pids("32768\n", "192731\n", 300), Some(Observation { available: 32468, capacity: 32768 }));
        assert_eq!(pids("4194304", "1000", 10), Some(Observation { available: 990, capacity: 1000 }));
        assert_eq!(pids("x", "", 10), None);
    }

    #[test]
    fn file_systems_are_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths { node_fs: dir.path().into(), log_dir: dir.path().into(), image_fs: dir.path().into() };
        let m = measure(&paths, &MemorySource::Meminfo);
        let node = m.observations[&Signal::NodeFsAvailable];
        assert!(node.capacity > 0 && node.available <= node.capacity);
        // Measured by a second statvfs: the same file system, whose free space may have moved
        // in between while other processes write.
        assert_eq!(m.observations[&Signal::ImageFsAvailable].capacity, node.capacity);
        assert!(!m.dedicated_image_fs);
        assert!(m.observations.contains_key(&Signal::PidAvailable));
        assert!(m.observations.contains_key(&Signal::MemoryAvailable));
    }
}
