//! GET and LIST: single objects from the store, lists from the watch cache (or from the store at
//! a revision when continuing a paginated list), rendered as objects, Tables or metadata.

use std::cell::OnceCell;
use std::sync::Arc;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::selector::{FieldOp, FieldRequirement, FieldSelectorExpr, LabelSelectorExpr};
use skiff_store::{RangeRequest, Revision, StoreError};

use super::Ctx;
use crate::cache::{CacheError, Entry};
use crate::negotiate::{self, Shape};
use crate::state::ApiState;
use crate::tables::{self, IncludeObject, TableOptions};
use crate::{objects, response, views};

/// Selectors of a list or watch, checked against what the resource supports.
pub struct Filter {
    /// Namespace restriction.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelectorExpr,
    /// Field selector.
    pub fields: FieldSelectorExpr,
    field_paths: Vec<(String, &'static str)>,
    /// Whether cache entries index the selectable fields. Custom resources' caches do not (their
    /// `selectableFields` may change while the cache lives), so their values are read from the
    /// object when matching.
    indexed: bool,
}

impl Filter {
    /// Builds the filter of a request; 400 for unsupported field labels.
    pub fn from_ctx(ctx: &Ctx) -> Result<Self, StatusError> {
        let labels = ctx.query.label_selector()?;
        let fields = ctx.query.field_selector()?;
        let mut field_paths = Vec::new();
        for req in &fields.requirements {
            let path = ctx
                .info
                .field_path(&req.field)
                .ok_or_else(|| StatusError::bad_request(format!("field label not supported: {}", req.field)))?;
            field_paths.push((req.field.clone(), path));
        }
        Ok(Self { namespace: ctx.namespace.clone(), labels, fields, field_paths, indexed: ctx.info.custom.is_none() })
    }

    /// Restricts the filter to one object name.
    pub fn restrict_to_name(&mut self, name: &str) {
        self.fields.requirements.push(FieldRequirement {
            field: "metadata.name".into(),
            op: FieldOp::Equals,
            value: name.to_string(),
        });
        self.field_paths.push(("metadata.name".into(), "metadata.name"));
    }

    /// Whether an entry passes.
    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(ns) = &self.namespace
            && &e.namespace != ns
        {
            return false;
        }
        if !self.labels.matches(&e.labels) {
            return false;
        }
        let object = OnceCell::new();
        self.fields.matches(|label| {
            let path = self.field_paths.iter().find(|(l, _)| l == label).map(|(_, p)| *p)?;
            e.field(path).or_else(|| {
                let indexed = self.indexed || matches!(path, "metadata.name" | "metadata.namespace");
                if indexed { None } else { objects::field_value(object.get_or_init(|| e.value()), path) }
            })
        })
    }

    /// Whether the filter selects by labels or fields (then remainingItemCount is unknown).
    pub fn is_selective(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

/// A continue token: the revision of the first page and the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let token = ContinueToken { v: "meta.k8s.io/v1".into(), rv, start: start.to_string() };
    B64.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, StatusError> {
    let bad = || StatusError::bad_request("continue key is not valid: the token could not be decoded");
    let bytes = B64.decode(s.trim_end_matches('=')).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn expired_continue() -> StatusError {
    StatusError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

/// A store error as a Status.
pub fn store_err(err: StoreError) -> StatusError {
    match err {
        StoreError::Compacted { requested, compacted } => StatusError::too_old_resource_version(requested, compacted),
        StoreError::Closed => StatusError::service_unavailable("the server is shutting down"),
        other => StatusError::internal(other),
    }
}

/// A cache error as a Status.
pub fn cache_err(err: CacheError) -> StatusError {
    match err {
        CacheError::TooOld { requested, oldest } => StatusError::too_old_resource_version(requested, oldest),
        CacheError::NotReady(rv) => {
            StatusError::timeout(format!("Too large resource version: {rv}, the server is still catching up"), 1)
        }
        CacheError::Store(e) => store_err(e),
    }
}

/// Renders one stored object (JSON with resourceVersion) in the served version and shape.
pub fn render_object(ctx: &Ctx, json: &Bytes, code: u16) -> Response<Body> {
    let shape = negotiate::shape(ctx.accept.as_deref());
    if shape == Shape::Object && !ctx.info.is_view() {
        return response::json_bytes(code, json.clone());
    }
    let value: Value = match serde_json::from_slice(json) {
        Ok(v) => views::from_storage(ctx.info, v),
        Err(e) => return response::status(&StatusError::internal(e)),
    };
    match shape {
        Shape::Object => response::json(code, &value),
        Shape::Metadata => response::json(code, &tables::partial_object_metadata(&value)),
        Shape::Table => match table_options(ctx, true) {
            Ok(opts) => response::json(code, &tables::build_table(ctx.info, &[&value], json!({}), &opts)),
            Err(e) => response::status(&e),
        },
    }
}

/// Table options from the request.
pub fn table_options(ctx: &Ctx, include_columns: bool) -> Result<TableOptions, StatusError> {
    let include_object = IncludeObject::parse(ctx.query.get("includeObject")).map_err(StatusError::bad_request)?;
    Ok(TableOptions { include_object, include_columns, now: jiff::Timestamp::now() })
}

/// GET of one object.
pub async fn get(state: &ApiState, ctx: &Ctx) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?;
    let key = ctx.key(name);
    let entry = if ctx.query.get("resourceVersion") == Some("0") {
        state.caches.cache(&ctx.info.key_prefix()).and_then(|c| c.get(&key))
    } else {
        None
    };
    let json = match entry {
        Some(e) => e.json.clone(),
        None => {
            let kv = state.store.get(&key).await.map_err(store_err)?;
            let kv = kv.ok_or_else(|| StatusError::not_found(&ctx.group_resource(), name))?;
            let stamped = crate::objects::inject_resource_version(&kv.value, kv.mod_revision)
                .ok_or_else(|| StatusError::internal(format!("stored object {key} has no metadata")))?;
            Bytes::from(stamped)
        }
    };
    Ok(render_object(ctx, &json, 200))
}

/// The objects of one list page and the state to continue it.
struct Page {
    items: Vec<Arc<Entry>>,
    revision: Revision,
    continue_from: Option<String>,
    remaining: Option<usize>,
}

/// LIST.
pub async fn list(state: &ApiState, ctx: &Ctx) -> Result<Response<Body>, StatusError> {
    let filter = Filter::from_ctx(ctx)?;
    let limit = ctx.query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let page = if let Some(token) = ctx.query.get("continue").filter(|s| !s.is_empty()) {
        let token = decode_continue(token)?;
        list_from_store(state, ctx, &filter, token.rv, Some(token.start), limit).await?
    } else {
        let rv = ctx.query.resource_version()?;
        let exact = ctx.query.get("resourceVersionMatch") == Some("Exact");
        match (rv, exact) {
            (Some(rv), true) if rv > 0 => list_from_store(state, ctx, &filter, rv, None, limit).await?,
            _ => list_from_cache(state, ctx, &filter, rv, limit).await?,
        }
    };
    render_list(ctx, page)
}

async fn list_from_cache(
    state: &ApiState,
    ctx: &Ctx,
    filter: &Filter,
    rv: Option<Revision>,
    limit: Option<usize>,
) -> Result<Page, StatusError> {
    let cache = state
        .caches
        .cache(&ctx.info.key_prefix())
        .ok_or_else(|| StatusError::internal(format!("no cache for {}", ctx.info.plural)))?;
    match rv {
        None => state.caches.sync_to_store().await.map_err(cache_err)?,
        Some(0) => {}
        Some(rv) => state.caches.wait_for(rv, std::time::Duration::from_secs(3)).await.map_err(cache_err)?,
    }
    let snapshot = cache.snapshot();
    let prefix = match &filter.namespace {
        Some(ns) => ctx.info.namespace_prefix(ns),
        None => ctx.info.key_prefix(),
    };
    let mut items = Vec::new();
    let mut continue_from = None;
    let mut remaining = None;
    let range = snapshot.objects.range(prefix.clone()..);
    let mut iter = range.take_while(|(k, _)| k.starts_with(&prefix)).filter(|(_, e)| filter.matches(e));
    for (key, entry) in iter.by_ref() {
        items.push(entry.clone());
        if limit.is_some_and(|l| items.len() >= l) {
            continue_from = Some(key.clone());
            break;
        }
    }
    if continue_from.is_some() {
        let rest = iter.count();
        if rest == 0 {
            continue_from = None;
        } else if !filter.is_selective() {
            remaining = Some(rest);
        }
    }
    Ok(Page { items, revision: snapshot.revision, continue_from, remaining })
}

async fn list_from_store(
    state: &ApiState,
    ctx: &Ctx,
    filter: &Filter,
    revision: Revision,
    start_after: Option<String>,
    limit: Option<usize>,
) -> Result<Page, StatusError> {
    let prefix = match &filter.namespace {
        Some(ns) => ctx.info.namespace_prefix(ns),
        None => ctx.info.key_prefix(),
    };
    let fields: Vec<&'static str> = ctx.info.field_selectors.iter().map(|(_, p)| *p).collect();
    let mut items = Vec::new();
    let mut cursor = start_after;
    let mut continue_from = None;
    'pages: loop {
        let page = state
            .store
            .range(RangeRequest {
                prefix: prefix.clone(),
                start_after: cursor.clone(),
                revision: Some(revision),
                limit: Some(limit.unwrap_or(1000).max(100)),
            })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } => expired_continue(),
                other => store_err(other),
            })?;
        for kv in &page.kvs {
            cursor = Some(kv.key.clone());
            let Some(entry) = Entry::from_kv(kv, &fields) else { continue };
            if filter.matches(&entry) {
                items.push(Arc::new(entry));
                if limit.is_some_and(|l| items.len() >= l) {
                    continue_from = Some(kv.key.clone());
                    break 'pages;
                }
            }
        }
        if !page.more {
            break;
        }
    }
    Ok(Page { items, revision, continue_from, remaining: None })
}

fn list_kind(ctx: &Ctx) -> String {
    format!("{}List", ctx.info.kind)
}

fn render_list(ctx: &Ctx, page: Page) -> Result<Response<Body>, StatusError> {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(start) = &page.continue_from {
        metadata["continue"] = json!(encode_continue(page.revision, start));
        if let Some(n) = page.remaining {
            metadata["remainingItemCount"] = json!(n);
        }
    }
    let shape = negotiate::shape(ctx.accept.as_deref());
    if shape == Shape::Object && !ctx.info.is_view() {
        let head = json!({"kind": list_kind(ctx), "apiVersion": ctx.info.api_version(), "metadata": metadata});
        let head = serde_json::to_vec(&head).map_err(StatusError::internal)?;
        let mut out =
            BytesMut::with_capacity(head.len() + page.items.iter().map(|e| e.json.len() + 1).sum::<usize>() + 16);
        out.put_slice(&head[..head.len() - 1]);
        out.put_slice(b",\"items\":[");
        for (i, e) in page.items.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(&e.json);
        }
        out.put_slice(b"]}");
        return Ok(response::json_bytes(200, out.freeze()));
    }
    let values: Vec<Value> = page.items.iter().map(|e| views::from_storage(ctx.info, e.value())).collect();
    match shape {
        Shape::Table => {
            let refs: Vec<&Value> = values.iter().collect();
            Ok(response::json(200, &tables::build_table(ctx.info, &refs, metadata, &table_options(ctx, true)?)))
        }
        Shape::Metadata => {
            let items: Vec<Value> = values.iter().map(tables::partial_object_metadata).collect();
            Ok(response::json(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items}),
            ))
        }
        Shape::Object => Ok(response::json(
            200,
            &json!({"kind": list_kind(ctx), "apiVersion": ctx.info.api_version(), "metadata": metadata, "items": values}),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/core/pods/default/a");
        let d = decode_continue(&t).expect("decodes");
        assert_eq!((d.rv, d.start.as_str()), (42, "/registry/core/pods/default/a"));
        assert_eq!(decode_continue("!!!").err().map(|e| e.code), Some(400));
    }
}
