//! Tests of `/openapi/v2`: the protobuf decodes back to what kubectl 1.20 reads, and every
//! definition passes kube-openapi's v2 model parser rules.

use std::sync::Arc;

use super::proto::{FIXED64, LEN, VARINT, encode_schema, put_bytes, put_varint};
use super::*;
use crate::discovery::builtin_resources;
use crate::openapi::OpenApiCache;

/// A decoded field: number, wire type and payload (varints as little-endian bytes).
type Field = (u64, u64, Vec<u8>);

fn get_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Decodes one message level; panics on malformed input.
fn decode(buf: &[u8]) -> Vec<Field> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < buf.len() {
        let key = get_varint(buf, &mut pos);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            VARINT => {
                let v = get_varint(buf, &mut pos);
                fields.push((field, wire, v.to_le_bytes().to_vec()));
            }
            FIXED64 => {
                fields.push((field, wire, buf[pos..pos + 8].to_vec()));
                pos += 8;
            }
            LEN => {
                let len = get_varint(buf, &mut pos) as usize;
                fields.push((field, wire, buf[pos..pos + len].to_vec()));
                pos += len;
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    assert_eq!(pos, buf.len());
    fields
}

fn field(fields: &[Field], n: u64) -> &[u8] {
    let (_, wire, v) = fields.iter().find(|(f, _, _)| *f == n).unwrap_or_else(|| panic!("field {n} present"));
    assert_eq!(*wire, LEN);
    v
}

fn all_fields(fields: &[Field], n: u64) -> Vec<&[u8]> {
    fields.iter().filter(|(f, _, _)| *f == n).map(|(_, _, v)| v.as_slice()).collect()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

/// `repeated NamedSchema` (or `NamedAny`) entries of a message, by name.
fn named_entries(buf: &[u8]) -> Vec<(String, Vec<u8>)> {
    decode(buf).iter().map(|(_, _, v)| named_entries_one(v)).collect()
}

fn builtin() -> Arc<V2Document> {
    OpenApiCache::builtin().v2()
}

fn json_doc() -> Value {
    serde_json::from_slice(&builtin().json.body).expect("json")
}

#[test]
fn protobuf_definitions_decode_to_configmap_with_data_and_gvk() {
    let doc = decode(&builtin().protobuf.body);
    assert_eq!(doc.iter().map(|(f, _, _)| *f).collect::<Vec<_>>(), vec![1, 2, 8, 9]);
    assert_eq!(field(&doc, 1), b"2.0");
    let info = decode(field(&doc, 2));
    assert_eq!(field(&info, 1), b"Kubernetes");
    assert_eq!(field(&info, 2), INFO_VERSION.as_bytes());
    // Paths: the PATCH of Deployments carries its GVK and the dryRun query parameter (what
    // kubectl 1.20 looks for before `diff` / `--dry-run=server`).
    let paths: Vec<(String, Vec<u8>)> = decode(field(&doc, 8))
        .iter()
        .filter(|(f, _, _)| *f == 2)
        .map(|(_, _, b)| {
            let named = decode(b);
            (String::from_utf8_lossy(field(&named, 1)).into_owned(), field(&named, 2).to_vec())
        })
        .collect();
    let (_, item) = paths
        .iter()
        .find(|(p, _)| p == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .expect("deployment path");
    let op = decode(field(&decode(item), 8));
    let ext = op
        .iter()
        .filter(|(f, _, _)| *f == 13)
        .map(|(_, _, b)| decode(b))
        .find(|n| field(n, 1) == b"x-kubernetes-group-version-kind")
        .expect("gvk extension");
    let yaml = String::from_utf8_lossy(field(&decode(field(&ext, 2)), 2)).into_owned();
    assert!(yaml.contains("\"kind\":\"Deployment\"") && yaml.contains("\"group\":\"apps\""), "{yaml}");
    // ParametersItem{parameter = 1 Parameter{non_body_parameter = 2 NonBodyParameter{query = 3 |
    // path = 4 {name = 4}}}}: kubectl 1.20 reads the query parameters' names.
    let non_body: Vec<Vec<Field>> = all_fields(&op, 8)
        .into_iter()
        .map(|item| decode(field(&decode(item), 1)))
        .filter(|p| p.iter().any(|(f, _, _)| *f == 2))
        .map(|p| decode(field(&p, 2)))
        .collect();
    let names_in = |location: u64| -> Vec<String> {
        non_body
            .iter()
            .filter(|p| p.iter().any(|(f, _, _)| *f == location))
            .map(|p| text(field(&decode(field(p, location)), 4)).to_string())
            .collect()
    };
    assert!(names_in(3).contains(&"dryRun".to_string()), "{:?}", names_in(3));
    assert_eq!(names_in(4), vec!["name", "namespace"]);
    // The body parameter: BodyParameter{name = 2, in = 3, schema = 5 {$ref = 1}}.
    let body = all_fields(&op, 8)
        .into_iter()
        .map(|item| decode(field(&decode(item), 1)))
        .find(|p| p.iter().any(|(f, _, _)| *f == 1))
        .map(|p| decode(field(&p, 1)))
        .expect("body parameter");
    assert_eq!((text(field(&body, 2)), text(field(&body, 3))), ("body", "body"));
    assert_eq!(text(field(&decode(field(&body, 5)), 1)), "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch");

    let defs = named_entries(field(&doc, 9));
    assert_eq!(defs.len(), json_doc()["definitions"].as_object().expect("definitions").len());
    let (_, cm) = defs.iter().find(|(n, _)| n == "io.k8s.api.core.v1.ConfigMap").expect("ConfigMap definition");
    let cm = decode(cm);
    let types = decode(field(&cm, 22));
    assert_eq!(field(&types, 1), b"object");
    let props = named_entries(field(&cm, 25));
    let names: Vec<&str> = props.iter().map(|(n, _)| n.as_str()).collect();
    for p in ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"] {
        assert!(names.contains(&p), "missing {p} in {names:?}");
    }
    // `data` is a map of strings: `additionalProperties` holds a schema of type string.
    let data = decode(&props.iter().find(|(n, _)| n == "data").expect("data").1);
    let additional = decode(field(&data, 21));
    let value = decode(field(&additional, 1));
    assert_eq!(field(&decode(field(&value, 22)), 1), b"string");
    // `metadata` is a plain reference.
    let metadata = decode(&props.iter().find(|(n, _)| n == "metadata").expect("metadata").1);
    assert_eq!(text(field(&metadata, 1)), "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert!(all_fields(&metadata, 22).is_empty());

    // The GVK vendor extension: `NamedAny{name, Any{yaml}}`, a list of {group, kind, version}.
    let ext: Vec<(String, Vec<u8>)> = all_fields(&cm, 31).into_iter().map(named_entries_one).collect();
    let (_, any) = ext.iter().find(|(n, _)| n == "x-kubernetes-group-version-kind").expect("gvk extension");
    let yaml = text(field(&decode(any), 2)).to_string();
    let parsed: Value = serde_json::from_str(&yaml).expect("yaml (JSON flow style)");
    assert_eq!(parsed, json!([{"group": "", "kind": "ConfigMap", "version": "v1"}]));
}

/// Decodes one `NamedAny`/`NamedSchema` message.
fn named_entries_one(buf: &[u8]) -> (String, Vec<u8>) {
    let entry = decode(buf);
    (text(field(&entry, 1)).to_string(), field(&entry, 2).to_vec())
}

#[test]
fn protobuf_encodes_numbers_booleans_arrays_and_enums() {
    let schema = json!({
        "type": "array",
        "items": {"type": "integer", "format": "int32", "minimum": 1.5, "enum": [1, 2]},
        "uniqueItems": true,
        "maxItems": 3,
        "additionalProperties": false,
    });
    let s = decode(&encode_schema(&schema));
    let items = decode(field(&s, 23));
    let item = decode(field(&items, 1));
    assert_eq!(field(&item, 2), b"int32");
    let (_, wire, min) = item.iter().find(|(f, _, _)| *f == 9).expect("minimum");
    assert_eq!((*wire, f64::from_le_bytes(min.as_slice().try_into().expect("8 bytes"))), (FIXED64, 1.5));
    let enums: Vec<String> =
        all_fields(&item, 20).into_iter().map(|a| text(field(&decode(a), 2)).to_string()).collect();
    assert_eq!(enums, vec!["1", "2"]);
    let unique = s.iter().find(|(f, _, _)| *f == 16).expect("uniqueItems");
    assert_eq!((unique.1, unique.2[0]), (VARINT, 1));
    let max = s.iter().find(|(f, _, _)| *f == 14).expect("maxItems");
    assert_eq!(max.2[0], 3);
    let additional = decode(field(&s, 21));
    assert_eq!(additional, vec![(2, VARINT, 0u64.to_le_bytes().to_vec())]);
}

#[test]
fn varints_encode_multi_byte_lengths() {
    let mut out = Vec::new();
    put_varint(&mut out, 300);
    assert_eq!(out, vec![0xac, 0x02]);
    let long = vec![b'x'; 200];
    let mut msg = Vec::new();
    put_bytes(&mut msg, 3, &long);
    assert_eq!(decode(&msg), vec![(3, LEN, long)]);
}

#[test]
fn swagger_conversion_rewrites_refs_and_int_or_string() {
    let v3 = json!({
        "type": "object",
        "nullable": true,
        "properties": {
            "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}], "description": "d", "default": {}},
            "port": {"x-kubernetes-int-or-string": true, "description": "p"},
            "list": {"type": "array", "items": {"$ref": "#/components/schemas/X"}},
        },
    });
    let v2 = to_swagger(&v3);
    assert_eq!(
        v2,
        json!({
            "type": "object",
            "properties": {
                "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec", "description": "d"},
                "port": {"type": "string", "format": "int-or-string", "description": "p"},
                "list": {"type": "array", "items": {"$ref": "#/definitions/X"}},
            },
        })
    );
}

/// kube-openapi's v2 model parser (`proto.Definitions.ParseSchema`), as kubectl 1.20 runs it on
/// every definition before validating anything: one failure disables validation altogether.
fn check_parsable(s: &Value, defs: &Map<String, Value>, path: &str) {
    let m = s.as_object().unwrap_or_else(|| panic!("{path}: schema is not an object"));
    assert!(!m.contains_key("allOf"), "{path}: allOf is ignored by kube-openapi v2");
    if let Some(r) = m.get("$ref") {
        let name = r.as_str().and_then(|r| r.strip_prefix(DEFINITIONS_PREFIX)).unwrap_or_else(|| panic!("{path}"));
        assert!(defs.contains_key(name), "{path}: unknown model in reference {name}");
        assert!(!m.contains_key("type") && !m.contains_key("properties"), "{path}: typed reference");
        return;
    }
    let ty = m.get("type").map(|t| t.as_str().unwrap_or_else(|| panic!("{path}: type list")));
    let props = m.get("properties").and_then(Value::as_object);
    match (ty, props) {
        (None | Some("object"), Some(props)) => {
            for (k, v) in props {
                check_parsable(v, defs, &format!("{path}.{k}"));
            }
        }
        (Some("object"), None) => {
            if let Some(sub @ Value::Object(_)) = m.get("additionalProperties") {
                check_parsable(sub, defs, &format!("{path}.*"));
            }
        }
        (Some("array"), _) => {
            let items = m.get("items").unwrap_or_else(|| panic!("{path}: array without items"));
            check_parsable(items, defs, &format!("{path}[]"));
        }
        (Some(t), _) => assert!(["string", "number", "integer", "boolean"].contains(&t), "{path}: type {t}"),
        (None, None) => {}
    }
}

#[test]
fn every_definition_parses_as_kube_openapi_v2_and_kinds_are_tagged() {
    let doc = json_doc();
    let defs = doc["definitions"].as_object().expect("definitions");
    for (name, s) in defs {
        check_parsable(s, defs, name);
    }
    for r in builtin_resources() {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let tagged =
            defs.values().any(|s| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|a| a.contains(&gvk)));
        assert!(tagged, "no definition for {gvk}");
    }
    let replicas = &defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
    assert_eq!(replicas["type"], "integer");
    assert!(replicas["description"].as_str().is_some_and(|d| !d.is_empty()));
}

#[test]
fn custom_resource_definitions_parse_as_kube_openapi_v2() {
    let cache = crate::openapi::tests::with_crontabs("v2parse.example.com");
    let doc: Value = serde_json::from_slice(&cache.v2().json.body).expect("json");
    let defs = doc["definitions"].as_object().expect("definitions");
    let name = "com.example.v2parse.v1.CronTab";
    for (n, s) in defs.iter().filter(|(n, _)| n.starts_with("com.example.v2parse.")) {
        check_parsable(s, defs, n);
    }
    let spec = &defs[name]["properties"]["spec"]["properties"];
    assert_eq!(spec["port"], json!({"x-kubernetes-int-or-string": true}));
    assert_eq!(spec["args"], json!({"x-kubernetes-preserve-unknown-fields": true}));
    assert_eq!(spec["settings"], json!({}));
    let template = &spec["template"];
    assert_eq!(template["required"], json!(["kind", "apiVersion"]));
    assert_eq!(
        template["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    // The protobuf form carries the custom definition too.
    let decoded = decode(&cache.v2().protobuf.body);
    assert!(named_entries(field(&decoded, 9)).iter().any(|(n, _)| n == name));
}

#[test]
fn definitions_carry_upstream_list_map_and_patch_extensions() {
    let doc = json_doc();
    let defs = &doc["definitions"];
    let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let volumes = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let finalizers = &defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    // A described reference keeps its extensions next to the `$ref`.
    let pdb_selector = &defs["io.k8s.api.policy.v1.PodDisruptionBudgetSpec"]["properties"]["selector"];
    assert_eq!(pdb_selector["$ref"], "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector");
    assert_eq!(pdb_selector["x-kubernetes-patch-strategy"], "replace");
    assert_eq!(defs["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"], "atomic");
}

#[test]
fn int_or_string_quantity_and_time_are_typed_strings() {
    let doc = json_doc();
    let defs = &doc["definitions"];
    let port = &defs["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"];
    let port = match port.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches(DEFINITIONS_PREFIX)],
        None => port,
    };
    assert_eq!((port["type"].as_str(), port["format"].as_str()), (Some("string"), Some("int-or-string")));
    assert_eq!(defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"], "string");
    let time = &defs["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!((time["type"].as_str(), time["format"].as_str()), (Some("string"), Some("date-time")));
}

#[test]
fn etags_are_quoted_hashes_and_match_if_none_match() {
    let doc = builtin();
    for r in [&doc.json, &doc.protobuf] {
        assert_eq!(r.etag.len(), 66);
        assert!(r.etag.starts_with('"') && r.etag.ends_with('"'));
        assert!(r.matches(&r.etag));
        assert!(r.matches(&format!("\"other\", W/{}", r.etag)));
        assert!(r.matches("*"));
        assert!(!r.matches("\"other\""));
    }
    assert_ne!(doc.json.etag, doc.protobuf.etag);
    // Rendering is deterministic, so ETags survive restarts.
    assert_eq!(V2Document::new(&builtin_resources()), *doc);
    assert_eq!(v2_protobuf(&builtin_resources()), doc.protobuf.body);
}
