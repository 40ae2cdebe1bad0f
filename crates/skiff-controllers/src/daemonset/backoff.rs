//! The back-off between deleting failed daemon pods on one node (upstream's `flowcontrol.Backoff`
//! keyed by `<DaemonSet UID>/<node>`): 1 s doubling up to 15 min, forgotten after twice the
//! maximum without a failure.
//!
//! What does not live here: deleting pods and recording `FailedDaemonPod` ([`super`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first back-off.
pub const INITIAL: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const MAX: Duration = Duration::from_secs(15 * 60);

/// Back-offs by key.
#[derive(Debug, Default)]
pub struct Backoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Duration, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `key` still has to wait at `now` (`None` when it may act).
    pub fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let entries = self.lock();
        let (backoff, last) = entries.get(key)?;
        let since = now.saturating_duration_since(*last);
        if since > MAX * 2 || since >= *backoff {
            return None;
        }
        Some(*backoff - since)
    }

    /// Records a failure of `key` at `now`: the next back-off doubles (or starts at 1 s).
    pub fn next(&self, key: &str, now: Instant) {
        let mut entries = self.lock();
        let entry = entries.entry(key.to_string()).or_insert((Duration::ZERO, now));
        entry.0 = if entry.0.is_zero() || now.saturating_duration_since(entry.1) > MAX * 2 {
            INITIAL
        } else {
            (entry.0 * 2).min(MAX)
        };
        entry.1 = now;
    }

    /// Forgets every key with `prefix` (a deleted DaemonSet's UID).
    pub fn forget_prefix(&self, prefix: &str) {
        self.lock().retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff::default();
        let t = Instant::now();
        assert_eq!(b.remaining("k", t), None);
        b.next("k", t);
        assert_eq!(b.remaining("k", t), Some(INITIAL));
        assert_eq!(b.remaining("k", t + INITIAL), None);
        b.next("k", t + INITIAL);
        assert_eq!(b.remaining("k", t + INITIAL), Some(Duration::from_secs(2)));
        for i in 0..20 {
            b.next("k", t + Duration::from_secs(2 + i));
        }
        assert_eq!(b.remaining("k", t + Duration::from_secs(21)), Some(MAX));
        b.forget_prefix("k");
        assert_eq!(b.remaining("k", t), None);
    }
}
