//! The eviction API: `POST .../pods/{name}/eviction` with a policy/v1 or v1beta1 `Eviction`, as
//! upstream's `EvictionREST`:
//! - a pod that is terminal, pending or already terminating ignores disruption budgets and is
//!   deleted at once (a pending pod only at the `resourceVersion` it was read at);
//! - otherwise the PodDisruptionBudgets of its namespace whose selectors match it are read: none
//!   → delete; several → a 500 Status; one → an unready pod is deleted without touching the
//!   budget when `unhealthyPodEvictionPolicy: AlwaysAllow` or (the default `IfHealthyBudget`) when
//!   the budget is already healthy; else `status.disruptionsAllowed` is checked and decremented,
//!   and the pod recorded in `status.disruptedPods`, in one compare-and-swap (retried on
//!   conflict); a budget with no disruption left is a 429 with a `DisruptionBudget` cause;
//! - the pod then gets the `DisruptionTarget` condition and is deleted gracefully with the
//!   Eviction's `deleteOptions`; success is a `Status` with code 201.
//!
//! Keeping `disruptionsAllowed` up to date is the disruption controller's job
//! (`skiff-controllers::disruption`), not this module's.

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_api::selector::LabelSelectorExpr;
use skiff_api::status::{GroupResource, Reason, StatusCause, StatusDetails};
use skiff_store::{RangeRequest, StoreError, StoreExt};

use super::Ctx;
use super::delete::{DeleteOptions, delete_object};
use super::meta::now_rfc3339;
use super::read::store_err;
use crate::objects::{meta_str, metadata_mut};
use crate::state::ApiState;

/// Upstream's `MaxDisruptedPodSize`.
const MAX_DISRUPTED_PODS: usize = 2000;
/// How often a step is retried on conflicts (upstream's `EvictionsRetry` has 5 steps).
const RETRIES: usize = 5;
/// The message of every 429 of a disruption budget.
pub const VIOLATES_BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// `POST .../pods/{name}/eviction`.
pub async fn create(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
    let eviction = crate::negotiate::decode_body(&body, format)?;
    match eviction.get("kind").and_then(Value::as_str) {
        None | Some("Eviction") => {}
        Some(other) => {
            return Err(StatusError::bad_request(format!("the body of an eviction must be an Eviction, not {other}")));
        }
    }
    if meta_str(&eviction, "name").unwrap_or("") != name {
        return Err(StatusError::bad_request("name in URL does not match name in Eviction object"));
    }
    let opts = DeleteOptions::from_value(ctx, eviction.get("deleteOptions"))?;
    crate::admission::noderestriction::admit_eviction(state, ctx, &name).await?;
    evict(state, ctx, &name, &opts).await?;
    let mut status = skiff_api::status::success_status(None);
    status["code"] = json!(201);
    Ok(crate::response::json(201, &status))
}

/// The stored pod and its resource version.
async fn get_pod(state: &ApiState, ctx: &Ctx, name: &str) -> Result<(Value, u64), StatusError> {
    let kv = state.store.get(&ctx.key(name)).await.map_err(store_err)?;
    let kv = kv.ok_or_else(|| StatusError::not_found(&ctx.group_resource(), name))?;
    let pod = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
    Ok((pod, kv.mod_revision))
}

fn phase(pod: &Value) -> &str {
    pod.get("status").and_then(|s| s.get("phase")).and_then(Value::as_str).unwrap_or("")
}

fn terminating(pod: &Value) -> bool {
    pod.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null())
}

/// Upstream `canIgnorePDB`: terminal, pending and terminating pods.
pub fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || terminating(pod)
}

/// Upstream `shouldEnforceResourceVersion`.
fn enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !terminating(pod)
}

/// Whether the pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    pod.get("status").and_then(|s| s.get("conditions")).and_then(Value::as_array).into_iter().flatten().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Ready")
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

fn is_conflict(e: &StatusError) -> bool {
    e.code == 409
}

async fn evict(state: &ApiState, ctx: &Ctx, name: &str, original: &DeleteOptions) -> Result<(), StatusError> {
    // Pods whose deletion disrupts nothing any more.
    let mut pod = None;
    for attempt in 0..RETRIES {
        let (current, rv) = get_pod(state, ctx, name).await?;
        if !can_ignore_budget(&current) {
            pod = Some((current, rv));
            break;
        }
        let opts = if enforce_resource_version(&current) && original.resource_version().is_none() {
            original.with_resource_version(rv.to_string())
        } else {
            original.clone()
        };
        match mark_and_delete(state, ctx, name, &opts).await {
            Ok(()) => return Ok(()),
            Err(e) if is_conflict(&e) && original.resource_version().is_none() && attempt + 1 < RETRIES => {}
            Err(e) => return Err(e),
        }
    }
    let Some((pod, rv)) = pod else {
        return Err(StatusError::conflict(&ctx.group_resource(), name, "too many concurrent writes; please retry"));
    };
    let namespace = ctx.namespace.as_deref().unwrap_or("");
    let budgets = matching_budgets(state, namespace, &pod).await?;
    let mut opts = original.clone();
    let mut budget_name = String::new();
    match budgets.as_slice() {
        [] => {}
        [_, _, ..] => {
            return Err(StatusError {
                code: 500,
                reason: Reason::Unknown,
                message:
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                        .into(),
                details: None,
            });
        }
        [(key, pdb, _)] => {
            budget_name = meta_str(pdb, "name").unwrap_or("").to_string();
            if unhealthy_may_go(&pod, pdb) {
                opts = original.with_resource_version(rv.to_string());
            } else {
                decrement(state, key, name, original.is_dry_run()).await?;
            }
        }
    }
    match mark_and_delete(state, ctx, name, &opts).await {
        Err(e) if is_conflict(&e) && opts.resource_version().is_some() && original.resource_version().is_none() => {
            Err(still_processing(&budget_name))
        }
        other => other,
    }
}

/// Whether an unready pod may go without spending the budget `pdb` (upstream's
/// `unhealthyPodEvictionPolicy` handling).
pub fn unhealthy_may_go(pod: &Value, pdb: &Value) -> bool {
    if pod_ready(pod) {
        return false;
    }
    let spec = pdb.get("spec");
    if spec.and_then(|s| s.get("unhealthyPodEvictionPolicy")).and_then(Value::as_str) == Some("AlwaysAllow") {
        return true;
    }
    let status = |f: &str| pdb.get("status").and_then(|s| s.get(f)).and_then(Value::as_i64).unwrap_or(0);
    status("currentHealthy") >= status("desiredHealthy") && status("desiredHealthy") > 0
}

/// The budgets of `namespace` whose selectors match the pod: (store key, object, revision). A
/// missing selector matches nothing, an empty one (policy/v1) every pod, as upstream.
async fn matching_budgets(
    state: &ApiState,
    namespace: &str,
    pod: &Value,
) -> Result<Vec<(String, Value, u64)>, StatusError> {
    let info = catalogue::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| StatusError::internal("poddisruptionbudgets are not served"))?;
    let resp = state
        .store
        .range(RangeRequest { prefix: info.namespace_prefix(namespace), ..Default::default() })
        .await
        .map_err(StatusError::internal)?;
    let labels: std::collections::BTreeMap<String, String> = pod
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    for kv in &resp.kvs {
        let Ok(pdb) = serde_json::from_slice::<Value>(&kv.value) else { continue };
        if selects(&pdb, &labels) {
            out.push((kv.key.clone(), pdb, kv.mod_revision));
        }
    }
    Ok(out)
}

/// Whether the budget's selector matches `labels` (`metav1.LabelSelectorAsSelector`).
pub fn selects(pdb: &Value, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let Some(sel) = pdb.get("spec").and_then(|s| s.get("selector")) else { return false };
    let Ok(sel) = serde_json::from_value(sel.clone()) else { return false };
    let Ok(expr) = LabelSelectorExpr::from_label_selector(Some(&sel)) else { return false };
    expr.matches(labels)
}

/// The 429 of a budget the disruption controller has not caught up with.
fn still_processing(pdb: &str) -> StatusError {
    too_many(format!("The disruption budget {pdb} is still being processed by the server."), 10)
}

fn too_many(cause: String, retry_after: i32) -> StatusError {
    let mut err = StatusError::too_many_requests(VIOLATES_BUDGET, retry_after);
    err.details = Some(StatusDetails {
        causes: vec![StatusCause { reason: "DisruptionBudget".into(), message: cause, field: String::new() }],
        retry_after_seconds: Some(retry_after),
        ..Default::default()
    });
    err
}

fn forbidden_budget(pdb: &str, why: &str) -> StatusError {
    StatusError::forbidden(&GroupResource::new("policy", "poddisruptionbudget"), pdb, why)
}

/// Upstream `checkAndDecrement` on the stored budget: the budget with one disruption spent and
/// `pod` recorded at `now`, or the error that forbids it.
pub fn spend(pdb: &Value, pod: &str, now: &str) -> Result<Value, StatusError> {
    let name = meta_str(pdb, "name").unwrap_or("");
    let status = pdb.get("status");
    let int = |f: &str| status.and_then(|s| s.get(f)).and_then(Value::as_i64).unwrap_or(0);
    let generation = pdb.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0);
    if int("observedGeneration") < generation {
        return Err(still_processing(name));
    }
    let allowed = int("disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden_budget(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = status.and_then(|s| s.get("disruptedPods")).and_then(Value::as_object);
    if disrupted.map_or(0, |d| d.len()) > MAX_DISRUPTED_PODS {
        return Err(forbidden_budget(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int("desiredHealthy"),
                int("currentHealthy")
            ),
            0,
        ));
    }
    let mut out = pdb.clone();
    let Some(map) = out.as_object_mut() else { return Err(StatusError::internal("a budget is not an object")) };
    let st = map.entry("status").or_insert_with(|| json!({}));
    st["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_allowed_condition(st, false, now);
    }
    if !st.get("disruptedPods").is_some_and(Value::is_object) {
        st["disruptedPods"] = json!({});
    }
    st["disruptedPods"][pod] = json!(now);
    Ok(out)
}

/// Sets the budget's `DisruptionAllowed` condition (upstream `UpdateDisruptionAllowedCondition`).
fn set_allowed_condition(status: &mut Value, allowed: bool, now: &str) {
    let observed = status.get("observedGeneration").cloned().unwrap_or(json!(0));
    let (state, reason) = if allowed { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else { return };
    let cond = json!({
        "type": "DisruptionAllowed",
        "status": state,
        "reason": reason,
        "message": "",
        "observedGeneration": observed,
        "lastTransitionTime": now,
    });
    match conds.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed")) {
        Some(c) => {
            let changed = c.get("status").and_then(Value::as_str) != Some(state);
            let since = c.get("lastTransitionTime").cloned();
            *c = cond;
            if !changed && let Some(t) = since {
                c["lastTransitionTime"] = t;
            }
        }
        None => conds.push(cond),
    }
}

/// Spends one disruption of the budget at `key` for `pod`, retrying on conflicts.
async fn decrement(state: &ApiState, key: &str, pod: &str, dry_run: bool) -> Result<(), StatusError> {
    let gr = GroupResource::new("policy", "poddisruptionbudgets");
    let mut budget = String::new();
    for _ in 0..RETRIES {
        let kv = state.store.get(key).await.map_err(store_err)?;
        let kv = kv.ok_or_else(|| StatusError::not_found(&gr, key.rsplit('/').next().unwrap_or("")))?;
        let pdb: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
        budget = meta_str(&pdb, "name").unwrap_or("").to_string();
        let spent = spend(&pdb, pod, &now_rfc3339())?;
        if dry_run {
            return Ok(());
        }
        let bytes = Bytes::from(serde_json::to_vec(&spent).map_err(StatusError::internal)?);
        match state.store.update(key, bytes, Some(kv.mod_revision)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&gr, &budget)),
            Err(e) => return Err(store_err(e)),
        }
    }
    Err(StatusError {
        code: 504,
        reason: Reason::Timeout,
        message: format!("couldn't update PodDisruptionBudget {budget:?} due to conflicts"),
        details: Some(StatusDetails { retry_after_seconds: Some(10), ..Default::default() }),
    })
}

/// Upstream `addConditionAndDeletePod`: the `DisruptionTarget` condition (checked against the
/// preconditions), then the delete.
async fn mark_and_delete(state: &ApiState, ctx: &Ctx, name: &str, opts: &DeleteOptions) -> Result<(), StatusError> {
    let mut opts = opts.clone();
    if !opts.is_dry_run() {
        let key = ctx.key(name);
        let (mut pod, rv) = get_pod(state, ctx, name).await?;
        let uid = meta_str(&pod, "uid").unwrap_or("").to_string();
        if let Some(want) = opts.uid().filter(|u| *u != uid) {
            return Err(precondition(
                name,
                &format!(
                    "the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                ),
            ));
        }
        if let Some(want) = opts.resource_version().filter(|r| *r != rv.to_string()) {
            return Err(precondition(
                name,
                &format!(
                    "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({rv}). The object might have been modified"
                ),
            ));
        }
        if add_disruption_target(&mut pod, &now_rfc3339()) {
            let bytes = Bytes::from(serde_json::to_vec(&pod).map_err(StatusError::internal)?);
            match state.store.update(&key, bytes, Some(rv)).await {
                Ok(ev) => {
                    if opts.resource_version().is_some() {
                        opts = opts.with_resource_version(ev.kv.mod_revision.to_string());
                    }
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(StatusError::conflict(
                        &ctx.group_resource(),
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
                Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&ctx.group_resource(), name)),
                Err(e) => return Err(store_err(e)),
            }
        }
    }
    delete_object(state, ctx, name, &opts).await.map(|_| ())
}

/// The conflict of a failed precondition, worded (and with the resource `Pod`) as upstream's.
fn precondition(name: &str, why: &str) -> StatusError {
    StatusError::conflict(&GroupResource::new("", "Pod"), name, why)
}

/// Sets the pod's `DisruptionTarget` condition for an eviction; false when it is already so.
pub fn add_disruption_target(pod: &mut Value, now: &str) -> bool {
    let cond = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": now,
    });
    let Some(map) = pod.as_object_mut() else { return false };
    let status = map.entry("status").or_insert_with(|| json!({}));
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else { return false };
    match conds.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget")) {
        Some(c) => {
            let same = |f: &str| c.get(f) == cond.get(f);
            if same("status") && same("reason") && same("message") {
                return false;
            }
            let keep_time = same("status");
            let since = c.get("lastTransitionTime").cloned();
            *c = cond;
            if keep_time && let Some(t) = since {
                c["lastTransitionTime"] = t;
            }
        }
        None => conds.push(cond),
    }
    if let Some(m) = metadata_mut(pod) {
        m.remove("resourceVersion");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value, generation: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": generation}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}, "status": status})
    }

    #[test]
    fn spending_a_budget() {
        let ok =
            pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1}), 1);
        let spent = spend(&ok, "p1", "2026-01-01T00:00:00Z").expect("allowed");
        assert_eq!(spent["status"]["disruptionsAllowed"], 0);
        assert_eq!(spent["status"]["disruptedPods"]["p1"], "2026-01-01T00:00:00Z");
        assert_eq!(spent["status"]["conditions"][0]["reason"], "InsufficientPods");
        assert_eq!(spent["status"]["conditions"][0]["status"], "False");

        let err = spend(&spent, "p2", "2026-01-01T00:00:00Z").expect_err("exhausted");
        assert_eq!(err.code, 429);
        assert_eq!(err.message, VIOLATES_BUDGET);
        let details = err.details.expect("details");
        assert_eq!(details.causes[0].reason, "DisruptionBudget");
        assert_eq!(details.causes[0].message, "The disruption budget web needs 1 healthy pods and has 2 currently");

        let stale = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 3}), 2);
        let err = spend(&stale, "p", "t").expect_err("stale");
        assert_eq!(err.code, 429);
        assert_eq!(err.details.expect("details").retry_after_seconds, Some(10));

        let negative = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": -1}), 1);
        assert_eq!(spend(&negative, "p", "t").expect_err("negative").code, 403);
    }

    #[test]
    fn unhealthy_pods_and_policies() {
        let unready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let healthy = pdb(json!({"currentHealthy": 2, "desiredHealthy": 2}), 1);
        let short = pdb(json!({"currentHealthy": 1, "desiredHealthy": 2}), 1);
        assert!(unhealthy_may_go(&unready, &healthy));
        assert!(!unhealthy_may_go(&unready, &short));
        assert!(!unhealthy_may_go(&ready, &healthy));
        let mut always = short.clone();
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(unhealthy_may_go(&unready, &always));
        assert!(!unhealthy_may_go(&ready, &always));
    }

    #[test]
    fn which_pods_ignore_budgets() {
        for (phase, ignore) in [("Pending", true), ("Succeeded", true), ("Failed", true), ("Running", false)] {
            assert_eq!(can_ignore_budget(&json!({"status": {"phase": phase}})), ignore, "{phase}");
        }
        assert!(can_ignore_budget(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
    }

    #[test]
    fn selectors_match_as_upstream_eviction() {
        let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(selects(&pdb(json!({}), 1), &labels));
        assert!(selects(&json!({"spec": {"selector": {}}}), &labels), "an empty selector matches every pod");
        assert!(!selects(&json!({"spec": {}}), &labels));
        assert!(!selects(&json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}}), &labels));
    }

    #[test]
    fn disruption_target_condition() {
        let mut pod =
            json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(add_disruption_target(&mut pod, "t1"));
        assert_eq!(pod["status"]["conditions"][1]["reason"], "EvictionByEvictionAPI");
        assert_eq!(pod["status"]["conditions"][1]["message"], "Eviction API: evicting");
        assert!(!add_disruption_target(&mut pod, "t2"), "a second eviction changes nothing");
    }
}
