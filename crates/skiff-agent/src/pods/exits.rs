//! What wakes a pod worker when one of its processes ends: a pidfd per watched process (the shim
//! of each running container, the sandbox's holder and init), readable once the process has
//! exited. A shim exits right after writing `exited.json`, so its pidfd firing means the
//! container's end is on disk.
//!
//! One reaper thread of the agent waits on every pidfd with epoll and wakes the worker that
//! watches it (tokio's `AsyncFd` would need `unsafe`, which the workspace denies).
//!
//! What does not live here: what the worker then does (it re-reads the runtime's state), and the
//! worker's slow safety poll, which covers processes that could not be watched (a pid that is
//! already gone, a kernel without pidfds).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::event::epoll;
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
        match reaper.add(pid, &self.notify) {
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
                reaper.remove(token);
            }
        }
    }

    /// Waits until a watched process has exited (or had exited since the last call). Processes
    /// that ended are no longer watched. Never resolves while nothing was watched. Cancel-safe.
    pub async fn next(&mut self) {
        self.notify.notified().await;
        if let Some(reaper) = Reaper::get() {
            self.watched.retain(|_, token| reaper.contains(*token));
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

/// The agent's reaper: an epoll set of pidfds and the thread waiting on it.
struct Reaper {
    epoll: OwnedFd,
    /// Token → the pidfd and whom to wake.
    entries: Mutex<HashMap<u64, (OwnedFd, Arc<Notify>)>>,
    next_token: AtomicU64,
}

static REAPER: OnceLock<Option<Arc<Reaper>>> = OnceLock::new();

impl Reaper {
    /// The reaper, started on first use; `None` if it cannot run (then workers poll).
    fn get() -> Option<&'static Reaper> {
        REAPER
            .get_or_init(|| match Self::start() {
                Ok(reaper) => Some(reaper),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch process exits; pod workers will poll");
                    None
                }
            })
            .as_deref()
    }

    fn start() -> std::io::Result<Arc<Reaper>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let reaper = Arc::new(Reaper { epoll, entries: Mutex::new(HashMap::new()), next_token: AtomicU64::new(1) });
        let thread = Arc::clone(&reaper);
        std::thread::Builder::new().name("skiff-exits".into()).spawn(move || thread.run())?;
        Ok(reaper)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (OwnedFd, Arc<Notify>)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, pid: i32, notify: &Arc<Notify>) -> std::io::Result<u64> {
        let raw = (pid > 0)
            .then(|| rustix::process::Pid::from_raw(pid))
            .flatten()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid pid"))?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        // In the map before the epoll set, so the thread always finds what fires.
        let mut entries = self.entries();
        epoll::add(&self.epoll, &pidfd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)?;
        entries.insert(token, (pidfd, Arc::clone(notify)));
        Ok(token)
    }

    /// Stops watching `token` (closing its pidfd takes it out of the epoll set).
    fn remove(&self, token: u64) {
        self.entries().remove(&token);
    }

    fn contains(&self, token: u64) -> bool {
        self.entries().contains_key(&token)
    }

    fn run(&self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            events.clear();
            match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "waiting for process exits failed; pod workers will poll");
                    return;
                }
            }
            let mut entries = self.entries();
            for event in &events {
                if let Some((_pidfd, notify)) = entries.remove(&event.data.u64()) {
                    notify.notify_one();
                }
            }
        }
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
