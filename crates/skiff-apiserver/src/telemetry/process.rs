//! The process series every Prometheus client exposes: `process_start_time_seconds` and
//! `process_resident_memory_bytes`, read from `/proc/self`.
//!
//! Parsing is separate from reading so it is tested without a live `/proc`.

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process start time in seconds since the Unix epoch, if `/proc` can tell.
pub fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let system = std::fs::read_to_string("/proc/stat").ok()?;
    Some(boot_time(&system)? + start_ticks(&stat)? / TICKS_PER_SECOND)
}

/// The resident set size in bytes, if `/proc` can tell.
pub fn resident_memory_bytes() -> Option<f64> {
    resident_kib(&std::fs::read_to_string("/proc/self/status").ok()?).map(|kib| kib * 1024.0)
}

/// Field 22 of `/proc/<pid>/stat` (`starttime`, ticks after boot); the command name in field 2
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn start_ticks(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (`state`) is the first after the name; `starttime` is field 22.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(system: &str) -> Option<f64> {
    system.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
fn resident_kib(status: &str) -> Option<f64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (skiff (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 123456 1000 200";
        assert_eq!(start_ticks(stat), Some(123456.0));
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1764190000\nprocesses 9\n"), Some(1764190000.0));
        assert_eq!(resident_kib("Name:\tskiff\nVmRSS:\t   33480 kB\nThreads: 9\n"), Some(33480.0));
        assert_eq!(resident_kib("Name:\tskiff\n"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let start = start_time_seconds().expect("start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        assert!(start > 1.0e9 && start <= now + 1.0, "{start} vs {now}");
        assert!(resident_memory_bytes().expect("rss") > 0.0);
    }
}
