//! The eviction manager's memory-threshold notifications (cgroup v1 only, as upstream's
//! `kernelMemcgNotification`): for each `memory.available` threshold, a threshold on the root
//! memory cgroup's `memory.usage_in_bytes` armed through `cgroup.event_control` with an eventfd,
//! so the manager measures again as soon as the working set crosses it instead of at the next
//! 10 s pass. The usage level is where the working set meets the threshold: capacity less the
//! threshold plus the inactive file pages, recomputed (and the notifier armed again) after every
//! pass, as those pages change. Waiting is a blocking `poll` of the eventfds with the pass
//! interval as timeout (run on the blocking pool).
//!
//! What does not live here: deciding what to do (the manager's pass), reading the signals
//! ([`super::signals`]).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::signals::MemorySource;
use super::thresholds::{Signal, Threshold};
use crate::stats::node;

/// Arming a notifier failed.
#[derive(Debug, thiserror::Error)]
pub enum MemcgError {
    /// A cgroup file could not be opened, read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The eventfd could not be made.
    #[error("eventfd: {0}")]
    EventFd(nix::Error),
}

/// The `memory.usage_in_bytes` level at which the working set (usage less inactive file pages)
/// leaves `threshold` bytes of `capacity` available.
pub fn usage_level(capacity: u64, threshold: u64, usage: u64, working_set: u64) -> u64 {
    capacity.saturating_sub(threshold).saturating_add(usage.saturating_sub(working_set))
}

/// A usage threshold armed on one memory cgroup; disarmed when dropped (closing the eventfd
/// removes the kernel's registration).
pub struct UsageNotifier {
    event: EventFd,
    /// Kept open: the registration names it.
    _usage: File,
    level: u64,
}

impl UsageNotifier {
    /// Arms a notification when the usage of the cgroup at `dir` crosses `level` bytes.
    pub fn arm(dir: &Path, level: u64) -> Result<Self, MemcgError> {
        let file_error = |path: PathBuf| move |source| MemcgError::File { path, source };
        let usage_path = dir.join("memory.usage_in_bytes");
        let usage = File::open(&usage_path).map_err(file_error(usage_path))?;
        let event = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(MemcgError::EventFd)?;
        let control_path = dir.join("cgroup.event_control");
        let line = format!("{} {} {level}", event.as_raw_fd(), usage.as_raw_fd());
        File::options()
            .write(true)
            .open(&control_path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(file_error(control_path))?;
        Ok(Self { event, _usage: usage, level })
    }

    /// The armed level.
    pub fn level(&self) -> u64 {
        self.level
    }

    /// Takes the notifications pending (crossings either way, as the kernel reports them);
    /// whether there were any.
    fn take(&self) -> bool {
        self.event.read().is_ok_and(|n| n > 0)
    }
}

/// The notifiers of every `memory.available` threshold on the root memory cgroup.
#[derive(Default)]
pub struct Notifiers {
    armed: Vec<UsageNotifier>,
}

impl Notifiers {
    /// Arms (again) one notifier per `memory.available` threshold of `thresholds` on the root
    /// memory cgroup at `root`, at the level where the working set meets it now. A notifier
    /// already at its level is kept. Blocking (cgroup files and `/proc/meminfo`).
    pub fn update(&mut self, root: &Path, thresholds: &[Threshold]) {
        if !thresholds.iter().any(|t| t.signal == Signal::MemoryAvailable) {
            return;
        }
        let Some(capacity) = node::memory_capacity() else { return };
        let capacity_signed = i64::try_from(capacity).unwrap_or(i64::MAX);
        let Some(memory) = node::memory(&MemorySource::V1(root.to_path_buf())) else { return };
        let (usage, working_set) = (memory.usage, memory.working_set);
        let mut armed = Vec::new();
        for threshold in thresholds.iter().filter(|t| t.signal == Signal::MemoryAvailable) {
            let amount = u64::try_from(threshold.value.amount(capacity_signed).value).unwrap_or(0);
            let level = usage_level(capacity, amount, usage, working_set);
            if let Some(i) = self.armed.iter().position(|n| n.level() == level) {
                armed.push(self.armed.swap_remove(i));
                continue;
            }
            match UsageNotifier::arm(root, level) {
                Ok(notifier) => armed.push(notifier),
                Err(e) => tracing::warn!(error = %e, level, "eviction manager: cannot arm the memory threshold"),
            }
        }
        self.armed = armed;
    }

    /// Whether no notifier is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Waits until some armed level is crossed or `timeout` passes; whether a level was
    /// crossed. Blocking.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut fds: Vec<PollFd<'_>> =
            self.armed.iter().map(|n| PollFd::new(n.event.as_fd(), PollFlags::POLLIN)).collect();
        match poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => false,
            // Every eventfd is read (emptied), not only the first that fired.
            Ok(_) => self.armed.iter().filter(|n| n.take()).count() > 0,
            Err(e) => {
                tracing::warn!(error = %e, "polling the memory threshold eventfds");
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_level_is_where_the_working_set_meets_the_threshold() {
        // 1000 capacity, threshold 100, 50 bytes of inactive file pages in the usage.
        assert_eq!(usage_level(1000, 100, 600, 550), 950);
        assert_eq!(usage_level(100, 200, 10, 10), 0, "never below zero");
    }

    /// The host's v1 memory hierarchy, when the tests run as root on one.
    fn v1_memory_root() -> Option<PathBuf> {
        let root = PathBuf::from("/sys/fs/cgroup/memory");
        (nix::unistd::geteuid().is_root() && root.join("cgroup.event_control").exists()).then_some(root)
    }

    #[test]
    fn a_cgroup_growing_past_the_level_wakes_the_waiter() {
        let Some(root) = v1_memory_root() else {
            eprintln!("no v1 memory cgroup writable here: the kernel part is not exercised");
            return;
        };
        let dir = root.join(format!("skiff-memcg-test-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("cgroup");
        let notifiers = Notifiers { armed: vec![UsageNotifier::arm(&dir, 8 << 20).expect("armed")] };
        assert_eq!(notifiers.armed[0].level(), 8 << 20);
        assert!(!notifiers.wait(Duration::from_millis(10)), "nothing crossed yet");
        // A shell in the cgroup holding 24 MiB in a variable.
        let script = format!(
            "echo $$ > {}/cgroup.procs && x=$(head -c 25165824 /dev/zero | tr '\\0' a) && sleep 30",
            dir.display()
        );
        let mut child = std::process::Command::new("sh").args(["-c", &script]).spawn().expect("sh");
        let crossed = notifiers.wait(Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        drop(notifiers);
        remove_cgroup(&dir);
        assert!(crossed, "no notification of the usage crossing 8 MiB");
    }

    /// Kills what is left in the test cgroup (the shell's pipeline) and removes it.
    fn remove_cgroup(dir: &Path) {
        for _ in 0..100 {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            if std::fs::remove_dir(dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("could not remove the test cgroup {}", dir.display());
    }

    #[test]
    fn one_notifier_is_armed_per_memory_threshold() {
        let Some(root) = v1_memory_root() else {
            eprintln!("no v1 memory cgroup writable here: the kernel part is not exercised");
            return;
        };
        let thresholds = super::super::thresholds::parse_config(
            "memory.available<100Mi,nodefs.available<10%",
            "memory.available<1Gi",
            "memory.available=1m",
            "",
        )
        .expect("thresholds");
        let mut notifiers = Notifiers::default();
        notifiers.update(&root, &thresholds);
        assert_eq!(notifiers.armed.len(), 2, "the hard and the soft memory threshold");
        let gap = notifiers.armed[0].level().abs_diff(notifiers.armed[1].level());
        assert_eq!(gap, (1 << 30) - (100 << 20));
    }

    #[test]
    fn arming_needs_a_memory_cgroup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = UsageNotifier::arm(dir.path(), 1).err().expect("not a cgroup");
        assert!(error.to_string().contains("memory.usage_in_bytes"), "{error}");
    }
}
