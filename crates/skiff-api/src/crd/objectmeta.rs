//! `metadata`, `apiVersion` and `kind` of custom objects and of the resources embedded in them
//! (`x-kubernetes-embedded-resource`), as upstream's `schema/objectmeta` package treats them.
//!
//! Coercion: a `metadata` is decoded as an `ObjectMeta` and re-encoded, which drops the fields
//! ObjectMeta does not have (their paths are returned, like pruned fields) and rejects
//! malformed ones; embedded `apiVersion`/`kind` must be strings. Validation of embedded
//! resources: `apiVersion` and `kind` required and well-formed, `metadata` valid with
//! path-segment names. The root's `metadata` is validated by the generic write path like every
//! kind's, not here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::schema::{flag, items, props};
use crate::catalogue::NameRule;
use crate::unknown::unknown_fields;
use crate::validation::{ErrorList, FieldError, child, gofmt, index, key, names, objectmeta};

/// A custom object that cannot be decoded: its message names the field, as upstream's decoding
/// error does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CoerceError(pub String);

/// Decodes a `metadata` value as ObjectMeta: the re-encoded form and the paths (below
/// `prefix`) of the fields ObjectMeta does not know.
fn round_trip(meta: &Value, prefix: &str) -> Result<(Value, Vec<String>), String> {
    let decoded: ObjectMeta = serde_path_to_error::deserialize(meta.clone()).map_err(|e| {
        let at = e.path().to_string();
        if at == "." { e.into_inner().to_string() } else { format!("{prefix}.{at}: {}", e.into_inner()) }
    })?;
    let encoded = serde_json::to_value(&decoded).map_err(|e| e.to_string())?;
    let unknown = unknown_fields(meta, &encoded, prefix);
    Ok((encoded, unknown))
}

/// Coerces the root `metadata` of a custom object; returns the paths of dropped fields.
pub fn coerce_root(obj: &mut Value) -> Result<Vec<String>, CoerceError> {
    let Some(meta) = obj.get_mut("metadata") else { return Ok(Vec::new()) };
    let (encoded, unknown) = round_trip(meta, "metadata").map_err(CoerceError)?;
    *meta = encoded;
    Ok(unknown)
}

/// Coerces the resources embedded in `value` (below the root) per `schema`; returns the paths
/// of dropped `metadata` fields, sorted.
pub fn coerce_embedded(value: &mut Value, schema: &Value) -> Result<Vec<String>, CoerceError> {
    let mut unknown = Vec::new();
    walk_coerce(value, Some(schema), "", false, &mut unknown)?;
    unknown.sort();
    Ok(unknown)
}

fn walk_coerce(
    value: &mut Value,
    schema: Option<&Value>,
    path: &str,
    embedded_here: bool,
    unknown: &mut Vec<String>,
) -> Result<(), CoerceError> {
    let Some(schema) = schema else { return Ok(()) };
    match value {
        Value::Object(map) => {
            if embedded_here {
                for field in ["apiVersion", "kind"] {
                    if let Some(v) = map.get(field).filter(|v| !v.is_string()) {
                        return Err(CoerceError(gofmt::invalid(child(path, field), v, "must be a string").to_string()));
                    }
                }
                if let Some(meta) = map.get_mut("metadata") {
                    let at = child(path, "metadata");
                    let (encoded, dropped) = round_trip(meta, &at)
                        .map_err(|e| CoerceError(gofmt::invalid(at.as_str(), meta, &e).to_string()))?;
                    *meta = encoded;
                    unknown.extend(dropped);
                }
            }
            let properties = props(schema);
            let extra = schema.get("additionalProperties");
            for (k, v) in map.iter_mut() {
                if let Some(sub) = properties.and_then(|p| p.get(k)) {
                    walk_coerce(v, Some(sub), &child(path, k), is_embedded(sub), unknown)?;
                } else if let Some(extra) = extra.filter(|e| e.is_object()) {
                    walk_coerce(v, Some(extra), &key(path, k), is_embedded(extra), unknown)?;
                }
            }
        }
        Value::Array(elements) => {
            if let Some(item) = items(schema) {
                for (i, v) in elements.iter_mut().enumerate() {
                    walk_coerce(v, Some(item), &index(path, i), is_embedded(item), unknown)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_embedded(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

/// Problems with the resources embedded in `obj` (not the root itself).
pub fn validate_embedded(obj: &Value, schema: &Value) -> ErrorList {
    let mut errors = ErrorList::new();
    walk_validate(obj, schema, "", false, &mut errors);
    errors
}

fn walk_validate(value: &Value, schema: &Value, path: &str, embedded_here: bool, errors: &mut ErrorList) {
    match value {
        Value::Object(map) => {
            if embedded_here {
                validate_resource(map, path, errors);
            }
            let properties = props(schema);
            let extra = schema.get("additionalProperties").filter(|e| e.is_object());
            for (k, v) in map {
                if let Some(sub) = properties.and_then(|p| p.get(k)) {
                    walk_validate(v, sub, &child(path, k), is_embedded(sub), errors);
                } else if let Some(extra) = extra {
                    walk_validate(v, extra, &key(path, k), is_embedded(extra), errors);
                }
            }
        }
        Value::Array(elements) => {
            if let Some(item) = items(schema) {
                for (i, v) in elements.iter().enumerate() {
                    walk_validate(v, item, &index(path, i), is_embedded(item), errors);
                }
            }
        }
        _ => {}
    }
}

fn validate_resource(map: &serde_json::Map<String, Value>, path: &str, errors: &mut ErrorList) {
    for field in ["apiVersion", "kind"] {
        if !map.contains_key(field) {
            errors.push(FieldError::required(child(path, field), ""));
        }
    }
    for (field, v) in map {
        let at = child(path, field);
        match field.as_str() {
            "apiVersion" => match v.as_str() {
                None => errors.push(gofmt::invalid(at, v, "must be a string")),
                Some("") => errors.push(FieldError::invalid(at, "", "must not be empty")),
                Some(s) => {
                    if let Err(e) = objectmeta::parse_group_version(s) {
                        errors.push(FieldError::invalid(at, s, e));
                    }
                }
            },
            "kind" => match v.as_str() {
                None => errors.push(gofmt::invalid(at, v, "must be a string")),
                Some("") => errors.push(FieldError::invalid(at, "", "must not be empty")),
                Some(s) => {
                    let problems = names::is_dns1035_label(&s.to_lowercase());
                    if !problems.is_empty() {
                        errors.push(FieldError::invalid(
                            at,
                            s,
                            format!("may have mixed case, but should otherwise match: {}", problems.join(",")),
                        ));
                    }
                }
            },
            "metadata" => match round_trip(v, &at) {
                Err(e) => errors.push(gofmt::invalid(at, v, &e)),
                Ok((meta, _)) => {
                    let mut meta = meta.as_object().cloned().unwrap_or_default();
                    if meta.get("name").and_then(Value::as_str).unwrap_or("").is_empty() {
                        // Upstream validates embedded metadata as if it had a name.
                        meta.insert("name".into(), Value::String("fakename".into()));
                    }
                    errors.extend(objectmeta::validate(&meta, &at, NameRule::PathSegment));
                }
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "many": {"type": "array", "items": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}}},
        }}}})
    }

    #[test]
    fn root_metadata_loses_unknown_fields() {
        let mut obj = json!({"metadata": {"name": "a", "labels": {"x": "y"}, "bogus": 1, "ownerReferences": [
            {"apiVersion": "v1", "kind": "K", "name": "n", "uid": "u", "extra": true}]}});
        let unknown = coerce_root(&mut obj).expect("coerces");
        assert_eq!(unknown, vec!["metadata.bogus", "metadata.ownerReferences[0].extra"]);
        assert_eq!(obj["metadata"]["labels"], json!({"x": "y"}));
        assert!(obj["metadata"].get("bogus").is_none());
        let err = coerce_root(&mut json!({"metadata": {"labels": {"a": 1}}})).expect_err("bad labels");
        assert!(err.0.starts_with("metadata.labels.a: invalid type"), "{err}");
    }

    #[test]
    fn embedded_metadata_is_coerced() {
        let mut obj = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"x": 1}},
            "many": [{"apiVersion": "v1", "kind": "A", "metadata": {"nope": true}}]}});
        let unknown = coerce_embedded(&mut obj, &schema()).expect("coerces");
        assert_eq!(unknown, vec!["spec.many[0].metadata.nope", "spec.template.metadata.junk"]);
        assert_eq!(obj["spec"]["template"]["metadata"], json!({"name": "p"}));
        assert_eq!(obj["spec"]["template"]["spec"], json!({"x": 1}));
        let err = coerce_embedded(&mut json!({"spec": {"template": {"kind": 1}}}), &schema()).expect_err("kind");
        assert_eq!(err.0, "spec.template.kind: Invalid value: 1: must be a string");
    }

    #[test]
    fn embedded_resources_are_validated_as_upstream() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}}), vec![]),
            (
                json!({"template": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "x-"}}}),
                vec![],
            ),
            (
                json!({"template": {"metadata": {}}}),
                vec!["spec.template.apiVersion: Required value", "spec.template.kind: Required value"],
            ),
            (
                json!({"template": {"apiVersion": "", "kind": ""}}),
                vec![
                    "spec.template.apiVersion: Invalid value: \"\": must not be empty",
                    "spec.template.kind: Invalid value: \"\": must not be empty",
                ],
            ),
            (
                json!({"template": {"apiVersion": "a/b/c", "kind": "9Pod"}}),
                vec![
                    "spec.template.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
                    "spec.template.kind: Invalid value: \"9Pod\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                ],
            ),
            (
                json!({"many": [{"apiVersion": "v1", "kind": "A", "metadata": {"name": "a/b", "labels": {"k": "v v"}}}]}),
                vec![
                    "spec.many[0].metadata.name: Invalid value: \"a/b\": may not contain '/'",
                    "spec.many[0].metadata.labels[k]: Invalid value: \"v v\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<String> =
                validate_embedded(&json!({"spec": spec}), &schema()).iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{spec}");
        }
    }
}
