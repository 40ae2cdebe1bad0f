//! Human-readable ages and durations, as upstream `duration.HumanDuration` prints them.
//!
//! Ages are computed against an explicit `now` so that table output is deterministic in tests.

use jiff::Timestamp;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MINUTE: i128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i128 = 60 * NANOS_PER_MINUTE;

/// Text shown for a missing, zero or unparsable timestamp.
pub const UNKNOWN: &str = "<unknown>";

/// Seconds of `0001-01-01T00:00:00Z`, Go's zero time, which Kubernetes treats as "unset".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Parses an RFC 3339 timestamp; `None` for empty, unparsable or Go-zero values.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    if text.is_empty() {
        return None;
    }
    let ts: Timestamp = text.parse().ok()?;
    (ts.as_second() != GO_ZERO_TIME_SECONDS).then_some(ts)
}

/// Human age like upstream `duration.HumanDuration` (e.g. "5s", "3m20s", "4h", "2d3h", "45d", "3y")
/// from a creation timestamp; `<unknown>` if unparsable.
pub fn age(created: &str, now: Timestamp) -> String {
    match parse_time(created) {
        Some(then) => human_duration(nanos_between(then, now)),
        None => UNKNOWN.to_string(),
    }
}

/// Nanoseconds from `from` to `to` (negative when `to` is earlier).
pub fn nanos_between(from: Timestamp, to: Timestamp) -> i128 {
    to.as_nanosecond() - from.as_nanosecond()
}

/// Formats a duration given in nanoseconds with the precision upstream uses: finer for short
/// spans, coarser for long ones. Up to a second in the future counts as "0s"; more is `<invalid>`.
pub fn human_duration(nanos: i128) -> String {
    // Integer division truncates toward zero, like Go's conversions.
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = nanos / NANOS_PER_MINUTE;
    if minutes < 10 {
        let rest = seconds % 60;
        return if rest == 0 { format!("{minutes}m") } else { format!("{minutes}m{rest}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = nanos / NANOS_PER_HOUR;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 { format!("{hours}h") } else { format!("{hours}h{rest}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let rest = hours % 24;
        return if rest == 0 { format!("{days}d") } else { format!("{days}d{rest}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let rest = days % 365;
        return if rest == 0 { format!("{years}y") } else { format!("{years}y{rest}d") };
    }
    format!("{years}y")
}

/// A creation timestamp as the generic `Created At` column shows it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339_utc(text: &str) -> String {
    match parse_time(text) {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}
