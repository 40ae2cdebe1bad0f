//! Reading pod and container cgroups, v1 or v2, from the hierarchy that accounts each
//! controller on this host (the v1 one on legacy and hybrid hosts, the v2 one otherwise):
//!
//! - CPU: cumulative time from `cpuacct.usage` (v1, nanoseconds) or `cpu.stat`'s `usage_usec`;
//! - memory: usage (`memory.usage_in_bytes` / `memory.current`), the working set (usage less
//!   inactive file pages), RSS (`total_rss` / `anon`) and page faults (`pgfault`, `pgmajfault`)
//!   from `memory.stat`, as cAdvisor reads them;
//! - swap: `memory.swap.current` and `memory.swap.max` (v2), or the memory+swap accounting
//!   less the memory one (`memory.memsw.*` less `memory.*`, v1, where swap accounting is on);
//! - a process of the cgroup or one below it (`cgroup.procs`), to find its network namespace.
//!
//! What does not live here: the layout of the hierarchies (`skiff_runtime::cgroups`), the
//! eviction manager's own reader (`crate::eviction::stats::CgroupReader`).

use std::fs;
use std::path::PathBuf;

use skiff_runtime::cgroups::{Hierarchy, Layout, Mode};

use super::{MemoryUsage, SwapUsage};
use crate::eviction::signals::working_set;

/// The hierarchy accounting `controller` and whether it is v2.
fn hierarchy_of(layout: &Layout, controller: &str) -> Option<(Hierarchy, bool)> {
    let v1 = layout.hierarchies.iter().find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller));
    match (layout.mode, v1) {
        (Mode::Unified, _) | (_, None) => layout.hierarchies.iter().find(|h| h.v2).map(|h| (h.clone(), true)),
        (_, Some(h)) => Some((h.clone(), false)),
    }
}

/// Reads the CPU and memory accounting of cgroups.
#[derive(Debug, Clone)]
pub struct CgroupStats {
    cpu: Option<(Hierarchy, bool)>,
    memory: Option<(Hierarchy, bool)>,
}

impl CgroupStats {
    /// The reader for a cgroup layout.
    pub fn new(layout: &Layout) -> Self {
        Self { cpu: hierarchy_of(layout, "cpuacct"), memory: hierarchy_of(layout, "memory") }
    }

    /// Cumulative CPU time of `cgroup` in nanoseconds; `None` when it cannot be read.
    pub fn cpu_nanos(&self, cgroup: &str) -> Option<u64> {
        let (h, v2) = self.cpu.as_ref()?;
        let dir = h.dir(cgroup);
        if *v2 {
            parse_v2_cpu_stat(&fs::read_to_string(dir.join("cpu.stat")).ok()?)
        } else {
            parse_v1_cpuacct_usage(&fs::read_to_string(dir.join("cpuacct.usage")).ok()?)
        }
    }

    /// Memory of `cgroup`; `None` when its usage cannot be read.
    pub fn memory(&self, cgroup: &str) -> Option<MemoryUsage> {
        let (h, v2) = self.memory.as_ref()?;
        let dir = h.dir(cgroup);
        let usage = fs::read_to_string(dir.join(if *v2 { "memory.current" } else { "memory.usage_in_bytes" })).ok()?;
        let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        parse_memory(&usage, &stat, *v2)
    }

    /// Swap of `cgroup`; `None` when the host does not account it.
    pub fn swap(&self, cgroup: &str) -> Option<SwapUsage> {
        let (h, v2) = self.memory.as_ref()?;
        let dir = h.dir(cgroup);
        let read = |file: &str| fs::read_to_string(dir.join(file)).ok();
        if *v2 {
            parse_v2_swap(&read("memory.swap.current")?, &read("memory.swap.max").unwrap_or_default())
        } else {
            let limits = (read("memory.memsw.limit_in_bytes")?, read("memory.limit_in_bytes")?);
            parse_v1_swap(&read("memory.memsw.usage_in_bytes")?, &read("memory.usage_in_bytes")?, limits)
        }
    }

    /// A process in `cgroup` or below it (pod cgroups hold none themselves on v2); `None` when
    /// it is empty.
    pub fn any_process(&self, cgroup: &str) -> Option<u32> {
        let (h, _) = self.cpu.as_ref().or(self.memory.as_ref())?;
        first_process(&h.dir(cgroup), 2)
    }
}

fn first_process(dir: &std::path::Path, depth: u8) -> Option<u32> {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    if let Some(pid) = procs.lines().find_map(|l| l.trim().parse().ok()) {
        return Some(pid);
    }
    if depth == 0 {
        return None;
    }
    let mut children: Vec<PathBuf> =
        fs::read_dir(dir).ok()?.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
    children.sort();
    children.iter().find_map(|child| first_process(child, depth - 1))
}

/// Nanoseconds from the content of a v1 `cpuacct.usage` file.
pub fn parse_v1_cpuacct_usage(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a `key value` file (`cpu.stat`, `memory.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Nanoseconds from the `usage_usec` line of a v2 `cpu.stat` file.
pub fn parse_v2_cpu_stat(text: &str) -> Option<u64> {
    stat_value(text, "usage_usec").map(|us| us.saturating_mul(1000))
}

/// Memory from the text of the usage file and of `memory.stat` (v1 keys `total_rss`,
/// `pgfault`, `pgmajfault`; v2 keys `anon`, `pgfault`, `pgmajfault`).
pub fn parse_memory(usage: &str, stat: &str, v2: bool) -> Option<MemoryUsage> {
    let usage: u64 = usage.trim().parse().ok()?;
    Some(MemoryUsage {
        usage,
        working_set: working_set(usage, stat, v2),
        rss: stat_value(stat, if v2 { "anon" } else { "total_rss" }),
        page_faults: stat_value(stat, "pgfault"),
        major_page_faults: stat_value(stat, "pgmajfault"),
    })
}

/// Swap from the texts of v2 `memory.swap.current` and `memory.swap.max` (`max`: no limit).
pub fn parse_v2_swap(current: &str, max: &str) -> Option<SwapUsage> {
    let usage: u64 = current.trim().parse().ok()?;
    let limit: Option<u64> = max.trim().parse().ok();
    Some(SwapUsage { usage, available: limit.map(|l| l.saturating_sub(usage)) })
}

/// v1 limits at or above this are "unlimited" (the kernel writes the page-rounded `i64::MAX`).
const V1_UNLIMITED: u64 = 1 << 62;

/// Swap from the texts of v1 `memory.memsw.usage_in_bytes` and `memory.usage_in_bytes`, and
/// `limits`: those of `memory.memsw.limit_in_bytes` and `memory.limit_in_bytes`. The swap
/// limit is the memory+swap limit less the memory one, none when the former is unlimited.
pub fn parse_v1_swap(memsw_usage: &str, usage: &str, limits: (String, String)) -> Option<SwapUsage> {
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let swapped = number(memsw_usage)?.saturating_sub(number(usage)?);
    let limit = match (number(&limits.0), number(&limits.1)) {
        (Some(memsw), Some(memory)) if memsw < V1_UNLIMITED => Some(memsw.saturating_sub(memory)),
        _ => None,
    };
    Some(SwapUsage { usage: swapped, available: limit.map(|l| l.saturating_sub(swapped)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const V1_MEMORY_STAT: &str = "cache 8192\nrss 4096\npgfault 120\npgmajfault 3\ninactive_file 1024\n\
        total_cache 16384\ntotal_rss 12288\ntotal_pgfault 500\ntotal_pgmajfault 9\ntotal_inactive_file 4096\n";
    const V2_MEMORY_STAT: &str = "anon 12288\nfile 16384\nkernel_stack 0\ninactive_anon 0\nactive_anon 12288\n\
        inactive_file 4096\nactive_file 12288\npgfault 500\npgmajfault 9\n";

    #[test]
    fn swap_is_read_from_either_version() {
        assert_eq!(parse_v2_swap("4096\n", "max\n"), Some(SwapUsage { usage: 4096, available: None }));
        assert_eq!(parse_v2_swap("4096\n", "10240\n"), Some(SwapUsage { usage: 4096, available: Some(6144) }));
        assert_eq!(parse_v2_swap("", "max"), None);
        let unlimited = ("9223372036854771712\n".to_string(), "9223372036854771712\n".to_string());
        assert_eq!(parse_v1_swap("12288\n", "8192\n", unlimited), Some(SwapUsage { usage: 4096, available: None }));
        let limited = ("20480".to_string(), "10240".to_string());
        assert_eq!(parse_v1_swap("12288", "8192", limited), Some(SwapUsage { usage: 4096, available: Some(6144) }));
    }

    #[test]
    fn v1_usage_is_in_nanoseconds() {
        assert_eq!(parse_v1_cpuacct_usage("123456789\n"), Some(123_456_789));
        assert_eq!(parse_v1_cpuacct_usage("garbage"), None);
    }

    #[test]
    fn v2_usage_comes_from_usage_usec() {
        let stat = "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_v2_cpu_stat(stat), Some(2_500_000));
        assert_eq!(parse_v2_cpu_stat("user_usec 1\n"), None);
    }

    #[test]
    fn v1_memory_uses_hierarchical_rss_and_own_page_faults() {
        let m = parse_memory("32768\n", V1_MEMORY_STAT, false).expect("memory");
        assert_eq!(
            m,
            MemoryUsage {
                usage: 32768,
                working_set: 28672,
                rss: Some(12288),
                page_faults: Some(120),
                major_page_faults: Some(3)
            }
        );
    }

    #[test]
    fn v2_memory_uses_anon_as_rss() {
        let m = parse_memory("32768\n", V2_MEMORY_STAT, true).expect("memory");
        assert_eq!(
            m,
            MemoryUsage {
                usage: 32768,
                working_set: 28672,
                rss: Some(12288),
                page_faults: Some(500),
                major_page_faults: Some(9)
            }
        );
        assert_eq!(parse_memory("max", "", true), None);
        let bare = parse_memory("100", "", true).expect("usage alone");
        assert_eq!((bare.working_set, bare.rss), (100, None));
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn hybrid_hosts_read_the_v1_hierarchies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display();
        let mountinfo = format!(
            "30 25 0:26 / {root}/cpuacct rw - cgroup cgroup rw,cpuacct\n\
             32 25 0:28 / {root}/memory rw - cgroup cgroup rw,memory\n\
             31 25 0:27 / {root}/unified rw - cgroup2 cgroup2 rw\n"
        );
        let layout = Layout::from_proc(&mountinfo, "2:cpuacct:/\n4:memory:/\n0::/\n");
        write(&dir.path().join("cpuacct/skiff/kubepods/podu/c/cpuacct.usage"), "42\n");
        write(&dir.path().join("cpuacct/skiff/kubepods/podu/c/cgroup.procs"), "77\n");
        write(&dir.path().join("unified/skiff/kubepods/podu/c/cpu.stat"), "usage_usec 7\n");
        write(&dir.path().join("memory/skiff/kubepods/podu/c/memory.usage_in_bytes"), "32768\n");
        write(&dir.path().join("memory/skiff/kubepods/podu/c/memory.stat"), V1_MEMORY_STAT);
        let stats = CgroupStats::new(&layout);
        assert_eq!(stats.cpu_nanos("/skiff/kubepods/podu/c"), Some(42));
        assert_eq!(stats.cpu_nanos("/skiff/kubepods/podu/missing"), None);
        assert_eq!(stats.memory("/skiff/kubepods/podu/c").map(|m| m.working_set), Some(28672));
        assert_eq!(stats.any_process("/skiff/kubepods/podu"), Some(77));
        assert_eq!(stats.any_process("/skiff/kubepods/other"), None);
    }

    #[test]
    fn unified_hosts_read_cpu_stat_and_memory_current() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mountinfo = format!("31 25 0:27 / {} rw - cgroup2 cgroup2 rw\n", dir.path().display());
        let mut layout = Layout::from_proc(&mountinfo, "0::/\n");
        // `from_proc` only calls a v2 mount at /sys/fs/cgroup unified; force it for the test.
        layout.mode = Mode::Unified;
        write(&dir.path().join("skiff/kubepods/podu/cpu.stat"), "usage_usec 3\nuser_usec 3\n");
        write(&dir.path().join("skiff/kubepods/podu/memory.current"), "32768\n");
        write(&dir.path().join("skiff/kubepods/podu/memory.stat"), V2_MEMORY_STAT);
        let stats = CgroupStats::new(&layout);
        assert_eq!(stats.cpu_nanos("/skiff/kubepods/podu"), Some(3000));
        assert_eq!(stats.memory("/skiff/kubepods/podu").and_then(|m| m.rss), Some(12288));
    }
}
