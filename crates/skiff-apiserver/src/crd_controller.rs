//! The CRD controller, run inside the API server as upstream's apiextensions-apiserver does.
//!
//! It follows the CustomResourceDefinition watch cache and, level-triggered, for every CRD:
//! 1. checks its names against the other resources of its group (built-in or custom);
//! 2. serves its resource ([`catalogue::register_custom`], every served version) when the names
//!    are accepted, and stops serving it otherwise;
//! 3. writes `status.acceptedNames`, `status.storedVersions` and the conditions `NamesAccepted`
//!    and `Established` through the internal `/status` path (a no-op when nothing changes).
//!
//! Deletion: the CRD strategy puts [`CLEANUP_FINALIZER`] on every new CRD. Once the CRD has a
//! `deletionTimestamp`, a task sets condition `Terminating`, deletes every custom object through
//! the internal delete path (their own finalizers are honoured: it waits until the store holds
//! none), removes the finalizer (which lets the CRD go) and unregisters the resource.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::crd::{CLEANUP_FINALIZER, resources_from_crd, storage_version};
use skiff_store::{EventKind, RangeRequest};
use tokio::sync::broadcast;

use crate::cache::Message;
use crate::handlers::{self, Admission, Ctx, DeleteOptions, Part};
use crate::reqinfo::Verb;
use crate::state::ApiState;

/// Verbs of a custom resource whose CRD is terminating.
const TERMINATING_VERBS: &[&str] = &["delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Key prefix of the stored CRDs.
pub const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

fn crd_info() -> Result<&'static ResourceInfo, StatusError> {
    catalogue::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| StatusError::internal("the CRD resource is not in the catalogue"))
}

/// Registers the resources of every stored CRD (called once before the server listens, so
/// custom resources are served from the first request after a restart).
pub async fn sync_existing(state: &ApiState) {
    let Some(cache) = state.caches.cache(CRD_PREFIX) else { return };
    for entry in cache.snapshot().objects.values() {
        if let Ok(crd) = serde_json::from_value::<CustomResourceDefinition>(entry.value())
            && crd.metadata.deletion_timestamp.is_none()
            && name_conflict(&crd).is_none()
        {
            register(&crd);
        }
    }
}

/// Starts the controller; it ends when the server shuts down.
pub fn spawn(state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = state.shutdown_signal();
        tokio::select! {
            _ = shutdown => {}
            _ = run(state.clone()) => {}
        }
    })
}

async fn run(state: Arc<ApiState>) {
    let terminating: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let Some(cache) = state.caches.cache(CRD_PREFIX) else { return };
        let (snapshot, mut rx) = cache.snapshot_and_subscribe();
        let present: HashSet<String> = snapshot.objects.values().map(|e| e.name.clone()).collect();
        // After a cache reset, forget CRDs deleted meanwhile (only those this controller saw:
        // the registry is per process, and tests run several servers in one process).
        for gone in seen.difference(&present) {
            catalogue::unregister_custom(gone);
        }
        seen = present;
        for entry in snapshot.objects.values() {
            reconcile_logged(&state, entry.value(), &terminating).await;
        }
        loop {
            match rx.recv().await {
                Ok(Message::Event(ev)) => {
                    if ev.kind == EventKind::Delete {
                        seen.remove(&ev.object.name);
                        catalogue::unregister_custom(&ev.object.name);
                    } else {
                        seen.insert(ev.object.name.clone());
                        reconcile_logged(&state, ev.object.value(), &terminating).await;
                    }
                }
                Ok(Message::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

async fn reconcile_logged(state: &Arc<ApiState>, obj: Value, terminating: &Arc<Mutex<HashSet<String>>>) {
    let name = crate::objects::meta_str(&obj, "name").unwrap_or("").to_string();
    if let Err(e) = reconcile(state, obj, terminating).await {
        tracing::warn!(crd = %name, error = %e.message, "reconciling a CustomResourceDefinition failed");
    }
}

/// The spec last registered per CRD name, so unchanged CRDs (status writes, resyncs) do not
/// rebuild — and leak — their catalogue entries again.
static REGISTERED: LazyLock<Mutex<HashMap<String, Value>>> = LazyLock::new(Default::default);

/// Serves the resources of `crd` unless exactly this spec is already served.
fn register(crd: &CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let spec = serde_json::to_value(&crd.spec).unwrap_or(Value::Null);
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if registered.get(&name) == Some(&spec) && !catalogue::custom_of(&name).is_empty() {
        return;
    }
    catalogue::register_custom(&name, resources_from_crd(crd));
    registered.insert(name, spec);
}

/// Why the names of `crd` cannot be accepted (`(reason, message)`), if they cannot.
fn name_conflict(crd: &CustomResourceDefinition) -> Option<(&'static str, String)> {
    let own = crd.metadata.name.as_deref().unwrap_or("");
    let names = &crd.spec.names;
    for r in catalogue::all() {
        if r.group != crd.spec.group || r.custom.is_some_and(|c| c.crd_name == own) {
            continue;
        }
        if r.plural == names.plural || r.singular == names.plural {
            return Some(("PluralConflict", format!("{:?} is already in use", names.plural)));
        }
        if let Some(s) = names.singular.as_deref().filter(|s| *s == r.plural || *s == r.singular) {
            return Some(("SingularConflict", format!("{s:?} is already in use")));
        }
        if let Some(s) = names.short_names.iter().flatten().find(|s| r.short_names.contains(&s.as_str())) {
            return Some(("ShortNamesConflict", format!("{s:?} is already in use")));
        }
        if r.kind == names.kind {
            return Some(("KindConflict", format!("{:?} is already in use", names.kind)));
        }
    }
    None
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if status { "True" } else { "False" }, "reason": reason, "message": message})
}

/// Replaces or adds conditions, keeping `lastTransitionTime` when the status does not change.
fn merge_conditions(existing: &[Value], wanted: &[Value], now: &str) -> Vec<Value> {
    let mut out: Vec<Value> = existing.to_vec();
    for w in wanted {
        let mut w = w.clone();
        match out.iter_mut().find(|c| c.get("type") == w.get("type")) {
            Some(c) => {
                let time = if c.get("status") == w.get("status") {
                    c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now))
                } else {
                    json!(now)
                };
                w["lastTransitionTime"] = time;
                *c = w;
            }
            None => {
                w["lastTransitionTime"] = json!(now);
                out.push(w);
            }
        }
    }
    out
}

async fn write_status(
    state: &ApiState,
    name: &str,
    change: impl Fn(&mut serde_json::Map<String, Value>) + Send + Sync,
) -> Result<(), StatusError> {
    let ctx = Ctx::internal(crd_info()?, None, Verb::Update);
    let mut adm = Admission::internal();
    let f = move |current: &Value| -> Result<Value, StatusError> {
        let mut obj = current.clone();
        if let Some(map) = obj.as_object_mut() {
            let status = map.entry("status").or_insert_with(|| json!({}));
            if let Some(s) = status.as_object_mut() {
                change(s);
            }
        }
        Ok(obj)
    };
    handlers::update_object(state, &ctx, name, Part::Status, &mut adm, &f).await.map(|_| ())
}

async fn reconcile(
    state: &Arc<ApiState>,
    obj: Value,
    terminating: &Arc<Mutex<HashSet<String>>>,
) -> Result<(), StatusError> {
    let crd: CustomResourceDefinition = serde_json::from_value(obj).map_err(StatusError::internal)?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    if crd.metadata.deletion_timestamp.is_some() {
        let has_finalizer = crd.metadata.finalizers.iter().flatten().any(|f| f == CLEANUP_FINALIZER);
        if has_finalizer && terminating.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()) {
            // As upstream, no new objects while the CRD terminates (create answers 405).
            let current = catalogue::custom_of(&name);
            if current.iter().any(|r| r.supports("create")) {
                let without_create: Vec<ResourceInfo> =
                    current.iter().map(|r| ResourceInfo { verbs: TERMINATING_VERBS, ..(*r).clone() }).collect();
                catalogue::register_custom(&name, without_create);
            }
            let state = state.clone();
            let terminating = terminating.clone();
            tokio::spawn(async move {
                if let Err(e) = terminate(&state, &crd).await {
                    tracing::warn!(crd = %name, error = %e.message, "cleaning up custom resources failed");
                }
                terminating.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            });
        }
        return Ok(());
    }
    let conflict = name_conflict(&crd);
    match &conflict {
        None => register(&crd),
        Some(_) => catalogue::unregister_custom(&name),
    }
    let wanted = match &conflict {
        None => vec![
            condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
            condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        Some((reason, message)) => vec![
            condition("NamesAccepted", false, reason, message),
            condition("Established", false, "NotAccepted", "not all names are accepted"),
        ],
    };
    let accepted = serde_json::to_value(&crd.spec.names).map_err(StatusError::internal)?;
    let storage = storage_version(&crd).map(str::to_string);
    let accept = conflict.is_none();
    let now = handlers::now_rfc3339();
    write_status(state, &name, move |s| {
        let existing: Vec<Value> = s.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        s.insert("conditions".into(), Value::Array(merge_conditions(&existing, &wanted, &now)));
        if accept {
            s.insert("acceptedNames".into(), accepted.clone());
        } else if !s.contains_key("acceptedNames") {
            s.insert("acceptedNames".into(), json!({"plural": "", "kind": ""}));
        }
        let mut stored: Vec<Value> = s.get("storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(v) = &storage
            && !stored.iter().any(|x| x == v)
        {
            stored.push(json!(v));
        }
        s.insert("storedVersions".into(), Value::Array(stored));
    })
    .await
}

/// Deletes every object of the CRD's resource, waits until none is left, then releases the CRD.
async fn terminate(state: &ApiState, crd: &CustomResourceDefinition) -> Result<(), StatusError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let now = handlers::now_rfc3339();
    let wanted =
        [condition("Terminating", true, "InstanceDeletionInProgress", "CustomResource deletion is in progress")];
    write_status(state, &name, move |s| {
        let existing: Vec<Value> = s.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        s.insert("conditions".into(), Value::Array(merge_conditions(&existing, &wanted, &now)));
    })
    .await?;
    let registered = catalogue::custom_of(&name).into_iter().find(|r| r.custom.is_some_and(|c| c.storage));
    let info: &'static ResourceInfo = match registered {
        Some(r) => r,
        // Names never accepted: objects cannot exist, but look anyway (one small leak per
        // deletion of such a CRD).
        None => match resources_from_crd(crd).into_iter().find(|r| r.custom.is_some_and(|c| c.storage)) {
            Some(r) => Box::leak(Box::new(r)),
            None => return release(state, &name).await,
        },
    };
    let prefix = info.key_prefix();
    let opts = DeleteOptions::default();
    loop {
        let page = state
            .store
            .range(RangeRequest { prefix: prefix.clone(), start_after: None, revision: None, limit: Some(500) })
            .await
            .map_err(StatusError::internal)?;
        if page.kvs.is_empty() {
            break;
        }
        for kv in &page.kvs {
            let rest = kv.key.strip_prefix(&prefix).unwrap_or("");
            let (ns, obj_name) = match rest.split_once('/') {
                Some((ns, n)) => (Some(ns), n),
                None => (None, rest),
            };
            let ctx = Ctx::internal(info, ns, Verb::Delete);
            match handlers::delete_object(state, &ctx, obj_name, &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    release(state, &name).await
}

/// Removes the cleanup finalizer (the CRD then disappears) and stops serving its resource.
async fn release(state: &ApiState, name: &str) -> Result<(), StatusError> {
    let ctx = Ctx::internal(crd_info()?, None, Verb::Update);
    let mut adm = Admission::internal();
    let f = |current: &Value| -> Result<Value, StatusError> {
        let mut obj = current.clone();
        if let Some(fins) = obj.get_mut("metadata").and_then(|m| m.get_mut("finalizers")).and_then(Value::as_array_mut)
        {
            fins.retain(|f| f != CLEANUP_FINALIZER);
        }
        Ok(obj)
    };
    match handlers::update_object(state, &ctx, name, Part::Main, &mut adm, &f).await {
        Ok(_) => {}
        Err(e) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    catalogue::unregister_custom(name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let existing = vec![json!({"type": "Established", "status": "True", "lastTransitionTime": "t0"})];
        let wanted = vec![
            condition("Established", true, "InitialNamesAccepted", "m"),
            condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
        ];
        let out = merge_conditions(&existing, &wanted, "t1");
        assert_eq!(out[0]["lastTransitionTime"], "t0");
        assert_eq!(out[1]["lastTransitionTime"], "t1");
        let flipped = merge_conditions(&out, &[condition("Established", false, "NotAccepted", "m")], "t2");
        assert_eq!(flipped[0]["lastTransitionTime"], "t2");
    }

    #[test]
    fn names_colliding_with_a_builtin_are_refused() {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "ingresses.networking.k8s.io"},
            "spec": {"group": "networking.k8s.io", "scope": "Namespaced", "names": {"plural": "ingresses", "kind": "Ingress"}, "versions": []}
        }))
        .expect("crd");
        assert_eq!(name_conflict(&crd).map(|c| c.0), Some("PluralConflict"));
    }
}
