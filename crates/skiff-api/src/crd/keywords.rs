//! CRD-time checks of the individual keywords and Kubernetes extensions in an `openAPIV3Schema`
//! (the schema part of upstream's `ValidateCustomResourceDefinitionOpenAPISchema`).
//!
//! Covered: keywords CRDs do not support (`id`, `$ref`, `definitions`, `dependencies`,
//! `patternProperties`, `additionalItems`, `type: null`, item tuples), `uniqueItems: true`,
//! `additionalProperties` next to `properties`, defaults inside the root's `metadata`,
//! `apiVersion` and `kind`, `x-kubernetes-preserve-unknown-fields: false`, and the rules of
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` (map keys
//! must be required or defaulted, non-nullable scalar properties; set items atomic). The rules
//! apply as to a newly created CRD (upstream relaxes some on update of CRDs that already break
//! them). Structural invariants live in [`super::structural`]; CEL rules elsewhere.

use serde_json::{Value, json};

use super::schema::{flag, items, list, props, str_of};
use crate::validation::{ErrorKind, ErrorList, FieldError, child, gofmt, index, key};

/// Types a CRD schema may name.
const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const META_FIELDS: [&str; 3] = ["metadata", "kind", "apiVersion"];

/// What the walk knows about the surroundings of a node.
#[derive(Debug, Clone, Default)]
struct Context {
    /// Why `default` is forbidden here, if it is.
    defaults_forbidden: Option<String>,
    /// Inside the `metadata`, `apiVersion` or `kind` of the root or of an embedded resource.
    inside_resource_meta: bool,
}

fn present(s: &Value, name: &str) -> bool {
    s.get(name).is_some_and(|v| !v.is_null())
}

/// Problems with the keywords of `schema` (the root `openAPIV3Schema`, at `path`).
pub fn check(schema: &Value, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    if flag(schema, "nullable") {
        errors.push(FieldError::forbidden(child(path, "nullable"), "nullable cannot be true at the root"));
    }
    walk(schema, path, &Context::default(), true, &mut errors);
    errors
}

fn walk(s: &Value, path: &str, ctx: &Context, root: bool, errors: &mut ErrorList) {
    if !s.is_object() {
        return;
    }
    unsupported(s, path, ctx, errors);
    if flag(s, "uniqueItems") {
        errors.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let properties = props(s);
    if let Some(extra) = s.get("additionalProperties") {
        if properties.is_some_and(|p| !p.is_empty()) && (extra.is_object() || extra == false) {
            errors.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let mut sub = ctx.clone();
        if ctx.inside_resource_meta {
            sub.defaults_forbidden = Some("inside additionalProperties applying to object metadata".into());
        }
        walk(extra, &child(path, "additionalProperties"), &sub, false, errors);
    }
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    for (name, sub_schema) in properties.into_iter().flatten() {
        let mut sub = ctx.clone();
        if (root || embedded) && META_FIELDS.contains(&name.as_str()) {
            sub.inside_resource_meta = true;
            if root {
                sub.defaults_forbidden = Some(format!("in top-level {name}"));
            }
        }
        walk(sub_schema, &key(&child(path, "properties"), name), &sub, false, errors);
    }
    if let Some(not) = s.get("not") {
        walk(not, &child(path, "not"), ctx, false, errors);
    }
    for junctor in ["allOf", "oneOf", "anyOf"] {
        for (i, alt) in list(s, junctor).iter().enumerate() {
            walk(alt, &index(&child(path, junctor), i), ctx, false, errors);
        }
    }
    match s.get("items") {
        Some(item @ Value::Object(_)) => walk(item, &child(path, "items"), ctx, false, errors),
        Some(Value::Array(tuple)) => {
            for (i, item) in tuple.iter().enumerate() {
                walk(item, &index(&child(path, "items"), i), ctx, false, errors);
            }
        }
        _ => {}
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    map_type(s, path, errors);
    list_type(s, path, errors);
}

/// Keywords CRDs do not support, and defaults where they are forbidden.
fn unsupported(s: &Value, path: &str, ctx: &Context, errors: &mut ErrorList) {
    let ty = str_of(s, "type");
    if !ty.is_empty() && !TYPES.contains(&ty) {
        errors.push(FieldError::not_supported(child(path, "type"), ty, &TYPES));
    }
    if let Some(reason) = &ctx.defaults_forbidden
        && present(s, "default")
    {
        errors.push(FieldError::forbidden(child(path, "default"), format!("must not be set {reason}")));
    }
    if !str_of(s, "id").is_empty() {
        errors.push(FieldError::forbidden(child(path, "id"), "id is not supported"));
    }
    if present(s, "additionalItems") {
        errors.push(FieldError::forbidden(child(path, "additionalItems"), "additionalItems is not supported"));
    }
    for (field, detail) in
        [("patternProperties", "patternProperties is not supported"), ("definitions", "definitions is not supported")]
    {
        if s.get(field).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            errors.push(FieldError::forbidden(child(path, field), detail));
        }
    }
    if present(s, "dependencies") {
        errors.push(FieldError::forbidden(child(path, "dependencies"), "dependencies is not supported"));
    }
    if present(s, "$ref") {
        errors.push(FieldError::forbidden(child(path, "$ref"), "$ref is not supported"));
    }
    if ty == "null" {
        errors.push(FieldError::forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.get("items").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        errors.push(FieldError::forbidden(child(path, "items"), "items must be a schema object and not an array"));
    }
    if ctx.inside_resource_meta && flag(s, "x-kubernetes-embedded-resource") {
        errors.push(FieldError::forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

fn map_type(s: &Value, path: &str, errors: &mut ErrorList) {
    let Some(map_type) = s.get("x-kubernetes-map-type").and_then(Value::as_str) else { return };
    let ty = str_of(s, "type");
    if ty != "object" {
        let detail = "must be object if x-kubernetes-map-type is specified";
        errors.push(if ty.is_empty() {
            FieldError::required(child(path, "type"), detail)
        } else {
            FieldError::invalid(child(path, "type"), ty, detail)
        });
    }
    if !matches!(map_type, "atomic" | "granular") {
        errors.push(FieldError::not_supported(child(path, "x-kubernetes-map-type"), map_type, &["atomic", "granular"]));
    }
}

fn list_type(s: &Value, path: &str, errors: &mut ErrorList) {
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    let ty = str_of(s, "type");
    let item = items(s);
    let keys: Vec<&str> = list(s, "x-kubernetes-list-map-keys").iter().filter_map(Value::as_str).collect();
    let keys_value = || gofmt::go_strings(&keys);
    if let Some(lt) = list_type {
        if ty != "array" {
            let detail = "must be array if x-kubernetes-list-type is specified";
            errors.push(if ty.is_empty() {
                FieldError::required(child(path, "type"), detail)
            } else {
                FieldError::invalid(child(path, "type"), ty, detail)
            });
        } else if lt == "set"
            && let Some(item) = item
        {
            let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
            let items_path = child(path, "items");
            let item_list_type = item.get("x-kubernetes-list-type").cloned().unwrap_or(Value::Null);
            match str_of(item, "type") {
                "array" if item_list_type.as_str().is_some_and(|t| t != "atomic") => errors.push(FieldError::invalid(
                    child(&items_path, "x-kubernetes-list-type"),
                    item_list_type,
                    detail,
                )),
                // Upstream reports the items' list type here too (usually null).
                "object" if str_of(item, "x-kubernetes-map-type") != "atomic" => errors.push(FieldError::invalid(
                    child(&items_path, "x-kubernetes-map-type"),
                    item_list_type,
                    detail,
                )),
                _ => {}
            }
        }
        if !matches!(lt, "atomic" | "set" | "map") {
            errors.push(FieldError::not_supported(
                child(path, "x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    if !keys.is_empty() {
        let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => errors.push(FieldError::required(child(path, "x-kubernetes-list-type"), detail)),
            Some("map") => {}
            Some(other) => errors.push(FieldError::invalid(child(path, "x-kubernetes-list-type"), other, detail)),
        }
    }
    if list_type == Some("map") {
        let keys_path = child(path, "x-kubernetes-list-map-keys");
        if keys.is_empty() {
            errors.push(FieldError::required(keys_path.as_str(), "must not be empty if x-kubernetes-list-type is map"));
        }
        match s.get("items") {
            None | Some(Value::Null) => errors.push(FieldError::required(
                child(path, "items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(Value::Object(_)) => {}
            Some(tuple) => errors.push(gofmt::invalid(
                child(path, "items"),
                tuple,
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
        }
        if let Some(item) = item {
            let item_ty = str_of(item, "type");
            if item_ty != "object" {
                errors.push(FieldError::invalid(
                    child(&child(path, "items"), "type"),
                    item_ty,
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            } else {
                let item_props = props(item);
                for (i, k) in keys.iter().enumerate() {
                    match item_props.and_then(|p| p.get(*k)) {
                        Some(prop) if matches!(str_of(prop, "type"), "array" | "object") => {
                            let at = child(&key(&child(&child(path, "items"), "properties"), k), "type");
                            // Upstream names the items' type (object) as the bad value.
                            errors.push(FieldError::invalid(
                                at,
                                item_ty,
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            ));
                        }
                        Some(_) => {}
                        None => errors.push(gofmt::with_rendered_value(
                            ErrorKind::Invalid,
                            keys_path.as_str(),
                            keys_value(),
                            "entries must all be names of item properties",
                        )),
                    }
                    if keys[..i].contains(k) {
                        errors.push(gofmt::with_rendered_value(
                            ErrorKind::Invalid,
                            keys_path.as_str(),
                            keys_value(),
                            "must not contain duplicate entries",
                        ));
                    }
                }
            }
        }
    }
    map_and_set_items(s, path, list_type, &keys, errors);
}

/// Items of `set` and `map` lists may not be null; map keys must be required or defaulted and
/// may not be null.
fn map_and_set_items(s: &Value, path: &str, list_type: Option<&str>, keys: &[&str], errors: &mut ErrorList) {
    let Some(item) = items(s) else { return };
    let Some(lt @ ("set" | "map")) = list_type else { return };
    let items_path = child(path, "items");
    if flag(item, "nullable") {
        errors.push(FieldError::forbidden(
            child(&items_path, "nullable"),
            format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt != "map" {
        return;
    }
    let required: Vec<&Value> = list(item, "required").iter().collect();
    for k in keys {
        let Some(prop) = props(item).and_then(|p| p.get(*k)) else { continue };
        let at = key(&child(&items_path, "properties"), k);
        if !required.contains(&&json!(k)) && !present(prop, "default") {
            errors.push(FieldError::required(
                child(&at, "default"),
                "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ));
        }
        if flag(prop, "nullable") {
            errors.push(FieldError::forbidden(
                child(&at, "nullable"),
                "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn messages(schema: Value) -> Vec<String> {
        check(&schema, ROOT).iter().map(ToString::to_string).collect()
    }

    fn object(props: Value) -> Value {
        json!({"type": "object", "properties": props})
    }

    #[test]
    fn valid_keywords_pass() {
        let cases = [
            object(json!({"tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}})),
            object(json!({"ports": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "protocol"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "protocol": {"type": "string", "default": "TCP"}}}}})),
            object(json!({"labels": {"type": "object", "x-kubernetes-map-type": "atomic",
                "additionalProperties": {"type": "string"}}})),
            object(json!({"sel": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}}}})),
            object(
                json!({"m": {"type": "object", "additionalProperties": true, "properties": {"a": {"type": "string"}}}}),
            ),
            object(json!({"spec": {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}}})),
        ];
        for schema in cases {
            assert_eq!(messages(schema.clone()), Vec::<String>::new(), "{schema}");
        }
    }

    #[test]
    fn each_rule_reports_upstreams_message() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"type": "object", "nullable": true}),
                "openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root",
            ),
            (
                object(json!({"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}})),
                "openAPIV3Schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ),
            (
                object(
                    json!({"m": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}}),
                ),
                "openAPIV3Schema.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ),
            (
                object(
                    json!({"m": {"type": "object", "additionalProperties": {"type": "string"}, "properties": {"a": {"type": "string"}}}}),
                ),
                "openAPIV3Schema.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ),
            (
                object(json!({"t": {"type": "time"}})),
                "openAPIV3Schema.properties[t].type: Unsupported value: \"time\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
            ),
            (
                object(json!({"t": {"type": "null"}})),
                "openAPIV3Schema.properties[t].type: Forbidden: type cannot be set to null, use nullable as an alternative",
            ),
            (
                object(json!({"t": {"type": "string", "$ref": "#/x"}})),
                "openAPIV3Schema.properties[t].$ref: Forbidden: $ref is not supported",
            ),
            (
                object(json!({"t": {"type": "string", "id": "x"}})),
                "openAPIV3Schema.properties[t].id: Forbidden: id is not supported",
            ),
            (
                object(json!({"t": {"type": "object", "patternProperties": {"a": {"type": "string"}}}})),
                "openAPIV3Schema.properties[t].patternProperties: Forbidden: patternProperties is not supported",
            ),
            (
                object(json!({"t": {"type": "array", "items": [{"type": "string"}]}})),
                "openAPIV3Schema.properties[t].items: Forbidden: items must be a schema object and not an array",
            ),
            (
                object(json!({"metadata": {"type": "object", "default": {}}})),
                "openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata",
            ),
            (
                object(json!({"kind": {"type": "string", "default": "K"}})),
                "openAPIV3Schema.properties[kind].default: Forbidden: must not be set in top-level kind",
            ),
            (
                object(json!({"t": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {
                    "metadata": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}}}}})),
                "openAPIV3Schema.properties[t].properties[metadata].additionalProperties.default: Forbidden: must not be set inside additionalProperties applying to object metadata",
            ),
            (
                object(json!({"metadata": {"type": "object", "x-kubernetes-embedded-resource": true}})),
                "openAPIV3Schema.properties[metadata].x-kubernetes-embedded-resource: Forbidden: must not be used inside of resource meta",
            ),
            (
                object(json!({"t": {"type": "string", "x-kubernetes-preserve-unknown-fields": false}})),
                "openAPIV3Schema.properties[t].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
            ),
            (
                object(json!({"m": {"type": "string", "x-kubernetes-map-type": "atomic"}})),
                "openAPIV3Schema.properties[m].type: Invalid value: \"string\": must be object if x-kubernetes-map-type is specified",
            ),
            (
                object(json!({"m": {"type": "object", "x-kubernetes-map-type": "merge"}})),
                "openAPIV3Schema.properties[m].x-kubernetes-map-type: Unsupported value: \"merge\": supported values: \"atomic\", \"granular\"",
            ),
            (
                object(json!({"l": {"x-kubernetes-list-type": "set", "x-kubernetes-preserve-unknown-fields": true}})),
                "openAPIV3Schema.properties[l].type: Required value: must be array if x-kubernetes-list-type is specified",
            ),
            (
                object(json!({"l": {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}})),
                "openAPIV3Schema.properties[l].x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\"",
            ),
            (
                object(json!({"l": {"type": "array", "x-kubernetes-list-type": "set",
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}}}})),
                "openAPIV3Schema.properties[l].items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set",
            ),
            (
                object(json!({"l": {"type": "array", "x-kubernetes-list-type": "set",
                    "items": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}})),
                "openAPIV3Schema.properties[l].items.x-kubernetes-list-type: Invalid value: \"set\": must be atomic as item of a list with x-kubernetes-list-type=set",
            ),
            (
                object(json!({"l": {"type": "array", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}}})),
                "openAPIV3Schema.properties[l].x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "atomic", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}}}),
                ),
                "openAPIV3Schema.properties[l].x-kubernetes-list-type: Invalid value: \"atomic\": must be map if x-kubernetes-list-map-keys is non-empty",
            ),
            (
                object(json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}})),
                "openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "string"}}}),
                ),
                "openAPIV3Schema.properties[l].items.type: Invalid value: \"string\": must be object if parent array's x-kubernetes-list-type is map",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "object", "required": ["a"], "properties": {"a": {"type": "object"}}}}}),
                ),
                "openAPIV3Schema.properties[l].items.properties[a].type: Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["b"],
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
                ),
                "openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Invalid value: []string{\"b\"}: entries must all be names of item properties",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "a"],
                    "items": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}}}),
                ),
                "openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Invalid value: []string{\"a\", \"a\"}: must not contain duplicate entries",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
                ),
                "openAPIV3Schema.properties[l].items.properties[a].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
                    "items": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "nullable": true}}}}}),
                ),
                "openAPIV3Schema.properties[l].items.properties[a].nullable: Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ),
            (
                object(
                    json!({"l": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string", "nullable": true}}}),
                ),
                "openAPIV3Schema.properties[l].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set",
            ),
        ];
        for (schema, want) in cases {
            let got = messages(schema.clone());
            let want = format!("spec.versions[0].schema.{want}");
            assert!(got.iter().any(|g| g == &want), "{schema}\nwant {want}\ngot {got:#?}");
        }
    }
}
