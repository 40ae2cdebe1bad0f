//! CREATE, UPDATE and PATCH: the generic write path shared by every kind.
//!
//! Order of a write: decode and check against the URL → generic metadata → typed pipeline
//! (defaults, strategy, validation) → server-side assignments (Service addresses) → no-op check →
//! compare-and-swap in the store. Nothing is acknowledged before the store has committed.

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::status::{GroupKind, Reason, StatusCause, StatusDetails};
use skiff_api::validation::FieldError;
use skiff_store::{StoreError, StoreExt};

use super::Ctx;
use super::meta::{self, decode_request};
use super::read::{render_object, store_err};
use crate::objects::{self, meta_str, metadata_mut};
use crate::query::parse_rv;
use crate::state::ApiState;
use crate::typed::{self, FieldValidation, Operation};
use crate::{apply, response, views};

/// Options and collected warnings of one write.
#[derive(Debug)]
pub struct Admission {
    /// `dryRun=All`: validate, do not persist.
    pub dry_run: bool,
    /// Unknown-field handling.
    pub validation: FieldValidation,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
    /// How the write records `managedFields`.
    pub tracking: Tracking,
}

/// How a write maintains `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracking {
    /// Internal writes: the stored entries are carried over unchanged.
    Off,
    /// Record an `Update` entry for this field manager.
    Update(String),
    /// The object already carries the entries computed by server-side apply.
    Applied,
}

impl Admission {
    /// Applies the field validation mode to members a JSON body repeats (upstream's strict
    /// decoding reports them; Warn turns them into warnings).
    pub fn check_duplicates(&mut self, ctx: &Ctx, body: &[u8]) -> Result<(), StatusError> {
        let is_json = crate::negotiate::body_format(ctx.content_type.as_deref())? == crate::negotiate::BodyFormat::Json;
        if !is_json || self.validation == FieldValidation::Ignore {
            return Ok(());
        }
        let msgs: Vec<String> = crate::negotiate::duplicate_json_fields(body)
            .into_iter()
            .map(|f| format!("duplicate field \"{f}\""))
            .collect();
        if msgs.is_empty() {
            return Ok(());
        }
        if self.validation == FieldValidation::Strict {
            return Err(StatusError::bad_request(format!("strict decoding error: {}", msgs.join(", "))));
        }
        self.warnings.extend(msgs);
        Ok(())
    }

    /// Reads the options of a request.
    pub fn from_ctx(ctx: &Ctx) -> Result<Self, StatusError> {
        let manager = match ctx.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => apply::manager_from_user_agent(ctx.user_agent.as_deref().unwrap_or("")),
        };
        if manager.chars().count() > 128 {
            return Err(StatusError::invalid(
                &GroupKind::new("meta.k8s.io", "PatchOptions"),
                "",
                &[FieldError::too_long("fieldManager", 128)],
            ));
        }
        Ok(Self {
            dry_run: ctx.query.dry_run()?,
            validation: FieldValidation::parse(ctx.query.get("fieldValidation"))?,
            warnings: Vec::new(),
            tracking: Tracking::Update(manager),
        })
    }

    /// Options for internal writes.
    pub fn internal() -> Self {
        Self { dry_run: false, validation: FieldValidation::Ignore, warnings: Vec::new(), tracking: Tracking::Off }
    }
}

/// The identity of a write for `managedFields`, on objects of the served kind.
pub(super) fn writer<'a>(
    ctx: &'a Ctx,
    manager: &'a str,
    api_version: &'a str,
    versions: &'a views::VersionPaths,
    now: &'a str,
) -> apply::Writer<'a> {
    let subresource = ctx.subresource.as_deref().unwrap_or("");
    apply::Writer {
        group: ctx.info.group,
        kind: ctx.info.kind,
        manager,
        api_version,
        versions,
        subresource,
        ignore_status: subresource.is_empty() && ctx.storage.has_status(),
        now,
    }
}

/// Takes `metadata.managedFields` out of an object.
fn take_managed(obj: &mut Value) -> Option<Value> {
    metadata_mut(obj).and_then(|m| m.remove("managedFields"))
}

/// Puts `managedFields` (or their absence) back into an object.
fn put_managed(obj: &mut Value, managed: Option<Value>) {
    if let Some(m) = metadata_mut(obj) {
        match managed {
            Some(v) => m.insert("managedFields".into(), v),
            None => m.remove("managedFields"),
        };
    }
}

/// Maintains `managedFields` of a write from `old` (`None` on create) to `new`, both stored
/// objects; `sent` is what the request carried (server-side apply's computed entries, or a
/// client's, see [`apply::Sent`]). An `Update` is recorded in the paths of the version the
/// client wrote, as upstream does.
fn track(ctx: &Ctx, adm: &Admission, old: Option<&Value>, new: &mut Value, sent: Option<Value>) {
    match &adm.tracking {
        Tracking::Off => put_managed(new, old.and_then(|o| objects::metadata(o)?.get("managedFields").cloned())),
        Tracking::Applied => put_managed(new, sent),
        Tracking::Update(manager) => {
            let sent = apply::Sent::classify(sent.as_ref());
            let api_version = ctx.info.api_version();
            let now = meta::now_rfc3339();
            let paths = views::VersionPaths::new(ctx.info);
            let w = writer(ctx, manager, &api_version, &paths, &now);
            if ctx.info.is_view() {
                let old = old.map(|o| views::from_storage(ctx.info, o.clone()));
                let mut served = views::from_storage(ctx.info, new.clone());
                apply::record_update(old.as_ref(), &mut served, &w, sent);
                put_managed(new, objects::metadata(&served).and_then(|m| m.get("managedFields")).cloned());
            } else {
                apply::record_update(old, new, &w, sent);
            }
        }
    }
}

fn ops(ctx: &Ctx) -> Result<&'static dyn typed::KindOps, StatusError> {
    typed::ops_for_resource(ctx.info, ctx.storage)
        .ok_or_else(|| StatusError::internal(format!("no typed pipeline for {}", ctx.storage.kind)))
}

fn to_bytes(obj: &Value) -> Result<Bytes, StatusError> {
    serde_json::to_vec(obj).map(Bytes::from).map_err(StatusError::internal)
}

fn stamped(bytes: &[u8], rv: u64) -> Result<Bytes, StatusError> {
    objects::inject_resource_version(bytes, rv)
        .map(Bytes::from)
        .ok_or_else(|| StatusError::internal("object lost its metadata"))
}

/// Whether something still holds the object: `metadata.finalizers`, or for namespaces
/// `spec.finalizers`.
fn has_finalizers(ctx: &Ctx, obj: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    non_empty(objects::metadata(obj).and_then(|m| m.get("finalizers")))
        || (ctx.storage.plural == "namespaces" && non_empty(obj.get("spec").and_then(|s| s.get("finalizers"))))
}

/// Refuses writes into a namespace that does not exist or is being deleted.
async fn ensure_namespace_open(state: &ApiState, ctx: &Ctx) -> Result<(), StatusError> {
    let Some(ns) = ctx.namespace.as_deref().filter(|_| ctx.info.namespaced) else { return Ok(()) };
    let kv = state.store.get(&format!("/registry/core/namespaces/{ns}")).await.map_err(store_err)?;
    let kv = kv.ok_or_else(|| StatusError::not_found(&skiff_api::status::GroupResource::new("", "namespaces"), ns))?;
    let value: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
    if objects::metadata(&value).is_some_and(|m| m.contains_key("deletionTimestamp")) {
        return Err(StatusError::forbidden(
            &ctx.group_resource(),
            meta_str(&value, "name").unwrap_or(ns),
            &format!("unable to create new content in namespace {ns} because it is being terminated"),
        ));
    }
    Ok(())
}

/// Creates an object given in stored form; returns its JSON with `resourceVersion`.
pub async fn create_object(
    state: &ApiState,
    ctx: &Ctx,
    mut obj: Value,
    adm: &mut Admission,
) -> Result<Bytes, StatusError> {
    let sent = take_managed(&mut obj);
    meta::prepare_create(ctx, &mut obj)?;
    ensure_namespace_open(state, ctx).await?;
    let ops = ops(ctx)?;
    // As upstream: decoding and defaulting, the mutating admission (the built-in plugins, then the
    // webhooks), then the strategy and validation, so a plugin sees the defaulted object and a
    // webhook may complete one that would not be valid without it. Kinds nothing mutates are
    // decoded once.
    let webhooks = crate::admission::has_mutating_webhooks(state, ctx);
    let mut mode = adm.validation;
    if webhooks || crate::admission::mutates_on_create(ctx) {
        obj = ops.decode_and_default(obj, mode, &mut adm.warnings)?;
        mode = FieldValidation::Ignore;
    }
    crate::admission::create(state, ctx, adm, &mut obj).await?;
    if webhooks {
        crate::admission::mutate_webhooks(state, ctx, adm, None, &mut obj).await?;
    }
    let mut obj = ops.admit(obj, Operation::Create, mode, &mut adm.warnings)?;
    crate::admission::validate_create(state, ctx, adm, &obj).await?;
    track(ctx, adm, None, &mut obj, sent);
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let key = ctx.key(&name);
    let reservations = if ctx.storage.plural == "services" && ctx.storage.group.is_empty() {
        Some(state.alloc.assign(&mut obj, None, &key, adm.dry_run).await?)
    } else {
        None
    };
    let bytes = to_bytes(&obj)?;
    if adm.dry_run {
        return Ok(bytes);
    }
    match state.store.create(&key, bytes.clone()).await {
        Ok(ev) => stamped(&bytes, ev.kv.mod_revision),
        Err(e) => {
            if let Some(r) = reservations {
                r.rollback(&state.alloc).await;
            }
            Err(match e {
                StoreError::AlreadyExists { .. } => StatusError::already_exists(&ctx.group_resource(), &name),
                other => store_err(other),
            })
        }
    }
}

/// POST on a collection.
pub async fn create(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let obj = decode_request(ctx, &body)?;
    let mut adm = Admission::from_ctx(ctx)?;
    adm.check_duplicates(ctx, &body)?;
    let json = create_object(state, ctx, obj, &mut adm).await?;
    Ok(response::with_warnings(render_object(ctx, &json, 201), &adm.warnings))
}

/// Which part of the object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource (status is kept when the kind has a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Only a namespace's `spec.finalizers` (`/finalize`).
    Finalize,
    /// Only a CertificateSigningRequest's `status.conditions` (`/approval`).
    Approval,
}

/// The result of an update.
pub struct Updated {
    /// The object after the write, with `resourceVersion`.
    pub json: Bytes,
}

/// The strategy's first step on an update through `part`: `new` with everything this part may
/// not change taken from `old` (for the main resource of a kind with a status subresource, the
/// status; for a subresource, all but its field).
fn keep_part(ctx: &Ctx, part: Part, old: &Value, mut new: Value) -> Value {
    let replace = |field: &str, value: Option<Value>, target: &mut Value| {
        if let Some(map) = target.as_object_mut() {
            match value {
                Some(v) => map.insert(field.into(), v),
                None => map.remove(field),
            };
        }
    };
    match part {
        Part::Status => {
            let mut merged = old.clone();
            replace("status", new.get("status").cloned(), &mut merged);
            merged
        }
        Part::Approval => crate::admission::certificates::merge_approval(old, &new),
        Part::Finalize => {
            let finalizers = new.get("spec").and_then(|s| s.get("finalizers")).cloned().unwrap_or(Value::Array(vec![]));
            let mut merged = old.clone();
            if let Some(map) = merged.as_object_mut() {
                let spec = map.entry("spec").or_insert_with(|| Value::Object(Default::default()));
                if let Some(spec) = spec.as_object_mut() {
                    spec.insert("finalizers".into(), finalizers);
                }
            }
            merged
        }
        Part::Main => {
            if ctx.storage.has_status() {
                replace("status", old.get("status").cloned(), &mut new);
            }
            new
        }
    }
}

/// Reads, changes and compare-and-swaps one object, retrying on concurrent writes.
///
/// `change` gets the current object in served form and returns the desired one (served form).
pub async fn update_object(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    part: Part,
    adm: &mut Admission,
    change: &(dyn Fn(&Value) -> Result<Value, StatusError> + Send + Sync),
) -> Result<Updated, StatusError> {
    let key = ctx.key(name);
    for _attempt in 0..16 {
        let kv = state.store.get(&key).await.map_err(store_err)?;
        let kv = kv.ok_or_else(|| StatusError::not_found(&ctx.group_resource(), name))?;
        let mut current: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
        if let Some(m) = metadata_mut(&mut current) {
            m.insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
        }
        let served = views::from_storage(ctx.info, current.clone());
        let mut desired = change(&served)?;
        meta::check_type(ctx, &mut desired)?;
        let mut new = views::to_storage(ctx.info, desired);
        objects::strip_nulls(&mut new);
        let sent = take_managed(&mut new);
        if let Some(rv) = parse_rv(meta_str(&new, "resourceVersion"))?
            && rv != kv.mod_revision
        {
            return Err(StatusError::stale(&ctx.group_resource(), name));
        }
        if ctx.info.namespaced
            && let Some(ns) = meta_str(&new, "namespace").filter(|n| !n.is_empty())
            && Some(ns) != ctx.namespace.as_deref()
        {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(n) = meta_str(&new, "name").filter(|n| !n.is_empty())
            && n != name
        {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let old = meta::without_rv(&current);
        if part == Part::Main {
            meta::prepare_update(ctx, &mut new, &old)?;
        }
        let ops = ops(ctx)?;
        // As upstream: decoding and defaulting, the mutating admission (the built-in plugins of
        // the main resource, then the webhooks of the resource or subresource), then the strategy
        // (which keeps only what this part may change, dropping a webhook's other changes like
        // the client's) and validation, so a webhook may complete an update that would not be
        // valid without it. Without mutating webhooks the object is decoded once.
        let webhooks = crate::admission::has_mutating_webhooks(state, ctx);
        let mut mode = adm.validation;
        if webhooks {
            new = ops.decode_and_default(new, mode, &mut adm.warnings)?;
            mode = FieldValidation::Ignore;
            if part == Part::Main {
                crate::admission::update(state, ctx, adm, &old, &mut new).await?;
            }
            crate::admission::mutate_webhooks(state, ctx, adm, Some(&old), &mut new).await?;
        }
        new = keep_part(ctx, part, &old, new);
        let is_service = ctx.storage.plural == "services" && ctx.storage.group.is_empty();
        if is_service && part == Part::Main {
            crate::alloc::Allocator::carry_over(&mut new, &old);
        }
        let op = match part {
            Part::Main => Operation::Update(&old),
            Part::Status | Part::Finalize => Operation::UpdateStatus(&old),
            Part::Approval => Operation::UpdateApproval(&old),
        };
        crate::admission::certificates::prepare_update(ctx, part, &old, &mut new);
        let mut new = ops.admit(new, op, mode, &mut adm.warnings)?;
        crate::admission::noderestriction::admit_update(ctx, &old, &new)?;
        crate::admission::certificates::admit_update(state, ctx, part, &old, &new)?;
        if webhooks || new != old {
            if part == Part::Main {
                if !webhooks {
                    crate::admission::update(state, ctx, adm, &old, &mut new).await?;
                }
                crate::admission::validate_update(state, ctx, adm, &old, &new).await?;
            } else {
                crate::admission::validate_webhooks(state, ctx, adm, Some(&old), &new).await?;
            }
        }
        if part == Part::Main
            && meta::spec_changed(&new, &old)
            && let (Some(generation), Some(m)) =
                (old.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64), metadata_mut(&mut new))
        {
            m.insert("generation".into(), Value::from(generation + 1));
        }
        track(ctx, adm, Some(&old), &mut new, sent);
        // Finishing a deletion: the last finalizer is gone.
        let terminating = objects::metadata(&old).is_some_and(|m| m.contains_key("deletionTimestamp"));
        if terminating && has_finalizers(ctx, &old) && !has_finalizers(ctx, &new) {
            if adm.dry_run {
                return Ok(Updated { json: to_bytes(&new)? });
            }
            match state.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(ev) => {
                    if is_service {
                        state.alloc.release_unused(&old, None).await;
                    }
                    return Ok(Updated { json: stamped(&to_bytes(&new)?, ev.kv.mod_revision)? });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&ctx.group_resource(), name)),
                Err(e) => return Err(store_err(e)),
            }
        }
        if new == old {
            return Ok(Updated { json: to_bytes(&current)? });
        }
        let reservations = if is_service && part == Part::Main {
            Some(state.alloc.assign(&mut new, Some(&old), &key, adm.dry_run).await?)
        } else {
            None
        };
        let bytes = to_bytes(&new)?;
        if adm.dry_run {
            return Ok(Updated { json: stamped(&bytes, kv.mod_revision)? });
        }
        match state.store.update(&key, bytes.clone(), Some(kv.mod_revision)).await {
            Ok(ev) => {
                if is_service {
                    state.alloc.release_unused(&old, Some(&new)).await;
                }
                return Ok(Updated { json: stamped(&bytes, ev.kv.mod_revision)? });
            }
            Err(e) => {
                if let Some(r) = reservations {
                    r.rollback(&state.alloc).await;
                }
                match e {
                    StoreError::Conflict { .. } => continue,
                    StoreError::NotFound { .. } => return Err(StatusError::not_found(&ctx.group_resource(), name)),
                    other => return Err(store_err(other)),
                }
            }
        }
    }
    Err(StatusError::conflict(&ctx.group_resource(), name, "too many concurrent writes; please retry"))
}

/// PUT on an object (main resource or `/status`).
pub async fn update(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    update_part(state, ctx, body, Part::Main).await
}

/// PUT of the main resource or of `/status`.
pub async fn update_part(state: &ApiState, ctx: &Ctx, body: Bytes, part: Part) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
    let mut obj = crate::negotiate::decode_body(&body, format)?;
    meta::check_type(ctx, &mut obj)?;
    if let Some(n) = meta_str(&obj, "name").filter(|n| !n.is_empty())
        && n != name
    {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let mut adm = Admission::from_ctx(ctx)?;
    adm.check_duplicates(ctx, &body)?;
    let updated = update_object(state, ctx, &name, part, &mut adm, &move |_| Ok(obj.clone())).await?;
    Ok(response::with_warnings(render_object(ctx, &updated.json, 200), &adm.warnings))
}

/// Patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    Strategic,
}

/// The server-side apply content type.
const APPLY_MEDIA_TYPE: &str = "application/apply-patch+yaml";

/// Whether a request is a server-side apply.
pub(super) fn is_apply(ctx: &Ctx) -> bool {
    media_type(ctx.content_type.as_deref()) == APPLY_MEDIA_TYPE
}

/// The field manager of an apply (required, 422 without).
pub(super) fn apply_manager(ctx: &Ctx) -> Result<&str, StatusError> {
    ctx.query.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
        StatusError::invalid(
            &GroupKind::new("meta.k8s.io", "PatchOptions"),
            "",
            &[FieldError::required("fieldManager", "is required for apply patch")],
        )
    })
}

fn media_type(content_type: Option<&str>) -> &str {
    content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("")
}

fn patch_type(content_type: Option<&str>) -> Result<PatchType, StatusError> {
    let media = media_type(content_type);
    match media {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        other => Err(StatusError::unsupported_media_type(
            other,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                APPLY_MEDIA_TYPE,
            ],
        )),
    }
}

/// Drops `test` operations that expect `null` at a path that does not exist (upstream treats a
/// missing member as null, and kube-rs relies on it for finalizers).
fn relax_null_tests(ops: &mut Vec<Value>, doc: &Value) {
    ops.retain(|op| {
        let is_null_test =
            op.get("op").and_then(Value::as_str) == Some("test") && op.get("value").is_some_and(Value::is_null);
        !(is_null_test && op.get("path").and_then(Value::as_str).is_some_and(|p| doc.pointer(p).is_none()))
    });
}

/// Applies a patch document to an object of the served kind `gk`.
fn apply_patch(kind: PatchType, gk: (&str, &str), patch: &Value, current: &Value) -> Result<Value, StatusError> {
    let mut doc = current.clone();
    match kind {
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(StatusError::bad_request("a strategic merge patch must be a JSON object"));
            }
            doc = crate::strategic::apply(gk.0, gk.1, current, patch).map_err(|e| match e.http_status() {
                415 => StatusError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                    &["application/json-patch+json", "application/merge-patch+json"],
                ),
                400 => StatusError::bad_request(e.to_string()),
                500 => StatusError::internal(e),
                _ => StatusError::unprocessable(e.to_string()),
            })?;
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(StatusError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchType::Json => {
            let mut ops = patch
                .as_array()
                .cloned()
                .ok_or_else(|| StatusError::bad_request("a JSON patch must be an array of operations"))?;
            relax_null_tests(&mut ops, current);
            let parsed: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &parsed).map_err(|e| {
                StatusError::unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
    }
    Ok(doc)
}

/// PATCH on an object (main resource or `/status`).
pub async fn patch(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    patch_part(state, ctx, body, Part::Main).await
}

/// PATCH of the main resource or of `/status`.
pub async fn patch_part(state: &ApiState, ctx: &Ctx, body: Bytes, part: Part) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    if is_apply(ctx) {
        return server_side_apply(state, ctx, &name, &body, part).await;
    }
    if ctx.query.get("force").is_some() {
        return Err(StatusError::invalid(
            &GroupKind::new("meta.k8s.io", "PatchOptions"),
            "",
            &[FieldError::forbidden("force", "may not be specified for non-apply patch")],
        ));
    }
    let kind = patch_type(ctx.content_type.as_deref())?;
    if body.len() > crate::negotiate::MAX_BODY_BYTES {
        return Err(StatusError::too_large(crate::negotiate::MAX_BODY_BYTES));
    }
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|e| StatusError::bad_request(format!("the patch is not valid JSON: {e}")))?;
    let mut adm = Admission::from_ctx(ctx)?;
    let gk = (ctx.info.group, ctx.info.kind);
    let updated =
        update_object(state, ctx, &name, part, &mut adm, &move |current| apply_patch(kind, gk, &patch, current))
            .await?;
    Ok(response::with_warnings(render_object(ctx, &updated.json, 200), &adm.warnings))
}

/// The 409 of an apply that changes fields other managers own, worded as upstream.
pub(super) fn conflict_error(conflicts: Vec<apply::Conflict>) -> StatusError {
    let message = match conflicts.as_slice() {
        [one] => format!("Apply failed with 1 conflict: conflict with {}: {}", one.manager, one.field),
        _ => {
            let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for c in &conflicts {
                by_manager.entry(&c.manager).or_default().push(&c.field);
            }
            let mut lines = Vec::new();
            for (manager, fields) in by_manager {
                lines.push(format!("conflicts with {manager}:"));
                lines.extend(fields.iter().map(|f| format!("- {f}")));
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        }
    };
    let causes = conflicts
        .into_iter()
        .map(|c| StatusCause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", c.manager),
            field: c.field,
        })
        .collect();
    StatusError {
        code: 409,
        reason: Reason::Conflict,
        message,
        details: Some(StatusDetails { causes, ..Default::default() }),
    }
}

/// Checks the name of an applied configuration against the URL's (filling it in when absent);
/// returns the configuration's metadata.
pub(super) fn named_config<'c>(
    config: &'c mut Value,
    name: &str,
) -> Result<&'c mut serde_json::Map<String, Value>, StatusError> {
    let meta = metadata_mut(config).ok_or_else(|| StatusError::bad_request("metadata must be an object"))?;
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("name".into(), Value::String(name.to_string()));
        }
        Some(n) if n == name => {}
        Some(n) => {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    Ok(meta)
}

/// PATCH with `application/apply-patch+yaml`: server-side apply, creating the object when absent.
async fn server_side_apply(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
    part: Part,
) -> Result<Response<Body>, StatusError> {
    let manager = apply_manager(ctx)?;
    let force = ctx.query.flag("force");
    let mut config = crate::negotiate::decode_body(body, crate::negotiate::BodyFormat::Yaml)?;
    objects::strip_nulls(&mut config);
    meta::check_type(ctx, &mut config)?;
    let meta = named_config(&mut config, name)?;
    if ctx.info.namespaced {
        let want = ctx.namespace.clone().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), Value::String(want));
            }
            Some(ns) if ns == want => {}
            Some(_) => {
                return Err(StatusError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    let mut adm = Admission::from_ctx(ctx)?;
    adm.tracking = Tracking::Applied;
    let api_version = ctx.info.api_version();
    let now = meta::now_rfc3339();
    let paths = views::VersionPaths::new(ctx.info);
    let w = writer(ctx, manager, &api_version, &paths, &now);
    let change = |current: &Value| apply::apply(Some(current), &config, &w, force).map_err(conflict_error);
    match update_object(state, ctx, name, part, &mut adm, &change).await {
        Ok(updated) => Ok(response::with_warnings(render_object(ctx, &updated.json, 200), &adm.warnings)),
        Err(e) if e.code == 404 && part == Part::Main => {
            let obj = apply::apply(None, &config, &w, force).map_err(conflict_error)?;
            let json = create_object(state, ctx, views::to_storage(ctx.info, obj), &mut adm).await?;
            Ok(response::with_warnings(render_object(ctx, &json, 201), &adm.warnings))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_null_test_on_missing_member_passes() {
        let current = json!({"metadata": {"name": "a"}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]);
        let out = apply_patch(PatchType::Json, ("", "ConfigMap"), &patch, &current).expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!(["x"]));
        let failing = json!([{"op": "test", "path": "/metadata/name", "value": "b"}]);
        assert_eq!(
            apply_patch(PatchType::Json, ("", "ConfigMap"), &failing, &current).expect_err("test fails").code,
            422
        );
    }

    #[test]
    fn apply_conflicts_are_worded_as_upstream() {
        let c = |m: &str, f: &str| apply::Conflict { manager: m.into(), field: f.into() };
        let one = conflict_error(vec![c("\"kubectl\" using apps/v1", ".spec.replicas")]);
        assert_eq!((one.code, one.reason), (409, Reason::Conflict));
        assert_eq!(
            one.message,
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        );
        let cause = &one.details.as_ref().expect("details").causes[0];
        assert_eq!(cause.reason, "FieldManagerConflict");
        assert_eq!(cause.message, "conflict with \"kubectl\" using apps/v1");
        assert_eq!(cause.field, ".spec.replicas");
        let two = conflict_error(vec![c("\"b\"", ".spec.paused"), c("\"a\"", ".spec.replicas"), c("\"b\"", ".data.x")]);
        assert_eq!(
            two.message,
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.replicas\nconflicts with \"b\":\n- .spec.paused\n- .data.x"
        );
    }

    #[test]
    fn merge_patch_deletes_with_null() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
        let out = apply_patch(PatchType::Merge, ("", "ConfigMap"), &patch, &current).expect("merge");
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(patch_type(Some("application/yaml")).expect_err("415").code, 415);
    }
}
