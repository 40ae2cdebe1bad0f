//! Node totals as the kubelet's node summary reports them: cumulative CPU time of the whole
//! machine (the non-idle time of `/proc/stat`'s `cpu` line) and the node's memory working set
//! (the root memory cgroup's working set on v1 hosts, `/proc/meminfo` otherwise, as the eviction
//! manager measures it).
//!
//! What does not live here: per-pod usage ([`super::cgroup`]), the eviction signals themselves
//! (`crate::eviction::signals`).

use std::fs;

use crate::eviction::signals::{self, MemorySource};

/// Cumulative non-idle CPU time in nanoseconds from the text of `/proc/stat` and the clock
/// ticks per second (`USER_HZ`): user, nice, system, irq, softirq and steal (guest time is
/// already part of user time).
pub fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    if fields.len() < 4 || ticks_per_second == 0 {
        return None;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy: u64 = [0usize, 1, 2, 5, 6, 7].iter().filter_map(|i| fields.get(*i)).sum();
    Some((u128::from(busy) * 1_000_000_000 / u128::from(ticks_per_second)) as u64)
}

fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// The node's cumulative CPU time in nanoseconds. Blocking.
pub fn cpu_usage_nanos() -> Option<u64> {
    parse_proc_stat(&fs::read_to_string("/proc/stat").ok()?, ticks_per_second())
}

/// The node's memory working set in bytes. Blocking.
pub fn memory_working_set(source: &MemorySource) -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let observed = signals::memory(source, &meminfo)?;
    u64::try_from(observed.capacity - observed.available).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_counts_non_idle_time() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 7 0\ncpu0 50 10 15 500 25 2 2 5 3 0\nintr 1 2 3\n";
        // 100 + 20 + 30 + 5 + 5 + 10 = 170 ticks at 100 Hz = 1.7 s
        assert_eq!(parse_proc_stat(stat, 100), Some(1_700_000_000));
        assert_eq!(parse_proc_stat("intr 1\n", 100), None);
        assert_eq!(parse_proc_stat(stat, 0), None);
    }
}
