//! Cron schedules as CronJobs spell them (upstream parses them with robfig/cron's standard
//! parser): five fields `minute hour day-of-month month day-of-week` with `*`, `?`, lists,
//! ranges, steps (`a/n` means `a-max/n`), month and weekday names, and the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly`. Day-of-month and
//! day-of-week combine as in cron: when either is unrestricted (`*`/`?`, or a step of 1 over it)
//! both must match, otherwise either may.
//!
//! Next times are computed in a time zone: a local time that does not exist (a DST gap) is
//! skipped, and an ambiguous one (a DST fold) fires once, at its first occurrence.
//!
//! What does not live here: missed-schedule handling (the CronJob controller).

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    name_base: u32,
}

fn value(s: &str, b: &Bounds) -> Result<u32, ParseError> {
    if let Some(i) = b.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(b.name_base + u32::try_from(i).unwrap_or(0));
    }
    s.parse::<u32>().map_err(|_| ParseError(format!("failed to parse int from {s}")))
}

/// Parses one field; returns its bits and whether it is unrestricted (`*`/`?` without a step
/// above 1).
fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), ParseError> {
    let mut bits = 0u64;
    let mut star = false;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                (r, Some(s.parse::<u32>().map_err(|_| ParseError(format!("failed to parse int from {s}")))?))
            }
            None => (part, None),
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (b.min, b.max, true)
        } else if let Some((lo, hi)) = range.split_once('-') {
            (value(lo, b)?, value(hi, b)?, false)
        } else {
            let v = value(range, b)?;
            (v, if step.is_some() { b.max } else { v }, false)
        };
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(ParseError(format!("step of range should be a positive number: {part}")));
        }
        if start < b.min {
            return Err(ParseError(format!("beginning of range ({start}) below minimum ({}): {part}", b.min)));
        }
        if end > b.max {
            return Err(ParseError(format!("end of range ({end}) above maximum ({}): {part}", b.max)));
        }
        if start > end {
            return Err(ParseError(format!("beginning of range ({start}) beyond end of range ({end}): {part}")));
        }
        star |= is_star && step == 1;
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a CronJob schedule.
    pub fn parse(spec: &str) -> Result<Self, ParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ParseError("empty spec string".into()));
        }
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(ParseError(format!("unrecognized descriptor: {s}"))),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ParseError(format!("expected exactly 5 fields, found {}: {spec}", fields.len())));
        }
        const NONE: &[&str] = &[];
        let b =
            |min: u32, max: u32, names: &'static [&'static str], name_base: u32| Bounds { min, max, names, name_base };
        let (minute, _) = field(fields[0], &b(0, 59, NONE, 0))?;
        let (hour, _) = field(fields[1], &b(0, 23, NONE, 0))?;
        let (dom, dom_star) = field(fields[2], &b(1, 31, NONE, 0))?;
        let (month, _) = field(fields[3], &b(1, 12, &MONTHS, 1))?;
        let (dow, dow_star) = field(fields[4], &b(0, 6, &DAYS, 0))?;
        Ok(Self { minute, hour, dom, month, dow, dom_star, dow_star })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star { dom && dow } else { dom || dow }
    }

    /// The first activation strictly after `after`, in `tz`; `None` if there is none within
    /// five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let mut day = start.date();
        let last = day.checked_add(5.years()).ok()?;
        while day <= last {
            if self.month & (1 << day.month()) != 0 && self.day_matches(day) {
                for h in (0..24i8).filter(|h| self.hour & (1 << h) != 0) {
                    for m in (0..60i8).filter(|m| self.minute & (1 << m) != 0) {
                        let dt = DateTime::new(day.year(), day.month(), day.day(), h, m, 0, 0).ok()?;
                        let ts = match tz.to_ambiguous_timestamp(dt).offset() {
                            AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
                                offset.to_timestamp(dt).ok()?
                            }
                            AmbiguousOffset::Gap { .. } => continue,
                        };
                        if ts > after {
                            return Some(ts);
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

/// The weekday of `d` counted from Sunday = 0 (exposed for tests).
pub fn sunday_zero(d: Date) -> i8 {
    d.weekday().to_sunday_zero_offset()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next_utc(spec: &str, after: &str) -> String {
        Schedule::parse(spec).expect("parse").next(ts(after), &TimeZone::UTC).expect("next").to_string()
    }

    #[test]
    fn parses_upstream_syntax() {
        assert_eq!(next_utc("*/1 * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:01:00Z");
        assert_eq!(next_utc("*/15 * * * *", "2026-01-01T00:16:00Z"), "2026-01-01T00:30:00Z");
        assert_eq!(next_utc("5/20 * * * *", "2026-01-01T00:26:00Z"), "2026-01-01T00:45:00Z");
        assert_eq!(next_utc("0 9-17/4 * * *", "2026-01-01T10:00:00Z"), "2026-01-01T13:00:00Z");
        assert_eq!(next_utc("0 0 1,15 * *", "2026-01-02T00:00:00Z"), "2026-01-15T00:00:00Z");
        assert_eq!(next_utc("0 0 ? JAN,Jul MON-fri", "2026-01-02T12:00:00Z"), "2026-01-05T00:00:00Z");
        assert_eq!(next_utc("30 4 * * sun", "2026-01-01T00:00:00Z"), "2026-01-04T04:30:00Z");
        assert_eq!(next_utc("@hourly", "2026-01-01T00:00:00Z"), "2026-01-01T01:00:00Z");
        assert_eq!(next_utc("@daily", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next_utc("@midnight", "2026-01-01T23:59:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next_utc("@weekly", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
        assert_eq!(next_utc("@monthly", "2026-01-01T00:00:00Z"), "2026-02-01T00:00:00Z");
        assert_eq!(next_utc("@yearly", "2026-01-01T00:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next_utc("@annually", "2026-06-01T00:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next_utc("0 0 29 2 *", "2026-01-01T00:00:00Z"), "2028-02-29T00:00:00Z");
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: either matches (the 13th, or any Friday).
        assert_eq!(next_utc("0 0 13 * 5", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next_utc("0 0 13 * 5", "2026-01-10T00:00:00Z"), "2026-01-13T00:00:00Z");
        // Day of week unrestricted: only the 13th.
        assert_eq!(next_utc("0 0 13 * *", "2026-01-01T00:00:00Z"), "2026-01-13T00:00:00Z");
        assert_eq!(next_utc("0 0 13 * */1", "2026-01-01T00:00:00Z"), "2026-01-13T00:00:00Z");
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "@every 5m",
            "@reboot",
            "x * * * *",
            "* * * foo *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn time_zones_and_dst() {
        let ny: TimeZone = TimeZone::get("America/New_York").expect("tz");
        let s = Schedule::parse("0 9 * * *").expect("parse");
        assert_eq!(s.next(ts("2026-01-01T00:00:00Z"), &ny).map(|t| t.to_string()), Some("2026-01-01T14:00:00Z".into()));
        assert_eq!(s.next(ts("2026-07-01T00:00:00Z"), &ny).map(|t| t.to_string()), Some("2026-07-01T13:00:00Z".into()));
        // 2026-03-08 02:30 does not exist in New York: that day is skipped.
        let gap = Schedule::parse("30 2 * * *").expect("parse");
        assert_eq!(
            gap.next(ts("2026-03-07T12:00:00Z"), &ny).map(|t| t.to_string()),
            Some("2026-03-09T06:30:00Z".into())
        );
        // 2026-11-01 01:30 happens twice: it fires once, at the first (EDT) occurrence.
        let fold = Schedule::parse("30 1 * * *").expect("parse");
        let first = fold.next(ts("2026-11-01T00:00:00Z"), &ny).expect("next");
        assert_eq!(first.to_string(), "2026-11-01T05:30:00Z");
        assert_eq!(fold.next(first, &ny).map(|t| t.to_string()), Some("2026-11-02T06:30:00Z".into()));
        let tokyo = TimeZone::get("Asia/Tokyo").expect("tz");
        assert_eq!(
            s.next(ts("2026-01-01T00:00:00Z"), &tokyo).map(|t| t.to_string()),
            Some("2026-01-02T00:00:00Z".into())
        );
        assert_eq!(sunday_zero(Date::constant(2026, 1, 4)), 0);
    }
}
