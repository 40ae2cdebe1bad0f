//! Waiting for processes to end without a thread or a poll per process: one thread of the
//! process waits with epoll on a pidfd per watched process and runs what was registered for it
//! once it has exited. It serves two users: the runtime reaps the shims and sandbox holders it
//! spawns ([`Reaper::reap`]), and the agent's pod workers wake when a shim or holder ends
//! ([`Reaper::watch`]).
//!
//! What does not live here: what an exit means (the runtime's state files say that).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use rustix::event::epoll;

/// What runs (on the reaper's thread, so briefly) when a watched process has exited.
pub type OnExit = Box<dyn FnOnce() + Send>;

/// The process's reaper: an epoll set of pidfds and the thread waiting on it.
pub struct Reaper {
    epoll: OwnedFd,
    /// Token → the pidfd and what to run.
    entries: Mutex<HashMap<u64, (OwnedFd, OnExit)>>,
    next_token: AtomicU64,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").field("watched", &self.entries().len()).finish()
    }
}

static REAPER: OnceLock<Option<Arc<Reaper>>> = OnceLock::new();

impl Reaper {
    /// The process's reaper, started on first use; `None` if it cannot run (no pidfds: then
    /// callers fall back to a thread per child, or to polling).
    pub fn get() -> Option<&'static Reaper> {
        REAPER
            .get_or_init(|| match Self::start() {
                Ok(reaper) => Some(reaper),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch process exits");
                    None
                }
            })
            .as_deref()
    }

    fn start() -> io::Result<Arc<Reaper>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let reaper = Arc::new(Reaper { epoll, entries: Mutex::new(HashMap::new()), next_token: AtomicU64::new(1) });
        let thread = Arc::clone(&reaper);
        std::thread::Builder::new().name("skiff-reaper".into()).spawn(move || thread.run())?;
        Ok(reaper)
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<u64, (OwnedFd, OnExit)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `on_exit` once process `pid` has exited (at once if it already has); returns a
    /// token for [`Reaper::unwatch`]. Fails if the process is gone (reaped) or cannot be
    /// watched.
    pub fn watch(&self, pid: i32, on_exit: OnExit) -> io::Result<u64> {
        let raw = (pid > 0)
            .then(|| rustix::process::Pid::from_raw(pid))
            .flatten()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid pid"))?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        // In the map before the epoll set, so the thread always finds what fires.
        let mut entries = self.entries();
        epoll::add(&self.epoll, &pidfd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)?;
        entries.insert(token, (pidfd, on_exit));
        Ok(token)
    }

    /// Stops watching `token` (what was registered does not run).
    pub fn unwatch(&self, token: u64) {
        // Closing the pidfd takes it out of the epoll set.
        self.entries().remove(&token);
    }

    /// Whether `token` is still watched (its process has not been seen to exit).
    pub fn is_watched(&self, token: u64) -> bool {
        self.entries().contains_key(&token)
    }

    /// Reaps `child` once it exits, so a process the runtime spawned and does not wait for
    /// never lingers as a zombie.
    pub fn reap(&self, child: Child) {
        let pid = child.id() as i32;
        let child = Arc::new(Mutex::new(child));
        let reaped = Arc::clone(&child);
        let on_exit: OnExit = Box::new(move || {
            let _ = reaped.lock().unwrap_or_else(PoisonError::into_inner).wait();
        });
        if let Err(e) = self.watch(pid, on_exit) {
            tracing::debug!(pid, error = %e, "cannot watch a child; waiting for it on a thread");
            wait_on_thread(child);
        }
    }

    fn run(&self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            events.clear();
            match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "waiting for process exits failed");
                    return;
                }
            }
            let fired: Vec<OnExit> = {
                let mut entries = self.entries();
                events.iter().filter_map(|e| entries.remove(&e.data.u64())).map(|(_pidfd, f)| f).collect()
            };
            for on_exit in fired {
                on_exit();
            }
        }
    }
}

/// Waits for `child` on a thread of its own (when there is no reaper).
fn wait_on_thread(child: Arc<Mutex<Child>>) {
    let spawned = std::thread::Builder::new().name("skiff-wait".into()).spawn(move || {
        let _ = child.lock().unwrap_or_else(PoisonError::into_inner).wait();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot wait for a child; it stays a zombie until the agent exits");
    }
}

/// Reaps `child` when it exits, with the process's reaper if it runs, else on a thread.
pub fn reap(child: Child) {
    match Reaper::get() {
        Some(reaper) => reaper.reap(child),
        None => wait_on_thread(Arc::new(Mutex::new(child))),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_watched_exit_runs_its_callback_once_and_unwatched_ones_do_not() {
        let reaper = Reaper::get().expect("reaper");
        let (tx, rx) = mpsc::channel();
        let mut child = Command::new("sleep").arg("0.1").spawn().expect("sleep");
        let token = reaper.watch(child.id() as i32, Box::new(move || tx.send(()).expect("send"))).expect("watch");
        rx.recv_timeout(Duration::from_secs(10)).expect("woken by the exit");
        assert!(!reaper.is_watched(token));
        child.wait().expect("reap");

        let (tx, rx) = mpsc::channel::<()>();
        let mut child = Command::new("sleep").arg("0.1").spawn().expect("sleep");
        let token = reaper.watch(child.id() as i32, Box::new(move || tx.send(()).expect("send"))).expect("watch");
        reaper.unwatch(token);
        child.wait().expect("reap");
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "unwatched: nothing runs");
        assert!(reaper.watch(-1, Box::new(|| {})).is_err());
    }

    #[test]
    fn children_handed_over_are_reaped() {
        let child = Command::new("true").spawn().expect("true");
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
        reap(child);
        // A zombie keeps its /proc entry until it is reaped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proc_dir.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!proc_dir.exists(), "the child was reaped");
    }
}
