//! Eviction thresholds as the kubelet's flags spell them (`--eviction-hard`, `--eviction-soft`,
//! `--eviction-soft-grace-period`, `--eviction-minimum-reclaim`): the signals, their values (a
//! quantity or a percentage of capacity), parsing with upstream's rules and messages, and
//! whether a threshold is met by an observation.
//!
//! Also the two small formats those flags and the eviction messages need: Go durations
//! (`1m30s`) and the canonical rendering of quantities (`100Mi`, `1205632Ki`).
//!
//! What does not live here: measuring the signals ([`super::signals`]) and acting on them
//! ([`super::EvictionManager`]).

use std::fmt;
use std::time::Duration;

use skiff_api::quantity::Quantity;

/// What the kubelet measures to decide on eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `memory.available`: capacity − working set of the node.
    MemoryAvailable,
    /// `nodefs.available`: free bytes of the file system holding the agent's data and logs.
    NodeFsAvailable,
    /// `nodefs.inodesFree`: free inodes there.
    NodeFsInodesFree,
    /// `imagefs.available`: free bytes of the file system holding images and writable layers.
    ImageFsAvailable,
    /// `imagefs.inodesFree`: free inodes there.
    ImageFsInodesFree,
    /// `pid.available`: process ids left before the node's limit.
    PidAvailable,
}

/// Every signal, in the order conditions and evictions consider them.
pub const SIGNALS: [Signal; 6] = [
    Signal::MemoryAvailable,
    Signal::NodeFsAvailable,
    Signal::NodeFsInodesFree,
    Signal::ImageFsAvailable,
    Signal::ImageFsInodesFree,
    Signal::PidAvailable,
];

/// The node conditions pressure is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// `MemoryPressure`.
    Memory,
    /// `DiskPressure`.
    Disk,
    /// `PIDPressure`.
    Pid,
}

impl Condition {
    /// The condition type (`MemoryPressure`, `DiskPressure`, `PIDPressure`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Memory => "MemoryPressure",
            Self::Disk => "DiskPressure",
            Self::Pid => "PIDPressure",
        }
    }
}

/// The resource a signal's pressure is relieved by reclaiming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `memory`.
    Memory,
    /// `ephemeral-storage`.
    EphemeralStorage,
    /// `inodes` (internal to the eviction manager, as upstream).
    Inodes,
    /// `pids` (internal to the eviction manager, as upstream).
    Pids,
}

impl Resource {
    /// The resource name as messages print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::EphemeralStorage => "ephemeral-storage",
            Self::Inodes => "inodes",
            Self::Pids => "pids",
        }
    }
}

impl Signal {
    /// The signal's name in flags (`memory.available`).
    pub fn name(self) -> &'static str {
        match self {
            Self::MemoryAvailable => "memory.available",
            Self::NodeFsAvailable => "nodefs.available",
            Self::NodeFsInodesFree => "nodefs.inodesFree",
            Self::ImageFsAvailable => "imagefs.available",
            Self::ImageFsInodesFree => "imagefs.inodesFree",
            Self::PidAvailable => "pid.available",
        }
    }

    /// Parses a signal name; upstream's message for an unknown one.
    pub fn parse(name: &str) -> Result<Self, String> {
        SIGNALS.into_iter().find(|s| s.name() == name).ok_or_else(|| format!("unsupported eviction signal {name}"))
    }

    /// The node condition this signal's pressure sets.
    pub fn condition(self) -> Condition {
        match self {
            Self::MemoryAvailable => Condition::Memory,
            Self::PidAvailable => Condition::Pid,
            _ => Condition::Disk,
        }
    }

    /// The resource reclaimed to relieve it.
    pub fn resource(self) -> Resource {
        match self {
            Self::MemoryAvailable => Resource::Memory,
            Self::NodeFsAvailable | Self::ImageFsAvailable => Resource::EphemeralStorage,
            Self::NodeFsInodesFree | Self::ImageFsInodesFree => Resource::Inodes,
            Self::PidAvailable => Resource::Pids,
        }
    }

    /// Whether amounts of this signal are bytes (rendered with binary suffixes).
    fn is_bytes(self) -> bool {
        matches!(self, Self::MemoryAvailable | Self::NodeFsAvailable | Self::ImageFsAvailable)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a quantity was written, which decides how it is printed back (apimachinery's formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Ki`, `Mi`, …
    BinarySi,
    /// `k`, `M`, … or no suffix.
    DecimalSi,
    /// `e3`, `e6`, …
    DecimalExponent,
}

impl Format {
    /// The format of a quantity as written.
    pub fn of(text: &str) -> Self {
        let suffix =
            text.trim().trim_start_matches(['+', '-']).trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if suffix.ends_with('i') {
            Self::BinarySi
        } else if suffix.starts_with(['e', 'E']) {
            Self::DecimalExponent
        } else {
            Self::DecimalSi
        }
    }
}

/// A whole amount and the format it prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    /// The value (bytes, inodes, processes).
    pub value: i64,
    /// How it prints.
    pub format: Format,
}

impl Amount {
    /// `value` printed with binary suffixes (bytes).
    pub fn binary(value: i64) -> Self {
        Self { value, format: Format::BinarySi }
    }

    /// `value` printed with decimal suffixes (counts).
    pub fn decimal(value: i64) -> Self {
        Self { value, format: Format::DecimalSi }
    }

    /// A quantity as the user wrote it (`100Mi`); fractions of a unit round up.
    pub fn parse(text: &str) -> Result<Self, String> {
        let q = Quantity::parse(text).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Self { value: q.value(), format: Format::of(text) })
    }
}

impl fmt::Display for Amount {
    /// apimachinery's canonical form for whole values: binary amounts below 1024 in plain
    /// decimal, otherwise the largest suffix that divides exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        canonical(self.value, self.format, f)
    }
}

fn canonical(value: i64, format: Format, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if value == 0 {
        return f.write_str("0");
    }
    let (base, suffixes): (i64, &[&str]) = match format {
        Format::BinarySi if value.unsigned_abs() >= 1024 => (1024, &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
        Format::BinarySi | Format::DecimalSi => (1000, &["", "k", "M", "G", "T", "P", "E"]),
        Format::DecimalExponent => (1000, &[""]),
    };
    let (mut mantissa, mut power) = (value, 0usize);
    while mantissa % base == 0 && (power + 1 < suffixes.len() || format == Format::DecimalExponent) {
        mantissa /= base;
        power += 1;
    }
    match format {
        Format::DecimalExponent if power > 0 => write!(f, "{mantissa}e{}", power * 3),
        Format::DecimalExponent => write!(f, "{mantissa}"),
        _ => write!(f, "{mantissa}{}", suffixes[power]),
    }
}

/// A threshold's value: an amount, or a fraction of the signal's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An absolute amount.
    Quantity(Amount),
    /// A fraction of capacity (0.1 for `10%`).
    Percentage(f32),
}

impl Value {
    /// The amount this value stands for on a resource of `capacity` (upstream's
    /// `GetThresholdQuantity`: percentages become binary amounts).
    pub fn amount(&self, capacity: i64) -> Amount {
        match self {
            Self::Quantity(a) => *a,
            Self::Percentage(p) => Amount::binary((capacity as f64 * f64::from(*p)) as i64),
        }
    }
}

/// One eviction threshold: `signal < value`, held for `grace_period` (zero for hard ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub signal: Signal,
    /// The level below which the threshold is met.
    pub value: Value,
    /// How long it must be met before pods are evicted (zero: a hard threshold).
    pub grace_period: Duration,
    /// How much more than the threshold must be free again before the pressure ends.
    pub min_reclaim: Option<Value>,
}

impl Threshold {
    /// A hard threshold acts at once.
    pub fn is_hard(&self) -> bool {
        self.grace_period.is_zero()
    }

    /// Whether `available` (of `capacity`) meets the threshold; with `enforce_min_reclaim` the
    /// level is raised by the minimum reclaim (upstream's `thresholdsMet`).
    pub fn met(&self, available: i64, capacity: i64, enforce_min_reclaim: bool) -> bool {
        let mut level = self.value.amount(capacity).value;
        if enforce_min_reclaim && let Some(min) = &self.min_reclaim {
            level = level.saturating_add(min.amount(capacity).value);
        }
        level > available
    }
}

/// skiff's default `--eviction-hard`: k3s's disk levels (5 %, where the kubelet has 10 % for
/// nodefs and 15 % for imagefs, which keeps nodes on shared or nearly full disks out of
/// DiskPressure) with the kubelet's memory and inode levels.
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<5%,imagefs.available<5%,nodefs.inodesFree<5%";

/// Splits `a<b,c<d` (or `a=b,c=d`) into pairs; an empty string is no pairs.
fn pairs(text: &str, separator: char) -> Result<Vec<(Signal, String)>, String> {
    let mut out: Vec<(Signal, String)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once(separator)
            .ok_or_else(|| format!("malformed pair {item:?}, expected \"key{separator}value\""))?;
        let signal = Signal::parse(key.trim())?;
        out.retain(|(s, _)| *s != signal);
        out.push((signal, value.trim().to_string()));
    }
    Ok(out)
}

fn parse_percentage(text: &str) -> Result<f32, String> {
    let number = text.trim_end_matches('%');
    number.parse::<f64>().map(|v| (v / 100.0) as f32).map_err(|_| format!("invalid percentage {text:?}"))
}

/// Parses one `signal<value` statement (upstream's `parseThresholdStatement`); `None` for the
/// ignored `0%` and `100%`.
fn parse_statement(signal: Signal, value: &str) -> Result<Option<Value>, String> {
    if value.ends_with('%') {
        if value == "0%" || value == "100%" {
            return Ok(None);
        }
        let p = parse_percentage(value)?;
        if p < 0.0 {
            return Err(format!("eviction percentage threshold {signal} must be >= 0%: {value}"));
        }
        if p > 1.0 {
            return Err(format!("eviction percentage threshold {signal} must be <= 100%: {value}"));
        }
        return Ok(Some(Value::Percentage(p)));
    }
    let amount = Amount::parse(value)?;
    if amount.value <= 0 {
        return Err(format!("eviction threshold {signal} must be positive: {value}"));
    }
    Ok(Some(Value::Quantity(amount)))
}

/// Parses a thresholds flag (`memory.available<100Mi,nodefs.available<10%`).
pub fn parse_thresholds(text: &str) -> Result<Vec<(Signal, Value)>, String> {
    let mut out = Vec::new();
    for (signal, value) in pairs(text, '<')? {
        if let Some(v) = parse_statement(signal, &value)? {
            out.push((signal, v));
        }
    }
    Ok(out)
}

/// Parses `--eviction-soft-grace-period` (`memory.available=1m30s`).
pub fn parse_grace_periods(text: &str) -> Result<Vec<(Signal, Duration)>, String> {
    pairs(text, '=')?
        .into_iter()
        .map(|(signal, value)| {
            let d = parse_go_duration(&value)
                .map_err(|_| format!("invalid eviction grace period specified: {value}, must be a positive value"))?;
            Ok((signal, d))
        })
        .collect()
}

/// Parses `--eviction-minimum-reclaim` (`memory.available=0Mi,nodefs.available=500Mi`).
pub fn parse_minimum_reclaims(text: &str) -> Result<Vec<(Signal, Value)>, String> {
    pairs(text, '=')?
        .into_iter()
        .map(|(signal, value)| {
            if value.ends_with('%') {
                let p = parse_percentage(&value)?;
                if p <= 0.0 {
                    return Err(format!("eviction percentage minimum reclaim {signal} must be positive: {value}"));
                }
                return Ok((signal, Value::Percentage(p)));
            }
            let amount = Amount::parse(&value)?;
            if amount.value < 0 {
                return Err(format!("negative eviction minimum reclaim specified for {signal}"));
            }
            Ok((signal, Value::Quantity(amount)))
        })
        .collect()
}

/// The thresholds of the four eviction flags together (upstream's `ParseThresholdConfig`):
/// every soft threshold needs a grace period; minimum reclaims apply to hard and soft ones.
pub fn parse_config(hard: &str, soft: &str, soft_grace: &str, min_reclaim: &str) -> Result<Vec<Threshold>, String> {
    let graces = parse_grace_periods(soft_grace)?;
    let reclaims = parse_minimum_reclaims(min_reclaim)?;
    let reclaim = |s: Signal| reclaims.iter().find(|(r, _)| *r == s).map(|(_, v)| *v);
    let mut out: Vec<Threshold> = parse_thresholds(hard)?
        .into_iter()
        .map(|(signal, value)| Threshold { signal, value, grace_period: Duration::ZERO, min_reclaim: reclaim(signal) })
        .collect();
    for (signal, value) in parse_thresholds(soft)? {
        let grace = graces
            .iter()
            .find(|(s, _)| *s == signal)
            .map(|(_, d)| *d)
            .ok_or_else(|| format!("grace period must be specified for the soft eviction threshold {signal}"))?;
        out.push(Threshold { signal, value, grace_period: grace, min_reclaim: reclaim(signal) });
    }
    Ok(out)
}

/// Parses a Go duration (`300ms`, `1m30s`, `1.5h`); negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += number * nanos;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// How an observed amount of `signal` prints (bytes in binary units, counts in decimal ones).
pub fn observed(signal: Signal, value: i64) -> Amount {
    if signal.is_bytes() { Amount::binary(value) } else { Amount::decimal(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_hard_thresholds() {
        let t = parse_config(DEFAULT_EVICTION_HARD, "", "", "").expect("parse");
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].value, Value::Quantity(Amount { value: 100 << 20, format: Format::BinarySi }));
        assert!(t[0].is_hard());
        assert_eq!(t[1].value, Value::Percentage(0.05));
        assert_eq!(t[3].signal, Signal::NodeFsInodesFree);
        assert_eq!(t[3].value.amount(1000).value, 50);
    }

    #[test]
    fn soft_thresholds_need_grace_periods() {
        let err = parse_config("", "memory.available<1Gi", "", "").expect_err("no grace");
        assert_eq!(err, "grace period must be specified for the soft eviction threshold memory.available");
        let t = parse_config("", "memory.available<1.5Gi", "memory.available=1m30s", "memory.available=500Mi")
            .expect("parse");
        assert_eq!(t[0].grace_period, Duration::from_secs(90));
        assert!(!t[0].is_hard());
        assert_eq!(t[0].min_reclaim, Some(Value::Quantity(Amount::binary(500 << 20))));
        assert_eq!(t[0].value.amount(0).to_string(), "1536Mi");
    }

    #[test]
    fn bad_input_has_clear_errors() {
        assert_eq!(parse_thresholds("memory.free<1Gi").expect_err("signal"), "unsupported eviction signal memory.free");
        assert!(parse_thresholds("memory.available=1Gi").expect_err("separator").contains("malformed pair"));
        assert_eq!(
            parse_thresholds("nodefs.available<120%").expect_err("pct"),
            "eviction percentage threshold nodefs.available must be <= 100%: 120%"
        );
        assert_eq!(
            parse_thresholds("memory.available<0").expect_err("zero"),
            "eviction threshold memory.available must be positive: 0"
        );
        assert!(parse_thresholds("memory.available<lots").is_err());
        assert!(parse_grace_periods("memory.available=-1s").is_err());
        assert!(parse_grace_periods("memory.available=soon").is_err());
        assert_eq!(
            parse_minimum_reclaims("nodefs.available=0%").expect_err("zero pct"),
            "eviction percentage minimum reclaim nodefs.available must be positive: 0%"
        );
        // 0% and 100% are ignored, as upstream.
        assert!(parse_thresholds("nodefs.available<0%,imagefs.available<100%").expect("ignored").is_empty());
        assert!(parse_thresholds("").expect("empty").is_empty());
        assert_eq!(parse_thresholds("pid.available<1k").expect("pid")[0].0, Signal::PidAvailable);
    }

    #[test]
    fn thresholds_are_met_below_their_level() {
        let t = Threshold {
            signal: Signal::NodeFsAvailable,
            value: Value::Percentage(0.1),
            grace_period: Duration::ZERO,
            min_reclaim: Some(Value::Quantity(Amount::binary(50))),
        };
        assert!(t.met(99, 1000, false));
        assert!(!t.met(100, 1000, false));
        assert!(t.met(120, 1000, true), "minimum reclaim raises the level");
        assert!(!t.met(150, 1000, true));
    }

    #[test]
    fn quantities_print_canonically() {
        let show = |v: i64, f: Format| Amount { value: v, format: f }.to_string();
        assert_eq!(show(100 << 20, Format::BinarySi), "100Mi");
        assert_eq!(show(200 << 30, Format::BinarySi), "200Gi");
        assert_eq!(show(1_234_567_168, Format::BinarySi), "1205632Ki");
        assert_eq!(show(1_234_567, Format::BinarySi), "1234567");
        assert_eq!(show(512, Format::BinarySi), "512");
        assert_eq!(show(0, Format::BinarySi), "0");
        assert_eq!(show(1 << 60, Format::BinarySi), "1Ei");
        assert_eq!(show(5_000_000, Format::DecimalSi), "5M");
        assert_eq!(show(16_215_360, Format::DecimalSi), "16215360");
        assert_eq!(show(1_000_000_000, Format::DecimalExponent), "1e9");
        assert_eq!(Amount::parse("1G").expect("1G").to_string(), "1G");
        assert_eq!(Amount::parse("1024Mi").expect("Mi").to_string(), "1Gi");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("-5s").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
