//! The Job pod-failure back-off: after `n` failures since the last success, new pods wait
//! 10 s × 2^(n−1) from the last failure, capped at 6 minutes (upstream's
//! `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`).
//!
//! What does not live here: the per-Job record of failures (the Job controller keeps it).

use std::time::Duration;

/// The first back-off.
pub const BASE: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const MAX: Duration = Duration::from_secs(360);

/// The back-off after `failures` consecutive failures since the last success.
pub fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = (failures - 1).min(16);
    BASE.saturating_mul(1 << exp).min(MAX)
}

/// How long from `since_last_failure` new pods must still wait.
pub fn remaining(failures: u32, since_last_failure: Duration) -> Duration {
    delay(failures).saturating_sub(since_last_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_up_to_six_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(delay(1000), MAX);
        assert_eq!(remaining(2, Duration::from_secs(5)), Duration::from_secs(15));
        assert_eq!(remaining(2, Duration::from_secs(50)), Duration::ZERO);
    }
}
