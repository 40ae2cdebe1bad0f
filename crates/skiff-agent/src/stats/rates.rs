//! `usageNanoCores` without cAdvisor: the previous cumulative CPU reading of each cgroup (the
//! node, pods, containers), kept between snapshots, so the average usage since then can be
//! reported, as the kubelet's CRI stats provider does with its own small cache. Readings of
//! cgroups that were not seen in a snapshot are dropped with it.
//!
//! What does not live here: reading CPU time ([`super::cgroup`], [`super::node`]).

use std::collections::HashMap;

/// The previous CPU reading of each cgroup, by key (a cgroup path, or `node`).
#[derive(Debug, Default)]
pub struct CpuRates {
    previous: HashMap<String, (i64, u64)>,
    seen: HashMap<String, (i64, u64)>,
}

impl CpuRates {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `total_nanos` of `key` at `at_ms` and returns the usage since the previous
    /// reading in billionths of a core; `None` without one, or when time did not move forward
    /// or the counter went back (a new cgroup under the same key).
    pub fn observe(&mut self, key: &str, at_ms: i64, total_nanos: u64) -> Option<u64> {
        self.seen.insert(key.to_string(), (at_ms, total_nanos));
        let (then_ms, then_nanos) = *self.previous.get(key)?;
        let elapsed_ms = u64::try_from(at_ms - then_ms).ok().filter(|ms| *ms > 0)?;
        let used = total_nanos.checked_sub(then_nanos)?;
        Some((u128::from(used) * 1000 / u128::from(elapsed_ms)) as u64)
    }

    /// Ends a snapshot: what was observed in it becomes the previous readings, the rest is
    /// forgotten.
    pub fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_the_delta_over_the_elapsed_time() {
        let mut rates = CpuRates::new();
        assert_eq!(rates.observe("c", 1_000, 5_000_000_000), None);
        rates.finish();
        // 0.5 s of CPU over 2 s: a quarter of a core.
        assert_eq!(rates.observe("c", 3_000, 5_500_000_000), Some(250_000_000));
        rates.finish();
        // A restarted cgroup's counter starts again: no rate, and the next one is measured from it.
        assert_eq!(rates.observe("c", 4_000, 100), None);
        rates.finish();
        assert_eq!(rates.observe("c", 4_000, 200), None, "no time elapsed");
    }

    #[test]
    fn cgroups_missing_from_a_snapshot_are_forgotten() {
        let mut rates = CpuRates::new();
        rates.observe("gone", 1_000, 1);
        rates.finish();
        rates.finish();
        assert_eq!(rates.observe("gone", 2_000, 2), None);
    }
}
