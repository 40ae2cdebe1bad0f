//! Node totals as the kubelet's node summary reports them: cumulative CPU time of the whole
//! machine (the non-idle time of `/proc/stat`'s `cpu` line), its boot time (`btime`), its memory
//! (the root memory cgroup on v1 hosts, `/proc/meminfo` and `/proc/vmstat` otherwise, as the
//! eviction manager measures it), swap (`/proc/meminfo`), process limits, file systems and the
//! devices they are mounted from, and the agent's own process
//! (`/proc/self/stat`: skiff runs the agent in the server's process).
//!
//! What does not live here: per-pod usage ([`super::cgroup`]), the eviction signals themselves
//! (`crate::eviction::signals`).

use std::fs;
use std::path::Path;

use super::{FsUsage, MemoryUsage, SwapUsage};
use crate::eviction::signals::{self, MemorySource, meminfo_bytes};

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
    Some(ticks_to_nanos(busy, ticks_per_second))
}

fn ticks_to_nanos(ticks: u64, ticks_per_second: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(ticks_per_second.max(1))) as u64
}

/// The boot time (seconds since the epoch) from the `btime` line of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<i64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
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

/// When the machine booted (milliseconds since the epoch). Blocking.
pub fn boot_time_ms() -> Option<i64> {
    parse_boot_time(&fs::read_to_string("/proc/stat").ok()?).map(|s| s * 1000)
}

/// Logical CPUs of the machine.
pub fn cpu_cores() -> Option<u64> {
    std::thread::available_parallelism().ok().map(|n| n.get() as u64)
}

/// The machine's memory (bytes) from `/proc/meminfo`. Blocking.
pub fn memory_capacity() -> Option<u64> {
    meminfo_bytes(&fs::read_to_string("/proc/meminfo").ok()?, "MemTotal")
}

/// The node's memory from `/proc/meminfo` and `/proc/vmstat` texts (a v2-only host): usage is
/// what is not free, the working set that less inactive file pages, RSS the anonymous pages.
pub fn parse_meminfo_usage(meminfo: &str, vmstat: &str) -> Option<MemoryUsage> {
    let usage = meminfo_bytes(meminfo, "MemTotal")?.saturating_sub(meminfo_bytes(meminfo, "MemFree")?);
    let vm = |key: &str| vmstat.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok());
    Some(MemoryUsage {
        usage,
        working_set: usage.saturating_sub(meminfo_bytes(meminfo, "Inactive(file)").unwrap_or(0)),
        rss: meminfo_bytes(meminfo, "AnonPages"),
        page_faults: vm("pgfault"),
        major_page_faults: vm("pgmajfault"),
    })
}

/// The machine's swap from the text of `/proc/meminfo`: what is used of `SwapTotal`, and
/// `SwapFree`.
pub fn parse_meminfo_swap(meminfo: &str) -> Option<SwapUsage> {
    let (total, free) = (meminfo_bytes(meminfo, "SwapTotal")?, meminfo_bytes(meminfo, "SwapFree")?);
    Some(SwapUsage { usage: total.saturating_sub(free), available: Some(free) })
}

/// The machine's swap. Blocking.
pub fn swap() -> Option<SwapUsage> {
    parse_meminfo_swap(&fs::read_to_string("/proc/meminfo").ok()?)
}

/// The device the file system holding `path` is mounted from, as the mount table names it
/// (`/dev/vda1`, `overlay`). Blocking.
pub fn device_of(path: &Path) -> Option<String> {
    let entries = crate::volumes::mountinfo::read().ok()?;
    let real = crate::volumes::mountinfo::real(path);
    crate::volumes::mountinfo::containing(&entries, &real).map(|m| m.source.clone())
}

/// The node's memory. Blocking.
pub fn memory(source: &MemorySource) -> Option<MemoryUsage> {
    match source {
        MemorySource::V1(root) => {
            let usage = fs::read_to_string(root.join("memory.usage_in_bytes")).ok()?;
            let stat = fs::read_to_string(root.join("memory.stat")).unwrap_or_default();
            super::cgroup::parse_memory(&usage, &stat, false)
        }
        MemorySource::Meminfo => parse_meminfo_usage(
            &fs::read_to_string("/proc/meminfo").ok()?,
            &fs::read_to_string("/proc/vmstat").unwrap_or_default(),
        ),
    }
}

/// The most process ids (the smaller of `pid_max` and `threads-max`) and the tasks running.
/// Blocking.
pub fn rlimit() -> Option<(u64, u64)> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let running = nix::sys::sysinfo::sysinfo().ok()?.process_count() as u64;
    let observed = signals::pids(&read("/proc/sys/kernel/pid_max"), &read("/proc/sys/kernel/threads-max"), running)?;
    Some((u64::try_from(observed.capacity).ok()?, running))
}

/// The file system holding `path`: its size, free space and inodes. Blocking.
pub fn fs_totals(path: &Path) -> Option<FsUsage> {
    let st = signals::fs_stats(path).ok()?;
    let non_negative = |v: i64| u64::try_from(v).ok();
    Some(FsUsage {
        capacity: non_negative(st.bytes.capacity),
        available: non_negative(st.bytes.available),
        used: non_negative(st.bytes.capacity - st.bytes.available),
        inodes: non_negative(st.inodes.capacity),
        inodes_free: non_negative(st.inodes.available),
        inodes_used: non_negative(st.inodes.capacity - st.inodes.available),
    })
}

/// A process's CPU time (ns), resident memory (bytes) and start (milliseconds since the epoch)
/// from the text of its `/proc/<pid>/stat`, the clock ticks per second, the page size and the
/// boot time (seconds since the epoch).
pub fn parse_process_stat(text: &str, ticks_per_second: u64, page_size: u64, boot_s: i64) -> Option<(u64, u64, i64)> {
    // The command may hold spaces and parentheses: fields are counted after the last `)`.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let cpu = ticks_to_nanos(field(14)? + field(15)?, ticks_per_second);
    let rss = field(24)?.saturating_mul(page_size);
    let start_ms = boot_s * 1000 + (field(22)? * 1000 / ticks_per_second.max(1)) as i64;
    Some((cpu, rss, start_ms))
}

/// The agent's own process: CPU time (ns), resident memory (bytes), start. Blocking.
pub fn own_process() -> Option<(u64, u64, i64)> {
    let page_size = match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(p)) if p > 0 => p as u64,
        _ => 4096,
    };
    let boot = parse_boot_time(&fs::read_to_string("/proc/stat").ok()?)?;
    parse_process_stat(&fs::read_to_string("/proc/self/stat").ok()?, ticks_per_second(), page_size, boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_counts_non_idle_time_and_gives_the_boot_time() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 7 0\ncpu0 50 10 15 500 25 2 2 5 3 0\nintr 1 2 3\nbtime 1700000000\n";
        // 100 + 20 + 30 + 5 + 5 + 10 = 170 ticks at 100 Hz = 1.7 s
        assert_eq!(parse_proc_stat(stat, 100), Some(1_700_000_000));
        assert_eq!(parse_proc_stat("intr 1\n", 100), None);
        assert_eq!(parse_proc_stat(stat, 0), None);
        assert_eq!(parse_boot_time(stat), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn meminfo_hosts_report_usage_working_set_and_faults() {
        let meminfo =
            "MemTotal:       1000 kB\nMemFree:         200 kB\nAnonPages:       300 kB\nInactive(file):  100 kB\n";
        let vmstat = "pgpgin 5\npgfault 4242\npgmajfault 7\n";
        let m = parse_meminfo_usage(meminfo, vmstat).expect("memory");
        assert_eq!(
            m,
            MemoryUsage {
                usage: 800 * 1024,
                working_set: 700 * 1024,
                rss: Some(300 * 1024),
                page_faults: Some(4242),
                major_page_faults: Some(7)
            }
        );
        assert_eq!(parse_meminfo_usage("MemFree: 1 kB\n", vmstat), None);
    }

    #[test]
    fn swap_is_what_is_used_of_the_total_and_what_is_free() {
        let meminfo = "MemTotal: 1000 kB\nSwapTotal:  300 kB\nSwapFree:  100 kB\n";
        assert_eq!(parse_meminfo_swap(meminfo), Some(SwapUsage { usage: 200 * 1024, available: Some(100 * 1024) }));
        assert_eq!(parse_meminfo_swap("MemTotal: 1000 kB\n"), None);
    }

    #[test]
    fn process_stat_fields_are_counted_after_the_command() {
        let stat = "4242 (skiff (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 1500 100000 2048 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        // utime 250 + stime 50 ticks at 100 Hz = 3 s; rss 2048 pages of 4 KiB; started 15 s after boot.
        assert_eq!(
            parse_process_stat(stat, 100, 4096, 1_700_000_000),
            Some((3_000_000_000, 8 * 1024 * 1024, 1_700_000_015_000))
        );
        assert_eq!(parse_process_stat("garbage", 100, 4096, 0), None);
    }
}
