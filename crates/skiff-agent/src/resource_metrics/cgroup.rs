//! CPU usage of pod and container cgroups: cumulative CPU time from `cpuacct.usage` (v1, in
//! nanoseconds) or `cpu.stat`'s `usage_usec` (v2), read from the hierarchy that accounts CPU on
//! this host (the v1 `cpuacct` hierarchy on legacy and hybrid hosts, the v2 one otherwise).
//!
//! What does not live here: memory working sets (`crate::eviction::stats::CgroupReader`, shared
//! with the eviction manager), the layout of the hierarchies (`skiff_runtime::cgroups`).

use std::fs;

use skiff_runtime::cgroups::{Hierarchy, Layout, Mode};

/// Reads the cumulative CPU time of cgroups.
#[derive(Debug, Clone)]
pub struct CpuReader {
    hierarchy: Option<(Hierarchy, bool)>,
}

impl CpuReader {
    /// The reader for a cgroup layout.
    pub fn new(layout: &Layout) -> Self {
        let v1 = layout.hierarchies.iter().find(|h| !h.v2 && h.controllers.iter().any(|c| c == "cpuacct"));
        let hierarchy = match (layout.mode, v1) {
            (Mode::Unified, _) | (_, None) => layout.hierarchies.iter().find(|h| h.v2).map(|h| (h.clone(), true)),
            (_, Some(h)) => Some((h.clone(), false)),
        };
        Self { hierarchy }
    }

    /// Cumulative CPU time of `cgroup` in nanoseconds; `None` when it cannot be read.
    pub fn usage_nanos(&self, cgroup: &str) -> Option<u64> {
        let (h, v2) = self.hierarchy.as_ref()?;
        let dir = h.dir(cgroup);
        if *v2 {
            parse_v2_cpu_stat(&fs::read_to_string(dir.join("cpu.stat")).ok()?)
        } else {
            parse_v1_cpuacct_usage(&fs::read_to_string(dir.join("cpuacct.usage")).ok()?)
        }
    }
}

/// Nanoseconds from the content of a v1 `cpuacct.usage` file.
pub fn parse_v1_cpuacct_usage(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Nanoseconds from the `usage_usec` line of a v2 `cpu.stat` file.
pub fn parse_v2_cpu_stat(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(char::is_whitespace)?;
        (key == "usage_usec").then(|| value.trim().parse::<u64>().ok().map(|us| us.saturating_mul(1000))).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn hybrid_hosts_read_the_v1_cpuacct_hierarchy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display();
        let mountinfo = format!(
            "30 25 0:26 / {root}/cpuacct rw - cgroup cgroup rw,cpuacct\n31 25 0:27 / {root}/unified rw - cgroup2 cgroup2 rw\n"
        );
        let layout = Layout::from_proc(&mountinfo, "2:cpuacct:/\n0::/\n");
        write(&dir.path().join("cpuacct/skiff/kubepods/podu/c/cpuacct.usage"), "42\n");
        write(&dir.path().join("unified/skiff/kubepods/podu/c/cpu.stat"), "usage_usec 7\n");
        assert_eq!(CpuReader::new(&layout).usage_nanos("/skiff/kubepods/podu/c"), Some(42));
        assert_eq!(CpuReader::new(&layout).usage_nanos("/skiff/kubepods/podu/missing"), None);
    }

    #[test]
    fn unified_hosts_read_cpu_stat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mountinfo = format!("31 25 0:27 / {} rw - cgroup2 cgroup2 rw\n", dir.path().display());
        let mut layout = Layout::from_proc(&mountinfo, "0::/\n");
        // `from_proc` only calls a v2 mount at /sys/fs/cgroup unified; force it for the test.
        layout.mode = Mode::Unified;
        write(&dir.path().join("skiff/kubepods/podu/cpu.stat"), "usage_usec 3\nuser_usec 3\n");
        assert_eq!(CpuReader::new(&layout).usage_nanos("/skiff/kubepods/podu"), Some(3000));
    }
}
