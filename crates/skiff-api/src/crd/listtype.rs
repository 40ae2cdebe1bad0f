//! Uniqueness in lists of custom objects with `x-kubernetes-list-type: set` (whole items) and
//! `x-kubernetes-list-type: map` (the tuple of `x-kubernetes-list-map-keys`), as upstream's
//! `listtype.ValidateListSetsAndMaps`.
//!
//! Each repeated item is reported once, at its second appearance, as `Duplicate value` with
//! upstream's rendering of the value (`map[string]interface {}{"name":"a"}` for map keys). A
//! map item without a key field counts as "key unspecified" (all such items collide); null
//! items count as unspecified too. Runs after defaulting, so defaulted keys take part. The
//! CRD-time rules for these extensions live in [`super::keywords`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::schema::{additional, items, props};
use crate::validation::{ErrorList, child, gofmt, index, key};

/// Duplicate items of `set` and `map` lists anywhere in `obj` (validated against `schema`).
pub fn validate(obj: &Value, schema: &Value) -> ErrorList {
    let mut errors = ErrorList::new();
    if obj.is_object() {
        walk(obj, schema, "", &mut errors);
    }
    errors
}

fn walk(value: &Value, schema: &Value, path: &str, errors: &mut ErrorList) {
    match value {
        Value::Object(map) => {
            if let Some(extra) = additional(schema) {
                for (k, v) in map {
                    walk(v, extra, &key(path, k), errors);
                }
            }
            if let Some(properties) = props(schema) {
                for (k, v) in map {
                    if let Some(sub) = properties.get(k) {
                        walk(v, sub, &child(path, k), errors);
                    }
                }
            }
        }
        Value::Array(elements) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for i in second_appearances(elements.iter().map(Some)) {
                        errors.push(gofmt::duplicate(index(path, i), &elements[i]));
                    }
                }
                Some("map") => map_list(elements, schema, path, errors),
                _ => {}
            }
            if let Some(item) = items(schema) {
                for (i, v) in elements.iter().enumerate() {
                    walk(v, item, &index(path, i), errors);
                }
            }
        }
        _ => {}
    }
}

/// A comparable form of a JSON value: integral numbers compare equal whatever their encoding
/// (upstream decodes both `1` and `1.0` as an integer).
fn identity(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Array(items) => format!("[{}]", items.iter().map(identity).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}:{}", identity(v))).collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Indices of the second appearance of every value that appears more than once; `None` is a
/// value of its own ("unspecified").
fn second_appearances<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> Vec<usize> {
    let mut seen: HashMap<Option<String>, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, v) in values.enumerate() {
        let count = seen.entry(v.map(identity)).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

fn map_list(items: &[Value], schema: &Value, path: &str, errors: &mut ErrorList) {
    if let Some((i, bad)) = items.iter().enumerate().find(|(_, x)| !x.is_null() && !x.is_object()) {
        errors.push(gofmt::invalid(index(path, i), bad, "must be an object for an array of list-type map"));
        return;
    }
    if items.len() <= 1 {
        return;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let [only] = keys.as_slice() {
        let values: Vec<Option<&Value>> = items.iter().map(|x| x.get(*only)).collect();
        for i in second_appearances(values.iter().copied()) {
            let mut key_map = Map::new();
            if let Some(v) = values[i] {
                key_map.insert((*only).to_string(), v.clone());
            }
            errors.push(gofmt::duplicate(index(path, i), &Value::Object(key_map)));
        }
        return;
    }
    let tuples: Vec<Value> = items
        .iter()
        .map(|x| {
            let map: Map<String, Value> =
                keys.iter().filter_map(|k| x.get(*k).map(|v| ((*k).to_string(), v.clone()))).collect();
            Value::Object(map)
        })
        .collect();
    for i in second_appearances(tuples.iter().map(Some)) {
        errors.push(gofmt::duplicate(index(path, i), &tuples[i]));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "nums": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "number"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
            "routes": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host", "port"],
                "items": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer"},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}},
            "byName": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string"}}},
            "plain": {"type": "array", "items": {"type": "string"}},
        }}}})
    }

    fn check(spec: Value) -> Vec<String> {
        validate(&json!({"spec": spec}), &schema()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn duplicates_are_reported_as_upstream() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"tags": ["a", "b"], "ports": [{"name": "a"}, {"name": "b"}], "plain": ["x", "x"]}), vec![]),
            (
                json!({"tags": ["a", "b", "a", "a", "b"]}),
                vec![r#"spec.tags[2]: Duplicate value: "a""#, r#"spec.tags[4]: Duplicate value: "b""#],
            ),
            (json!({"nums": [1, 2.5, 1]}), vec!["spec.nums[2]: Duplicate value: 1"]),
            (
                json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}),
                vec![r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}"#],
            ),
            (
                json!({"ports": [{"port": 80}, {"port": 81}]}),
                vec!["spec.ports[1]: Duplicate value: map[string]interface {}{}"],
            ),
            (
                json!({"ports": [{"name": "a"}, "b"]}),
                vec![r#"spec.ports[1]: Invalid value: "b": must be an object for an array of list-type map"#],
            ),
            (
                json!({"routes": [{"host": "a", "port": 1}, {"host": "a", "port": 2}, {"host": "a", "port": 1}]}),
                vec![r#"spec.routes[2]: Duplicate value: map[string]interface {}{"host":"a", "port":1}"#],
            ),
            (
                json!({"routes": [{"host": "a", "port": 1, "tags": ["x", "x"]}]}),
                vec![r#"spec.routes[0].tags[1]: Duplicate value: "x""#],
            ),
            (json!({"byName": {"k": ["z", "z"]}}), vec![r#"spec.byName[k][1]: Duplicate value: "z""#]),
        ];
        for (spec, want) in cases {
            assert_eq!(check(spec.clone()), want, "{spec}");
        }
    }
}
