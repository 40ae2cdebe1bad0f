//! How usage prints in `metrics.k8s.io` objects: CPU as a decimal quantity of nanocores
//! (`250m`, `1234567n`), memory as a binary quantity of bytes (`2Ki`, `1500`), windows as Go
//! durations (`15.002s`, `1m0s`) and timestamps as RFC 3339 seconds, as metrics-server prints
//! them.

use std::time::Duration;

use skiff_api::quantity::{Format, Quantity};

/// `nanocores` as a canonical decimal quantity.
pub fn cpu(nanocores: u64) -> String {
    Quantity::parse(&format!("{nanocores}n")).map(|q| q.canonical(Format::DecimalSi)).unwrap_or_else(|_| "0".into())
}

/// `bytes` as a canonical binary quantity.
pub fn memory(bytes: u64) -> String {
    Quantity::parse(&bytes.to_string()).map(|q| q.canonical(Format::BinarySi)).unwrap_or_else(|_| "0".into())
}

/// `d` as Go's `time.Duration.String` prints it.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, scale) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(ns, scale));
    }
    let (h, rest) = (ns / 3_600_000_000_000, ns % 3_600_000_000_000);
    let (m, s_ns) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = format!("{}s", fraction(s_ns, 1_000_000_000));
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `value / scale` with the fraction's trailing zeros removed.
fn fraction(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// `ns` since the epoch as RFC 3339 with whole seconds (`metav1.Time`).
pub fn timestamp(ns: i64) -> String {
    let seconds = ns.div_euclid(1_000_000_000);
    jiff::Timestamp::from_second(seconds).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu(1_234_567), "1234567n");
        assert_eq!(cpu(250_000_000), "250m");
        assert_eq!(cpu(2_000_000_000), "2");
        assert_eq!(cpu(0), "0");
        assert_eq!(memory(2048), "2Ki");
        assert_eq!(memory(1500), "1500");
        assert_eq!(memory(3 * 1024 * 1024), "3Mi");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(15_002)), "15.002s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(90_500)), "1m30.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(12)), "12ns");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        assert_eq!(timestamp(1_700_000_000_999_000_000), "2023-11-14T22:13:20Z");
    }
}
