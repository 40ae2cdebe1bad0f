//! `selectableFields` of a CRD version: validating them against the version's schema and turning
//! them into the field-selector labels the catalogue serves (`spec.color` for `.spec.color`).
//!
//! A selectable field is a JSONPath in dot notation (`.spec.color`; upstream also accepts
//! `['name']` segments but not for selectable fields) to a `string`, `integer` or `boolean` field
//! outside `metadata`; at most [`MAX_SELECTABLE_FIELDS`], no duplicates. Matching objects against
//! a selector happens in the API server's list and watch filters.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::SelectableField;
use serde_json::Value;

use super::schema::{additional, props};
use crate::validation::{ErrorList, FieldError, child, index};

/// Most selectable fields a version may declare.
pub const MAX_SELECTABLE_FIELDS: usize = 8;

/// Why a JSONPath does not name a field of the schema (upstream's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A segment names no property.
    #[error("does not refer to a valid field")]
    NoSuchField,
    /// A `[...]` segment.
    #[error("array notation is not allowed")]
    ArrayNotation,
    /// The path ends after a `.`.
    #[error("unexpected end of JSON path")]
    UnexpectedEnd,
    /// Anything but `.` where a segment must start.
    #[error("expected [ or . but got: {0}")]
    Unexpected(String),
}

/// Follows `json_path` through `schema`: the dotted field path and the schema it ends at.
pub fn resolve<'a>(json_path: &str, schema: &'a Value) -> Result<(Vec<String>, &'a Value), PathError> {
    let mut node = schema;
    let mut segments = Vec::new();
    let mut rest = json_path;
    while !rest.is_empty() {
        if rest.starts_with('[') {
            return Err(PathError::ArrayNotation);
        }
        let Some(after_dot) = rest.strip_prefix('.') else {
            let token_end = rest.find(['.', '[', ']']).unwrap_or(rest.len()).max(1);
            return Err(PathError::Unexpected(rest[..token_end].to_string()));
        };
        let end = after_dot.find(['.', '[', ']']).unwrap_or(after_dot.len());
        let name = &after_dot[..end];
        if end == 0 {
            return Err(match after_dot.chars().next() {
                None => PathError::UnexpectedEnd,
                Some('[') => PathError::ArrayNotation,
                Some(_) => PathError::NoSuchField,
            });
        }
        node = if let Some(p) = props(node) {
            p.get(name).ok_or(PathError::NoSuchField)?
        } else if let Some(extra) = additional(node) {
            extra
        } else {
            return Err(PathError::NoSuchField);
        };
        segments.push(name.to_string());
        rest = &after_dot[end..];
    }
    Ok((segments, node))
}

/// Problems with the `selectableFields` of a version (at `path`) against its schema.
pub fn validate(fields: &[SelectableField], schema: Option<&Value>, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    if fields.is_empty() {
        return errors;
    }
    let Some(schema) = schema else {
        errors.push(FieldError::invalid(
            path,
            "",
            "may only be set when `version.schema.openAPIV3Schema` is not included",
        ));
        return errors;
    };
    let mut unique: Vec<String> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let at = child(&index(path, i), "jsonPath");
        let json_path = f.json_path.as_str();
        if json_path.is_empty() {
            errors.push(FieldError::required(at, ""));
            continue;
        }
        let (segments, node) = match resolve(json_path, schema) {
            Ok(found) => found,
            Err(e) => {
                errors.push(FieldError::invalid(at, json_path, format!("is an invalid path: {e}")));
                continue;
            }
        };
        if segments.first().map(String::as_str) == Some("metadata") {
            errors.push(FieldError::invalid(at.as_str(), json_path, "must not point to fields in metadata"));
        }
        if !matches!(node.get("type").and_then(Value::as_str), Some("string" | "boolean" | "integer")) {
            errors.push(FieldError::invalid(
                at.as_str(),
                json_path,
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
        }
        let dotted = segments.join(".");
        if unique.contains(&dotted) {
            errors.push(FieldError::duplicate(at, json_path));
        } else {
            unique.push(dotted);
        }
    }
    if unique.len() > MAX_SELECTABLE_FIELDS {
        errors.push(FieldError::too_many(path, unique.len(), MAX_SELECTABLE_FIELDS));
    }
    errors
}

/// The field-selector label of a selectable field (its path without the leading `.`).
pub fn label(field: &SelectableField) -> &str {
    field.json_path.strip_prefix('.').unwrap_or(&field.json_path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
        "spec": {"type": "object", "properties": {
            "color": {"type": "string", "enum": ["red", "blue"]},
            "size": {"type": "integer"}, "on": {"type": "boolean"}, "ratio": {"type": "number"},
            "nested": {"type": "object", "properties": {"deep": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "string"}},
        }}}})
    }

    fn fields(paths: &[&str]) -> Vec<SelectableField> {
        paths.iter().map(|p| SelectableField { json_path: (*p).to_string() }).collect()
    }

    fn check(paths: &[&str]) -> Vec<String> {
        validate(&fields(paths), Some(&schema()), "spec.versions[0].selectableFields")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn valid_fields_pass() {
        assert!(check(&[".spec.color", ".spec.size", ".spec.on", ".spec.nested.deep", ".spec.labels.app"]).is_empty());
        assert!(check(&[]).is_empty());
    }

    #[test]
    fn invalid_fields_report_upstreams_message() {
        let at = "spec.versions[0].selectableFields[0].jsonPath";
        let cases: Vec<(&[&str], String)> = vec![
            (&[""], format!("{at}: Required value")),
            (
                &[".spec.nope"],
                format!("{at}: Invalid value: \".spec.nope\": is an invalid path: does not refer to a valid field"),
            ),
            (
                &["spec.color"],
                format!("{at}: Invalid value: \"spec.color\": is an invalid path: expected [ or . but got: spec"),
            ),
            (
                &[".spec['color']"],
                format!("{at}: Invalid value: \".spec['color']\": is an invalid path: array notation is not allowed"),
            ),
            (&[".spec."], format!("{at}: Invalid value: \".spec.\": is an invalid path: unexpected end of JSON path")),
            (
                &[".metadata.name"],
                format!("{at}: Invalid value: \".metadata.name\": must not point to fields in metadata"),
            ),
            (
                &[".spec.ratio"],
                format!(
                    "{at}: Invalid value: \".spec.ratio\": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."
                ),
            ),
            (
                &[".spec.list"],
                format!(
                    "{at}: Invalid value: \".spec.list\": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."
                ),
            ),
            (
                &[".spec.color", ".spec.color"],
                "spec.versions[0].selectableFields[1].jsonPath: Duplicate value: \".spec.color\"".to_string(),
            ),
        ];
        for (paths, want) in cases {
            let got = check(paths);
            assert!(got.contains(&want), "{paths:?}: want {want:?}, got {got:?}");
        }
        let many: Vec<String> = (0..9).map(|i| format!(".spec.labels.k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(check(&many), vec!["spec.versions[0].selectableFields: Too many: 9: must have at most 8 items"]);
        let none = validate(&fields(&[".spec.color"]), None, "spec.versions[0].selectableFields");
        assert_eq!(
            none[0].to_string(),
            "spec.versions[0].selectableFields: Invalid value: \"\": may only be set when `version.schema.openAPIV3Schema` is not included"
        );
    }

    #[test]
    fn labels_drop_the_leading_dot() {
        assert_eq!(label(&SelectableField { json_path: ".spec.color".into() }), "spec.color");
    }
}
