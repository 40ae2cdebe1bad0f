//! The gnostic protobuf form of `/openapi/v2` (`openapi_v2.Document`), written by hand from the
//! JSON form: there is no protobuf dependency. Field numbers follow gnostic's
//! `openapiv2/OpenAPIv2.proto`.
//!
//! Any value that is not a schema (`default`, `enum`, `example`, vendor extensions) goes into
//! `Any.yaml` as JSON text, which is valid YAML. Nothing here decides what the document says;
//! it only encodes it.

use serde_json::{Map, Value};

use super::{INFO_VERSION, TITLE};

/// Protobuf wire types.
pub(super) const VARINT: u64 = 0;
pub(super) const FIXED64: u64 = 1;
pub(super) const LEN: u64 = 2;

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends field `field` as a length-delimited value.
pub(super) fn put_bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
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
pub(super) fn encode_schema(schema: &Value) -> Vec<u8> {
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
    extensions(&mut out, 31, schema);
    out
}

/// Encodes the JSON form as gnostic `Document{swagger = 1, info = 2, paths = 8,
/// definitions = 9}` (`Info{title = 1, version = 2}`).
pub(super) fn encode_document(doc: &Value) -> Vec<u8> {
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

/// `Paths{path = 2 NamedPathItem{name = 1, value = 2 PathItem}}`.
fn encode_paths(paths: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, item) in paths {
        put_bytes(&mut out, 2, &named(path, &encode_path_item(item)));
    }
    out
}

/// `PathItem{get = 2, put = 3, post = 4, delete = 5, options = 6, head = 7, patch = 8}`.
fn encode_path_item(item: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for (method, field) in
        [("get", 2), ("put", 3), ("post", 4), ("delete", 5), ("options", 6), ("head", 7), ("patch", 8)]
    {
        if let Some(op) = item.get(method) {
            put_bytes(&mut out, field, &encode_operation(op));
        }
    }
    out
}

/// `Operation{tags = 1, description = 3, operation_id = 5, produces = 6, consumes = 7,
/// parameters = 8, responses = 9, schemes = 10, vendor_extension = 13}`.
fn encode_operation(op: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let strings = |out: &mut Vec<u8>, field: u64, key: &str| {
        for s in op.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            put_bytes(out, field, s.as_bytes());
        }
    };
    strings(&mut out, 1, "tags");
    put_str(&mut out, 3, op.get("description"));
    put_str(&mut out, 5, op.get("operationId"));
    strings(&mut out, 6, "produces");
    strings(&mut out, 7, "consumes");
    for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        // `ParametersItem{parameter = 1 Parameter}`.
        let mut item = Vec::new();
        put_bytes(&mut item, 1, &encode_parameter(p));
        put_bytes(&mut out, 8, &item);
    }
    if let Some(Value::Object(responses)) = op.get("responses") {
        put_bytes(&mut out, 9, &encode_responses(responses));
    }
    strings(&mut out, 10, "schemes");
    extensions(&mut out, 13, op);
    out
}

/// `Parameter{body_parameter = 1 BodyParameter{description = 1, name = 2, in = 3,
/// required = 4, schema = 5}, non_body_parameter = 2 NonBodyParameter{query = 3, path = 4}}`.
fn encode_parameter(p: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let location = p.get("in").and_then(Value::as_str).unwrap_or("query");
    if location == "body" {
        let mut body = Vec::new();
        put_str(&mut body, 1, p.get("description"));
        put_str(&mut body, 2, p.get("name"));
        put_str(&mut body, 3, p.get("in"));
        put_bool(&mut body, 4, p.get("required"));
        if let Some(schema) = p.get("schema") {
            put_bytes(&mut body, 5, &encode_schema(schema));
        }
        put_bytes(&mut out, 1, &body);
        return out;
    }
    // QueryParameterSubSchema{required = 1, in = 2, description = 3, name = 4, type = 6,
    // unique_items = 20}; PathParameterSubSchema{… type = 5, unique_items = 19}.
    let (sub_field, type_field, unique_field) = if location == "path" { (4, 5, 19) } else { (3, 6, 20) };
    let mut sub = Vec::new();
    put_bool(&mut sub, 1, p.get("required"));
    put_str(&mut sub, 2, p.get("in"));
    put_str(&mut sub, 3, p.get("description"));
    put_str(&mut sub, 4, p.get("name"));
    put_str(&mut sub, type_field, p.get("type"));
    put_bool(&mut sub, unique_field, p.get("uniqueItems"));
    let mut non_body = Vec::new();
    put_bytes(&mut non_body, sub_field, &sub);
    put_bytes(&mut out, 2, &non_body);
    out
}

/// `Responses{response_code = 1 NamedResponseValue{name, value = 2 ResponseValue{response = 1
/// Response{description = 1, schema = 2 SchemaItem{schema = 1}}}}}`.
fn encode_responses(responses: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (code, r) in responses {
        let mut response = Vec::new();
        put_str(&mut response, 1, r.get("description"));
        if let Some(schema) = r.get("schema") {
            let mut item = Vec::new();
            put_bytes(&mut item, 1, &encode_schema(schema));
            put_bytes(&mut response, 2, &item);
        }
        let mut value = Vec::new();
        put_bytes(&mut value, 1, &response);
        put_bytes(&mut out, 1, &named(code, &value));
    }
    out
}

fn put_str(out: &mut Vec<u8>, field: u64, value: Option<&Value>) {
    if let Some(s) = value.and_then(Value::as_str) {
        put_bytes(out, field, s.as_bytes());
    }
}

fn put_bool(out: &mut Vec<u8>, field: u64, value: Option<&Value>) {
    if value.and_then(Value::as_bool) == Some(true) {
        put_uint(out, field, 1);
    }
}

/// Every `x-…` key of `m` as `repeated NamedAny` field `field`.
fn extensions(out: &mut Vec<u8>, field: u64, m: &Value) {
    for (k, v) in m.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("x-")) {
        put_bytes(out, field, &named(k, &any(v)));
    }
}
