//! Finding the fields a decoding dropped: the members of the input that are absent from the
//! object re-encoded after decoding into a typed model (k8s-openapi types ignore unknown
//! fields). Used for `fieldValidation` of built-in kinds and for the `metadata` of custom
//! objects; what to do with the paths (warn, reject) is the caller's business.

use serde_json::Value;

/// Paths of members present (non-null) in `input` but absent from `decoded`, below `prefix`
/// (`""` for the root), e.g. `metadata.bogus` or `spec.containers[0].x`.
pub fn unknown_fields(input: &Value, decoded: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    diff(input, decoded, prefix, &mut out);
    out
}

fn diff(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(dv) => diff(v, dv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_dropped_members_with_paths() {
        let input = json!({"a": 1, "b": {"c": 2, "d": null}, "l": [{"x": 1, "y": 2}]});
        let decoded = json!({"a": 1, "b": {}, "l": [{"x": 1}]});
        assert_eq!(unknown_fields(&input, &decoded, ""), vec!["b.c", "l[0].y"]);
        assert_eq!(unknown_fields(&json!({"z": 1}), &json!({}), "spec.metadata"), vec!["spec.metadata.z"]);
    }
}
