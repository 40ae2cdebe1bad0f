//! Admission: per-kind checks and mutations of writes that need more than the object itself
//! (other objects in the store), run by the generic write path at fixed points. Present: the
//! Priority plugin ([`priority`]), NodeRestriction ([`noderestriction`]), DefaultTolerationSeconds
//! ([`tolerations`]), LimitRanger ([`limitranger`]), ServiceAccount ([`serviceaccount`]),
//! PodSecurity ([`podsecurity`]), ResourceQuota ([`resourcequota`]) and the storage plugins
//! ([`storage`]: DefaultStorageClass and StorageObjectInUseProtection), the certificate plugins
//! ([`certificates`]: the requester in the spec, CertificateApproval, CertificateSigning,
//! CertificateSubjectRestriction), then
//! ValidatingAdmissionPolicy ([`policy`]) and the dynamic admission webhooks ([`webhook`]).
//! The typed hooks of `skiff-api` (defaulting, strategy,
//! validation) are not admission and stay there.

pub mod certificates;
pub mod limitranger;
pub mod noderestriction;
pub mod podsecurity;
pub mod policy;
pub mod priority;
pub mod resourcequota;
pub mod serviceaccount;
pub mod storage;
pub mod tolerations;
pub mod webhook;

use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::catalogue::ResourceInfo;

use crate::handlers::{Admission, Ctx};
use crate::state::ApiState;
use crate::typed::{FieldValidation, KindOps};

fn is(info: &ResourceInfo, group: &str, plural: &str) -> bool {
    info.group == group && info.plural == plural
}

/// Roles and bindings may only grant what their writer holds (RBAC escalation prevention).
fn rbac_escalation(state: &ApiState, ctx: &Ctx, obj: &Value, old: Option<&Value>) -> Result<(), StatusError> {
    if ctx.storage.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let namespace = ctx.namespace.as_deref().unwrap_or("");
    crate::authz::rbac::escalation::check(state, &ctx.user, ctx.storage.plural, namespace, obj, old)
}

/// Mutating admission of a create of `obj` (stored form) of `ctx.storage`, by `ctx.user`.
pub async fn create(state: &ApiState, ctx: &Ctx, _adm: &mut Admission, obj: &mut Value) -> Result<(), StatusError> {
    noderestriction::admit_create(state, ctx, obj).await?;
    rbac_escalation(state, ctx, obj, None)?;
    let storage = ctx.storage;
    if is(storage, "", "pods") {
        limitranger::mutate_pod(state, obj).await?;
        if state.service_account_admission.load(std::sync::atomic::Ordering::Relaxed) {
            serviceaccount::admit_pod(state, ctx.namespace.as_deref().unwrap_or(""), obj).await?;
        }
        priority::admit_pod(state, obj).await?;
        tolerations::admit_pod(obj);
    } else if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class(state, obj, false).await?;
    } else if is(storage, "", "persistentvolumeclaims") {
        storage::admit_claim(state, obj).await?;
    } else if is(storage, "", "persistentvolumes") {
        storage::admit_volume(obj);
    } else if is(storage, "certificates.k8s.io", "certificatesigningrequests") {
        certificates::admit_create(ctx, obj)?;
    }
    Ok(())
}

/// Whether [`create`] may change objects of the kind of `ctx` (the write path then defaults them
/// before it, as upstream, and decodes them twice).
pub fn mutates_on_create(ctx: &Ctx) -> bool {
    const MUTATED: [(&str, &str); 5] = [
        ("", "pods"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("certificates.k8s.io", "certificatesigningrequests"),
    ];
    MUTATED.iter().any(|(group, plural)| is(ctx.storage, group, plural))
}

/// Mutating admission of an update of the main resource from `old` to `new` (stored forms).
pub async fn update(
    state: &ApiState,
    ctx: &Ctx,
    _adm: &mut Admission,
    old: &Value,
    new: &mut Value,
) -> Result<(), StatusError> {
    rbac_escalation(state, ctx, new, Some(old))?;
    let storage = ctx.storage;
    if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class(state, new, true).await?;
    }
    Ok(())
}

/// Validating admission of a create once `obj` is defaulted and valid (LimitRanger's checks,
/// then ResourceQuota, which charges the quota unless `dry_run`).
pub async fn validate_create(state: &ApiState, ctx: &Ctx, adm: &mut Admission, obj: &Value) -> Result<(), StatusError> {
    let storage = ctx.storage;
    if is(storage, "", "pods") || is(storage, "", "persistentvolumeclaims") {
        limitranger::validate(state, storage.plural, obj).await?;
    }
    podsecurity::admit(state, ctx, adm, None, obj).await?;
    validate_webhooks(state, ctx, adm, None, obj).await?;
    resourcequota::admit(state, storage, None, obj, adm.dry_run).await
}

/// Validating admission of an update of the main resource from `old` to `new` (stored forms).
pub async fn validate_update(
    state: &ApiState,
    ctx: &Ctx,
    adm: &mut Admission,
    old: &Value,
    new: &Value,
) -> Result<(), StatusError> {
    let storage = ctx.storage;
    if is(storage, "", "persistentvolumeclaims") {
        limitranger::validate(state, storage.plural, new).await?;
    }
    podsecurity::admit(state, ctx, adm, Some(old), new).await?;
    validate_webhooks(state, ctx, adm, Some(old), new).await?;
    resourcequota::admit(state, storage, Some(old), new, adm.dry_run).await
}

/// The mutating admission webhooks of a create (`old` is `None`) or an update of `obj` (stored
/// form, already defaulted); each webhook's patched object is decoded and defaulted again
/// before the next one sees it, as upstream. Whether they changed it (the caller then runs
/// the strategy and validation again).
pub async fn mutate_webhooks(
    state: &ApiState,
    ctx: &Ctx,
    adm: &mut Admission,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<bool, StatusError> {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    let w = webhook::Write { operation, old, dry_run: adm.dry_run };
    let ops = crate::typed::ops_for_resource(ctx.info, ctx.storage)
        .ok_or_else(|| StatusError::internal(format!("no typed pipeline for {}", ctx.storage.kind)))?;
    let reread = |patched: Value| decode_patched(ops, patched);
    webhook::mutate(state, ctx, w, Some(obj), &reread, &mut adm.warnings).await
}

/// An object a mutating webhook patched, taken back as upstream does: decoded into its type
/// (unknown fields dropped) and defaulted; one that does not decode is an internal error.
pub(crate) fn decode_patched(ops: &dyn KindOps, patched: Value) -> Result<Value, StatusError> {
    ops.decode_and_default(patched, FieldValidation::Ignore, &mut Vec::new())
        .map_err(|e| if e.code == 500 { e } else { StatusError::internal(e.message) })
}

/// Whether mutating admission webhooks are configured for the kind of `ctx` (the write path
/// then leaves the strategy and validation until after them, as upstream).
pub fn has_mutating_webhooks(state: &ApiState, ctx: &Ctx) -> bool {
    !webhook::rules::is_exempt(ctx.storage.group, ctx.storage.kind)
        && !state.webhooks.mutating(&state.caches).is_empty()
}

/// ValidatingAdmissionPolicies, then the validating admission webhooks, of a create (`old` is `None`) or an update of `obj`.
pub async fn validate_webhooks(
    state: &ApiState,
    ctx: &Ctx,
    adm: &mut Admission,
    old: Option<&Value>,
    obj: &Value,
) -> Result<(), StatusError> {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    let w = webhook::Write { operation, old, dry_run: adm.dry_run };
    policy::validate(state, ctx, w, Some(obj), &mut adm.warnings)?;
    webhook::validate(state, ctx, w, Some(obj), &mut adm.warnings).await
}

/// Admission of a delete of `name` of `ctx.storage` by `ctx.user`.
pub fn delete(ctx: &Ctx, name: &str) -> Result<(), StatusError> {
    let storage = ctx.storage;
    if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class_delete(name)?;
    }
    Ok(())
}
