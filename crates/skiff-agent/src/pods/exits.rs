//! What wakes a pod worker when one of its processes ends: the shim of each running container
//! and the sandbox's holder and init, watched through the runtime's reaper (a pidfd per process,
//! one thread for the whole agent). A shim exits right after writing `exited.json`, so its end
//! means the container's end is on disk.
//!
//! What does not live here: what the worker then does (it re-reads the runtime's state), and the
//! worker's slow safety poll, which covers processes that could not be watched (a pid that is
//! already gone, a kernel without pidfds).

use std::collections::HashMap;
use std::sync::Arc;

use skiff_runtime::reaper::Reaper;
use tokio::sync::Notify;

/// The processes one worker waits for. Dropping it stops watching them.
#[derive(Debug)]
pub struct ExitWatch {
    notify: Arc<Notify>,
    /// Watched pid → its token with the reaper.
    watched: HashMap<i32, u64>,
}

impl Default for ExitWatch {
    fn default() -> Self {
        Self { notify: Arc::new(Notify::new()), watched: HashMap::new() }
    }
}

impl ExitWatch {
    /// Watches process `pid` (no-op if already watched). A process that cannot be watched (gone
    /// already, no pidfd support) is left to the safety poll.
    pub fn watch(&mut self, pid: i32) {
        if self.watched.contains_key(&pid) {
            return;
        }
        let Some(reaper) = Reaper::get() else { return };
        let notify = Arc::clone(&self.notify);
        match reaper.watch(pid, Box::new(move || notify.notify_one())) {
            Ok(token) => {
                self.watched.insert(pid, token);
            }
            Err(e) => tracing::debug!(pid, error = %e, "cannot watch the process for its exit"),
        }
    }

    /// Stops watching every process not in `pids`.
    pub fn retain(&mut self, pids: &[i32]) {
        let gone: Vec<i32> = self.watched.keys().filter(|pid| !pids.contains(pid)).copied().collect();
        for pid in gone {
            if let (Some(token), Some(reaper)) = (self.watched.remove(&pid), Reaper::get()) {
                reaper.unwatch(token);
            }
        }
    }

    /// Waits until a watched process has exited (or had exited since the last call). Processes
    /// that ended are no longer watched. Never resolves while nothing was watched. Cancel-safe.
    pub async fn next(&mut self) {
        self.notify.notified().await;
        if let Some(reaper) = Reaper::get() {
            self.watched.retain(|_, token| reaper.is_watched(*token));
        }
    }

    /// How many processes are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        self.retain(&[]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_watched_process_wakes_on_exit_and_is_forgotten() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().expect("spawn sleep");
        let pid = child.id() as i32;
        let mut exits = ExitWatch::default();
        exits.watch(pid);
        exits.watch(pid);
        assert_eq!(exits.len(), 1);
        tokio::time::timeout(Duration::from_secs(10), exits.next()).await.expect("woken by the exit");
        assert!(exits.is_empty(), "an ended process is no longer watched");
        child.wait().expect("reap");
    }

    #[tokio::test]
    async fn unwatched_processes_do_not_wake() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().expect("spawn sleep");
        let mut exits = ExitWatch::default();
        exits.watch(child.id() as i32);
        exits.retain(&[]);
        assert!(exits.is_empty());
        child.wait().expect("reap");
        assert!(tokio::time::timeout(Duration::from_millis(300), exits.next()).await.is_err());
        exits.watch(-1);
        assert!(exits.is_empty(), "an invalid pid is not watched");
    }
}
