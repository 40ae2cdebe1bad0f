//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into the
//! JSON the Kubernetes JSON encoding would produce for the same object.
//!
//! kubectl's typed client sends built-in kinds as protobuf on create and update. skiff works on
//! JSON, so the edge converts: [`decode_object`] strips the `k8s\0` magic, reads the
//! `runtime.Unknown` envelope, picks the message for the envelope's apiVersion and kind, and
//! walks the wire data with the generated [`schema`] (field numbers, JSON names and Go encoding
//! facts from upstream `generated.proto` files and struct tags, see
//! `scripts/gen-proto-schema.py`). skiff never encodes protobuf.

mod decode;
mod schema;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use schema::{SCHEMA, Special};
use wire::{Path, Reader, WireValue};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the k8s\\0 magic (found {found:02x?})")]
    BadMagic {
        /// The first bytes of the body.
        found: Vec<u8>,
    },
    /// The data ends inside a value.
    #[error("truncated protobuf at {path}: {what}")]
    Truncated {
        /// The field path being read.
        path: String,
        /// What was being read.
        what: String,
    },
    /// The bytes are not valid protobuf wire data.
    #[error("malformed protobuf at {path}: {reason}")]
    Malformed {
        /// The field path being read.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A field arrived with a wire type its schema type cannot have.
    #[error("protobuf wire type mismatch at {path}: expected {expected}, found wire type {found}")]
    WireType {
        /// The field path.
        path: String,
        /// The wire type the schema requires.
        expected: &'static str,
        /// The wire type on the wire.
        found: u8,
    },
    /// A well-formed value that has no JSON rendering.
    #[error("invalid protobuf value at {path}: {reason}")]
    InvalidValue {
        /// The field path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The envelope names an API group/version skiff has no protobuf schema for.
    #[error("no protobuf schema for apiVersion {api_version:?}")]
    UnknownGroupVersion {
        /// The envelope's apiVersion.
        api_version: String,
    },
    /// The envelope names a kind its group/version does not have.
    #[error("no protobuf schema for kind {kind:?} in apiVersion {api_version:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The envelope declares an encoding skiff does not handle.
    #[error("unsupported protobuf envelope: {0}")]
    UnsupportedEnvelope(String),
    /// The embedded schema failed to parse (a build defect).
    #[error("the embedded protobuf schema is invalid: {0}")]
    Schema(String),
}

/// Decodes a Kubernetes protobuf request body (the 4-byte `k8s\0` magic + `runtime.Unknown`
/// envelope carrying typeMeta{apiVersion,kind} and raw message bytes) into the object's JSON as the
/// Kubernetes JSON encoding would render it (with "apiVersion" and "kind" set from the envelope).
pub fn decode_object(body: &[u8]) -> Result<Value, ProtoError> {
    let schema = SCHEMA.as_ref().map_err(|e| ProtoError::Schema(e.clone()))?;
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| ProtoError::BadMagic { found: body.iter().take(4).copied().collect() })?;
    let envelope = Envelope::parse(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtoError::UnsupportedEnvelope(format!("content encoding {:?}", envelope.content_encoding)));
    }
    if !envelope.content_type.is_empty() && envelope.content_type != MEDIA_TYPE {
        return Err(ProtoError::UnsupportedEnvelope(format!("content type {:?}", envelope.content_type)));
    }
    let (api_version, kind) = (envelope.api_version, envelope.kind);
    let package = package_for(&api_version)
        .ok_or_else(|| ProtoError::UnknownGroupVersion { api_version: api_version.clone() })?;
    let valid_kind = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric());
    let index = valid_kind
        .then(|| {
            schema.message(&format!("{package}.{kind}")).or_else(|| {
                // Groups also register meta/v1's DeleteOptions under their own version.
                (kind == "DeleteOptions").then(|| schema.message(&format!("{META_PACKAGE}.{kind}"))).flatten()
            })
        })
        .flatten()
        .filter(|&i| schema.messages[i].special == Special::None)
        .ok_or_else(|| ProtoError::UnknownKind { api_version: api_version.clone(), kind: kind.clone() })?;
    let body = decode::Decoder::new(schema).message(index, envelope.raw, &Path::ROOT)?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            out.entry(k).or_insert(v);
        }
    }
    Ok(Value::Object(out))
}

/// The proto package of meta/v1.
const META_PACKAGE: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The proto package holding the kinds of an apiVersion skiff serves.
fn package_for(api_version: &str) -> Option<&'static str> {
    Some(match api_version {
        "v1" => "k8s.io.api.core.v1",
        "apps/v1" => "k8s.io.api.apps.v1",
        "batch/v1" => "k8s.io.api.batch.v1",
        "autoscaling/v1" => "k8s.io.api.autoscaling.v1",
        "autoscaling/v2" => "k8s.io.api.autoscaling.v2",
        "networking.k8s.io/v1" => "k8s.io.api.networking.v1",
        "discovery.k8s.io/v1" => "k8s.io.api.discovery.v1",
        "rbac.authorization.k8s.io/v1" => "k8s.io.api.rbac.v1",
        "coordination.k8s.io/v1" => "k8s.io.api.coordination.v1",
        "storage.k8s.io/v1" => "k8s.io.api.storage.v1",
        "events.k8s.io/v1" => "k8s.io.api.events.v1",
        "policy/v1" => "k8s.io.api.policy.v1",
        "scheduling.k8s.io/v1" => "k8s.io.api.scheduling.v1",
        "admissionregistration.k8s.io/v1" => "k8s.io.api.admissionregistration.v1",
        "authentication.k8s.io/v1" => "k8s.io.api.authentication.v1",
        "authorization.k8s.io/v1" => "k8s.io.api.authorization.v1",
        "certificates.k8s.io/v1" => "k8s.io.api.certificates.v1",
        "meta.k8s.io/v1" => META_PACKAGE,
        _ => return None,
    })
}

/// `runtime.Unknown` {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3,
/// contentType = 4}.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, ProtoError> {
        let root = Path::ROOT;
        let envelope = root.field("<envelope>");
        let mut out = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
            content_type: String::new(),
        };
        let mut reader = Reader::new(data);
        while !reader.is_empty() {
            let (number, value) = reader.field(&envelope)?;
            match number {
                1 => {
                    let type_meta = envelope.field("typeMeta");
                    let mut r = Reader::new(envelope_bytes(value, &type_meta)?);
                    while !r.is_empty() {
                        match r.field(&type_meta)? {
                            (1, v) => out.api_version = envelope_string(v, &type_meta.field("apiVersion"))?,
                            (2, v) => out.kind = envelope_string(v, &type_meta.field("kind"))?,
                            _ => {}
                        }
                    }
                }
                2 => out.raw = envelope_bytes(value, &envelope.field("raw"))?,
                3 => out.content_encoding = envelope_string(value, &envelope.field("contentEncoding"))?,
                4 => out.content_type = envelope_string(value, &envelope.field("contentType"))?,
                _ => tracing::debug!(field = number, "skipping unknown runtime.Unknown field"),
            }
        }
        Ok(out)
    }
}

fn envelope_bytes<'a>(value: WireValue<'a>, path: &Path<'_>) -> Result<&'a [u8], ProtoError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(ProtoError::WireType {
            path: path.render(),
            expected: "length-delimited (2)",
            found: other.wire_type(),
        }),
    }
}

fn envelope_string(value: WireValue<'_>, path: &Path<'_>) -> Result<String, ProtoError> {
    envelope_bytes(value, path).map(|b| String::from_utf8_lossy(b).into_owned())
}
