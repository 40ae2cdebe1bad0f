//! Structural OpenAPI v3 schemas of custom resources (upstream `apiextensions-apiserver`
//! `pkg/apiserver/schema`): checking that a CRD schema is structural, pruning unknown fields,
//! applying `default`s and validating objects against the schema.
//!
//! Schemas are handled as JSON (`serde_json::Value`), exactly as the CRD carries them. Error
//! paths and messages follow upstream (`spec.replicas: Invalid value: "string": spec.replicas in
//! body must be of type integer: "string"`). CEL rules (`x-kubernetes-validations`) live in
//! [`super::cel`].

use serde_json::{Map, Value, json};

use crate::validation::{ErrorKind, ErrorList, FieldError, child, gofmt, index};

/// Whether the boolean extension `name` is set on `schema`.
pub(crate) fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The string keyword `name` of `schema`, or `""`.
pub(crate) fn str_of<'a>(schema: &'a Value, name: &str) -> &'a str {
    schema.get(name).and_then(Value::as_str).unwrap_or("")
}

/// The `properties` of `schema`.
pub(crate) fn props(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` when it is a schema (not a boolean).
pub(crate) fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|v| v.is_object())
}

/// `items` when it is a single schema (not a tuple).
pub(super) fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|v| v.is_object())
}

/// The array keyword `name` of `schema` (`allOf`, `required`, ...), empty when absent.
pub(super) fn list<'a>(schema: &'a Value, name: &str) -> &'a [Value] {
    schema.get(name).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Checks a CRD's `openAPIV3Schema` (at field path `path`): that it is structural
/// ([`super::structural`]), then its keywords and extensions ([`super::keywords`]).
pub fn check_structural(schema: &Value, path: &str) -> ErrorList {
    let mut errors = super::structural::check(schema, path);
    errors.extend(super::keywords::check(schema, path));
    errors
}

/// Removes fields the schema does not specify, returning their paths. `apiVersion`, `kind` and
/// `metadata` are left alone at the root and in embedded resources (their `metadata` is
/// coerced separately); nothing is pruned below `x-kubernetes-preserve-unknown-fields`. Below
/// `additionalProperties: true|false` keys stay but their content has no schema, so objects
/// there lose every field (as upstream).
pub fn prune(value: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_node(value, Some(schema), "", true, &mut pruned);
    pruned
}

/// Prunes `value` against `schema`; `None` is upstream's nil schema (everything goes).
fn prune_node(value: &mut Value, schema: Option<&Value>, path: &str, root: bool, pruned: &mut Vec<String>) {
    let preserve = schema.is_some_and(|s| flag(s, "x-kubernetes-preserve-unknown-fields"));
    match value {
        Value::Object(map) => {
            let embedded = root || schema.is_some_and(|s| flag(s, "x-kubernetes-embedded-resource"));
            let properties = schema.and_then(props);
            let extra = schema.and_then(|s| s.get("additionalProperties"));
            let mut remove = Vec::new();
            for (k, v) in map.iter_mut() {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let p = child(path, k);
                if let Some(sub) = properties.and_then(|ps| ps.get(k)) {
                    prune_node(v, Some(sub), &p, false, pruned);
                } else if let Some(extra) = extra {
                    prune_node(v, extra.is_object().then_some(extra), &p, false, pruned);
                } else if !preserve {
                    remove.push(k.clone());
                    pruned.push(p);
                }
            }
            for k in remove {
                map.remove(&k);
            }
        }
        Value::Array(elements) => {
            let sub = match schema {
                None => None,
                Some(s) => match items(s) {
                    Some(item) => Some(item),
                    None => return,
                },
            };
            // Upstream does not prune unknown fields of the items of a preserved array either.
            let preserved = sub.filter(|_| preserve).map(|item| {
                let mut item = item.clone();
                if let Some(m) = item.as_object_mut() {
                    m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
                }
                item
            });
            let sub = preserved.as_ref().or(sub);
            for (i, item) in elements.iter_mut().enumerate() {
                prune_node(item, sub, &index(path, i), false, pruned);
            }
        }
        _ => {}
    }
}

/// Fills absent fields that have a `default` in the schema, recursively.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = props(schema) {
                for (k, sub) in properties {
                    match map.get_mut(k) {
                        Some(v) if !v.is_null() => apply_defaults(v, sub),
                        Some(v) => {
                            if let Some(d) = sub.get("default").filter(|_| !flag(sub, "nullable")) {
                                *v = d.clone();
                                apply_defaults(v, sub);
                            }
                        }
                        None => {
                            if let Some(d) = sub.get("default") {
                                let mut d = d.clone();
                                apply_defaults(&mut d, sub);
                                map.insert(k.clone(), d);
                            }
                        }
                    }
                }
            }
            if let Some(sub) = additional(schema) {
                for v in map.values_mut() {
                    apply_defaults(v, sub);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    apply_defaults(item, sub);
                }
            }
        }
        _ => {}
    }
}

/// Go's name of a JSON value's type, as upstream prints it in type errors.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(path: &str, value: &Value, want: &str) -> FieldError {
    let actual = type_name(value);
    FieldError {
        kind: ErrorKind::TypeInvalid,
        field: path.to_string(),
        value: Some(json!(actual)),
        detail: format!("{path} in body must be of type {want}: \"{actual}\""),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, value.clone(), detail)
}

/// Compiles `pattern` with the `regex` crate (ECMA 262 patterns in CRDs are nearly always in the
/// common subset).
fn matches_pattern(pattern: &str, s: &str) -> Option<bool> {
    regex::Regex::new(pattern).ok().map(|re| re.is_match(s))
}

/// Validates `value` (at `path`) against a structural schema.
pub fn validate(value: &Value, schema: &Value, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    validate_node(value, schema, path, &mut errors);
    errors
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Validates `value` (at `path`) against one schema node and, recursively, its children.
pub(super) fn validate_node(value: &Value, schema: &Value, path: &str, errors: &mut ErrorList) {
    if value.is_null() {
        if !flag(schema, "nullable") && (schema.get("type").is_some() || flag(schema, "x-kubernetes-int-or-string")) {
            let want = schema.get("type").and_then(Value::as_str).unwrap_or("string");
            errors.push(type_error(path, value, want));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        let ok = matches!(value, Value::String(_)) || value.as_i64().is_some() || value.as_u64().is_some();
        if !ok {
            errors.push(type_error(path, value, "integer,string"));
            return;
        }
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let type_ok = match ty {
        "" => true,
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => value.is_number(),
        _ => true,
    };
    if !type_ok {
        errors.push(type_error(path, value, ty));
        return;
    }
    super::junctors::validate(value, schema, path, errors);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| enum_matches(a, value))
    {
        let supported: Vec<String> =
            allowed.iter().map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| a.to_string())).collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        let err = FieldError::not_supported(path, value.clone(), &refs);
        errors.push(if value.is_object() || value.is_array() {
            gofmt::with_rendered_value(ErrorKind::NotSupported, path, gofmt::go_value(value), &err.detail)
        } else {
            err
        });
    }
    match value {
        Value::String(s) => validate_string(s, value, schema, path, errors),
        Value::Number(_) => validate_number(value, schema, path, errors),
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(FieldError::too_many(path, items.len(), max as usize));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(invalid(
                    path,
                    &json!(items.len()),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(sub) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item, sub, &index(path, i), errors);
                }
            }
        }
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if map.get(r).is_none_or(Value::is_null) {
                        errors.push(FieldError::required(child(path, r), ""));
                    }
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && map.len() as u64 > max
            {
                errors.push(FieldError::too_many(path, map.len(), max as usize));
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
                && (map.len() as u64) < min
            {
                errors.push(invalid(
                    path,
                    &json!(map.len()),
                    format!("{path} in body should have at least {min} properties"),
                ));
            }
            let properties = props(schema);
            if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                for k in map.keys().filter(|k| !properties.is_some_and(|p| p.contains_key(*k))) {
                    errors.push(invalid(path, &json!(k), format!("{path}.{k} in body is a forbidden property")));
                }
            }
            let extra = additional(schema);
            for (k, v) in map {
                if let Some(sub) = properties.and_then(|p| p.get(k)) {
                    validate_node(v, sub, &child(path, k), errors);
                } else if let Some(sub) = extra {
                    validate_node(v, sub, &child(path, k), errors);
                }
            }
        }
        _ => {}
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, path: &str, errors: &mut ErrorList) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errors.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errors.push(invalid(path, value, format!("{path} in body should be at least {min} chars long")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && matches_pattern(pattern, s) == Some(false)
    {
        errors.push(invalid(path, value, format!("{path} in body should match '{pattern}'")));
    }
    let format_ok = match schema.get("format").and_then(Value::as_str).unwrap_or("") {
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok(),
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        _ => true,
    };
    if !format_ok {
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        errors.push(invalid(path, value, format!("{path} in body must be of type {format}: \"{s}\"")));
    }
}

/// Whether `value` equals the enum member `allowed` (numbers compare by value, as upstream
/// converts the value to the member's type before comparing).
fn enum_matches(allowed: &Value, value: &Value) -> bool {
    match (allowed, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => allowed == value,
    }
}

fn validate_number(value: &Value, schema: &Value, path: &str, errors: &mut ErrorList) {
    let Some(n) = number(value) else { return };
    if let Some(factor) = schema.get("multipleOf").and_then(number) {
        let whole_factor = factor.fract() == 0.0 && factor.abs() < 9.2e18;
        let multiple = match value.as_i64() {
            _ if factor <= 0.0 => None,
            Some(i) if whole_factor => Some(i % (factor as i64) == 0),
            _ => Some((if factor < 1.0 { (1.0 / factor) * n } else { n / factor }).fract() == 0.0),
        };
        match multiple {
            None => errors.push(invalid(
                path,
                &json!(factor),
                format!("factor MultipleOf declared for {path} must be positive: {}", fmt_num(factor)),
            )),
            Some(false) => {
                errors.push(invalid(path, value, format!("{path} in body should be a multiple of {}", fmt_num(factor))))
            }
            Some(true) => {}
        }
    }
    if let Some(min) = schema.get("minimum").and_then(number) {
        if flag(schema, "exclusiveMinimum") && n <= min {
            errors.push(invalid(path, value, format!("{path} in body should be greater than {}", fmt_num(min))));
        } else if n < min {
            errors.push(invalid(
                path,
                value,
                format!("{path} in body should be greater than or equal to {}", fmt_num(min)),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(number) {
        if flag(schema, "exclusiveMaximum") && n >= max {
            errors.push(invalid(path, value, format!("{path} in body should be less than {}", fmt_num(max))));
        } else if n > max {
            errors.push(invalid(
                path,
                value,
                format!("{path} in body should be less than or equal to {}", fmt_num(max)),
            ));
        }
    }
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let fits = match format {
        "int32" => value.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        "int64" => value.as_i64().is_some(),
        _ => true,
    };
    if !fits {
        errors.push(invalid(path, value, format!("{path} in body must be of type {format}: \"{value}\"")));
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "image": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                        "when": {"type": "string", "format": "date-time", "nullable": true},
                    },
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        })
    }

    #[test]
    fn structural_check_names_the_missing_type() {
        assert!(check_structural(&schema(), "s").is_empty());
        let bad = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}});
        let errs = check_structural(&bad, "spec.versions[0].schema.openAPIV3Schema");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        );
        let preserved = json!({"type": "object", "properties": {"x": {"x-kubernetes-preserve-unknown-fields": true}}});
        assert!(check_structural(&preserved, "s").is_empty());
        assert_eq!(check_structural(&json!({"type": "string"}), "s").len(), 1);
        let arr = json!({"type": "object", "properties": {"a": {"type": "array"}}});
        assert_eq!(check_structural(&arr, "s")[0].field, "s.properties[a].items");
    }

    #[test]
    fn pruning_keeps_known_and_preserved_fields() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"image": "nginx", "bogus": 1, "extra": {"anything": {"deep": true}},
                     "labels": {"a": "b"}, "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}},
                     "tags": ["x"]},
            "status": {"ready": true, "junk": 2},
            "top": 3,
        });
        let pruned = prune(&mut obj, &schema());
        assert_eq!(pruned, vec!["spec.bogus", "status.junk", "top"]);
        assert_eq!(obj["spec"]["extra"]["anything"]["deep"], true);
        assert_eq!(obj["metadata"]["name"], "a");
        assert_eq!(obj["spec"]["template"]["kind"], "Pod");
        assert!(obj.get("top").is_none());
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let mut obj = json!({"spec": {"image": "a"}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["mode"], "a");
        let mut kept = json!({"spec": {"image": "a", "replicas": 3}});
        apply_defaults(&mut kept, &schema());
        assert_eq!(kept["spec"]["replicas"], 3);
    }

    #[test]
    fn validation_messages_follow_upstream() {
        let s = schema();
        let at = |obj: Value| validate(&obj, &s, "").into_iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            at(json!({"spec": {"image": "a", "replicas": "3"}})),
            vec!["spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""]
        );
        assert_eq!(at(json!({"spec": {}})), vec!["spec.image: Required value"]);
        assert_eq!(
            at(json!({"spec": {"image": "a", "replicas": -1}})),
            vec!["spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"]
        );
        assert_eq!(
            at(json!({"spec": {"image": "a", "replicas": 11}})),
            vec!["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
        );
        assert_eq!(
            at(json!({"spec": {"image": "A1"}})),
            vec!["spec.image: Invalid value: \"A1\": spec.image in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            at(json!({"spec": {"image": "abcdefghij"}})),
            vec!["spec.image: Too long: must have at most 8 bytes"]
        );
        assert_eq!(
            at(json!({"spec": {"image": "a", "mode": "c"}})),
            vec!["spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\""]
        );
        assert!(at(json!({"spec": {"image": "a", "port": 80}})).is_empty());
        assert!(at(json!({"spec": {"image": "a", "port": "http"}})).is_empty());
        assert_eq!(at(json!({"spec": {"image": "a", "port": true}})).len(), 1);
        assert_eq!(
            at(json!({"spec": {"image": "a", "tags": ["a", "b", "c"]}})),
            vec!["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(at(json!({"spec": {"image": "a", "labels": {"a": 1}}})).len(), 1);
        assert!(at(json!({"spec": {"image": "a", "when": null}})).is_empty());
        assert!(at(json!({"spec": {"image": "a", "when": "2024-01-02T03:04:05Z"}})).is_empty());
        assert_eq!(at(json!({"spec": {"image": "a", "when": "yesterday"}})).len(), 1);
    }

    #[test]
    fn pruning_follows_upstream_around_metadata_and_boolean_additional_properties() {
        let schema = json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
        "spec": {"type": "object", "properties": {
            "open": {"type": "object", "additionalProperties": true},
            "closed": {"type": "object", "additionalProperties": false},
            "kept": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "strict": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "t": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}},
        }}}});
        let mut obj = json!({"metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"open": {"k": "v", "o": {"deep": 1}}, "closed": {"k": 1},
                "kept": [{"a": "x", "b": "y"}], "strict": [{"a": "x", "b": "y"}],
                "t": {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"z": 1}}}});
        let pruned = prune(&mut obj, &schema);
        assert_eq!(pruned, vec!["spec.open.o.deep", "spec.strict[0].b", "spec.t.spec.z"]);
        assert_eq!(obj["metadata"], json!({"name": "a", "labels": {"x": "y"}}), "root metadata is coerced, not pruned");
        assert_eq!(obj["spec"]["open"], json!({"k": "v", "o": {}}));
        assert_eq!(
            obj["spec"]["closed"],
            json!({"k": 1}),
            "keys under additionalProperties: false stay to be rejected"
        );
        assert_eq!(obj["spec"]["kept"][0]["b"], "y", "items of a preserved array keep unknown fields");
        assert_eq!(obj["spec"]["t"]["metadata"], json!({"name": "n"}));
    }

    #[test]
    fn value_keywords_follow_upstream() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "even": {"type": "integer", "multipleOf": 2},
            "half": {"type": "number", "multipleOf": 0.5},
            "above": {"type": "integer", "minimum": 1, "exclusiveMinimum": true},
            "below": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true},
            "closed": {"type": "object", "additionalProperties": false},
            "few": {"type": "object", "minProperties": 2, "maxProperties": 3, "additionalProperties": {"type": "integer"}},
            "num": {"type": "integer", "enum": [1, 2]},
            "obj": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "enum": [{"a": 1}]},
            "short": {"type": "array", "minItems": 2, "items": {"type": "string"}},
        }}}});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"even": 4, "half": 1.5, "above": 2, "below": 1, "few": {"a": 1, "b": 2}, "num": 2, "obj": {"a": 1}}),
                vec![],
            ),
            (json!({"even": 3}), vec!["spec.even: Invalid value: 3: spec.even in body should be a multiple of 2"]),
            (
                json!({"half": 1.2}),
                vec!["spec.half: Invalid value: 1.2: spec.half in body should be a multiple of 0.5"],
            ),
            (json!({"above": 1}), vec!["spec.above: Invalid value: 1: spec.above in body should be greater than 1"]),
            (json!({"below": 1.5}), vec!["spec.below: Invalid value: 1.5: spec.below in body should be less than 1.5"]),
            (
                json!({"closed": {"x": 1}}),
                vec!["spec.closed: Invalid value: \"x\": spec.closed.x in body is a forbidden property"],
            ),
            (
                json!({"few": {"a": 1}}),
                vec!["spec.few: Invalid value: 1: spec.few in body should have at least 2 properties"],
            ),
            (
                json!({"few": {"a": 1, "b": 2, "c": 3, "d": 4}}),
                vec!["spec.few: Too many: 4: must have at most 3 items"],
            ),
            (json!({"num": 3}), vec!["spec.num: Unsupported value: 3: supported values: \"1\", \"2\""]),
            (json!({"num": 2.0}), vec![]),
            (
                json!({"obj": {"a": 2}}),
                vec![r#"spec.obj: Unsupported value: map[string]interface {}{"a":2}: supported values: "{\"a\":1}""#],
            ),
            (
                json!({"short": ["a"]}),
                vec!["spec.short: Invalid value: 1: spec.short in body should have at least 2 items"],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<String> =
                validate(&json!({"spec": spec}), &schema, "").iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{spec}");
        }
    }
}
