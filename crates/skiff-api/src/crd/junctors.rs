//! The value validations `allOf`, `anyOf`, `oneOf` and `not` of custom objects, as upstream's
//! OpenAPI validator (kube-openapi) applies them.
//!
//! Each alternative is a schema without types of its own, validated against the same value at
//! the same path. A failed junctor adds upstream's composite error, which upstream cannot place
//! at a field and reports at the path `<nil>`
//! (`<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid`),
//! plus the errors of the alternative that got furthest. "Furthest" approximates kube-openapi's
//! match count (the number of checks that applied) by [`match_count`]; ties go to the first
//! alternative, as upstream. Errors already reported are not repeated. Everything else about
//! validating a value lives in [`super::schema`].

use serde_json::Value;

use super::schema::{additional, items, list, props, validate_node};
use crate::validation::{ErrorList, FieldError};

/// The path upstream gives errors it cannot attribute to a field.
const NO_FIELD: &str = "<nil>";

fn composite(message: String) -> FieldError {
    FieldError::invalid(NO_FIELD, "", message)
}

/// Appends `more` to `errors`, skipping messages already present (upstream merges results that
/// way).
fn merge(errors: &mut ErrorList, more: ErrorList) {
    for e in more {
        let text = e.to_string();
        if !errors.iter().any(|x| x.to_string() == text) {
            errors.push(e);
        }
    }
}

fn run(value: &Value, schema: &Value, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    validate_node(value, schema, path, &mut errors);
    errors
}

/// Validates the junctors of `schema` against `value` (not null) at `path`.
pub(super) fn validate(value: &Value, schema: &Value, path: &str, errors: &mut ErrorList) {
    let quoted = format!("{path:?}");
    let any_of = list(schema, "anyOf");
    if !any_of.is_empty() {
        let mut best: Option<(usize, ErrorList)> = None;
        let mut matched = false;
        for alt in any_of {
            let errs = run(value, alt, path);
            if errs.is_empty() {
                matched = true;
                best = None;
                break;
            }
            let score = match_count(value, alt);
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, errs));
            }
        }
        if !matched {
            merge(errors, vec![composite(format!("{quoted} must validate at least one schema (anyOf)"))]);
        }
        if let Some((_, errs)) = best {
            merge(errors, errs);
        }
    }

    let one_of = list(schema, "oneOf");
    if !one_of.is_empty() {
        let mut best: Option<(usize, ErrorList)> = None;
        let mut valid = 0;
        for alt in one_of {
            let errs = run(value, alt, path);
            if errs.is_empty() {
                valid += 1;
                best = None;
                continue;
            }
            let score = match_count(value, alt);
            if valid == 0 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, errs));
            }
        }
        if valid != 1 {
            let found =
                if valid == 0 { "Found none valid".to_string() } else { format!("Found {valid} valid alternatives") };
            merge(errors, vec![composite(format!("{quoted} must validate one and only one schema (oneOf). {found}"))]);
            if let Some((_, errs)) = best {
                merge(errors, errs);
            }
        }
    }

    let all_of = list(schema, "allOf");
    if !all_of.is_empty() {
        let mut valid = 0;
        for alt in all_of {
            let errs = run(value, alt, path);
            if errs.is_empty() {
                valid += 1;
            }
            merge(errors, errs);
        }
        if valid != all_of.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            merge(errors, vec![composite(format!("{quoted} must validate all the schemas (allOf){none}"))]);
        }
    }

    if let Some(not) = schema.get("not").filter(|n| n.is_object())
        && run(value, not, path).is_empty()
    {
        merge(errors, vec![composite(format!("{quoted} must not validate the schema (not)"))]);
    }
}

/// Roughly how many checks of `schema` applied to `value` (kube-openapi's `MatchCount`): one
/// per schema node reached, one per keyword group that applies to the value's kind.
fn match_count(value: &Value, schema: &Value) -> usize {
    let mut n = 2;
    if schema.get("enum").is_some() {
        n += 1;
    }
    match value {
        Value::String(_) | Value::Number(_) => n += 1,
        Value::Array(elements) => {
            n += 1;
            if let Some(item) = items(schema) {
                n += elements.iter().map(|v| match_count(v, item)).sum::<usize>();
            }
        }
        Value::Object(map) => {
            n += 1;
            for (k, v) in map {
                if let Some(sub) = props(schema).and_then(|p| p.get(k)).or_else(|| additional(schema)) {
                    n += match_count(v, sub);
                }
            }
        }
        _ => {}
    }
    for name in ["allOf", "anyOf", "oneOf"] {
        n += list(schema, name).iter().map(|a| match_count(value, a)).sum::<usize>();
    }
    n
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::schema::validate;
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "integer"},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "size": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]},
                "mode": {"type": "string", "not": {"enum": ["off"]}},
                "pick": {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "string"}},
                    "anyOf": [{"required": ["x"]}, {"required": ["y"]}]},
            },
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        }}})
    }

    fn check(spec: Value) -> Vec<String> {
        validate(&json!({"spec": spec}), &schema(), "").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn junctors_follow_upstream() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"a": "x"}), vec![]),
            (json!({"a": "x", "port": 80}), vec![]),
            (json!({"a": "x", "port": "http"}), vec![]),
            (json!({"a": "x", "size": 3, "mode": "on", "pick": {"y": "1"}}), vec![]),
            (
                json!({}),
                vec![
                    "<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found none valid",
                    "spec.a: Required value",
                ],
            ),
            (
                json!({"a": "x", "b": "y"}),
                vec![
                    "<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives",
                ],
            ),
            (
                json!({"a": "x", "size": 9}),
                vec![
                    "spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5",
                    "<nil>: Invalid value: \"\": \"spec.size\" must validate all the schemas (allOf)",
                ],
            ),
            (
                json!({"a": "x", "size": 0}),
                vec![
                    "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
                    "<nil>: Invalid value: \"\": \"spec.size\" must validate all the schemas (allOf)",
                ],
            ),
            (
                json!({"a": "x", "mode": "off"}),
                vec!["<nil>: Invalid value: \"\": \"spec.mode\" must not validate the schema (not)"],
            ),
            (
                json!({"a": "x", "pick": {}}),
                vec![
                    "<nil>: Invalid value: \"\": \"spec.pick\" must validate at least one schema (anyOf)",
                    "spec.pick.x: Required value",
                ],
            ),
            (
                json!({"a": "x", "port": true}),
                vec![
                    "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(check(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn all_of_with_no_valid_alternative_says_so() {
        let s = json!({"type": "object", "properties": {"n": {"type": "integer", "allOf": [{"minimum": 5}, {"multipleOf": 2}]}}});
        let got: Vec<String> = validate(&json!({"n": 3}), &s, "").iter().map(ToString::to_string).collect();
        assert_eq!(
            got.last().map(String::as_str),
            Some("<nil>: Invalid value: \"\": \"n\" must validate all the schemas (allOf). None validated")
        );
    }

    #[test]
    fn the_alternative_that_got_furthest_explains_an_any_of() {
        let s = json!({"type": "object", "properties": {"v": {"type": "object",
            "properties": {"k": {"type": "string"}, "deep": {"type": "object", "properties": {"z": {"type": "integer"}}}},
            "anyOf": [{"required": ["k"]}, {"properties": {"deep": {"properties": {"z": {"minimum": 10}}}}}]}}});
        let got: Vec<String> =
            validate(&json!({"v": {"deep": {"z": 1}}}), &s, "").iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "<nil>: Invalid value: \"\": \"v\" must validate at least one schema (anyOf)",
                "v.deep.z: Invalid value: 1: v.deep.z in body should be greater than or equal to 10",
            ]
        );
    }
}
