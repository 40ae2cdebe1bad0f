//! OpenAPI 3.0 → Swagger 2.0: schemas ([`to_swagger`]) and path items ([`path_item`]), so
//! `/openapi/v2` is built from the same schemas and operations as the v3 documents.
//!
//! Schemas: references point at `#/definitions/`, single-`allOf` wrappers become plain `$ref`s
//! (with their description), int-or-string becomes `type: string, format: int-or-string`,
//! OpenAPI 3 keywords without a Swagger 2.0 equivalent (`nullable`, `oneOf`, …) are dropped, and
//! `default`s are pruned as upstream prunes them from its v2 document.
//!
//! Operations: parameters carry their type inline instead of a schema, the request body becomes
//! a `body` parameter and its media types `consumes`, responses carry their schema directly and
//! their media types become `produces`.

use serde_json::{Map, Value, json};

use crate::openapi::schemas::REF_PREFIX;

/// Prefix of a Swagger 2.0 `$ref` to a definition.
pub const DEFINITIONS_PREFIX: &str = "#/definitions/";

/// Converts an OpenAPI 3.0 schema (as generated for `components.schemas`) to Swagger 2.0.
pub fn to_swagger(schema: &Value) -> Value {
    let Value::Object(m) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in m {
        match key.as_str() {
            "$ref" => {
                let target = value.as_str().unwrap_or_default();
                let name = target.strip_prefix(REF_PREFIX).unwrap_or(target);
                out.insert(key.clone(), format!("{DEFINITIONS_PREFIX}{name}").into());
            }
            "properties" => {
                let props = value.as_object().map(|p| p.iter().map(|(k, v)| (k.clone(), to_swagger(v))).collect());
                out.insert(key.clone(), Value::Object(props.unwrap_or_default()));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(key.clone(), to_swagger(value));
            }
            "allOf" => {
                let parts: Vec<Value> =
                    value.as_array().map(|a| a.iter().map(to_swagger).collect()).unwrap_or_default();
                out.insert(key.clone(), Value::Array(parts));
            }
            "x-kubernetes-int-or-string" if value == &Value::Bool(true) => {
                out.insert("type".into(), "string".into());
                out.insert("format".into(), "int-or-string".into());
            }
            // OpenAPI 3 only; `default` is pruned from v2 documents.
            "nullable" | "oneOf" | "anyOf" | "writeOnly" | "deprecated" | "$schema" | "default" => {}
            _ => {
                out.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    // `{"allOf": [{"$ref": X}], "description": …}` is how OpenAPI 3 describes a reference;
    // Swagger 2.0 (and kube-openapi's v2 parser) wants `{"$ref": X, "description": …}`.
    let single_ref = match out.get("allOf") {
        Some(Value::Array(parts)) if parts.len() == 1 => parts[0].get("$ref").cloned(),
        _ => None,
    };
    if let Some(target) = single_ref
        && !out.contains_key("$ref")
        && !out.contains_key("type")
        && !out.contains_key("properties")
    {
        out.remove("allOf");
        out.insert("$ref".into(), target);
    }
    if out.contains_key("$ref") {
        // A reference carries only annotations (kube-openapi rejects a typed reference).
        out.retain(|k, _| k == "$ref" || k == "description" || k.starts_with("x-"));
    }
    Value::Object(out)
}

/// Converts an OpenAPI 3.0 path item (methods to operations) to Swagger 2.0.
pub fn path_item(item: &Value) -> Value {
    let ops: Map<String, Value> = item
        .as_object()
        .into_iter()
        .flatten()
        .map(|(method, op)| (method.clone(), if op.is_object() { operation(op) } else { op.clone() }))
        .collect();
    Value::Object(ops)
}

/// Media types of a `content` object, and the schema of its first.
fn content(value: Option<&Value>) -> (Vec<Value>, Option<Value>) {
    let Some(Value::Object(content)) = value else {
        return (Vec::new(), None);
    };
    let types = content.keys().map(|k| Value::from(k.as_str())).collect();
    let schema = content.values().find_map(|c| c.get("schema")).map(to_swagger);
    (types, schema)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut parameters: Vec<Value> = Vec::new();
    let mut produces: Vec<Value> = Vec::new();
    for (key, value) in op.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => parameters.extend(value.as_array().into_iter().flatten().map(parameter)),
            "requestBody" => {
                let (types, schema) = content(value.get("content"));
                out.insert("consumes".into(), Value::Array(types));
                let required = value.get("required").cloned().unwrap_or(Value::Bool(false));
                parameters.push(
                    json!({"name": "body", "in": "body", "required": required, "schema": schema.unwrap_or_default()}),
                );
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, response) in value.as_object().into_iter().flatten() {
                    let (types, schema) = content(response.get("content"));
                    if produces.is_empty() {
                        produces = types;
                    }
                    let mut r = Map::new();
                    r.insert("description".into(), response.get("description").cloned().unwrap_or_default());
                    if let Some(schema) = schema {
                        r.insert("schema".into(), schema);
                    }
                    responses.insert(code.clone(), Value::Object(r));
                }
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("parameters".into(), Value::Array(parameters));
    if !produces.is_empty() {
        out.insert("produces".into(), Value::Array(produces));
    }
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// A non-body parameter: its schema's `type` (and `uniqueItems`) move up.
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in p.as_object().into_iter().flatten() {
        if key == "schema" {
            for (k, v) in value.as_object().into_iter().flatten() {
                out.insert(k.clone(), v.clone());
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}
