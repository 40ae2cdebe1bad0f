//! Content negotiation: decoding request bodies (JSON, YAML) and choosing the response shape
//! (plain JSON, `meta.k8s.io` Table, `PartialObjectMetadata`) from the `Accept` header.

use serde_json::Value;
use skiff_api::StatusError;

/// Largest request body accepted (upstream's 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the client asked the response to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the response shape from `Accept`: the first acceptable entry wins; anything we cannot
/// produce (protobuf, unknown `as=`) is skipped, and plain JSON is the fallback.
pub fn shape(accept: Option<&str>) -> Shape {
    let Some(accept) = accept else { return Shape::Object };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if !(media == "application/json" || media == "*/*" || media == "application/*" || media == "application/yaml") {
            continue;
        }
        match (get("as"), get("g")) {
            (Some("Table"), Some("meta.k8s.io")) => return Shape::Table,
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Shape::Metadata;
            }
            (None, _) => return Shape::Object,
            _ => continue,
        }
    }
    Shape::Object
}

/// Whether the client prefers YAML responses.
pub fn wants_yaml(accept: Option<&str>) -> bool {
    accept.map(|a| a.trim_start().starts_with("application/yaml")).unwrap_or(false)
}

/// Request body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (kubectl's typed client).
    Protobuf,
}

/// Classifies a `Content-Type` for create/update bodies.
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, StatusError> {
    let media = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("application/json");
    match media {
        "application/json" | "" | "*/*" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        crate::protobuf::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
        other => Err(StatusError::unsupported_media_type(
            other,
            &["application/json", "application/yaml", crate::protobuf::MEDIA_TYPE],
        )),
    }
}

/// Decodes a body into a JSON object; names the problem when malformed.
pub fn decode_body(bytes: &[u8], format: BodyFormat) -> Result<Value, StatusError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(StatusError::too_large(MAX_BODY_BYTES));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StatusError::bad_request("the request body is empty; an object is required"));
    }
    let value: Value = match format {
        BodyFormat::Protobuf => crate::protobuf::decode_object(bytes)
            .map_err(|e| StatusError::bad_request(format!("the request body is not a valid protobuf object: {e}")))?,
        BodyFormat::Json => serde_json::from_slice(bytes)
            .map_err(|e| StatusError::bad_request(format!("the request body is not valid JSON: {e}")))?,
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| StatusError::bad_request(format!("the request body is not valid UTF-8: {e}")))?;
            serde_saphyr::from_str(text)
                .map_err(|e| StatusError::bad_request(format!("the request body is not valid YAML: {e}")))?
        }
    };
    if !value.is_object() {
        return Err(StatusError::bad_request("the request body must be a JSON object"));
    }
    Ok(value)
}

/// Paths of members that appear twice in the same JSON object of `bytes` (`metadata.name`,
/// `spec.containers[0].image`). Empty for non-JSON or malformed input (decoding reports that).
pub fn duplicate_json_fields(bytes: &[u8]) -> Vec<String> {
    use serde::de::DeserializeSeed;
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = DuplicateScan { path: String::new(), found: &mut found };
    if seed.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    found
}

/// Walks a JSON document recording duplicate object keys by path.
struct DuplicateScan<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DuplicateScan<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DuplicateScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(DuplicateScan { path: format!("{}[{i}]", self.path), found: self.found })?.is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if !seen.insert(key) {
                self.found.push(path.clone());
            }
            map.next_value_seed(DuplicateScan { path, found: self.found })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_gets_a_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(shape(Some(a)), Shape::Table);
        assert_eq!(shape(Some("application/vnd.kubernetes.protobuf,application/json")), Shape::Object);
        assert_eq!(shape(Some("application/json;as=Foo;g=x,application/json")), Shape::Object);
        assert_eq!(shape(None), Shape::Object);
        assert_eq!(shape(Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")), Shape::Metadata);
    }

    #[test]
    fn duplicate_fields_are_found_by_path() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"data":{"k":"1"},"items":[{"x":1,"x":2}],"data":{}}"#;
        assert_eq!(duplicate_json_fields(body), vec!["metadata.name", "items[0].x", "data"]);
        assert!(duplicate_json_fields(br#"{"a":{"b":1},"c":{"b":2}}"#).is_empty());
        assert!(duplicate_json_fields(b"{").is_empty());
    }

    #[test]
    fn bodies_decode_or_name_the_problem() {
        assert!(decode_body(br#"{"a":1}"#, BodyFormat::Json).is_ok());
        assert!(decode_body(b"a: 1\nb: [x]\n", BodyFormat::Yaml).is_ok());
        let e = decode_body(b"{", BodyFormat::Json).expect_err("bad json");
        assert_eq!(e.code, 400);
        assert!(decode_body(b"[1]", BodyFormat::Json).is_err());
        assert_eq!(decode_body(&vec![b' '; MAX_BODY_BYTES + 1], BodyFormat::Json).expect_err("too big").code, 413);
        assert_eq!(body_format(Some("application/cbor")).expect_err("415").code, 415);
        assert_eq!(body_format(Some("application/vnd.kubernetes.protobuf")).ok(), Some(BodyFormat::Protobuf));
        assert_eq!(decode_body(b"k8s\0garbage", BodyFormat::Protobuf).expect_err("bad protobuf").code, 400);
        assert_eq!(body_format(Some("application/json; charset=utf-8")).ok(), Some(BodyFormat::Json));
    }
}
