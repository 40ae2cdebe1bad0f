//! DELETE and DELETECOLLECTION: preconditions, propagation finalizers, graceful pod deletion,
//! namespace termination, and removal from the store once nothing holds the object.

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::StatusDetails;
use skiff_store::{StoreError, StoreExt};

use super::Ctx;
use super::meta::now_rfc3339;
use super::read::{Filter, cache_err, render_object, store_err};
use crate::objects::{self, meta_str, metadata_mut};
use crate::state::ApiState;

/// Options of a delete (body `DeleteOptions` or query parameters).
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    orphan_dependents: Option<bool>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    /// Reads the options from the body (if any) and the query.
    pub fn parse(ctx: &Ctx, body: &[u8]) -> Result<Self, StatusError> {
        let mut opts = DeleteOptions { dry_run: ctx.query.dry_run()?, ..Default::default() };
        opts.grace_period = ctx.query.int("gracePeriodSeconds")?;
        opts.propagation = ctx.query.get("propagationPolicy").map(str::to_string);
        if let Some(o) = ctx.query.get("orphanDependents") {
            opts.orphan_dependents = Some(o == "true");
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
            let v = crate::negotiate::decode_body(body, format)?;
            opts.read_body(&v);
        }
        opts.checked()
    }

    /// Reads the options of a `DeleteOptions` object (the eviction API's `deleteOptions`), with
    /// the request's own `dryRun`.
    pub(super) fn from_value(ctx: &Ctx, v: Option<&Value>) -> Result<Self, StatusError> {
        let mut opts = DeleteOptions { dry_run: ctx.query.dry_run()?, ..Default::default() };
        if let Some(v) = v {
            opts.read_body(v);
        }
        opts.checked()
    }

    /// Options that delete only the object with this uid (a uid precondition).
    pub fn with_uid(uid: &str) -> Self {
        Self { uid: Some(uid.to_string()), ..Default::default() }
    }

    /// Whether this is a dry run.
    pub(super) fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The `resourceVersion` precondition, if any.
    pub(super) fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref().filter(|r| !r.is_empty())
    }

    /// The `uid` precondition, if any.
    pub(super) fn uid(&self) -> Option<&str> {
        self.uid.as_deref().filter(|u| !u.is_empty())
    }

    /// These options with a `resourceVersion` precondition.
    pub(super) fn with_resource_version(&self, rv: String) -> Self {
        Self { resource_version: Some(rv), ..self.clone() }
    }

    fn read_body(&mut self, v: &Value) {
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace_period = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation = Some(p.to_string());
        }
        if let Some(o) = v.get("orphanDependents").and_then(Value::as_bool) {
            self.orphan_dependents = Some(o);
        }
        if let Some(pre) = v.get("preconditions") {
            self.uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            self.resource_version = pre.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            self.dry_run |= d.iter().any(|x| x == "All");
        }
    }

    fn checked(mut self) -> Result<Self, StatusError> {
        let opts = &mut self;
        match opts.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => {}
            Some(other) => {
                return Err(StatusError::unprocessable(format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        if opts.grace_period.is_some_and(|g| g < 0) {
            opts.grace_period = Some(0);
        }
        Ok(self)
    }

    fn finalizer(&self) -> Option<&'static str> {
        match (self.propagation.as_deref(), self.orphan_dependents) {
            (Some("Foreground"), _) => Some("foregroundDeletion"),
            (Some("Orphan"), _) | (None, Some(true)) => Some("orphan"),
            _ => None,
        }
    }
}

/// What a delete did.
pub struct Deleted {
    /// The object (last state, or its terminating state), with `resourceVersion`.
    pub json: Bytes,
    /// Whether it is gone from the store.
    pub gone: bool,
}

fn conflict(ctx: &Ctx, name: &str, what: &str, pre: &str, actual: &str) -> StatusError {
    StatusError::conflict(
        &ctx.group_resource(),
        name,
        &format!("Precondition failed: {what} in precondition: {pre}, {what} in object meta: {actual}"),
    )
}

/// Deletes one object (or starts its termination).
pub async fn delete_object(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, StatusError> {
    let key = ctx.key(name);
    for _ in 0..16 {
        let kv = state.store.get(&key).await.map_err(store_err)?;
        let kv = kv.ok_or_else(|| StatusError::not_found(&ctx.group_resource(), name))?;
        let mut obj: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
        let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
        if let Some(pre) = opts.uid.as_deref().filter(|p| *p != uid) {
            return Err(conflict(ctx, name, "UID", pre, &uid));
        }
        if let Some(pre) = opts.resource_version.as_deref().filter(|p| *p != kv.mod_revision.to_string()) {
            return Err(conflict(ctx, name, "ResourceVersion", pre, &kv.mod_revision.to_string()));
        }
        let is_pod = ctx.storage.plural == "pods" && ctx.storage.group.is_empty();
        let is_namespace = ctx.storage.plural == "namespaces" && ctx.storage.group.is_empty();
        crate::admission::delete(ctx, name)?;
        crate::admission::noderestriction::admit_delete(ctx, name, &obj)?;
        crate::admission::webhook::admit_delete(state, ctx, &obj, opts.dry_run).await?;
        if is_namespace && crate::bootstrap::UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(StatusError::forbidden(&ctx.group_resource(), name, "this namespace may not be deleted"));
        }
        let meta = objects::metadata(&obj).cloned().unwrap_or_default();
        let already_terminating = meta.contains_key("deletionTimestamp");
        let mut finalizers: Vec<Value> = meta.get("finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(f) = opts.finalizer()
            && !finalizers.iter().any(|x| x == f)
            && (!finalizers.is_empty() || !already_terminating)
        {
            finalizers.push(json!(f));
        }
        let spec_finalizers = is_namespace
            && obj
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let graceful_pod = is_pod && {
            let scheduled =
                obj.get("spec").and_then(|s| s.get("nodeName")).and_then(Value::as_str).is_some_and(|n| !n.is_empty());
            let phase = obj.get("status").and_then(|s| s.get("phase")).and_then(Value::as_str).unwrap_or("");
            let default_grace = obj
                .get("spec")
                .and_then(|s| s.get("terminationGracePeriodSeconds"))
                .and_then(Value::as_i64)
                .unwrap_or(30);
            let grace = opts.grace_period.unwrap_or(default_grace);
            scheduled && grace > 0 && !matches!(phase, "Succeeded" | "Failed")
        };
        let keep = !finalizers.is_empty() || spec_finalizers || graceful_pod;
        if keep {
            let mut changed = obj.clone();
            let now = now_rfc3339();
            if let Some(m) = metadata_mut(&mut changed) {
                if graceful_pod {
                    let default_grace = obj
                        .get("spec")
                        .and_then(|s| s.get("terminationGracePeriodSeconds"))
                        .and_then(Value::as_i64)
                        .unwrap_or(30);
                    let grace = opts.grace_period.unwrap_or(default_grace);
                    let current = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
                    if current.is_none_or(|c| grace < c) {
                        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                        m.insert("deletionTimestamp".into(), json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    }
                } else if !already_terminating {
                    m.insert("deletionTimestamp".into(), json!(now));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                if !finalizers.is_empty() {
                    m.insert("finalizers".into(), Value::Array(finalizers.clone()));
                }
            }
            if is_namespace && let Some(map) = changed.as_object_mut() {
                map.insert("status".into(), json!({"phase": "Terminating"}));
            }
            if changed == obj {
                let json = objects::inject_resource_version(&kv.value, kv.mod_revision).unwrap_or_default();
                return Ok(Deleted { json: Bytes::from(json), gone: false });
            }
            let bytes = Bytes::from(serde_json::to_vec(&changed).map_err(StatusError::internal)?);
            if opts.dry_run {
                return Ok(Deleted { json: bytes, gone: false });
            }
            match state.store.update(&key, bytes.clone(), Some(kv.mod_revision)).await {
                Ok(ev) => {
                    let json = objects::inject_resource_version(&bytes, ev.kv.mod_revision).unwrap_or_default();
                    return Ok(Deleted { json: Bytes::from(json), gone: false });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&ctx.group_resource(), name)),
                Err(e) => return Err(store_err(e)),
            }
        }
        if opts.dry_run {
            let json = objects::inject_resource_version(&kv.value, kv.mod_revision).unwrap_or_default();
            return Ok(Deleted { json: Bytes::from(json), gone: true });
        }
        match state.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(ev) => {
                if ctx.storage.plural == "services" && ctx.storage.group.is_empty() {
                    state.alloc.release_unused(&obj, None).await;
                }
                if let Some(m) = metadata_mut(&mut obj) {
                    m.remove("resourceVersion");
                }
                let bytes = serde_json::to_vec(&obj).map_err(StatusError::internal)?;
                let json = objects::inject_resource_version(&bytes, ev.kv.mod_revision).unwrap_or_default();
                return Ok(Deleted { json: Bytes::from(json), gone: true });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&ctx.group_resource(), name)),
            Err(e) => return Err(store_err(e)),
        }
    }
    Err(StatusError::conflict(&ctx.group_resource(), name, "too many concurrent writes; please retry"))
}

/// DELETE on an object.
pub async fn delete(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let opts = DeleteOptions::parse(ctx, &body)?;
    let deleted = delete_object(state, ctx, &name, &opts).await?;
    let returns_object =
        ctx.storage.group.is_empty() && matches!(ctx.storage.plural, "pods" | "services" | "namespaces");
    if deleted.gone && !returns_object {
        let uid = serde_json::from_slice::<Value>(&deleted.json)
            .ok()
            .and_then(|v| meta_str(&v, "uid").map(str::to_string))
            .unwrap_or_default();
        let details = StatusDetails {
            name: name.clone(),
            group: ctx.info.group.to_string(),
            kind: ctx.info.plural.to_string(),
            uid,
            ..Default::default()
        };
        return Ok(crate::response::json(200, &skiff_api::status::success_status(Some(details))));
    }
    Ok(render_object(ctx, &deleted.json, 200))
}

/// DELETE on a collection: deletes every matching object.
pub async fn delete_collection(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let opts = DeleteOptions::parse(ctx, &body)?;
    let filter = Filter::from_ctx(ctx)?;
    state.caches.sync_to_store().await.map_err(cache_err)?;
    let cache = state
        .caches
        .cache(&ctx.info.key_prefix())
        .ok_or_else(|| StatusError::internal(format!("no cache for {}", ctx.info.plural)))?;
    let snapshot = cache.snapshot();
    let mut items = Vec::new();
    for entry in snapshot.objects.values().filter(|e| filter.matches(e)) {
        match delete_object(state, ctx, &entry.name, &opts).await {
            Ok(d) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&d.json) {
                    items.push(crate::views::from_storage(ctx.info, v));
                }
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(crate::response::json(
        200,
        &json!({"kind": format!("{}List", ctx.info.kind), "apiVersion": ctx.info.api_version(), "metadata": {}, "items": items}),
    ))
}
