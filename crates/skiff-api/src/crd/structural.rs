//! Whether a CRD's `openAPIV3Schema` is *structural* (upstream `schema.ValidateStructural`).
//!
//! A structural schema specifies a `type` for every field, array item and map value (unless
//! `x-kubernetes-int-or-string` or `x-kubernetes-preserve-unknown-fields` says otherwise), uses
//! `allOf`/`anyOf`/`oneOf`/`not` only for value validations (no types, defaults, descriptions,
//! nullability or extensions inside, and only on fields the structural part specifies), restricts
//! `metadata` at the root to `name` and `generateName`, and keeps the invariants of embedded
//! resources and int-or-string. The errors are sorted, as upstream sorts them.
//!
//! What does not live here: the checks of individual keywords and extensions (unsupported
//! keywords, `uniqueItems`, list and map types: [`super::keywords`]), CEL rules.

use serde_json::{Map, Value};

use super::schema::{flag, items, list, props, str_of};
use crate::validation::{ErrorList, FieldError, child, index, key};

/// Where a schema node sits; it decides which message a missing `type` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const JUNCTORS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// Whether a keyword value is Go's zero value (absent for upstream's typed schema).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Problems that make `schema` (at `path`) non-structural, sorted by message.
pub fn check(schema: &Value, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    invariants(schema, Level::Root, path, &mut errors);
    junctor_completeness(schema, schema, path, path, &mut errors);
    errors.sort_by_cached_key(ToString::to_string);
    errors
}

fn invariants(s: &Value, level: Level, path: &str, errors: &mut ErrorList) {
    let ty = str_of(s, "type");
    if ty == "array" && s.get("items").is_none() {
        errors.push(FieldError::required(child(path, "items"), "must be specified"));
    }
    if let Some(item) = items(s) {
        invariants(item, Level::Item, &child(path, "items"), errors);
    }
    let properties = props(s);
    for (name, sub) in properties.into_iter().flatten() {
        invariants(sub, Level::Field, &key(&child(path, "properties"), name), errors);
    }
    let additional = s.get("additionalProperties");
    if let Some(extra) = additional {
        if level == Level::Root {
            errors.push(FieldError::forbidden(child(path, "additionalProperties"), "must not be used at the root"));
        }
        if extra.is_object() {
            invariants(extra, Level::Field, &child(path, "additionalProperties"), errors);
        }
    }

    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if int_or_string && preserve {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    let skip_any_of = is_int_or_string_pair(list(s, "anyOf"));
    let skip_first_all_of_any_of = list(s, "allOf").first().is_some_and(|a| is_int_or_string_pair(list(a, "anyOf")));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errors);

    let type_path = child(path, "type");
    if embedded && ty != "object" {
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        errors.push(if ty.is_empty() {
            FieldError::required(type_path, msg)
        } else {
            FieldError::invalid(type_path, ty, msg)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let msg = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errors.push(FieldError::required(type_path, msg));
    }
    if embedded && additional.is_some() {
        errors.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        errors.push(FieldError::invalid(child(path, "type"), ty, "must be object at the root"));
    }

    let check_metadata = level == Level::Root || embedded;
    if check_metadata {
        for field in ["kind", "apiVersion"] {
            if let Some(sub) = properties.and_then(|p| p.get(field)) {
                let sub_ty = str_of(sub, "type");
                if sub_ty != "string" {
                    let at = child(&key(&child(path, "properties"), field), "type");
                    errors.push(FieldError::invalid(at, sub_ty, "must be string"));
                }
            }
        }
    }
    if let Some(metadata) = properties.and_then(|p| p.get("metadata")) {
        metadata_invariants(metadata, check_metadata, level, &key(&child(path, "properties"), "metadata"), errors);
    }
    if embedded && !preserve && properties.is_none_or(Map::is_empty) {
        errors.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// `[{type: integer}, {type: string}]`, the `anyOf` that int-or-string fields may carry.
fn is_int_or_string_pair(alternatives: &[Value]) -> bool {
    let only_type = |v: &Value, want: &str| {
        v.as_object().is_some_and(|m| m.iter().all(|(k, v)| if k == "type" { v == want } else { is_zero(v) }))
    };
    matches!(alternatives, [a, b] if only_type(a, "integer") && only_type(b, "string"))
}

fn metadata_invariants(m: &Value, check_metadata: bool, level: Level, path: &str, errors: &mut ErrorList) {
    let ty = str_of(m, "type");
    if check_metadata && ty != "object" {
        errors.push(FieldError::invalid(child(path, "type"), ty, "must be object"));
    }
    if level != Level::Root {
        return;
    }
    let mut rest = m.as_object().cloned().unwrap_or_default();
    rest.remove("type");
    rest.remove("default");
    let only_names = rest
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty() && p.keys().all(|k| k == "name" || k == "generateName"));
    if only_names {
        rest.remove("properties");
    }
    rest.retain(|_, v| !is_zero(v));
    if !rest.is_empty() {
        errors.push(FieldError::forbidden(
            path,
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}

/// The junctors of a node: each alternative must be a nested value validation.
fn value_validation(v: &Value, skip_any_of: bool, skip_first_all_of_any_of: bool, path: &str, errors: &mut ErrorList) {
    if !skip_any_of {
        for (i, alt) in list(v, "anyOf").iter().enumerate() {
            nested(alt, false, &index(&child(path, "anyOf"), i), errors);
        }
    }
    for (i, alt) in list(v, "allOf").iter().enumerate() {
        nested(alt, skip_first_all_of_any_of && i == 0, &index(&child(path, "allOf"), i), errors);
    }
    for (i, alt) in list(v, "oneOf").iter().enumerate() {
        nested(alt, false, &index(&child(path, "oneOf"), i), errors);
    }
    if let Some(not) = v.get("not").filter(|n| n.is_object()) {
        nested(not, false, &child(path, "not"), errors);
    }
    let pattern = str_of(v, "pattern");
    if !pattern.is_empty()
        && let Err(e) = regex::Regex::new(pattern)
    {
        errors.push(FieldError::invalid(
            child(path, "pattern"),
            pattern,
            format!("must be a valid regular expression, but isn't: {}", regex_error(&e)),
        ));
    }
}

/// A regex error in the one-line shape upstream prints (`error parsing regexp: ...`).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or(text.trim());
    format!("error parsing regexp: {reason}")
}

/// A schema under a junctor: value validations only.
fn nested(v: &Value, skip_any_of: bool, path: &str, errors: &mut ErrorList) {
    value_validation(v, skip_any_of, false, path, errors);
    if let Some(item) = items(v) {
        nested(item, false, &child(path, "items"), errors);
    }
    for (name, sub) in props(v).into_iter().flatten() {
        nested(sub, false, &key(&child(path, "properties"), name), errors);
    }
    let forbidden = |field: &str, detail: &str| FieldError::forbidden(child(path, field), detail);
    let present = |field: &str| v.get(field).is_some_and(|x| !is_zero(x));
    if present("type") {
        errors.push(forbidden("type", "must be empty to be structural"));
    }
    if v.get("additionalProperties").is_some_and(|a| a.is_object() || a == true) {
        errors.push(forbidden("additionalProperties", "must be undefined to be structural"));
    }
    if v.get("default").is_some() {
        errors.push(forbidden("default", "must be undefined to be structural"));
    }
    for field in ["title", "description"] {
        if present(field) {
            errors.push(forbidden(field, "must be empty to be structural"));
        }
    }
    for field in [
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if flag(v, field) {
            errors.push(forbidden(field, "must be false to be structural"));
        }
    }
    for (field, detail) in [
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ] {
        if !list(v, field).is_empty() {
            errors.push(forbidden(field, detail));
        }
    }
    for field in ["x-kubernetes-list-type", "x-kubernetes-map-type"] {
        if v.get(field).is_some_and(|x| !x.is_null()) {
            errors.push(forbidden(field, "must be undefined to be structural"));
        }
    }
    if props(v).is_some_and(|p| p.contains_key("metadata")) {
        errors.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every field the junctors of `v` (at `v_path`) talk about must be specified by the structural
/// schema `s` (at `s_path`). Upstream checks the junctors of the root only.
fn junctor_completeness(v: &Value, s: &Value, s_path: &str, v_path: &str, errors: &mut ErrorList) {
    if let Some(not) = v.get("not").filter(|n| n.is_object()) {
        nested_completeness(not, Some(s), s_path, &child(v_path, "not"), errors);
    }
    for junctor in JUNCTORS {
        for (i, alt) in list(v, junctor).iter().enumerate() {
            nested_completeness(alt, Some(s), s_path, &index(&child(v_path, junctor), i), errors);
        }
    }
}

fn nested_completeness(v: &Value, s: Option<&Value>, s_path: &str, v_path: &str, errors: &mut ErrorList) {
    let Some(s) = s else {
        errors.push(FieldError::required(s_path, format!("because it is defined in {v_path}")));
        return;
    };
    junctor_completeness(v, s, s_path, v_path, errors);
    if let Some(item) = items(v) {
        nested_completeness(item, items(s), &child(s_path, "items"), &child(v_path, "items"), errors);
    }
    for (name, sub) in props(v).into_iter().flatten() {
        let s_field = key(&child(s_path, "properties"), name);
        let v_field = key(&child(v_path, "properties"), name);
        match props(s).and_then(|p| p.get(name)) {
            Some(structural) => nested_completeness(sub, Some(structural), &s_field, &v_field, errors),
            None => errors.push(FieldError::required(s_field, format!("because it is defined in {v_field}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROOT: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn messages(schema: Value) -> Vec<String> {
        check(&schema, ROOT).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn structural_schemas_pass() {
        let cases = [
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
            json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}]}}}),
            json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true,
                "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+$"}]}}}),
            json!({"type": "object", "properties": {"metadata": {"type": "object",
                "properties": {"name": {"type": "string", "maxLength": 10}, "generateName": {"type": "string"}}}}}),
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "not": {"properties": {"a": {"enum": ["x"]}}}}),
            json!({"type": "object", "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}}}}),
            json!({"type": "object", "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true,
                "x-kubernetes-preserve-unknown-fields": true}}}),
        ];
        for schema in cases {
            assert_eq!(messages(schema.clone()), Vec::<String>::new(), "{schema}");
        }
    }

    #[test]
    fn each_rule_reports_upstreams_message() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "openAPIV3Schema.type: Required value: must not be empty at the root"),
            (
                json!({"type": "integer"}),
                "openAPIV3Schema.type: Invalid value: \"integer\": must be object at the root",
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}),
                "openAPIV3Schema.properties[l].items.type: Required value: must not be empty for specified array items",
            ),
            (
                json!({"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {}}}}),
                "openAPIV3Schema.properties[m].additionalProperties.type: Required value: must not be empty for specified object fields",
            ),
            (
                json!({"type": "object", "properties": {"slice": {"type": "array"}}}),
                "openAPIV3Schema.properties[slice].items: Required value: must be specified",
            ),
            (
                json!({"type": "object", "additionalProperties": false}),
                "openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root",
            ),
            (
                json!({"x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-int-or-string": true}),
                "openAPIV3Schema.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            ),
            (
                json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}),
                "openAPIV3Schema.x-kubernetes-embedded-resource: Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            ),
            (
                json!({"type": "object", "x-kubernetes-embedded-resource": true}),
                "openAPIV3Schema.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ),
            (
                json!({"type": "object", "properties": {"t": {"type": "string", "x-kubernetes-embedded-resource": true}}}),
                "openAPIV3Schema.properties[t].type: Invalid value: \"string\": must be object if x-kubernetes-embedded-resource is true",
            ),
            (
                json!({"type": "object", "properties": {"t": {"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
                "openAPIV3Schema.properties[t].type: Required value: must be object if x-kubernetes-embedded-resource is true",
            ),
            (
                json!({"type": "object", "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": {"type": "string"}}}}),
                "openAPIV3Schema.properties[t].additionalProperties: Forbidden: must not be used if x-kubernetes-embedded-resource is set",
            ),
            (
                json!({"type": "object", "properties": {"kind": {"type": "integer"}}}),
                "openAPIV3Schema.properties[kind].type: Invalid value: \"integer\": must be string",
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "string"}}}),
                "openAPIV3Schema.properties[metadata].type: Invalid value: \"string\": must be object",
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
                    "name": {"type": "string"}, "labels": {"type": "object"}}}}}),
                "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "object", "minProperties": 1}}}),
                "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "allOf": [{"properties": {"metadata": {}}}]}),
                "openAPIV3Schema.allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "not": {"type": "string"}}),
                "openAPIV3Schema.not.type: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}},
                    "allOf": [{"properties": {"foo": {"additionalProperties": true}}}]}),
                "openAPIV3Schema.allOf[0].properties[foo].additionalProperties: Forbidden: must be undefined to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "anyOf": [{"properties": {"foo": {"title": "t"}}}]}),
                "openAPIV3Schema.anyOf[0].properties[foo].title: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "oneOf": [{"properties": {"foo": {"description": "d"}}}]}),
                "openAPIV3Schema.oneOf[0].properties[foo].description: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "not": {"properties": {"foo": {"nullable": true}}}}),
                "openAPIV3Schema.not.properties[foo].nullable: Forbidden: must be false to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "not": {"properties": {"foo": {"default": "x"}}}}),
                "openAPIV3Schema.not.properties[foo].default: Forbidden: must be undefined to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}}, "allOf": [{"x-kubernetes-preserve-unknown-fields": true}]}),
                "openAPIV3Schema.allOf[0].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural",
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"},
                    "allOf": [{"x-kubernetes-list-type": "set"}]}}}),
                "openAPIV3Schema.properties[l].allOf[0].x-kubernetes-list-type: Forbidden: must be undefined to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string"}},
                    "allOf": [{"x-kubernetes-validations": [{"rule": "true"}]}]}),
                "openAPIV3Schema.allOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"port": {"anyOf": [{"type": "integer"}, {"type": "number"}]}}}),
                "openAPIV3Schema.properties[port].anyOf[1].type: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"foo": {"type": "string", "pattern": "+"}}}),
                "openAPIV3Schema.properties[foo].pattern: Invalid value: \"+\": must be a valid regular expression, but isn't: error parsing regexp: ",
            ),
            (
                json!({"type": "object", "anyOf": [{"properties": {"f": {}}}]}),
                "openAPIV3Schema.properties[f]: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.anyOf[0].properties[f]",
            ),
            (
                json!({"type": "object", "properties": {"d": {"type": "array", "items": {"type": "string"}}, "e": {"type": "string"}},
                    "not": {"properties": {"e": {"items": {}}}}}),
                "openAPIV3Schema.properties[e].items: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.not.properties[e].items",
            ),
            (
                json!({"type": "object", "properties": {"b": {"type": "object", "properties": {"b": {"type": "string"}}}},
                    "not": {"properties": {"b": {"not": {"properties": {"a": {}}}}}}}),
                "openAPIV3Schema.properties[b].properties[a]: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.not.properties[b].not.properties[a]",
            ),
        ];
        for (schema, want) in cases {
            let got = messages(schema.clone());
            let want = format!("spec.versions[0].schema.{want}");
            assert!(got.iter().any(|g| g.starts_with(&want)), "{schema}\nwant {want}\ngot {got:#?}");
        }
    }

    #[test]
    fn errors_are_sorted() {
        let got = messages(json!({"properties": {"b": {}, "a": {}}}));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(got.len(), 3);
    }
}
