//! Admission: per-kind checks and mutations of writes that need more than the object itself
//! (other objects in the store), run by the generic write path at fixed points. Present: the
//! Priority plugin ([`priority`]), DefaultTolerationSeconds ([`tolerations`]), LimitRanger
//! ([`limitranger`]), ResourceQuota ([`resourcequota`]) and the storage plugins ([`storage`]:
//! DefaultStorageClass and StorageObjectInUseProtection). The typed hooks of `skiff-api` (defaulting, strategy,
//! validation) are not admission and stay there.

pub mod limitranger;
pub mod priority;
pub mod resourcequota;
pub mod storage;
pub mod tolerations;

use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::catalogue::ResourceInfo;

use crate::state::ApiState;

fn is(info: &ResourceInfo, group: &str, plural: &str) -> bool {
    info.group == group && info.plural == plural
}

/// Mutating and validating admission of a create of `obj` (stored form) of `storage`.
pub async fn create(state: &ApiState, storage: &ResourceInfo, obj: &mut Value) -> Result<(), StatusError> {
    if is(storage, "", "pods") {
        limitranger::mutate_pod(state, obj).await?;
        priority::admit_pod(state, obj).await?;
        tolerations::admit_pod(obj);
    } else if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class(state, obj, false).await?;
    } else if is(storage, "", "persistentvolumeclaims") {
        storage::admit_claim(state, obj).await?;
    } else if is(storage, "", "persistentvolumes") {
        storage::admit_volume(obj);
    }
    Ok(())
}

/// Admission of an update of the main resource to `new` (stored form) of `storage`.
pub async fn update(state: &ApiState, storage: &ResourceInfo, new: &Value) -> Result<(), StatusError> {
    if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class(state, new, true).await?;
    }
    Ok(())
}

/// Validating admission of a create once `obj` is defaulted and valid (LimitRanger's checks,
/// then ResourceQuota, which charges the quota unless `dry_run`).
pub async fn validate_create(
    state: &ApiState,
    storage: &ResourceInfo,
    obj: &Value,
    dry_run: bool,
) -> Result<(), StatusError> {
    if is(storage, "", "pods") || is(storage, "", "persistentvolumeclaims") {
        limitranger::validate(state, storage.plural, obj).await?;
    }
    resourcequota::admit(state, storage, None, obj, dry_run).await
}

/// Validating admission of an update of the main resource from `old` to `new` (stored forms).
pub async fn validate_update(
    state: &ApiState,
    storage: &ResourceInfo,
    old: &Value,
    new: &Value,
    dry_run: bool,
) -> Result<(), StatusError> {
    if is(storage, "", "persistentvolumeclaims") {
        limitranger::validate(state, storage.plural, new).await?;
    }
    resourcequota::admit(state, storage, Some(old), new, dry_run).await
}

/// Admission of a delete of `name` of `storage`.
pub fn delete(storage: &ResourceInfo, name: &str) -> Result<(), StatusError> {
    if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class_delete(name)?;
    }
    Ok(())
}
