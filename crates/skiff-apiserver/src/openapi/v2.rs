//! `/openapi/v2`: the Swagger 2.0 document, as JSON and as gnostic protobuf ([`proto`]).
//!
//! What clients read from it:
//! - kubectl 1.20 `create/apply/replace -f` (`--validate=true`) asks for
//!   [`V2_PROTOBUF_CONTENT_TYPE`], decodes gnostic's `openapi_v2.Document` and builds models
//!   from `definitions` alone (kube-openapi `proto.NewOpenAPIData`); kinds are found through
//!   each definition's `x-kubernetes-group-version-kind` vendor extension (read from its
//!   `yaml` string). Objects are then checked for unknown fields, missing required fields and
//!   wrong types; kinds without a tagged definition are not checked. `kubectl explain` (and
//!   kubectl 1.32's `explain --output=plaintext-openapiv2`) uses the same models. Custom
//!   resources are published as upstream's CRD builder publishes them ([`super::crd`]), so
//!   they are validated and explained too.
//! - kubectl 1.20 client-side `apply` computes strategic merge patches of built-in kinds from
//!   the same models, so list fields carry upstream's `x-kubernetes-patch-strategy` and
//!   `x-kubernetes-patch-merge-key` ([`super::extensions`]). It decides whether the server
//!   supports `--dry-run=server` (and so `diff`) by finding `dryRun` on the PATCH operation
//!   carrying the kind's `x-kubernetes-group-version-kind`.
//! - kubectl 1.32 `apply` reads the patch types a kind's PATCH operation `consumes`; like the
//!   v3 documents they omit strategic merge patch, so it keeps its compiled-in merge metadata
//!   for built-ins and uses JSON merge patch for custom resources.
//!
//! `definitions` are the v3 schemas in their Swagger 2.0 form ([`Components`] with
//! [`Flavor::V2`]) and `paths` are the operations of the v3 documents converted by
//! [`convert::path_item`]: one builder for both versions. Documents are rendered once per
//! resource list ([`super::OpenApiCache`]) with their ETags.

pub mod convert;
mod proto;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::catalogue::ResourceInfo;

use super::schemas::{Components, Flavor};

pub use convert::{DEFINITIONS_PREFIX, to_swagger};

/// `Content-Type` (and the `Accept` kubectl sends) of the protobuf form of `/openapi/v2`.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Title of the served documents.
pub const TITLE: &str = "Kubernetes";

/// `info.version` of the served documents.
pub const INFO_VERSION: &str = crate::discovery::KUBE_VERSION;

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
        Self::render(&v2_json(resources))
    }

    fn render(doc: &Value) -> Self {
        // Serializing a `Value` cannot fail (all keys are strings).
        let json = serde_json::to_vec(doc).unwrap_or_default();
        Self { json: Rendered::new(json), protobuf: Rendered::new(proto::encode_document(doc)) }
    }

    /// This document plus the paths and definitions of `more` (definitions already here are
    /// kept), without rendering this document's resources again.
    pub fn extended(&self, more: &[&ResourceInfo]) -> Self {
        // Our own serialization: parsing it back cannot fail.
        let mut doc: Value = serde_json::from_slice(&self.json.body).unwrap_or_else(|_| json!({}));
        let extra = v2_json(more);
        for section in ["paths", "definitions"] {
            let (Some(Value::Object(into)), Some(Value::Object(from))) = (doc.get_mut(section), extra.get(section))
            else {
                continue;
            };
            for (name, value) in from {
                into.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        Self::render(&doc)
    }
}

/// The JSON form of `/openapi/v2` for `resources`: `swagger`, `info`, `paths` (every operation
/// of every served resource) and the `definitions` of every served kind, its list, its
/// subresources' kinds and whatever the operations refer to.
pub fn v2_json(resources: &[&ResourceInfo]) -> Value {
    let mut components = Components::with_flavor(Flavor::V2);
    components.add::<meta::DeleteOptions>();
    components.add::<meta::Status>();
    let mut paths = Map::new();
    for (group, versions) in crate::discovery::group_versions(resources) {
        for version in versions {
            let ops = super::v3::group_version_paths(group, version, resources, &mut components);
            paths.extend(ops.iter().map(|(path, item)| (path.clone(), convert::path_item(item))));
        }
    }
    for r in resources {
        for sub in &r.subresources {
            let (group, version) = super::v3::subresource_group_version(r, sub);
            // Tag only kinds with a real schema (`Scale`, `Eviction`, …), not connect options.
            if components.builtin_kind(group, version, sub.kind).is_some() {
                components.kind(group, version, sub.kind);
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": TITLE, "version": INFO_VERSION},
        "paths": paths,
        "definitions": components.finish(),
    })
}

/// The protobuf form of `/openapi/v2` for `resources` (gnostic `openapi_v2.Document`).
pub fn v2_protobuf(resources: &[&ResourceInfo]) -> Vec<u8> {
    proto::encode_document(&v2_json(resources))
}

#[cfg(test)]
mod tests;
