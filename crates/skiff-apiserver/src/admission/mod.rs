//! Admission: per-kind checks and mutations of writes that need more than the object itself
//! (other objects in the store), run by the generic write path at fixed points. Present: the
//! Priority plugin ([`priority`]) and DefaultTolerationSeconds ([`tolerations`]). The typed hooks of `skiff-api` (defaulting, strategy,
//! validation) are not admission and stay there.

pub mod priority;
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
        priority::admit_pod(state, obj).await?;
        tolerations::admit_pod(obj);
    } else if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class(state, obj, false).await?;
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

/// Admission of a delete of `name` of `storage`.
pub fn delete(storage: &ResourceInfo, name: &str) -> Result<(), StatusError> {
    if is(storage, "scheduling.k8s.io", "priorityclasses") {
        priority::admit_class_delete(name)?;
    }
    Ok(())
}
