//! `/openapi/v2`: a minimal Swagger 2.0 document, as JSON and as gnostic protobuf.
//!
//! kubectl 1.20 validates `create/apply/replace -f` against `/openapi/v2`, asking for
//! [`V2_PROTOBUF_CONTENT_TYPE`] and decoding the answer as gnostic's `openapi_v2.Document`;
//! anything it cannot decode aborts the command. A document with no definitions makes that
//! validation a no-op (unknown kinds are skipped), and client-side `apply` then falls back to
//! its compiled-in types for strategic merge. The document is therefore deliberately empty:
//! `swagger`, `info`, an empty `paths` and an empty `definitions`.
//!
//! Field numbers (gnostic `OpenAPIv2.proto`): `Document{swagger = 1, info = 2, paths = 8,
//! definitions = 9}`, `Info{title = 1, version = 2}`. The protobuf is written by hand with a
//! length-delimited encoder; there is no protobuf dependency.

use serde_json::{Value, json};

/// `Content-Type` (and the `Accept` kubectl sends) of the protobuf form of `/openapi/v2`.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Title of the served documents.
pub const TITLE: &str = "Kubernetes";

/// `info.version` of the served documents.
pub const INFO_VERSION: &str = crate::discovery::KUBE_VERSION;

/// The JSON form of `/openapi/v2`.
pub fn v2_json() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": TITLE, "version": INFO_VERSION},
        "paths": {},
        "definitions": {},
    })
}

/// The protobuf form of `/openapi/v2` (gnostic `openapi_v2.Document`).
pub fn v2_protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    put_bytes(&mut info, 1, TITLE.as_bytes());
    put_bytes(&mut info, 2, INFO_VERSION.as_bytes());

    let mut doc = Vec::new();
    put_bytes(&mut doc, 1, b"2.0");
    put_bytes(&mut doc, 2, &info);
    // Empty but present, so decoders see non-nil `Paths` and `Definitions`.
    put_bytes(&mut doc, 8, &[]);
    put_bytes(&mut doc, 9, &[]);
    doc
}

/// Protobuf wire type of length-delimited fields (strings, bytes, messages).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded field: number, wire type and (for length-delimited fields) the payload.
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

    /// Decodes one message level; panics on anything but varint and length-delimited fields.
    fn decode(buf: &[u8]) -> Vec<Field> {
        let mut pos = 0;
        let mut fields = Vec::new();
        while pos < buf.len() {
            let key = get_varint(buf, &mut pos);
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    let v = get_varint(buf, &mut pos);
                    fields.push((field, wire, v.to_le_bytes().to_vec()));
                }
                2 => {
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
        let (_, wire, v) = fields.iter().find(|(f, _, _)| *f == n).expect("field present");
        assert_eq!(*wire, LEN);
        v
    }

    #[test]
    fn protobuf_document_decodes_to_swagger_info_paths_definitions() {
        let doc = decode(&v2_protobuf());
        assert_eq!(doc.iter().map(|(f, _, _)| *f).collect::<Vec<_>>(), vec![1, 2, 8, 9]);
        assert_eq!(field(&doc, 1), b"2.0");
        let info = decode(field(&doc, 2));
        assert_eq!(field(&info, 1), b"Kubernetes");
        assert_eq!(field(&info, 2), INFO_VERSION.as_bytes());
        assert!(field(&doc, 8).is_empty());
        assert!(field(&doc, 9).is_empty());
    }

    #[test]
    fn varints_encode_multi_byte_lengths() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, vec![0xac, 0x02]);
        let long = vec![b'x'; 200];
        let mut msg = Vec::new();
        put_bytes(&mut msg, 3, &long);
        let fields = decode(&msg);
        assert_eq!(fields, vec![(3, LEN, long)]);
    }

    #[test]
    fn json_form_matches() {
        let v = v2_json();
        assert_eq!(v["swagger"], "2.0");
        assert_eq!(v["info"]["title"], TITLE);
        assert_eq!(v["paths"], json!({}));
        assert_eq!(v["definitions"], json!({}));
    }
}
