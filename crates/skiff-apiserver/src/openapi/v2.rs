//! `/openapi/v2`: the Swagger 2.0 document of the built-in kinds, as JSON and as gnostic
//! protobuf.
//!
//! What clients read from it:
//! - kubectl 1.20 `create/apply/replace -f` (`--validate=true`) asks for
//!   [`V2_PROTOBUF_CONTENT_TYPE`], decodes gnostic's `openapi_v2.Document` and builds models
//!   from `definitions` alone (kube-openapi `proto.NewOpenAPIData`); kinds are found through
//!   each definition's `x-kubernetes-group-version-kind` vendor extension (read from its
//!   `yaml` string). Objects are then checked for unknown fields, missing required fields and
//!   wrong types; kinds without a tagged definition are not checked. `kubectl explain` uses
//!   the same models.
//! - kubectl 1.20 client-side `apply` computes strategic merge patches from the same models,
//!   so list fields carry upstream's `x-kubernetes-patch-strategy` and
//!   `x-kubernetes-patch-merge-key` (from the strategic-merge table, [`crate::strategic`]).
//! - kubectl 1.32 only falls back to v2 when v3 fails; it reads the patch types a kind
//!   accepts from `paths`, which stay empty, so it keeps its compiled-in merge metadata.
//!
//! The definitions are the v3 `components.schemas` ([`super::schemas::Components`], generated
//! by k8s-openapi's `schemars` implementations) converted to Swagger 2.0 by [`to_swagger`]:
//! references point at `#/definitions/`, single-`allOf` wrappers become plain `$ref`s (with
//! their description), int-or-string becomes `type: string, format: int-or-string`, and
//! OpenAPI 3 keywords without a Swagger 2.0 equivalent (`nullable`, `oneOf`, …) are dropped.
//!
//! The protobuf is written by hand from the JSON form (there is no protobuf dependency); field
//! numbers follow gnostic's `openapiv2/OpenAPIv2.proto`. Any value that is not a schema
//! (`default`, `enum`, `example`, vendor extensions) goes into `Any.yaml` as JSON text, which
//! is valid YAML. Both forms are rendered once ([`V2Document::builtin`]) with their ETags.

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::catalogue::ResourceInfo;

use super::schemas::{Components, REF_PREFIX};

/// `Content-Type` (and the `Accept` kubectl sends) of the protobuf form of `/openapi/v2`.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Title of the served documents.
pub const TITLE: &str = "Kubernetes";

/// `info.version` of the served documents.
pub const INFO_VERSION: &str = crate::discovery::KUBE_VERSION;

/// Prefix of a Swagger 2.0 `$ref` to a definition.
pub const DEFINITIONS_PREFIX: &str = "#/definitions/";

/// One rendered form of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The body, exactly as served.
    pub body: Vec<u8>,
    /// The `ETag` header value: the quoted lowercase hex SHA-256 of `body`.
    pub etag: String,
}

impl Rendered {
    fn new(body: Vec<u8>) -> Self {
        let hex: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
        Self { body, etag: format!("\"{hex}\"") }
    }

    /// Whether an `If-None-Match` header value names this rendering (`*`, or a list of
    /// entity tags, weak or strong).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == self.etag)
    }
}

/// The `/openapi/v2` document of one resource list, in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Document {
    /// `application/json`.
    pub json: Rendered,
    /// Gnostic `openapi_v2.Document` protobuf.
    pub protobuf: Rendered,
}

impl V2Document {
    /// Renders the document of `resources`.
    pub fn new(resources: &[&ResourceInfo]) -> Self {
        let doc = v2_json(resources);
        // Serializing a `Value` cannot fail (all keys are strings).
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        Self { json: Rendered::new(json), protobuf: Rendered::new(encode_document(&doc)) }
    }

    /// The document of the built-in catalogue, rendered on first use.
    pub fn builtin() -> &'static V2Document {
        static DOC: OnceLock<V2Document> = OnceLock::new();
        DOC.get_or_init(|| V2Document::new(&crate::discovery::builtin_resources()))
    }
}

/// The JSON form of `/openapi/v2` for `resources`: `swagger`, `info`, `paths` (the PATCH
/// operation of every object path) and the `definitions` of every served kind, its list and its
/// subresources' kinds.
pub fn v2_json(resources: &[&ResourceInfo]) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": TITLE, "version": INFO_VERSION},
        "paths": paths(resources),
        "definitions": definitions(resources),
    })
}

/// Query parameters of every PATCH operation. kubectl 1.20 decides whether the server supports
/// `--dry-run=server` (and so `kubectl diff`) by finding `dryRun` on the PATCH operation that
/// carries the kind's `x-kubernetes-group-version-kind`.
const PATCH_QUERY_PARAMETERS: &[(&str, &str)] =
    &[("dryRun", "string"), ("fieldManager", "string"), ("fieldValidation", "string"), ("force", "boolean")];

/// One PATCH operation per object path of every resource that supports patch.
fn paths(resources: &[&ResourceInfo]) -> Map<String, Value> {
    let mut out = Map::new();
    for r in resources.iter().filter(|r| r.supports("patch")) {
        let base =
            if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let parameters: Vec<Value> = PATCH_QUERY_PARAMETERS
            .iter()
            .map(|(name, ty)| json!({"name": name, "in": "query", "type": ty, "uniqueItems": true}))
            .collect();
        out.insert(
            path,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": r.group, "kind": r.kind, "version": r.version},
                "x-kubernetes-action": "patch",
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    out
}

/// `Paths{path = 2}` of NamedPathItem{name, PathItem{patch = 8 Operation{parameters = 8,
/// vendor_extension = 13}}}, with each parameter a `ParametersItem{parameter = 1
/// Parameter{non_body_parameter = 2 NonBodyParameter{query_parameter_sub_schema = 3
/// QueryParameterSubSchema{in = 2, name = 4, type = 6}}}}`.
fn encode_paths(paths: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, item) in paths {
        let Some(op) = item.get("patch") else { continue };
        let mut operation = Vec::new();
        for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
            let mut query = Vec::new();
            put_bytes(&mut query, 2, p["in"].as_str().unwrap_or("query").as_bytes());
            put_bytes(&mut query, 4, p["name"].as_str().unwrap_or_default().as_bytes());
            put_bytes(&mut query, 6, p["type"].as_str().unwrap_or("string").as_bytes());
            let mut non_body = Vec::new();
            put_bytes(&mut non_body, 3, &query);
            let mut parameter = Vec::new();
            put_bytes(&mut parameter, 2, &non_body);
            let mut item = Vec::new();
            put_bytes(&mut item, 1, &parameter);
            put_bytes(&mut operation, 8, &item);
        }
        for ext in ["x-kubernetes-group-version-kind", "x-kubernetes-action"] {
            if let Some(v) = op.get(ext) {
                put_bytes(&mut operation, 13, &named(ext, &any(v)));
            }
        }
        let mut path_item = Vec::new();
        put_bytes(&mut path_item, 8, &operation);
        put_bytes(&mut out, 2, &named(path, &path_item));
    }
    out
}

/// The protobuf form of `/openapi/v2` for `resources` (gnostic `openapi_v2.Document`).
pub fn v2_protobuf(resources: &[&ResourceInfo]) -> Vec<u8> {
    encode_document(&v2_json(resources))
}

/// Swagger 2.0 definitions of `resources`, with upstream's patch metadata on struct fields.
fn definitions(resources: &[&ResourceInfo]) -> Map<String, Value> {
    let mut components = Components::new();
    components.add::<meta::DeleteOptions>();
    components.add::<meta::Status>();
    for r in resources {
        let name = components.kind(r.group, r.version, r.kind);
        components.list(r.group, r.version, r.kind, &name);
        for sub in &r.subresources {
            let (group, version) = if sub.group.is_empty() && sub.version.is_empty() {
                (r.group, r.version)
            } else {
                (sub.group, if sub.version.is_empty() { r.version } else { sub.version })
            };
            // Tag only kinds with a real schema (`Scale`, `Eviction`, …), not connect options.
            if components.builtin_kind(group, version, sub.kind).is_some() {
                components.kind(group, version, sub.kind);
            }
        }
    }
    let Value::Object(schemas) = components.finish() else {
        return Map::new();
    };
    let mut defs: Map<String, Value> = schemas.iter().map(|(name, s)| (name.clone(), to_swagger(s))).collect();
    for a in crate::strategic::patch_annotations() {
        let def = match a.type_name.strip_prefix("meta.") {
            Some(rest) => format!("io.k8s.apimachinery.pkg.apis.meta.{rest}"),
            None => format!("io.k8s.api.{}", a.type_name),
        };
        let Some(Value::Object(field)) = defs.get_mut(&def).and_then(|d| d.get_mut("properties")?.get_mut(a.field))
        else {
            continue;
        };
        if !a.strategy.is_empty() {
            field.insert("x-kubernetes-patch-strategy".into(), a.strategy.into());
        }
        if !a.merge_key.is_empty() {
            field.insert("x-kubernetes-patch-merge-key".into(), a.merge_key.into());
        }
    }
    defs
}

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
            // OpenAPI 3 only.
            "nullable" | "oneOf" | "anyOf" | "writeOnly" | "deprecated" | "$schema" => {}
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
        out.retain(|k, _| k == "$ref" || k == "description" || k == "default" || k.starts_with("x-"));
    }
    Value::Object(out)
}

// --- protobuf ---

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends field `field` as a length-delimited value.
fn put_bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    put_varint(out, (field << 3) | LEN);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn put_uint(out: &mut Vec<u8>, field: u64, value: u64) {
    put_varint(out, (field << 3) | VARINT);
    put_varint(out, value);
}

fn put_double(out: &mut Vec<u8>, field: u64, value: f64) {
    put_varint(out, (field << 3) | FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Gnostic `Any{yaml = 2}` holding `value` as JSON text (JSON is YAML).
fn any(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 2, value.to_string().as_bytes());
    out
}

/// `NamedAny{name = 1, value = 2}` / `NamedSchema{name = 1, value = 2}`.
fn named(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, name.as_bytes());
    put_bytes(&mut out, 2, value);
    out
}

/// `Properties` / `Definitions`: `repeated NamedSchema additional_properties = 1`.
fn named_schemas(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, schema) in map {
        put_bytes(&mut out, 1, &named(name, &encode_schema(schema)));
    }
    out
}

/// Encodes a Swagger 2.0 schema as gnostic `Schema`.
fn encode_schema(schema: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Value::Object(m) = schema else {
        return out;
    };
    let string = |out: &mut Vec<u8>, field: u64, key: &str| {
        if let Some(s) = m.get(key).and_then(Value::as_str) {
            put_bytes(out, field, s.as_bytes());
        }
    };
    let double = |out: &mut Vec<u8>, field: u64, key: &str| {
        if let Some(v) = m.get(key).and_then(Value::as_f64) {
            put_double(out, field, v);
        }
    };
    let uint = |out: &mut Vec<u8>, field: u64, key: &str| {
        if let Some(v) = m.get(key).and_then(Value::as_u64) {
            put_uint(out, field, v);
        }
    };
    let boolean = |out: &mut Vec<u8>, field: u64, key: &str| {
        if let Some(true) = m.get(key).and_then(Value::as_bool) {
            put_uint(out, field, 1);
        }
    };
    string(&mut out, 1, "$ref");
    string(&mut out, 2, "format");
    string(&mut out, 3, "title");
    string(&mut out, 4, "description");
    if let Some(v) = m.get("default") {
        put_bytes(&mut out, 5, &any(v));
    }
    double(&mut out, 6, "multipleOf");
    double(&mut out, 7, "maximum");
    boolean(&mut out, 8, "exclusiveMaximum");
    double(&mut out, 9, "minimum");
    boolean(&mut out, 10, "exclusiveMinimum");
    uint(&mut out, 11, "maxLength");
    uint(&mut out, 12, "minLength");
    string(&mut out, 13, "pattern");
    uint(&mut out, 14, "maxItems");
    uint(&mut out, 15, "minItems");
    boolean(&mut out, 16, "uniqueItems");
    uint(&mut out, 17, "maxProperties");
    uint(&mut out, 18, "minProperties");
    for r in m.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        put_bytes(&mut out, 19, r.as_bytes());
    }
    for e in m.get("enum").and_then(Value::as_array).into_iter().flatten() {
        put_bytes(&mut out, 20, &any(e));
    }
    match m.get("additionalProperties") {
        // `AdditionalPropertiesItem{oneof {Schema schema = 1; bool boolean = 2}}`.
        Some(Value::Bool(b)) => {
            let mut item = Vec::new();
            put_uint(&mut item, 2, u64::from(*b));
            put_bytes(&mut out, 21, &item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Vec::new();
            put_bytes(&mut item, 1, &encode_schema(s));
            put_bytes(&mut out, 21, &item);
        }
        _ => {}
    }
    let types: Vec<&str> = match m.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        // `TypeItem{repeated string value = 1}`.
        let mut item = Vec::new();
        for t in types {
            put_bytes(&mut item, 1, t.as_bytes());
        }
        put_bytes(&mut out, 22, &item);
    }
    if let Some(items) = m.get("items") {
        // `ItemsItem{repeated Schema schema = 1}`.
        let mut item = Vec::new();
        match items {
            Value::Array(list) => list.iter().for_each(|s| put_bytes(&mut item, 1, &encode_schema(s))),
            s => put_bytes(&mut item, 1, &encode_schema(s)),
        }
        put_bytes(&mut out, 23, &item);
    }
    for s in m.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        put_bytes(&mut out, 24, &encode_schema(s));
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        put_bytes(&mut out, 25, &named_schemas(props));
    }
    string(&mut out, 26, "discriminator");
    boolean(&mut out, 27, "readOnly");
    if let Some(v) = m.get("example") {
        put_bytes(&mut out, 30, &any(v));
    }
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        put_bytes(&mut out, 31, &named(k, &any(v)));
    }
    out
}

/// Encodes the JSON form as gnostic `Document{swagger = 1, info = 2, paths = 8,
/// definitions = 9}` (`Info{title = 1, version = 2}`).
fn encode_document(doc: &Value) -> Vec<u8> {
    let mut info = Vec::new();
    put_bytes(&mut info, 1, doc["info"]["title"].as_str().unwrap_or(TITLE).as_bytes());
    put_bytes(&mut info, 2, doc["info"]["version"].as_str().unwrap_or(INFO_VERSION).as_bytes());

    let mut out = Vec::new();
    put_bytes(&mut out, 1, doc["swagger"].as_str().unwrap_or("2.0").as_bytes());
    put_bytes(&mut out, 2, &info);
    // Present even when empty, so decoders see non-nil `Paths` and `Definitions`.
    let paths = doc.get("paths").and_then(Value::as_object).map(encode_paths).unwrap_or_default();
    put_bytes(&mut out, 8, &paths);
    let defs = doc.get("definitions").and_then(Value::as_object).map(named_schemas).unwrap_or_default();
    put_bytes(&mut out, 9, &defs);
    out
}

#[cfg(test)]
mod tests;
