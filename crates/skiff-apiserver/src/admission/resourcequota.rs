//! The ResourceQuota admission plugin, as upstream's `apiserver/pkg/admission/plugin/resourcequota`:
//! a create (or, for Services and PersistentVolumeClaims, an update) of a namespaced object is
//! checked against every quota of its namespace that tracks one of the resources it uses and
//! whose scopes it falls in, after defaulting and validation. Refusals are 403s with upstream's
//! messages (`exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`,
//! `failed quota: q: must specify limits.cpu for: c`, `status unknown for quota: q, resources:
//! pods`).
//!
//! Admission charges the quota before the object is written: `status.used` of each quota that
//! grows is compare-and-swapped on the revision it was read at, and a conflict re-reads and
//! re-checks, so two concurrent creates can never both take the last unit. A write that fails
//! after the charge leaves the quota over-counted until the quota controller recomputes it, as
//! upstream. What does not live here: the usage arithmetic (`skiff_api::quota`) and the
//! controller that recomputes `status` (`skiff-controllers`).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::ResourceInfo;
use skiff_api::quota::list::{self, ResourceList};
use skiff_api::quota::{Evaluator, scopes_of};
use skiff_api::status::GroupResource;
use skiff_store::{RangeRequest, StoreError, StoreExt};

use crate::objects::meta_str;
use crate::state::ApiState;

/// How often a charge is retried after losing a race for a quota.
const ATTEMPTS: usize = 16;

/// Resources never charged (upstream's default ignored resources).
fn ignored(storage: &ResourceInfo) -> bool {
    storage.plural == "events" && (storage.group.is_empty() || storage.group == "events.k8s.io")
}

/// The new `status.used` of each quota (by index) a request grows, or the refusal message.
pub fn check_request(
    ev: &Evaluator,
    quotas: &[Value],
    old: Option<&Value>,
    obj: &Value,
    now: Timestamp,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        let name = meta_str(q, "name").unwrap_or("");
        let status = q.get("status");
        let hard = list::from_json(status.and_then(|s| s.get("hard")));
        if !ev.matches(&hard, &scopes_of(q), obj) {
            continue;
        }
        let restricted = ev.matching_resources(hard.keys());
        ev.constraints(&restricted, obj).map_err(|e| format!("failed quota: {name}: {e}"))?;
        let used = list::from_json(status.and_then(|s| s.get("used")));
        if restricted.iter().any(|r| !used.contains_key(r)) {
            let names: BTreeSet<&String> = restricted.iter().collect();
            let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
            return Err(format!("status unknown for quota: {name}, resources: {}", names.join(",")));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = ev.usage(obj, now);
    let negative: Vec<&str> = delta.iter().filter(|(_, v)| v.value.is_negative()).map(|(k, _)| k.as_str()).collect();
    if !negative.is_empty() {
        return Err(format!("quota usage is negative for resource(s): {}", negative.join(",")));
    }
    if let Some(old) = old {
        delta = list::subtract_non_negative(&delta, &ev.usage(old, now));
    }
    let delta = list::remove_zeros(&delta);
    if delta.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for i in interesting {
        let q = &quotas[i];
        let status = q.get("status");
        let hard = list::from_json(status.and_then(|s| s.get("hard")));
        let used = list::from_json(status.and_then(|s| s.get("used")));
        let requested = list::mask(&delta, hard.keys());
        let new_used = list::add(&used, &requested);
        let masked = list::mask(&new_used, requested.keys());
        let (ok, exceeded) = list::less_than_or_equal(&masked, &hard);
        if !ok {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                meta_str(q, "name").unwrap_or(""),
                list::pretty(&list::mask(&requested, &exceeded)),
                list::pretty(&list::mask(&used, &exceeded)),
                list::pretty(&list::mask(&hard, &exceeded)),
            ));
        }
        if !list::equals(&new_used, &used) {
            out.push((i, new_used));
        }
    }
    Ok(out)
}

/// Checks and charges a create (`old` is `None`) or update of `obj` (stored form).
pub async fn admit(
    state: &ApiState,
    storage: &ResourceInfo,
    old: Option<&Value>,
    obj: &Value,
    dry_run: bool,
) -> Result<(), StatusError> {
    if !storage.namespaced || ignored(storage) {
        return Ok(());
    }
    let Some(ns) = meta_str(obj, "namespace").filter(|n| !n.is_empty()).map(str::to_string) else { return Ok(()) };
    let ev = Evaluator::for_resource(storage.group, storage.plural);
    if old.is_some() && !ev.handles_update() {
        return Ok(());
    }
    let name = meta_str(obj, "name").filter(|n| !n.is_empty()).unwrap_or("Unknown").to_string();
    let gr = GroupResource::new(storage.group, storage.plural);
    let prefix = format!("/registry/core/resourcequotas/{ns}/");
    // Quotas already charged by an earlier attempt.
    let mut charged: BTreeSet<String> = BTreeSet::new();
    for _ in 0..ATTEMPTS {
        let resp = state
            .store
            .range(RangeRequest { prefix: prefix.clone(), ..Default::default() })
            .await
            .map_err(StatusError::internal)?;
        let mut keys = Vec::new();
        let mut quotas = Vec::new();
        for kv in &resp.kvs {
            let Ok(q) = serde_json::from_slice::<Value>(&kv.value) else { continue };
            if charged.contains(meta_str(&q, "name").unwrap_or("")) {
                continue;
            }
            keys.push((kv.key.clone(), kv.mod_revision));
            quotas.push(q);
        }
        let charges = check_request(&ev, &quotas, old, obj, Timestamp::now())
            .map_err(|why| StatusError::forbidden(&gr, &name, &why))?;
        if charges.is_empty() || dry_run {
            return Ok(());
        }
        let mut lost_race = false;
        for (i, used) in charges {
            let mut q = quotas[i].clone();
            if let Some(m) = q.as_object_mut() {
                let status = m.entry("status").or_insert_with(|| json!({}));
                if let Some(s) = status.as_object_mut() {
                    s.insert("used".into(), list::to_json(&used));
                }
            }
            let bytes = serde_json::to_vec(&q).map_err(StatusError::internal)?;
            let (key, rev) = &keys[i];
            match state.store.update(key, bytes.into(), Some(*rev)).await {
                Ok(_) => {
                    charged.insert(meta_str(&q, "name").unwrap_or("").to_string());
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => lost_race = true,
                Err(e) => return Err(StatusError::internal(e)),
            }
        }
        if !lost_race {
            return Ok(());
        }
    }
    Err(StatusError::forbidden(
        &gr,
        &name,
        "unable to admit the request: too many concurrent quota updates; please retry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("ts")
    }

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    fn pod(cpu: Option<&str>) -> Value {
        let res = cpu.map(|c| json!({"requests": {"cpu": c}, "limits": {"cpu": c}})).unwrap_or(json!({}));
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c", "resources": res}]}})
    }

    #[test]
    fn charges_within_the_hard_limits() {
        let q = quota("q", json!({"pods": "2", "requests.cpu": "1"}), json!({"pods": "1", "requests.cpu": "500m"}));
        let out = check_request(&Evaluator::Pods, &[q], None, &pod(Some("500m")), now()).expect("admitted");
        assert_eq!(out.len(), 1);
        assert_eq!(list::pretty(&out[0].1), "pods=2,requests.cpu=1");
    }

    #[test]
    fn refuses_with_upstream_messages() {
        let full = quota("q", json!({"pods": "2"}), json!({"pods": "2"}));
        assert_eq!(
            check_request(&Evaluator::Pods, &[full], None, &pod(None), now()),
            Err("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into())
        );
        let cpu = quota("q", json!({"limits.cpu": "2"}), json!({"limits.cpu": "0"}));
        assert_eq!(
            check_request(&Evaluator::Pods, &[cpu], None, &pod(None), now()),
            Err("failed quota: q: must specify limits.cpu for: c".into())
        );
        let fresh = json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "2"}}});
        assert_eq!(
            check_request(&Evaluator::Pods, &[fresh], None, &pod(None), now()),
            Err("status unknown for quota: q, resources: pods".into())
        );
        let unsynced = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}});
        assert_eq!(check_request(&Evaluator::Pods, &[unsynced], None, &pod(None), now()), Ok(vec![]));
    }

    #[test]
    fn scoped_quotas_only_see_their_pods_and_updates_charge_the_difference() {
        let mut be = quota("be", json!({"pods": "1"}), json!({"pods": "1"}));
        be["spec"]["scopes"] = json!(["BestEffort"]);
        assert!(check_request(&Evaluator::Pods, std::slice::from_ref(&be), None, &pod(Some("1")), now()).is_ok());
        assert!(check_request(&Evaluator::Pods, &[be], None, &pod(None), now()).is_err());
        let q = quota("q", json!({"services.nodeports": "2"}), json!({"services.nodeports": "1"}));
        let svc = |t: &str| json!({"metadata": {"name": "s"}, "spec": {"type": t, "ports": [{"port": 1}]}});
        let old = svc("NodePort");
        assert_eq!(
            check_request(&Evaluator::Services, std::slice::from_ref(&q), Some(&old), &svc("NodePort"), now()),
            Ok(vec![])
        );
        assert_eq!(
            check_request(&Evaluator::Services, &[q], Some(&svc("ClusterIP")), &svc("NodePort"), now())
                .map(|v| list::pretty(&v[0].1)),
            Ok("services.nodeports=2".into())
        );
    }

    #[test]
    fn object_counts_for_any_resource() {
        let q = quota("q", json!({"count/deployments.apps": "1"}), json!({"count/deployments.apps": "1"}));
        let ev = Evaluator::for_resource("apps", "deployments");
        assert_eq!(
            check_request(&ev, &[q], None, &json!({"metadata": {"name": "d"}}), now()),
            Err("exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1".into())
        );
    }
}
