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
