//! The Job arithmetic, free of I/O: how many pods should run, and whether the counts mean the
//! Job has failed (backoff limit, deadline, failed indexes) or succeeded (completions reached).
//!
//! What does not live here: counting pods (the controller) and conditions ([`super::conditions`]).

use std::time::Duration;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::jiff::Timestamp;

use super::conditions as c;

/// What the controller counted for one Job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Succeeded pods (counted and uncounted).
    pub succeeded: i32,
    /// Failed pods (counted and uncounted, not ignored).
    pub failed: i32,
    /// Active pods.
    pub active: i32,
    /// Indexes completed (Indexed Jobs).
    pub completed_indexes: i32,
    /// Indexes failed (Indexed Jobs with `backoffLimitPerIndex`).
    pub failed_indexes: i32,
}

fn indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// How many pods should be active.
pub fn want_active(spec: &JobSpec, n: Counts) -> i32 {
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    match spec.completions {
        None if n.succeeded > 0 => n.active.min(parallelism),
        None => parallelism,
        Some(completions) if indexed(spec) => {
            (completions - n.completed_indexes - n.failed_indexes).clamp(0, parallelism)
        }
        Some(completions) => (completions - n.succeeded).clamp(0, parallelism),
    }
}

/// Why the Job fails now, if it does: `(reason, message)`.
pub fn failure(
    spec: &JobSpec,
    n: Counts,
    start: Option<Timestamp>,
    now: Timestamp,
) -> Option<(&'static str, &'static str)> {
    if spec.backoff_limit_per_index.is_none() && n.failed > spec.backoff_limit.unwrap_or(6) {
        return Some((c::BACKOFF_LIMIT_EXCEEDED, c::BACKOFF_LIMIT_MESSAGE));
    }
    if deadline_left(spec, start, now) == Some(Duration::ZERO) {
        return Some((c::DEADLINE_EXCEEDED, c::DEADLINE_MESSAGE));
    }
    if spec.backoff_limit_per_index.is_some() && n.failed_indexes > 0 {
        let all_done = spec.completions.is_some_and(|k| n.completed_indexes + n.failed_indexes >= k);
        let too_many = spec.max_failed_indexes.is_some_and(|m| n.failed_indexes > m);
        if too_many {
            return Some((c::MAX_FAILED_INDEXES_EXCEEDED, c::MAX_FAILED_INDEXES_MESSAGE));
        }
        if all_done {
            return Some((c::FAILED_INDEXES, c::FAILED_INDEXES_MESSAGE));
        }
    }
    None
}

/// How long until `activeDeadlineSeconds` runs out (zero once it has); `None` without one.
pub fn deadline_left(spec: &JobSpec, start: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let secs = u64::try_from(spec.active_deadline_seconds?).ok()?;
    let elapsed = now.duration_since(start?);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    Some(Duration::from_secs(secs).saturating_sub(elapsed))
}

/// Whether the counts complete the Job.
pub fn success(spec: &JobSpec, n: Counts) -> bool {
    match spec.completions {
        None => n.succeeded > 0 && n.active == 0,
        Some(k) if indexed(spec) => n.completed_indexes >= k,
        Some(k) => n.succeeded >= k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn spec(completions: Option<i32>, parallelism: i32, indexed: bool) -> JobSpec {
        JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(2),
            completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
            ..Default::default()
        }
    }

    fn counts(succeeded: i32, failed: i32, active: i32) -> Counts {
        Counts { succeeded, failed, active, ..Default::default() }
    }

    #[test]
    fn active_pods_wanted() {
        let s = spec(Some(3), 2, false);
        assert_eq!(want_active(&s, counts(0, 0, 0)), 2);
        assert_eq!(want_active(&s, counts(2, 5, 0)), 1, "one completion left");
        assert_eq!(want_active(&s, counts(3, 0, 1)), 0);
        let work_queue = spec(None, 3, false);
        assert_eq!(want_active(&work_queue, counts(0, 0, 0)), 3);
        assert_eq!(want_active(&work_queue, counts(1, 0, 2)), 2, "no new pods after a success");
        let idx = spec(Some(5), 3, true);
        let n = Counts { completed_indexes: 3, ..Default::default() };
        assert_eq!(want_active(&idx, n), 2);
    }

    #[test]
    fn failure_by_backoff_limit_and_deadline() {
        let now = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1000);
        let mut s = spec(Some(1), 1, false);
        assert_eq!(failure(&s, counts(0, 2, 1), None, now), None, "backoffLimit 2 allows two failures");
        assert_eq!(failure(&s, counts(0, 3, 0), None, now).map(|f| f.0), Some("BackoffLimitExceeded"));
        s.active_deadline_seconds = Some(10);
        let start = now - SignedDuration::from_secs(4);
        assert_eq!(deadline_left(&s, Some(start), now), Some(Duration::from_secs(6)));
        assert_eq!(failure(&s, counts(0, 0, 1), Some(start), now), None);
        let late = now - SignedDuration::from_secs(10);
        assert_eq!(failure(&s, counts(0, 0, 1), Some(late), now).map(|f| f.0), Some("DeadlineExceeded"));
    }

    #[test]
    fn failed_indexes_fail_once_every_index_is_done() {
        let mut s = spec(Some(3), 3, true);
        s.backoff_limit_per_index = Some(0);
        let n = Counts { completed_indexes: 1, failed_indexes: 1, failed: 9, ..Default::default() };
        assert_eq!(failure(&s, n, None, Timestamp::UNIX_EPOCH), None, "per-index limits replace backoffLimit");
        let n = Counts { completed_indexes: 2, failed_indexes: 1, ..Default::default() };
        assert_eq!(failure(&s, n, None, Timestamp::UNIX_EPOCH).map(|f| f.0), Some("FailedIndexes"));
        s.max_failed_indexes = Some(0);
        let n = Counts { failed_indexes: 1, ..Default::default() };
        assert_eq!(failure(&s, n, None, Timestamp::UNIX_EPOCH).map(|f| f.0), Some("MaxFailedIndexesExceeded"));
    }

    #[test]
    fn success_rules() {
        assert!(success(&spec(Some(3), 2, false), counts(3, 4, 0)));
        assert!(!success(&spec(Some(3), 2, false), counts(2, 0, 1)));
        assert!(!success(&spec(None, 2, false), counts(1, 0, 1)), "a work queue waits for its pods");
        assert!(success(&spec(None, 2, false), counts(1, 0, 0)));
        let n = Counts { completed_indexes: 3, ..Default::default() };
        assert!(success(&spec(Some(3), 1, true), n));
    }
}
