//! The kubelet's image pull back-off (client-go `flowcontrol.Backoff` with 10 s and 5 min): per
//! key (`<pod uid>_<image>`), each failure doubles the wait from 10 s up to 5 min; an entry
//! untouched for twice the maximum starts over. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// First wait after a failed pull.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Longest wait.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// Back-off state of every key.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A back-off from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, entries: HashMap::new() }
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.last_update) > self.max * 2
    }

    /// Records a failure of `key` at `now`; returns the wait it now has.
    pub fn next(&mut self, key: &str, now: Instant) -> Duration {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(key.to_string(), Entry { backoff, last_update: now });
        backoff
    }

    /// The wait of `key` and how long ago it was set, while `now` is within it.
    pub fn in_backoff(&self, key: &str, now: Instant) -> Option<(Duration, Duration)> {
        let e = self.entries.get(key)?;
        let since = now.saturating_duration_since(e.last_update);
        (since < e.backoff).then_some((e.backoff, since))
    }

    /// Forgets entries untouched for twice the maximum.
    pub fn gc(&mut self, now: Instant) {
        let max = self.max;
        self.entries.retain(|_, e| now.saturating_duration_since(e.last_update) <= max * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_maximum_and_expires() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(b.in_backoff("k", t0).is_none());
        assert_eq!(b.next("k", t0), INITIAL);
        assert_eq!(b.in_backoff("k", t0 + Duration::from_secs(3)), Some((INITIAL, Duration::from_secs(3))));
        assert!(b.in_backoff("k", t0 + INITIAL).is_none());
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            t += Duration::from_secs(1);
            waits.push(b.next("k", t).as_secs());
        }
        assert_eq!(waits, [20, 40, 80, 160, 300, 300]);
        // Untouched for more than 10 minutes: starts over.
        assert_eq!(b.next("k", t + Duration::from_secs(601)), INITIAL);
        assert!(b.in_backoff("other", t).is_none());
        b.gc(t + Duration::from_secs(601 + 601));
        assert!(b.entries.is_empty());
    }
}
