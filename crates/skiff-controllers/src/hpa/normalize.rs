//! How fast a HorizontalPodAutoscaler may move: stabilization windows over past
//! recommendations, scaling policies over past scale events (`spec.behavior`), or without a
//! behavior upstream's fixed rules (5-minute scale-down window, scale up at most to
//! `max(2 × current, 4)`), then `minReplicas`/`maxReplicas`. Each step reports the condition
//! (`AbleToScale` and `ScalingLimited` reasons and messages) upstream sets.
//!
//! What does not live here: the recommendation itself ([`super::calc`]) and the API.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The scale-down stabilization window without (or with an unset) behavior.
pub const DEFAULT_DOWNSCALE_WINDOW: i32 = 300;

/// One recommendation remembered for stabilization.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recommendation {
    replicas: i32,
    at: Timestamp,
}

/// One rescale remembered for rate limiting.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScaleEvent {
    change: i32,
    at: Timestamp,
}

/// What one autoscaler remembers between syncs.
#[derive(Debug, Clone, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    up: Vec<ScaleEvent>,
    down: Vec<ScaleEvent>,
}

/// A limit's outcome: the replicas, and the condition reason and message explaining them.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// The replicas after the step.
    pub replicas: i32,
    /// Condition reason (e.g. `ScaleDownStabilized`, `TooManyReplicas`).
    pub reason: &'static str,
    /// Condition message.
    pub message: &'static str,
}

const READY: (&str, &str) = ("ReadyForNewScale", "recommended size matches current size");
const WITHIN: (&str, &str) = ("DesiredWithinRange", "the desired count is within the acceptable range");
const UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const TOO_FEW: (&str, &str) = ("TooFewReplicas", "the desired replica count is less than the minimum replica count");
const TOO_MANY: (&str, &str) = ("TooManyReplicas", "the desired replica count is more than the maximum replica count");
const UP_LIMIT: (&str, &str) =
    ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate");
const DOWN_LIMIT: (&str, &str) =
    ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate");

fn limited(replicas: i32, (reason, message): (&'static str, &'static str)) -> Limited {
    Limited { replicas, reason, message }
}

fn secs(s: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(s.max(0)))
}

impl History {
    /// Records a recommendation, reusing one slot older than `keep` (as upstream does, so the
    /// list stays as long as the busiest window needs).
    fn record(&mut self, replicas: i32, now: Timestamp, keep: SignedDuration) {
        let rec = Recommendation { replicas, at: now };
        match self.recommendations.iter_mut().find(|r| r.at < now - keep) {
            Some(slot) => *slot = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Remembers a rescale from `from` to `to` (only autoscalers with a behavior use them).
    pub fn record_rescale(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        from: i32,
        to: i32,
        now: Timestamp,
    ) {
        let Some(b) = behavior else { return };
        let longest = |r: Option<&HPAScalingRules>| {
            r.and_then(|r| r.policies.as_ref()).into_iter().flatten().map(|p| p.period_seconds).max().unwrap_or(0)
        };
        let keep = secs(longest(b.scale_up.as_ref()).max(longest(b.scale_down.as_ref())));
        let (events, change) = if to > from { (&mut self.up, to - from) } else { (&mut self.down, from - to) };
        events.retain(|e| e.at >= now - keep);
        events.push(ScaleEvent { change, at: now });
    }

    /// Without a behavior: the highest recommendation of the last five minutes, then upstream's
    /// fixed rate and bounds. Returns the `AbleToScale` step and the `ScalingLimited` step.
    pub fn normalize(&mut self, current: i32, desired: i32, min: i32, max: i32, now: Timestamp) -> (Limited, Limited) {
        let window = secs(DEFAULT_DOWNSCALE_WINDOW);
        let stabilized =
            self.recommendations.iter().filter(|r| r.at > now - window).map(|r| r.replicas).fold(desired, i32::max);
        self.record(desired, now, window);
        let able = limited(stabilized, if stabilized == desired { READY } else { DOWN_STABILIZED });
        let scale_up_limit = current.saturating_mul(2).max(4);
        let (ceiling, over) = if max > scale_up_limit { (scale_up_limit, UP_LIMIT) } else { (max, TOO_MANY) };
        let bounded = if stabilized < min {
            limited(min, TOO_FEW)
        } else if stabilized > ceiling {
            limited(ceiling, over)
        } else {
            limited(stabilized, WITHIN)
        };
        (able, bounded)
    }

    /// With a behavior: stabilization windows for both directions, then the scaling policies'
    /// rate limits and the bounds.
    pub fn normalize_with_behavior(
        &mut self,
        behavior: &HorizontalPodAutoscalerBehavior,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        now: Timestamp,
    ) -> (Limited, Limited) {
        let up_rules = behavior.scale_up.as_ref();
        let down_rules = behavior.scale_down.as_ref();
        let up_window = up_rules.and_then(|r| r.stabilization_window_seconds).unwrap_or(0);
        let down_window = down_rules.and_then(|r| r.stabilization_window_seconds).unwrap_or(DEFAULT_DOWNSCALE_WINDOW);
        let (mut up, mut down) = (desired, desired);
        for r in &self.recommendations {
            if r.at > now - secs(up_window) {
                up = up.min(r.replicas);
            }
            if r.at > now - secs(down_window) {
                down = down.max(r.replicas);
            }
        }
        let stabilized = current.max(up).min(down);
        self.record(desired, now, secs(up_window.max(down_window)));
        let able = if stabilized == desired {
            limited(stabilized, READY)
        } else if desired >= current {
            limited(stabilized, UP_STABILIZED)
        } else {
            limited(stabilized, DOWN_STABILIZED)
        };
        let bounded = if stabilized > current {
            let rate = self.rate_limit(current, up_rules, now, true).max(current);
            let (ceiling, over) = if max > rate { (rate, UP_LIMIT) } else { (max, TOO_MANY) };
            if stabilized > ceiling { limited(ceiling, over) } else { limited(stabilized, WITHIN) }
        } else if stabilized < current {
            let rate = self.rate_limit(current, down_rules, now, false).min(current);
            let (floor, under) = if min < rate { (rate, DOWN_LIMIT) } else { (min, TOO_FEW) };
            if stabilized < floor { limited(floor, under) } else { limited(stabilized, WITHIN) }
        } else {
            limited(stabilized, WITHIN)
        };
        (able, bounded)
    }

    /// Replicas a change of `period` seconds has added (`up`) or removed.
    fn changed_within(events: &[ScaleEvent], period: i32, now: Timestamp) -> i32 {
        events.iter().filter(|e| e.at > now - secs(period)).map(|e| e.change).sum()
    }

    fn period_start(&self, current: i32, period: i32, now: Timestamp) -> i32 {
        current - Self::changed_within(&self.up, period, now) + Self::changed_within(&self.down, period, now)
    }

    /// How far the policies let the count move from `current` (`up`: the ceiling, else the
    /// floor), counting from where it stood at the start of each policy's period. `Max` selects
    /// the policy allowing the largest change, `Min` the smallest, `Disabled` none.
    fn rate_limit(&self, current: i32, rules: Option<&HPAScalingRules>, now: Timestamp, up: bool) -> i32 {
        let select = rules.and_then(|r| r.select_policy.as_deref()).unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let proposals = rules.and_then(|r| r.policies.as_ref()).into_iter().flatten().map(|p| {
            let start = self.period_start(current, p.period_seconds, now);
            let percent = f64::from(p.value) / 100.0;
            match (p.type_ == "Pods", up) {
                (true, true) => start.saturating_add(p.value),
                (true, false) => start.saturating_sub(p.value),
                (false, true) => (f64::from(start) * (1.0 + percent)).ceil() as i32,
                (false, false) => (f64::from(start) * (1.0 - percent)) as i32,
            }
        });
        // The largest change is the highest ceiling going up and the lowest floor going down.
        if (select == "Min") == up { proposals.min().unwrap_or(i32::MAX) } else { proposals.max().unwrap_or(i32::MIN) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    fn t0() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().expect("ts")
    }

    fn at(s: i64) -> Timestamp {
        t0() + SignedDuration::from_secs(s)
    }

    fn rules(window: Option<i32>, select: &str, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
        HPAScalingRules {
            stabilization_window_seconds: window,
            select_policy: Some(select.into()),
            policies: Some(
                policies
                    .iter()
                    .map(|(t, v, p)| HPAScalingPolicy { type_: t.to_string(), value: *v, period_seconds: *p })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// Upstream's defaults: up 0 s window, max(4 pods, 100%) per 15 s; down 300 s window, 100% per 15 s.
    fn default_behavior() -> HorizontalPodAutoscalerBehavior {
        HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(Some(0), "Max", &[("Pods", 4, 15), ("Percent", 100, 15)])),
            scale_down: Some(rules(None, "Max", &[("Percent", 100, 15)])),
        }
    }

    #[test]
    fn without_behavior_scale_down_waits_for_the_window() {
        let mut h = History::default();
        let (able, bounded) = h.normalize(5, 5, 1, 10, at(0));
        assert_eq!((able.reason, bounded.replicas), ("ReadyForNewScale", 5));
        let (able, bounded) = h.normalize(5, 2, 1, 10, at(60));
        assert_eq!((able.replicas, able.reason), (5, "ScaleDownStabilized"));
        assert_eq!(bounded.replicas, 5);
        // Five minutes after the last high recommendation the low one wins.
        let (able, _) = h.normalize(5, 2, 1, 10, at(301));
        assert_eq!((able.replicas, able.reason), (2, "ReadyForNewScale"));
    }

    #[test]
    fn without_behavior_scale_up_is_capped_and_bounded() {
        let mut h = History::default();
        let (_, b) = h.normalize(1, 20, 1, 10, at(0));
        assert_eq!((b.replicas, b.reason), (4, "ScaleUpLimit"));
        let mut h = History::default();
        let (_, b) = h.normalize(4, 20, 1, 6, at(0));
        assert_eq!((b.replicas, b.reason), (6, "TooManyReplicas"));
        let mut h = History::default();
        let (_, b) = h.normalize(4, 1, 3, 6, at(0));
        assert_eq!((b.replicas, b.reason), (3, "TooFewReplicas"));
        let (_, b) = History::default().normalize(4, 5, 3, 6, at(0));
        assert_eq!((b.replicas, b.reason, b.message), (5, "DesiredWithinRange", WITHIN.1));
    }

    #[test]
    fn default_behavior_scales_up_by_the_larger_policy() {
        let b = default_behavior();
        let mut h = History::default();
        // 2 → 100: max(2 + 4, 2 × 2) = 6.
        let (_, l) = h.normalize_with_behavior(&b, 2, 100, 1, 1000, at(0));
        assert_eq!((l.replicas, l.reason), (6, "ScaleUpLimit"));
        h.record_rescale(Some(&b), 2, 6, at(0));
        // Five seconds later, the period started at 2: still max(6, 4) = 6, no further growth.
        let (_, l) = h.normalize_with_behavior(&b, 6, 100, 1, 1000, at(5));
        assert_eq!(l.replicas, 6);
        // After the 15 s period: from 6, max(10, 12) = 12.
        let (_, l) = h.normalize_with_behavior(&b, 6, 100, 1, 1000, at(16));
        assert_eq!(l.replicas, 12);
    }

    #[test]
    fn behavior_down_window_and_policies() {
        let mut b = default_behavior();
        b.scale_down = Some(rules(Some(60), "Max", &[("Pods", 1, 30)]));
        let mut h = History::default();
        h.normalize_with_behavior(&b, 5, 5, 1, 10, at(0));
        let (able, _) = h.normalize_with_behavior(&b, 5, 1, 1, 10, at(30));
        assert_eq!((able.replicas, able.reason), (5, "ScaleDownStabilized"));
        // After the 60 s window: stabilized to 1, but one pod per 30 s.
        let (able, l) = h.normalize_with_behavior(&b, 5, 1, 1, 10, at(61));
        assert_eq!(able.replicas, 1);
        assert_eq!((l.replicas, l.reason), (4, "ScaleDownLimit"));
        h.record_rescale(Some(&b), 5, 4, at(61));
        let (_, l) = h.normalize_with_behavior(&b, 4, 1, 1, 10, at(70));
        assert_eq!(l.replicas, 4);
        // The minimum bound, when higher than the rate allows, is what limits.
        let (_, l) = History::default().normalize_with_behavior(&b, 4, 1, 4, 10, at(0));
        assert_eq!((l.replicas, l.reason), (4, "TooFewReplicas"));
    }

    #[test]
    fn disabled_policies_never_move() {
        let mut b = default_behavior();
        b.scale_up = Some(rules(Some(0), "Disabled", &[("Pods", 4, 15)]));
        let (_, l) = History::default().normalize_with_behavior(&b, 3, 9, 1, 10, at(0));
        assert_eq!((l.replicas, l.reason), (3, "ScaleUpLimit"));
    }

    #[test]
    fn min_select_takes_the_smallest_change() {
        let mut b = default_behavior();
        b.scale_up = Some(rules(Some(0), "Min", &[("Pods", 4, 15), ("Percent", 100, 15)]));
        b.scale_down = Some(rules(Some(0), "Min", &[("Pods", 1, 15), ("Percent", 50, 15)]));
        // Up from 2: min(2 + 4, 2 × 2) = 4.
        let (_, l) = History::default().normalize_with_behavior(&b, 2, 50, 1, 100, at(0));
        assert_eq!((l.replicas, l.reason), (4, "ScaleUpLimit"));
        // Down from 10: the smaller change of 10 - 1 and 10 × 50 % is 9.
        let (_, l) = History::default().normalize_with_behavior(&b, 10, 1, 1, 100, at(0));
        assert_eq!((l.replicas, l.reason), (9, "ScaleDownLimit"));
        // With Max, the larger change: 5.
        b.scale_down = Some(rules(Some(0), "Max", &[("Pods", 1, 15), ("Percent", 50, 15)]));
        let (_, l) = History::default().normalize_with_behavior(&b, 10, 1, 1, 100, at(0));
        assert_eq!((l.replicas, l.reason), (5, "ScaleDownLimit"));
    }

    #[test]
    fn up_stabilization_takes_the_lowest_recent_recommendation() {
        let mut b = default_behavior();
        b.scale_up = Some(rules(Some(60), "Max", &[("Pods", 100, 15)]));
        let mut h = History::default();
        h.normalize_with_behavior(&b, 2, 3, 1, 10, at(0));
        let (able, _) = h.normalize_with_behavior(&b, 2, 8, 1, 10, at(10));
        assert_eq!((able.replicas, able.reason), (3, "ScaleUpStabilized"));
    }
}
