//! Resource quantities (`500m`, `1.5Gi`, `2e3`): parsing, comparison and arithmetic.
//!
//! Syntax follows apimachinery `resource.Quantity`: a signed decimal number followed by a binary
//! suffix (`Ki` … `Ei`), a decimal suffix (`n u m k M G T P E`) or a decimal exponent (`e3`).
//! Values are held exactly in nano-units (10⁻⁹), which covers every quantity Kubernetes accepts;
//! anything finer than a nano-unit rounds up, as upstream does.

use std::fmt;

/// A parsed quantity, exact to 10⁻⁹.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

/// A string that is not a valid quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
pub struct QuantityError;

const NANO: i128 = 1_000_000_000;
/// Upper bound on magnitude so sums cannot overflow (≈ 1.7e23 units).
const MAX_NANOS: i128 = i128::MAX / 1_000_000;

impl Quantity {
    /// A quantity of zero.
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    /// Builds a quantity from whole units.
    pub fn from_units(units: i64) -> Self {
        Self { nanos: i128::from(units) * NANO }
    }

    /// Builds a quantity from milli-units.
    pub fn from_millis(millis: i64) -> Self {
        Self { nanos: i128::from(millis) * 1_000_000 }
    }

    /// Parses the Kubernetes quantity syntax.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(QuantityError);
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let num_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[num_start..i];
        let suffix = &s[i..];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(QuantityError);
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // mantissa as an integer with `frac_part.len()` decimal places.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(QuantityError);
        }
        let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| QuantityError)? };
        let mut dec_exp: i32 = -(frac_part.len() as i32);
        let mut binary_mult: i128 = 1;
        match suffix {
            "" => {}
            "Ki" => binary_mult = 1 << 10,
            "Mi" => binary_mult = 1 << 20,
            "Gi" => binary_mult = 1 << 30,
            "Ti" => binary_mult = 1 << 40,
            "Pi" => binary_mult = 1 << 50,
            "Ei" => binary_mult = 1 << 60,
            "n" => dec_exp -= 9,
            "u" => dec_exp -= 6,
            "m" => dec_exp -= 3,
            "k" => dec_exp += 3,
            "M" => dec_exp += 6,
            "G" => dec_exp += 9,
            "T" => dec_exp += 12,
            "P" => dec_exp += 15,
            "E" => dec_exp += 18,
            other => {
                let exp = other.strip_prefix(['e', 'E']).ok_or(QuantityError)?;
                if exp.is_empty() || !exp.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError);
                }
                let e: i32 = exp.parse().map_err(|_| QuantityError)?;
                dec_exp = dec_exp.checked_add(e).ok_or(QuantityError)?;
            }
        }
        // value in nanos = mantissa * binary_mult * 10^(dec_exp + 9), rounding up.
        let scale = dec_exp + 9;
        let base = mantissa.checked_mul(binary_mult).ok_or(QuantityError)?;
        let nanos = if base == 0 {
            0
        } else if scale >= 0 {
            if scale > 38 {
                return Err(QuantityError);
            }
            base.checked_mul(10i128.pow(scale as u32)).ok_or(QuantityError)?
        } else {
            let div = 10i128.checked_pow((-scale) as u32);
            match div {
                Some(div) => (base + div - 1) / div,
                None => 1,
            }
        };
        if nanos > MAX_NANOS {
            return Err(QuantityError);
        }
        Ok(Self { nanos: if negative { -nanos } else { nanos } })
    }

    /// The value in milli-units, rounded up (cpu `250m` → 250).
    pub fn milli_value(&self) -> i64 {
        clamp_i64(div_ceil(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (memory `1Ki` → 1024).
    pub fn value(&self) -> i64 {
        clamp_i64(div_ceil(self.nanos, NANO))
    }

    /// The exact value in nano-units (10⁻⁹).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the quantity is negative.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The sum of two quantities (saturating).
    // Inherent rather than `ops::Add` so callers need no trait import; see also the impls below.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Quantity) -> Quantity {
        Quantity { nanos: self.nanos.saturating_add(other.nanos) }
    }

    /// The difference of two quantities (saturating).
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, other: Quantity) -> Quantity {
        Quantity { nanos: self.nanos.saturating_sub(other.nanos) }
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    fn add(self, other: Quantity) -> Quantity {
        Quantity::add(self, other)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    fn sub(self, other: Quantity) -> Quantity {
        Quantity::sub(self, other)
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 { q + 1 } else { q }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl fmt::Display for Quantity {
    /// Canonical decimal form: whole units when exact, otherwise milli or nano units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else if self.nanos % 1000 == 0 {
            write!(f, "{}u", self.nanos / 1000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

/// How a quantity prints, as apimachinery's `Format`: the suffix family of the string it came
/// from (`Ki`…`Ei` → binary; anything else → decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `n u m k M G T P E` suffixes.
    #[default]
    DecimalSi,
    /// `Ki Mi Gi Ti Pi Ei` suffixes.
    BinarySi,
}

impl Format {
    /// The format of a quantity string.
    pub fn of(s: &str) -> Format {
        if s.trim_end().ends_with('i') { Format::BinarySi } else { Format::DecimalSi }
    }
}

impl Quantity {
    /// Upstream's canonical string in `format` (`1Gi`, `1536Mi`, `500m`, `2k`): binary only for
    /// whole values of at least 1024 in magnitude, else decimal with the largest exact suffix.
    pub fn canonical(&self, format: Format) -> String {
        let n = self.nanos;
        if format == Format::BinarySi && n % NANO == 0 && n.abs() >= 1024 * NANO {
            let mut v = n / NANO;
            let mut i = 0;
            while i < 6 && v % 1024 == 0 {
                v /= 1024;
                i += 1;
            }
            return format!("{v}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i]);
        }
        if n == 0 {
            return "0".to_string();
        }
        // exponents -9, -6, …, 18 as steps of 1000 from nanos.
        const SUFFIXES: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
        let mut v = n;
        let mut i = 0;
        while i < SUFFIXES.len() - 1 && v % 1000 == 0 {
            v /= 1000;
            i += 1;
        }
        format!("{v}{}", SUFFIXES[i])
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_examples() {
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("1.5", 2, 1500),
            ("0.5", 1, 500),
            ("1Ki", 1024, 1_024_000),
            ("128Mi", 134_217_728, 134_217_728_000),
            ("1G", 1_000_000_000, 1_000_000_000_000),
            ("2e3", 2000, 2_000_000),
            ("1E", 1_000_000_000_000_000_000, i64::MAX),
            ("-1", -1, -1000),
            ("+2", 2, 2000),
            ("1n", 1, 1),
            (".5", 1, 500),
            ("1.", 1, 1000),
            ("12e-3", 1, 12),
        ];
        for (s, value, milli) in cases {
            let q = Quantity::parse(s).unwrap_or_else(|_| panic!("{s} should parse"));
            assert_eq!(q.value(), *value, "value of {s}");
            assert_eq!(q.milli_value(), *milli, "milli of {s}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "1.2.3", "1Kb", "1 Gi", "--1", "1e", "1ee3", ".", "1Mib", "e3"] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn ordering_and_arithmetic() {
        let a = Quantity::parse("500m").expect("ok");
        let b = Quantity::parse("1").expect("ok");
        assert!(a < b);
        assert_eq!(a.add(a), b);
        assert_eq!(b.sub(a), a);
        assert_eq!(a.to_string(), "500m");
        assert_eq!(Quantity::parse("2Ki").expect("ok").to_string(), "2048");
    }

    #[test]
    fn canonical_forms_follow_upstream() {
        let c = |s: &str| Quantity::parse(s).expect("ok").canonical(Format::of(s));
        assert_eq!(c("1Gi"), "1Gi");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("512Ki"), "512Ki");
        assert_eq!(c("1000Mi"), "1000Mi");
        assert_eq!(c("1000"), "1k");
        assert_eq!(c("1500"), "1500");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("2"), "2");
        assert_eq!(c("0"), "0");
        assert_eq!(c("0Mi"), "0");
        assert_eq!(c("100Mi"), "100Mi");
        assert_eq!(Quantity::parse("2048").expect("ok").canonical(Format::BinarySi), "2Ki");
        assert_eq!(Quantity::parse("1").expect("ok").canonical(Format::BinarySi), "1");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn integers_round_trip(n in -1_000_000_000i64..1_000_000_000) {
            let q = Quantity::parse(&n.to_string()).expect("integer parses");
            proptest::prop_assert_eq!(q.value(), n);
            proptest::prop_assert_eq!(Quantity::parse(&q.to_string()).expect("display parses"), q);
        }
    }
}
