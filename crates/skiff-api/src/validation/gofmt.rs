//! Values inside field errors rendered the way upstream's Go `fmt` prints them.
//!
//! A [`FieldError`]'s value is normally rendered like Go prints scalars (`"a"`, `1`, `true`).
//! Upstream prints compound values with `%#v`, which for the unstructured JSON of custom
//! resources reads `map[string]interface {}{"name":"a"}` or `[]interface {}{"a", "b"}`, and for
//! string lists `[]string{"a", "b"}`. The builders here put such renderings into the error (as
//! the start of its detail, so the message reads exactly as upstream's). Nothing here decides
//! *when* an error is raised.

use serde_json::Value;

use super::{ErrorKind, FieldError};

/// Go's `%q` of a string (close to Rust's `{:?}` for the characters that occur in practice).
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%#v` of an unstructured JSON value held in an `interface{}`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[]interface {{}}{{{}}}", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{}:{}", quote(k), go_value(v))).collect();
            format!("map[string]interface {{}}{{{}}}", parts.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_strings<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// An error of `kind` whose value is already rendered (`rendered`), followed by `detail`.
pub fn with_rendered_value(kind: ErrorKind, field: impl Into<String>, rendered: String, detail: &str) -> FieldError {
    let detail = if detail.is_empty() { rendered } else { format!("{rendered}: {detail}") };
    FieldError { kind, field: field.into(), value: None, detail }
}

/// An `Invalid value` error about an unstructured value: scalars print as usual, objects and
/// arrays as Go's `%#v`.
pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
    if value.is_object() || value.is_array() {
        with_rendered_value(ErrorKind::Invalid, field, go_value(value), detail)
    } else {
        FieldError::invalid(field, value.clone(), detail)
    }
}

/// A `Duplicate value` error about an unstructured value (see [`invalid`]).
pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
    if value.is_object() || value.is_array() {
        with_rendered_value(ErrorKind::Duplicate, field, go_value(value), "")
    } else {
        FieldError::duplicate(field, value.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compound_values_print_like_go() {
        let cases = [
            (json!({"name": "a", "port": 80}), r#"map[string]interface {}{"name":"a", "port":80}"#),
            (json!({}), "map[string]interface {}{}"),
            (json!(["a", 1, null]), r#"[]interface {}{"a", 1, interface {}(nil)}"#),
            (
                json!({"k": {"x": [true]}}),
                r#"map[string]interface {}{"k":map[string]interface {}{"x":[]interface {}{true}}}"#,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(go_value(&value), want);
        }
        assert_eq!(go_strings(&["a", "b"]), r#"[]string{"a", "b"}"#);
    }

    #[test]
    fn errors_read_like_upstream() {
        assert_eq!(
            duplicate("spec.ports[1]", &json!({"name": "http"})).to_string(),
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}"#
        );
        assert_eq!(duplicate("spec.tags[1]", &json!("a")).to_string(), r#"spec.tags[1]: Duplicate value: "a""#);
        assert_eq!(
            invalid("spec.x[0]", &json!([1]), "must be an object for an array of list-type map").to_string(),
            "spec.x[0]: Invalid value: []interface {}{1}: must be an object for an array of list-type map"
        );
        assert_eq!(invalid("spec.x", &json!(3), "bad").to_string(), "spec.x: Invalid value: 3: bad");
    }
}
