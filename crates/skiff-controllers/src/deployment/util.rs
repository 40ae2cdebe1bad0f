//! The Deployment controller's pure decisions, as upstream's `deployment/util`: fenceposts of
//! maxSurge/maxUnavailable (ints and percentages), the new ReplicaSet's size, proportional
//! scaling fractions, revision and replica annotations, the pod-template hash, conditions.
//!
//! What does not live here: API calls and the order of the rollout steps (`super`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The label that ties a ReplicaSet and its pods to one template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision of a Deployment and of each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before (after a rollback).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The longest `revision-history` annotation kept.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Reason: the new ReplicaSet was created.
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
/// Reason: the new ReplicaSet was found.
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
/// Reason: the new ReplicaSet is available.
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
/// Reason: a ReplicaSet was updated.
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
/// Reason: the rollout exceeded its progress deadline.
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
/// Reason: paused.
pub const PAUSED_REASON: &str = "DeploymentPaused";
/// Reason: resumed.
pub const RESUMED_REASON: &str = "DeploymentResumed";
/// Reason: the new ReplicaSet could not be created.
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";

fn annotations_skipped(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// `spec.replicas` (default 1).
pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas` (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_status(rs: &ReplicaSet, f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

/// `status.replicas` of a ReplicaSet.
pub fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs_status(rs, |s| Some(s.replicas))
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs_status(rs, |s| s.available_replicas)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs_status(rs, |s| s.ready_replicas)
}

/// Whether the strategy is RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas; never both zero.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = crate::intstr::scaled(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = crate::intstr::scaled(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 { Ok((0, 1)) } else { Ok((surge, unavailable)) }
}

fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    (ru.and_then(|r| r.max_surge.as_ref()), ru.and_then(|r| r.max_unavailable.as_ref()))
}

/// The Deployment's maxSurge in pods (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(s, u, d_replicas(d)).map(|(s, _)| s).unwrap_or(0)
}

/// The Deployment's maxUnavailable in pods (0 for Recreate or no replicas; at most replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    let (_, u) = resolve_fenceposts(s, u, replicas).unwrap_or((0, 1));
    u.min(replicas)
}

/// How many replicas the new ReplicaSet should have now (upstream's `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> Result<i32, String> {
    if !is_rolling(d) {
        return Ok(d_replicas(d));
    }
    let (s, u) = rolling_params(d);
    let (surge, _) = resolve_fenceposts(s, u, d_replicas(d))?;
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = d_replicas(d) + surge;
    if current >= max_total {
        return Ok(rs_replicas(new_rs));
    }
    let up = (max_total - current).min(d_replicas(d) - rs_replicas(new_rs));
    Ok(rs_replicas(new_rs) + up)
}

/// The sizes of the active old ReplicaSets (oldest first, as `(replicas, available)`) after
/// one rolling-update scale-down step next to the new ReplicaSet `(replicas, available)`
/// (upstream's `reconcileOldReplicaSets`): first unhealthy replicas go, as far as the total may
/// shrink without the new ReplicaSet's unavailable pods counting twice; then healthy ones, as
/// far as availability stays at `replicas - maxUnavailable`.
pub fn old_scale_down(d: &Deployment, old: &[(i32, i32)], new: (i32, i32)) -> Vec<i32> {
    let mut sizes: Vec<i32> = old.iter().map(|(r, _)| *r).collect();
    if sizes.iter().sum::<i32>() == 0 {
        return sizes;
    }
    let all: i32 = sizes.iter().sum::<i32>() + new.0;
    let min_available = d_replicas(d) - max_unavailable(d);
    let max_scaled_down = all - min_available - (new.0 - new.1);
    if max_scaled_down <= 0 {
        return sizes;
    }
    let mut cleaned = 0;
    for (size, (_, available)) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - available;
        if *size == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        *size -= down;
        cleaned += down;
    }
    let available: i32 = old.iter().map(|(_, a)| a).sum::<i32>() + new.1;
    if available > min_available {
        let total = available - min_available;
        let mut scaled = 0;
        for size in sizes.iter_mut() {
            if scaled >= total {
                break;
            }
            if *size == 0 {
                continue;
            }
            let down = (*size).min(total - scaled);
            *size -= down;
            scaled += down;
        }
    }
    sizes
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The revision of an object's annotations (0 when absent or invalid).
pub fn revision_of(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations.and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The change proportional scaling gives `rs` (upstream's `GetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if d_replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = d_replicas(d) + max_surge(d);
    let annotated =
        annotation_i32(rs, MAX_REPLICAS).unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// Sets desired-replicas and max-replicas; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired.to_string()), (MAX_REPLICAS, max.to_string())] {
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Copies the Deployment's annotations and the new revision onto the (new) ReplicaSet, with the
/// revision history after a rollback (upstream's `SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: &str, exists: bool) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if annotations_skipped(k) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old_revision = a.get(REVISION).cloned().unwrap_or_default();
    let old_int: i64 = match old_revision.parse() {
        Ok(v) => v,
        Err(_) if old_revision.is_empty() => 0,
        Err(_) => return changed,
    };
    let new_int: i64 = new_revision.parse().unwrap_or(0);
    if old_int < new_int {
        a.insert(REVISION.into(), new_revision.into());
        changed = true;
        if !old_revision.is_empty() {
            let mut history: Vec<String> = a
                .get(REVISION_HISTORY)
                .filter(|h| !h.is_empty())
                .map(|h| h.split(',').map(String::from).collect())
                .unwrap_or_default();
            while !history.is_empty() && history.join(",").len() + old_revision.len() + 1 > MAX_REV_HISTORY_CHARS {
                history.remove(0);
            }
            history.push(old_revision);
            a.insert(REVISION_HISTORY.into(), history.join(","));
        }
    }
    if !exists && set_replicas_annotations(rs, d_replicas(d), d_replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// The pod-template hash: FNV-32a of the template (and collision count), in upstream's
/// "safe" alphabet (no vowels, no confusable digits).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let t = serde_json::to_string(&semantic(template)).unwrap_or_default();
    let count = collision_count.map(i32::to_le_bytes);
    crate::history::safe_fnv(&[t.as_bytes(), count.as_ref().map_or(&[][..], |c| &c[..])])
}

/// Whether two templates are equal once the pod-template-hash label is ignored.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                m.labels = None;
            }
        }
        semantic(&t)
    };
    strip(a) == strip(b)
}

/// A template as JSON with empty objects, empty lists and nulls removed: apimachinery's semantic
/// equality treats nil and empty alike, so `resources: {}` and no `resources` are one template.
fn semantic(t: &PodTemplateSpec) -> serde_json::Value {
    fn prune(v: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match v {
            Value::Null => None,
            Value::Object(m) => {
                let m: serde_json::Map<String, Value> =
                    m.into_iter().filter_map(|(k, v)| prune(v).map(|v| (k, v))).collect();
                (!m.is_empty()).then_some(Value::Object(m))
            }
            Value::Array(a) => {
                (!a.is_empty()).then(|| Value::Array(a.into_iter().map(|v| prune(v).unwrap_or(Value::Null)).collect()))
            }
            other => Some(other),
        }
    }
    prune(serde_json::to_value(t).unwrap_or_default()).unwrap_or_default()
}

/// Whether the Deployment has a progress deadline.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

/// The condition of `type_`.
pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// A new condition stamped `now`.
pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition: unchanged when status and reason match; keeps the transition time when only
/// the reason changes (upstream's `SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter().find(|c| c.type_ == cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// Whether the rollout is complete: all replicas updated and available, generation observed.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = d_replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over the Deployment's current status.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    g(new.updated_replicas) > g(old.updated_replicas)
        || g(new.replicas) - g(new.updated_replicas) < g(old.replicas) - g(old.updated_replicas)
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// Whether the progress deadline passed (upstream's `DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = condition(new, "Progressing") else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let deadline = i64::from(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600));
    c.last_update_time.as_ref().is_some_and(|t| t.0 + SignedDuration::from_secs(deadline) < now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs(name: &str, replicas: i32, max_replicas: Option<i32>) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: max_replicas.map(|m| [(MAX_REPLICAS.to_string(), m.to_string())].into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
            status: None,
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        assert_eq!(resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10), Ok((3, 2)));
        assert_eq!(resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 1), Ok((1, 0)));
        assert_eq!(resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&pct("10%")), 5), Ok((0, 1)));
        assert_eq!(resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&IntOrString::Int(1)), 5), Ok((2, 1)));
        assert!(resolve_fenceposts(Some(&pct("x%")), None, 5).is_err());
        let d = deploy(4, pct("50%"), pct("100%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (2, 4));
    }

    #[test]
    fn new_rs_grows_within_surge() {
        let d = deploy(10, pct("25%"), pct("25%"));
        let old = rs("old", 10, None);
        let new = rs("new", 0, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3));
        let new = rs("new", 3, None);
        let old = rs("old", 8, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(5));
        let old = rs("old", 10, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3), "at max total: unchanged");
    }

    #[test]
    fn rolling_update_scales_old_down_within_availability() {
        // 10 replicas, 25%/25%: maxUnavailable 2, so 8 must stay available.
        let d = deploy(10, pct("25%"), pct("25%"));
        // New RS just surged to 3, none available: two healthy old pods may go.
        assert_eq!(old_scale_down(&d, &[(10, 10)], (3, 0)), [8]);
        // Once 3 new pods are available, 3 more old ones may go.
        assert_eq!(old_scale_down(&d, &[(8, 8)], (5, 3)), [5]);
        // Unhealthy old pods go first, oldest ReplicaSet first, without touching availability.
        assert_eq!(old_scale_down(&d, &[(4, 1), (6, 6)], (3, 0)), [2, 6]);
        // Nothing available to spare: nothing moves.
        assert_eq!(old_scale_down(&d, &[(8, 8)], (4, 0)), [8]);
        // maxUnavailable 0 with surge: only as many as new pods became available.
        let d = deploy(4, IntOrString::Int(1), IntOrString::Int(0));
        assert_eq!(old_scale_down(&d, &[(4, 4)], (1, 1)), [3]);
    }

    #[test]
    fn proportional_scaling_splits_by_size() {
        // Scaling 10 → 15 (surge 3 → 4) mid-rollout with old 8 and new 5 (annotated max 13).
        let d = deploy(15, pct("25%"), pct("25%"));
        let old = rs("old", 8, Some(13));
        let new = rs("new", 5, Some(13));
        let allowed = d_replicas(&d) + max_surge(&d);
        let to_add = allowed - 13;
        assert_eq!(to_add, 6);
        let p_old = proportion(&old, &d, to_add, 0);
        let p_new = proportion(&new, &d, to_add, p_old);
        assert_eq!((p_old, p_new), (4, 2));
        let scaled_down = deploy(0, pct("25%"), pct("25%"));
        assert_eq!(proportion(&old, &scaled_down, -13, 0), -8);
    }

    #[test]
    fn annotations_copy_and_revision_history() {
        let mut d = deploy(3, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(
            [
                ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
                (REVISION.to_string(), "9".to_string()),
                ("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{}".to_string()),
            ]
            .into(),
        );
        let mut r = rs("r", 3, None);
        r.metadata.annotations = Some([(REVISION.to_string(), "1".to_string())].into());
        assert!(set_new_rs_annotations(&d, &mut r, "4", true));
        let a = r.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get("kubernetes.io/change-cause").map(String::as_str), Some("v2"));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("4"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!a.contains_key(DESIRED_REPLICAS), "existing ReplicaSets keep their replica annotations");
        assert!(!set_new_rs_annotations(&d, &mut r, "4", true), "idempotent");
        let mut fresh = rs("f", 0, None);
        assert!(set_new_rs_annotations(&d, &mut fresh, "1", false));
        let a = fresh.metadata.annotations.unwrap_or_default();
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    }

    #[test]
    fn hash_is_stable_safe_and_ignored_in_comparisons() {
        let mut t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t, None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert!(h.bytes().all(|b| crate::history::SAFE_ALPHANUMS.contains(&b)));
        let mut hashed = t.clone();
        if let Some(l) = hashed.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(POD_TEMPLATE_HASH.into(), h);
        }
        assert!(equal_ignore_hash(&t, &hashed));
        let mut with_empty = t.clone();
        with_empty.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "c".into(),
                resources: Some(Default::default()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut without = with_empty.clone();
        if let Some(s) = without.spec.as_mut() {
            s.containers[0].resources = None;
        }
        assert!(equal_ignore_hash(&with_empty, &without), "empty and absent are semantically equal");
        assert_eq!(compute_hash(&with_empty, None), compute_hash(&without, None));
        t.metadata = None;
        assert!(!equal_ignore_hash(&t, &hashed));
    }

    #[test]
    fn conditions_keep_transition_time_on_reason_change() {
        let t0 = Timestamp::now() - SignedDuration::from_secs(100);
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, new_condition("Progressing", "True", NEW_RS_REASON, "a".into(), t0));
        set_condition(&mut s, new_condition("Progressing", "True", RS_UPDATED_REASON, "b".into(), Timestamp::now()));
        let c = condition(&s, "Progressing").cloned().unwrap_or_default();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED_REASON));
        assert_eq!(c.last_transition_time.map(|t| t.0), Some(t0));
        set_condition(&mut s, new_condition("Progressing", "True", RS_UPDATED_REASON, "c".into(), Timestamp::now()));
        assert_eq!(condition(&s, "Progressing").and_then(|c| c.message.clone()).as_deref(), Some("b"));
    }
}
