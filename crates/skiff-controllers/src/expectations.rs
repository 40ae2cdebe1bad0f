//! Controller expectations (upstream's `ControllerExpectations` with UID tracking): a controller
//! records how many creations and which deletions it has in flight for one owner key, and does
//! not act on that owner again until its informers have observed them (or five minutes passed,
//! in case an event was lost). This is what keeps a controller from double-creating pods while
//! its own creates are still on their way back through the watch.
//!
//! What does not live here: deciding what to create or delete (the controllers).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations hold before they are considered stale and the owner synced anyway.
pub const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Entry {
    adds: i64,
    deletes: HashSet<String>,
    at: Instant,
}

/// Expectations per owner key.
#[derive(Debug, Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Entry>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the owner `key` may be synced: nothing in flight, or the record is stale.
    pub fn satisfied(&self, key: &str) -> bool {
        self.lock().get(key).is_none_or(|e| (e.adds <= 0 && e.deletes.is_empty()) || e.at.elapsed() > TTL)
    }

    /// Records `n` creations about to be made for `key` (replacing what was recorded).
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.lock().insert(
            key.to_string(),
            Entry { adds: i64::try_from(n).unwrap_or(i64::MAX), deletes: HashSet::new(), at: Instant::now() },
        );
    }

    /// Records the deletions (by pod key) about to be made for `key` (replacing what was recorded).
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.lock().insert(key.to_string(), Entry { adds: 0, deletes: pods.into_iter().collect(), at: Instant::now() });
    }

    /// Records `adds` creations and the deletions (by pod key) about to be made for `key` at
    /// once (replacing what was recorded), as the DaemonSet controller does both in one sync.
    pub fn expect(&self, key: &str, adds: usize, pods: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Entry {
                adds: i64::try_from(adds).unwrap_or(i64::MAX),
                deletes: pods.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// One creation for `key` was observed (or will never happen: a failed create).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// The deletion of `pod` for `key` was observed (or will never happen).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    /// Forgets `key` (its owner is gone).
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_hold_until_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        // Observing more than expected never blocks.
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn deletions_are_tracked_by_pod() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"), "a repeated observation of one pod does not count twice");
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 1);
        e.delete("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
