//! Reading fields out of JSON objects, and the small formatting rules shared by printers
//! (label sets, label selectors, container lists, "+ N more..." lists).
//!
//! Printers work on `serde_json::Value` so that one printer serves every version of a kind;
//! a missing field reads as the zero value, as it would in a Go struct.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::age;

/// The value at `path`, if present and not `null`.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.get(*key)?;
    }
    (!current.is_null()).then_some(current)
}

/// Whether a non-null value exists at `path`.
pub fn has(value: &Value, path: &[&str]) -> bool {
    at(value, path).is_some()
}

/// The string at `path`, or `""`.
pub fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, if any.
pub fn opt_int(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0.
pub fn int(value: &Value, path: &[&str]) -> i64 {
    opt_int(value, path).unwrap_or(0)
}

/// The boolean at `path`, if any.
pub fn opt_bool(value: &Value, path: &[&str]) -> Option<bool> {
    at(value, path).and_then(Value::as_bool)
}

/// The array at `path`, or an empty slice.
pub fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Number of entries of the map at `path` (0 when absent).
pub fn map_len(value: &Value, path: &[&str]) -> usize {
    at(value, path).and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    text(obj, &["metadata", "name"])
}

/// Age of the object from `metadata.creationTimestamp`.
pub fn obj_age(obj: &Value, now: Timestamp) -> String {
    age::age(text(obj, &["metadata", "creationTimestamp"]), now)
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn deleting(obj: &Value) -> bool {
    has(obj, &["metadata", "deletionTimestamp"])
}

/// `s`, or `<none>` when empty.
pub fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".to_string() } else { s.to_string() }
}

/// `s`, or `<unset>` when absent.
pub fn or_unset(s: Option<&str>) -> String {
    s.map_or_else(|| "<unset>".to_string(), str::to_string)
}

/// Upstream's rendering of a boolean: `True` or `False`.
pub fn bool_word(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Whether the condition of `type_` in the list at `path` has status `True`; only the first
/// condition of that type counts.
pub fn condition_true(obj: &Value, path: &[&str], type_: &str) -> bool {
    list(obj, path).iter().find(|c| text(c, &["type"]) == type_).is_some_and(|c| text(c, &["status"]) == "True")
}

/// A quantity (string or bare number) as text; a missing quantity is `0`.
pub fn quantity(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// An int-or-string value as text.
pub fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Container names and images of a pod spec, each comma-separated.
pub fn containers(pod_spec: &Value) -> (String, String) {
    let containers = list(pod_spec, &["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// A label map as `k=v,k2=v2` sorted by key, or `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "<none>".to_string();
    };
    // serde_json maps iterate in key order unless `preserve_order` is on; sort to be sure.
    let mut pairs: Vec<(&String, &str)> = map.iter().map(|(k, v)| (k, v.as_str().unwrap_or(""))).collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let joined = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    if joined.is_empty() { "<none>".to_string() } else { joined }
}

/// A `LabelSelector` in selector syntax (`app=web,tier in (a,b),!legacy`), requirements sorted by
/// key and set values sorted; empty for a missing or empty selector; `None` if it is invalid.
pub fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in list(selector, &["matchExpressions"]) {
        let key = text(expr, &["key"]);
        let mut values: Vec<&str> = list(expr, &["values"]).iter().map(|v| v.as_str().unwrap_or("")).collect();
        values.sort_unstable();
        let rendered = match text(expr, &["operator"]) {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// A `LabelSelector` as upstream `FormatLabelSelector`: `<none>` when it selects by nothing,
/// `<error>` when invalid.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// Joins up to `max` items with commas and appends ` + N more...` for the rest; `<unset>` when
/// there is nothing at all.
pub fn list_with_more(items: &[String], total: usize, max: usize) -> String {
    let shown = items.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if total > max {
        return format!("{shown} + {} more...", total - max);
    }
    if shown.is_empty() { "<unset>".to_string() } else { shown }
}

/// Load-balancer ingress points (IP, else hostname), de-duplicated and sorted, comma-separated.
pub fn load_balancer_ingress(status: &Value) -> String {
    let points: BTreeSet<&str> = list(status, &["ingress"])
        .iter()
        .filter_map(|i| {
            let ip = text(i, &["ip"]);
            let host = text(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    points.into_iter().collect::<Vec<_>>().join(",")
}
