//! Helpers on objects as JSON: metadata access, dotted-path lookup, and stamping
//! `metadata.resourceVersion` into serialized objects.
//!
//! Objects are stored without `resourceVersion` (the store's modification revision is the
//! resource version); it is stamped in when an object leaves the server. Typed decoding and the
//! per-kind hooks live in [`crate::typed`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `metadata` of an object, if it is an object.
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata` of an object, created if missing; `None` only if `obj` is not an object.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj.as_object_mut()?.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// `metadata.labels` as a map (empty when absent).
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(metadata(obj).and_then(|m| m.get("labels")))
}

/// A JSON object of strings as a map; non-string values are skipped.
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// The value at a dotted path (`spec.nodeName`) rendered as a field-selector string.
pub fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    field_string(cur)
}

/// A scalar as a field-selector string (`null` is empty); `None` for objects and arrays.
pub fn field_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Removes every `null` member of objects, recursively (upstream drops them when decoding).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Stamps `"resourceVersion":"<rv>"` into the top-level `metadata` of a serialized object that
/// does not carry one. Returns `None` if the bytes have no top-level `metadata` object.
///
/// Scans the JSON once, tracking strings and nesting, so a `metadata` key nested deeper or inside
/// a string is never mistaken for the top-level one.
pub fn inject_resource_version(json: &[u8], rv: u64) -> Option<Vec<u8>> {
    let pos = top_level_metadata_open(json)?;
    let stamp = format!("\"resourceVersion\":\"{rv}\"");
    let empty = json[pos + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(json.len() + stamp.len() + 1);
    out.extend_from_slice(&json[..=pos]);
    out.extend_from_slice(stamp.as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&json[pos + 1..]);
    Some(out)
}

/// Byte offset of the `{` opening the value of the top-level `"metadata"` key.
fn top_level_metadata_open(json: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0usize;
    let mut last_key: Option<(usize, usize)> = None;
    let mut expect_key = false;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    if json[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 && expect_key {
                    last_key = Some((start, i));
                }
            }
            b'{' | b'[' => {
                if depth == 1
                    && json[i] == b'{'
                    && let Some((s, e)) = last_key.take()
                    && &json[s..e] == b"metadata"
                {
                    return Some(i);
                }
                depth += 1;
                expect_key = json[i] == b'{' && depth == 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => {
                expect_key = true;
                last_key = None;
            }
            b':' if depth == 1 => {
                expect_key = false;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn injects_resource_version_into_top_level_metadata_only() {
        let obj = json!({"a": {"metadata": {"x": 1}}, "data": {"k": "\"metadata\":{"}, "metadata": {"name": "n"}, "spec": {"template": {"metadata": {}}}});
        let bytes = serde_json::to_vec(&obj).expect("json");
        let out = inject_resource_version(&bytes, 42).expect("injected");
        let parsed: Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(parsed["metadata"]["resourceVersion"], "42");
        assert_eq!(parsed["metadata"]["name"], "n");
        assert!(parsed["a"]["metadata"].get("resourceVersion").is_none());
        assert!(parsed["spec"]["template"]["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn injects_into_empty_metadata() {
        let out = inject_resource_version(br#"{"kind":"X","metadata":{}}"#, 7).expect("injected");
        let parsed: Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(parsed["metadata"]["resourceVersion"], "7");
        assert!(inject_resource_version(br#"{"kind":"X"}"#, 7).is_none());
        assert!(inject_resource_version(br#"{"kind":"X","metadata":"s"}"#, 7).is_none());
    }

    proptest::proptest! {
        #[test]
        fn injection_never_panics_and_keeps_json_valid(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
                                                       name in "[a-z\"\\{}:,]{0,12}") {
            let _ = inject_resource_version(&bytes, 1);
            let obj = json!({"a": {"metadata": name.clone()}, "metadata": {"name": name}, "z": [{"metadata": {}}]});
            let out = inject_resource_version(&serde_json::to_vec(&obj).expect("json"), 9).expect("injected");
            let parsed: Value = serde_json::from_slice(&out).expect("valid json");
            proptest::prop_assert_eq!(&parsed["metadata"]["resourceVersion"], "9");
        }
    }

    #[test]
    fn field_values_and_nulls() {
        let mut obj =
            json!({"spec": {"nodeName": "n1", "x": null}, "status": {"phase": "Running"}, "a": [{"b": null}]});
        assert_eq!(field_value(&obj, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(field_value(&obj, "spec.missing"), None);
        strip_nulls(&mut obj);
        assert_eq!(obj, json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}, "a": [{}]}));
    }
}
