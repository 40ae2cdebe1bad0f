//! Resource lists (`corev1.ResourceList`) as quota arithmetic sees them: named amounts that keep
//! the print format of the first non-zero addend, with upstream's helpers (add, subtract,
//! mask, compare) and `name=value` rendering for messages.
//!
//! What does not live here: which resources an object uses ([`super::usage`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::quantity::{Format, Quantity};

/// An amount of one resource with the format it prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    /// The value.
    pub value: Quantity,
    /// How it prints.
    pub format: Format,
}

impl Amount {
    /// A count (decimal).
    pub fn count(n: i64) -> Amount {
        Amount { value: Quantity::from_units(n), format: Format::DecimalSi }
    }

    /// Parses a quantity string.
    pub fn parse(s: &str) -> Option<Amount> {
        Some(Amount { value: Quantity::parse(s).ok()?, format: Format::of(s) })
    }

    /// Reads a JSON quantity (a string, or a number as YAML clients may send).
    pub fn from_json(v: &Value) -> Option<Amount> {
        match v {
            Value::String(s) => Amount::parse(s),
            Value::Number(n) => Amount::parse(&n.to_string()),
            _ => None,
        }
    }

    /// The sum; the format is this amount's unless it is zero (upstream `Quantity.Add`).
    pub fn plus(self, other: Amount) -> Amount {
        let format = if self.value.is_zero() { other.format } else { self.format };
        Amount { value: self.value.add(other.value), format }
    }

    /// The difference, in this amount's format.
    pub fn minus(self, other: Amount) -> Amount {
        Amount { value: self.value.sub(other.value), format: self.format }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value.canonical(self.format))
    }
}

/// Named amounts, ordered by name.
pub type ResourceList = BTreeMap<String, Amount>;

/// Reads a JSON resource list (unparsable entries are skipped).
pub fn from_json(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), Amount::from_json(v)?))).collect())
        .unwrap_or_default()
}

/// The JSON form of a resource list (canonical strings).
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(list.iter().map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect())
}

/// Sum of two lists over the union of their names.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        let sum = match out.get(k) {
            Some(x) => x.plus(*v),
            None => *v,
        };
        out.insert(k.clone(), sum);
    }
    out
}

/// `a - b` for the names of `a`, never below zero (upstream `SubtractWithNonNegativeResult`).
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(k, v)| {
            let d = match b.get(k) {
                Some(o) => v.minus(*o),
                None => *v,
            };
            let d = if d.value.is_negative() { Amount { value: Quantity::ZERO, format: d.format } } else { d };
            (k.clone(), d)
        })
        .collect()
}

/// The entries of `list` whose names are in `names`.
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    let names: BTreeSet<&String> = names.into_iter().collect();
    list.iter().filter(|(k, _)| names.contains(k)).map(|(k, v)| (k.clone(), *v)).collect()
}

/// The entries that are not zero.
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter().filter(|(_, v)| !v.value.is_zero()).map(|(k, v)| (k.clone(), *v)).collect()
}

/// Whether every name of `b` that `a` has is no larger in `a`; also the names that are.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = b
        .iter()
        .filter(|(k, limit)| a.get(*k).is_some_and(|v| v.value > limit.value))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// Whether two lists have the same names and values (formats aside).
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|o| o.value == v.value))
}

/// Upstream's `prettyPrint`: `name=value` sorted by name, comma-separated.
pub fn pretty(list: &ResourceList) -> String {
    list.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arithmetic_keeps_formats_and_prints_like_upstream() {
        let a = from_json(Some(&json!({"pods": "2", "requests.memory": "1Gi", "requests.cpu": "500m"})));
        let b = from_json(Some(&json!({"pods": 1, "requests.memory": "512Mi", "limits.cpu": "1"})));
        let sum = add(&a, &b);
        assert_eq!(pretty(&sum), "limits.cpu=1,pods=3,requests.cpu=500m,requests.memory=1536Mi");
        let zero = from_json(Some(&json!({"requests.memory": "0"})));
        assert_eq!(pretty(&add(&zero, &b)), "limits.cpu=1,pods=1,requests.memory=512Mi");
        let d = subtract_non_negative(&b, &a);
        assert_eq!(pretty(&d), "limits.cpu=1,pods=0,requests.memory=0");
        assert_eq!(pretty(&remove_zeros(&d)), "limits.cpu=1");
        let (ok, exceeded) = less_than_or_equal(&sum, &a);
        assert!(!ok);
        assert_eq!(exceeded, vec!["pods".to_string(), "requests.memory".to_string()]);
        assert!(less_than_or_equal(&a, &sum).0);
        assert_eq!(to_json(&mask(&sum, &["pods".to_string()])), json!({"pods": "3"}));
        assert!(equals(&from_json(Some(&json!({"cpu": "1000m"}))), &from_json(Some(&json!({"cpu": "1"})))));
    }
}
