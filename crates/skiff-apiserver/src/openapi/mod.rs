//! OpenAPI documents: `/openapi/v2` (JSON and gnostic protobuf, [`V2Document`]) and
//! `/openapi/v3` (the index and one document per path).
//!
//! Documents are pure functions of a resource list. Generating them takes time (full schemas
//! for built-in kinds), so [`OpenApiCache`] renders them once, serialized, with their hashes;
//! [`OpenApiCache::builtin`] holds the built-in catalogue's. [`OpenApiCache::current`] adds the
//! documents of the custom resources' groups (and their paths and definitions to the v2
//! document); it is rebuilt (custom groups only) the first time it is asked for after the
//! catalogue's custom registry changed. The v2 document is rendered on its first request.
//!
//! Hashes are the uppercase hex SHA-256 of the served bytes (the v2 ETag the lowercase one), so
//! they are stable for a given document and change whenever it does (clients cache
//! `serverRelativeURL`s by them, kubectl 1.20 revalidates `/openapi/v2` by its ETag).
//!
//! Modules: [`schemas`] (the schemas of one document), [`extensions`] (upstream's list, map,
//! patch and union extensions of built-in types), [`crd`] (custom resources' published schemas),
//! [`v3`] (the v3 documents and the operations of every resource), [`v2`] (the v2 document).

pub mod crd;
pub mod extensions;
pub mod schemas;
pub mod v2;
pub mod v3;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::catalogue::ResourceInfo;

pub use v2::{V2_PROTOBUF_CONTENT_TYPE, V2Document, v2_json, v2_protobuf};
pub use v3::{gv_key, v3_group_version};

/// One rendered v3 document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Document {
    /// The JSON body, exactly as served.
    pub body: Vec<u8>,
    /// Uppercase hex SHA-256 of `body`.
    pub hash: String,
}

impl V3Document {
    fn render(doc: &Value) -> Self {
        // Serializing a `Value` cannot fail (all keys are strings).
        let body = serde_json::to_vec(doc).unwrap_or_default();
        let hash = hash_hex(&body);
        Self { body, hash }
    }
}

/// Uppercase hex SHA-256 of `bytes`.
pub fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02X}")).collect()
}

/// Every v3 document of a resource list, keyed by index path (`api`, `api/v1`, `apis`,
/// `apis/apps`, `apis/apps/v1`).
fn v3_documents(resources: &[&ResourceInfo]) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    docs.insert("api".to_string(), v3::v3_core_versions());
    docs.insert("apis".to_string(), v3::v3_group_list());
    for (group, versions) in crate::discovery::group_versions(resources) {
        if let Some(doc) = v3::v3_group(group, resources) {
            docs.insert(format!("apis/{group}"), doc);
        }
        for version in versions {
            if let Some(doc) = v3_group_version(group, version, resources) {
                docs.insert(gv_key(group, version), doc);
            }
        }
    }
    docs
}

fn index_of(docs: &BTreeMap<String, V3Document>) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(path, doc)| {
            (path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}))
        })
        .collect();
    json!({ "paths": paths })
}

/// The `/openapi/v3` index of a resource list:
/// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<HEX>"}, …}}`.
/// Prefer [`OpenApiCache`] when serving: this renders every document.
pub fn v3_index(resources: &[&'static ResourceInfo]) -> Value {
    OpenApiCache::new(resources).index().clone()
}

/// A rendered cache and the catalogue generation it reflects.
type Generation = (u64, Arc<OpenApiCache>);

/// The `/openapi/v2` document of a cache, rendered on first use.
#[derive(Debug)]
struct LazyV2 {
    cell: OnceLock<Arc<V2Document>>,
    source: V2Source,
}

/// What a [`LazyV2`] renders.
#[derive(Debug)]
enum V2Source {
    /// The document of these resources.
    Resources(Vec<&'static ResourceInfo>),
    /// Another document plus these resources' paths and definitions.
    Extends(Arc<LazyV2>, Vec<&'static ResourceInfo>),
}

impl LazyV2 {
    fn new(source: V2Source) -> Arc<Self> {
        Arc::new(Self { cell: OnceLock::new(), source })
    }

    fn get(&self) -> Arc<V2Document> {
        self.cell
            .get_or_init(|| match &self.source {
                V2Source::Resources(resources) => Arc::new(V2Document::new(resources)),
                V2Source::Extends(base, more) if more.is_empty() => base.get(),
                V2Source::Extends(base, more) => Arc::new(base.get().extended(more)),
            })
            .clone()
    }
}

/// The rendered OpenAPI documents of one resource list.
#[derive(Debug, Clone)]
pub struct OpenApiCache {
    v3: BTreeMap<String, V3Document>,
    index: Value,
    index_body: Vec<u8>,
    v2: Arc<LazyV2>,
}

impl OpenApiCache {
    /// Renders every v3 document of `resources` (the v2 document on its first use).
    pub fn new(resources: &[&'static ResourceInfo]) -> Self {
        let v3: BTreeMap<String, V3Document> =
            v3_documents(resources).iter().map(|(path, doc)| (path.clone(), V3Document::render(doc))).collect();
        let index = index_of(&v3);
        let index_body = serde_json::to_vec(&index).unwrap_or_default();
        Self { v3, index, index_body, v2: LazyV2::new(V2Source::Resources(resources.to_vec())) }
    }

    /// The cache of the built-in catalogue, rendered on first use.
    pub fn builtin() -> &'static OpenApiCache {
        static CACHE: OnceLock<OpenApiCache> = OnceLock::new();
        CACHE.get_or_init(|| OpenApiCache::new(&crate::discovery::builtin_resources()))
    }

    /// The cache of everything served now: built-ins plus custom resources. Cheap when nothing
    /// changed (a generation check); otherwise re-renders the custom resources' groups once.
    pub fn current() -> Arc<OpenApiCache> {
        static CURRENT: LazyLock<RwLock<Option<Generation>>> = LazyLock::new(Default::default);
        let generation = skiff_api::catalogue::generation();
        if let Some((g, cache)) = &*CURRENT.read().unwrap_or_else(|p| p.into_inner())
            && *g == generation
        {
            return cache.clone();
        }
        let mut slot = CURRENT.write().unwrap_or_else(|p| p.into_inner());
        if let Some((g, cache)) = &*slot
            && *g == generation
        {
            return cache.clone();
        }
        let cache = Arc::new(Self::builtin().with_custom(&skiff_api::catalogue::all()));
        *slot = Some((generation, cache.clone()));
        cache
    }

    /// This cache plus the documents of every group that has a custom resource in `all` (those
    /// groups are rendered from every resource of `all` in them), and their paths and
    /// definitions in the v2 document.
    pub fn with_custom(&self, all: &[&'static ResourceInfo]) -> OpenApiCache {
        let mut v3 = self.v3.clone();
        let groups: Vec<&str> = all.iter().filter(|r| r.custom.is_some()).map(|r| r.group).collect();
        let subset: Vec<&'static ResourceInfo> = all.iter().copied().filter(|r| groups.contains(&r.group)).collect();
        for (group, versions) in crate::discovery::group_versions(&subset) {
            if let Some(doc) = v3::v3_group(group, &subset) {
                v3.insert(format!("apis/{group}"), V3Document::render(&doc));
            }
            for version in versions {
                if let Some(doc) = v3_group_version(group, version, &subset) {
                    v3.insert(gv_key(group, version), V3Document::render(&doc));
                }
            }
        }
        let index = index_of(&v3);
        let index_body = serde_json::to_vec(&index).unwrap_or_default();
        OpenApiCache { v3, index, index_body, v2: LazyV2::new(V2Source::Extends(self.v2.clone(), subset)) }
    }

    /// The `/openapi/v2` document, rendered on first use.
    pub fn v2(&self) -> Arc<V2Document> {
        self.v2.get()
    }

    /// The `/openapi/v3` index.
    pub fn index(&self) -> &Value {
        &self.index
    }

    /// The `/openapi/v3` index, serialized.
    pub fn index_body(&self) -> &[u8] {
        &self.index_body
    }

    /// The document served at `/openapi/v3/{path}` (`path` without leading slash or query,
    /// e.g. `apis/apps/v1`), if any.
    pub fn v3_document(&self, path: &str) -> Option<&V3Document> {
        self.v3.get(path.trim_matches('/'))
    }

    /// Index paths of every v3 document, sorted.
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.v3.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
