//! JSON values of a custom object as CEL values, typed by the structural schema as upstream's
//! `UnstructuredToVal` does: `number` fields are doubles even when written `1`, `integer` fields
//! ints, `x-kubernetes-int-or-string` an int or a string, strings with `format: byte`,
//! `duration`, `date` or `date-time` are bytes, durations and timestamps; objects with
//! `properties` are maps of their (escaped, see [`escape`]) declared properties, objects with
//! `additionalProperties` maps of their entries. The root of a resource and embedded resources
//! also expose `apiVersion`, `kind` and `metadata.name`/`metadata.generateName`.
//!
//! Departure: an object with `x-kubernetes-preserve-unknown-fields` and no declared properties
//! (and any value without a schema) is exposed whole, untyped, where upstream exposes nothing.

use std::collections::HashMap;

use base64::Engine;
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::Val;
use serde_json::{Map, Value};

use crate::crd::schema::{additional, flag, props, str_of};

/// CEL's reserved words, which property names escape to `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CEL name of the property `name`, or `None` when it cannot be named (upstream `Escape`):
/// `__` → `__underscores__`, `.` → `__dot__`, `-` → `__dash__`, `/` → `__slash__`, reserved words
/// → `__word__`; names starting with a digit or holding other characters are not exposed.
pub(crate) fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
    }
    Some(out)
}

/// Converts `value` (described by `schema`, `None` when untyped) to a CEL value. `resource_root`
/// is true at the root of the object and of embedded resources.
pub(crate) fn to_cel(value: &Value, schema: Option<&Value>, resource_root: bool) -> Box<dyn Val> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number(n, schema),
        Value::String(s) => string(s, schema),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items")).filter(|s| s.is_object());
            let items: Vec<Box<dyn Val>> =
                items.iter().map(|i| to_cel(i, item_schema, item_schema.is_some_and(embedded))).collect();
            Box::new(CelList::from(items))
        }
        Value::Object(map) => object(map, schema, resource_root),
    }
}

fn embedded(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

fn number(n: &serde_json::Number, schema: Option<&Value>) -> Box<dyn Val> {
    let ty = schema.map(|s| str_of(s, "type")).unwrap_or("");
    if ty == "number" {
        return Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0)));
    }
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0)))
    }
}

fn string(s: &str, schema: Option<&Value>) -> Box<dyn Val> {
    let format = schema.filter(|s| str_of(s, "type") == "string").map(|s| str_of(s, "format")).unwrap_or("");
    let typed: Option<Box<dyn Val>> = match format {
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .map(|b| Box::new(CelBytes::from(b)) as Box<dyn Val>),
        "duration" => parse_duration(s).map(|d| Box::new(CelDuration::from(d)) as Box<dyn Val>),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| Box::new(CelTimestamp::from(d.and_utc().fixed_offset())) as Box<dyn Val>),
        "date-time" => {
            chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| Box::new(CelTimestamp::from(t)) as Box<dyn Val>)
        }
        _ => None,
    };
    typed.unwrap_or_else(|| Box::new(CelString::from(s.to_string())))
}

/// Parses a Go duration (`1h30m`, `1.5s`, `-300ms`, `0`).
pub(crate) fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|i| *i > 0)?;
        let amount: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += amount * scale;
        rest = &rest[unit_end..];
    }
    let nanos = if negative { -nanos } else { nanos };
    (nanos.abs() < 9.2e18).then(|| chrono::Duration::nanoseconds(nanos as i64))
}

fn entry(key: String, value: Box<dyn Val>) -> (CelMapKey<'static>, Box<dyn Val>) {
    (CelMapKey::from(key), value)
}

fn object(map: &Map<String, Value>, schema: Option<&Value>, resource_root: bool) -> Box<dyn Val> {
    let mut out: HashMap<CelMapKey<'static>, Box<dyn Val>> = HashMap::new();
    let properties = schema.and_then(props);
    let extra = schema.and_then(additional);
    if let Some(properties) = properties {
        for (name, sub) in properties {
            if let (Some(v), Some(escaped)) = (map.get(name), escape(name)) {
                out.insert(CelMapKey::from(escaped), to_cel(v, Some(sub), embedded(sub)));
            }
        }
    } else if let Some(sub) = extra {
        out.extend(map.iter().map(|(k, v)| entry(k.clone(), to_cel(v, Some(sub), embedded(sub)))));
    } else if !resource_root || schema.is_none_or(|s| flag(s, "x-kubernetes-preserve-unknown-fields")) {
        out.extend(map.iter().map(|(k, v)| entry(k.clone(), to_cel(v, None, false))));
    }
    if resource_root {
        for f in ["apiVersion", "kind"] {
            if let Some(Value::String(s)) = map.get(f) {
                out.insert(CelMapKey::from(f.to_string()), Box::new(CelString::from(s.clone())));
            }
        }
        if let Some(Value::Object(meta)) = map.get("metadata") {
            let fields: HashMap<CelMapKey<'static>, Box<dyn Val>> = ["name", "generateName"]
                .into_iter()
                .filter_map(|f| match meta.get(f) {
                    Some(Value::String(s)) => Some(entry(f.to_string(), Box::new(CelString::from(s.clone())))),
                    _ => None,
                })
                .collect();
            out.insert(CelMapKey::from("metadata".to_string()), Box::new(CelMap::from(fields)));
        }
    }
    Box::new(CelMap::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Context;
    use serde_json::json;

    #[test]
    fn property_names_escape_as_upstream() {
        for (name, want) in [
            ("replicas", Some("replicas")),
            ("foo-bar", Some("foo__dash__bar")),
            ("a.b/c", Some("a__dot__b__slash__c")),
            ("a__b", Some("a__underscores__b")),
            ("namespace", Some("__namespace__")),
            ("1st", None),
            ("spaces here", None),
            ("", None),
        ] {
            assert_eq!(escape(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("1.5s"), Some(chrono::Duration::milliseconds(1500)));
        assert_eq!(parse_duration("-300ms"), Some(chrono::Duration::milliseconds(-300)));
        assert_eq!(parse_duration("0"), Some(chrono::Duration::zero()));
        assert_eq!(parse_duration("5 days"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn values_are_typed_by_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "ratio": {"type": "number"}, "count": {"type": "integer"}, "port": {"x-kubernetes-int-or-string": true},
            "data": {"type": "string", "format": "byte"}, "timeout": {"type": "string", "format": "duration"},
            "at": {"type": "string", "format": "date-time"}, "my-field": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "undeclared": {"type": "string"}}});
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "namespace": "ns"},
            "ratio": 1, "count": 2, "port": "http", "data": "aGk=", "timeout": "1m", "at": "2024-01-02T03:04:05Z",
            "my-field": "v", "labels": {"a.b": "c"}, "extra": {"deep": {"x": 1}}, "unknown": true});
        let env = super::super::env::shared();
        let mut ctx = Context::with_env(env.clone());
        ctx.add_variable_as_val("self", to_cel(&obj, Some(&schema), true));
        for rule in [
            "type(self.ratio) == double",
            "type(self.count) == int",
            "self.port == 'http'",
            "self.data == b'hi'",
            "self.timeout == duration('60s')",
            "self.at == timestamp('2024-01-02T03:04:05Z')",
            "self.my__dash__field == 'v'",
            "self.labels['a.b'] == 'c'",
            "self.extra.deep.x == 1",
            "!has(self.unknown)",
            "!has(self.undeclared)",
            "self.metadata.name == 'n' && !has(self.metadata.namespace)",
            "self.kind == 'K' && self.apiVersion == 'x/v1'",
        ] {
            let program = env.compile(rule).expect("compiles");
            assert_eq!(program.execute(&ctx), Ok(cel::Value::Bool(true)), "{rule}");
        }
    }
}
