//! Pod facts the workload controllers share: active, ready, available (with `minReadySeconds`),
//! the controller reference, adoption decisions, and the deletion ranking of upstream's
//! `ActivePodsWithRanks` (which pods a scale-down removes first), and the owner-reference patch
//! that adoption and release (and the garbage collector) use.
//!
//! What does not live here: the controllers' other API calls.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// The annotation that orders pods within a scale-down (lower first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Whether the pod counts towards replicas: not finished, not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition turned true, if it is ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

/// The object's controller reference (`controller: true`).
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// A controller reference to an owner, as controllers set it on what they create or adopt.
pub fn new_controller_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller does with a candidate it may own (upstream's `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and selected: keep.
    Keep,
    /// Selected and owned by nobody: adopt (unless the owner is being deleted).
    Adopt,
    /// Ours but no longer selected: release.
    Release,
    /// Not ours.
    Ignore,
}

/// Decides about one candidate with metadata `meta` for the owner `owner_uid`.
pub fn claim(owner_uid: &str, owner_deleting: bool, meta: &ObjectMeta, selected: bool) -> Claim {
    match controller_ref(meta) {
        Some(r) if r.uid == owner_uid => {
            if selected || owner_deleting {
                Claim::Keep
            } else if meta.deletion_timestamp.is_some() {
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None if selected && !owner_deleting && meta.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// floor(log2(now - t)) in nanoseconds, as upstream buckets ages for `LogarithmicScaleDown`.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.duration_since(t).as_nanos();
    if d <= 0 { -1 } else { 127 - i64::from(d.leading_zeros()) }
}

/// An age bucket that sorts newer (and unknown) times first: a zero time, then
/// floor(log2(age)) ascending, as upstream buckets ages for `LogarithmicScaleDown`.
fn age_bucket(t: Option<Timestamp>, now: Timestamp) -> i64 {
    t.map_or(i64::MIN, |t| log_rank(t, now))
}

/// The deletion rank of a pod (smaller goes first), upstream's `ActivePodsWithRanks.Less`
/// criteria in order: unassigned, then by phase (Pending, Unknown, Running), unready, lower
/// deletion cost, more related pods on the same node, more recently ready (by age bucket), more
/// restarts, more recently created (by age bucket), then the UID. Unlike upstream's pairwise
/// comparison it is a total order (the UID breaks ties last rather than within an age bucket), as
/// sorting requires.
fn delete_rank(pod: &Pod, rank: usize, now: Timestamp) -> impl Ord + use<'_> {
    let ready_age = ready_since(pod).map(|since| age_bucket(since, now));
    (
        !node_name(pod).is_empty(),
        phase_ordinal(pod),
        is_ready(pod),
        deletion_cost(pod),
        std::cmp::Reverse(rank),
        ready_age,
        std::cmp::Reverse(max_restarts(pod)),
        age_bucket(pod.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
        pod.metadata.uid.as_deref().unwrap_or(""),
    )
}

/// `a` should be deleted before `b` (upstream `ActivePodsWithRanks.Less`); `rank_*` is how many
/// related pods share the pod's node.
pub fn delete_first(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> bool {
    delete_rank(a, rank_a, now) < delete_rank(b, rank_b, now)
}

/// The `n` pods of `pods` to delete first; `related` are the pods whose node sharing ranks them
/// (the owner's and its siblings').
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], n: usize, now: Timestamp) -> Vec<&'a Pod> {
    let mut nodes: HashMap<&str, usize> = HashMap::new();
    for r in related {
        *nodes.entry(node_name(r)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| {
            let node = node_name(p);
            let rank = if node.is_empty() { 0 } else { nodes.get(node).copied().unwrap_or(0) };
            (*p, rank)
        })
        .collect();
    ranked.sort_by_cached_key(|(p, rank)| delete_rank(p, *rank, now));
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

/// Replaces the owner references of the object with `meta` through a merge patch guarded by
/// its resourceVersion (a changed object is a conflict, retried by the next sync). `false` when
/// the object is gone.
pub async fn patch_owner_refs<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    refs: Vec<OwnerReference>,
) -> Result<bool, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = meta.name.as_deref().unwrap_or("");
    let patch = json!({"metadata": {
        "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
        "resourceVersion": meta.resource_version,
        "uid": meta.uid,
    }});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<i64>) -> Pod {
        let now = Timestamp::now();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                creation_timestamp: Some(Time(now - SignedDuration::from_secs(3600))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!node.is_empty()).then(|| node.into()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready.map(|ago| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(now - SignedDuration::from_secs(ago))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn names(v: Vec<&Pod>) -> Vec<String> {
        v.into_iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn ranks_unscheduled_pending_unready_first() {
        let now = Timestamp::now();
        let ready_old = pod("ready-old", "n1", "Running", Some(10_000));
        let ready_new = pod("ready-new", "n1", "Running", Some(5));
        let unready = pod("unready", "n1", "Running", None);
        let pending = pod("pending", "n1", "Pending", None);
        let unscheduled = pod("unscheduled", "", "Pending", None);
        let all = [&ready_old, &ready_new, &unready, &pending, &unscheduled];
        let order = names(pods_to_delete(&all, &all, 5, now));
        assert_eq!(order, ["unscheduled", "pending", "unready", "ready-new", "ready-old"]);
        assert_eq!(names(pods_to_delete(&all, &all, 2, now)), ["unscheduled", "pending"]);
    }

    #[test]
    fn doubled_up_nodes_and_deletion_cost() {
        let now = Timestamp::now();
        let a1 = pod("a1", "a", "Running", Some(100));
        let a2 = pod("a2", "a", "Running", Some(100));
        let b1 = pod("b1", "b", "Running", Some(100));
        let all = [&b1, &a1, &a2];
        let first = names(pods_to_delete(&all, &all, 1, now));
        assert!(first[0].starts_with('a'), "the node with two pods loses one first: {first:?}");
        let mut cheap = b1.clone();
        cheap.metadata.annotations = Some([(DELETION_COST.to_string(), "-5".to_string())].into());
        let all = [&cheap, &a1, &a2];
        assert_eq!(names(pods_to_delete(&all, &all, 1, now)), ["b1"]);
    }

    #[test]
    fn ranking_is_a_strict_weak_order() {
        // Ready times a second apart within one age bucket, one creation time, scattered UIDs:
        // a pairwise comparison mixing the bucket-then-UID rule with "equal ready times fall
        // through to restarts and creation" is not transitive, and sorting 1,000 such pods
        // panicked. Check transitivity over every triple.
        let now = Timestamp::now();
        let created = Time(now - SignedDuration::from_secs(1100));
        let pods: Vec<Pod> = (0..24i64)
            .map(|i| {
                let mut p = pod(&format!("p{i:02}"), "n1", "Running", (i % 8 != 0).then_some(0));
                let ready_at = Time(now - SignedDuration::from_secs(1000 + (i * 7) % 2));
                for c in p.status.iter_mut().flat_map(|s| s.conditions.iter_mut().flatten()) {
                    c.last_transition_time = Some(ready_at.clone());
                }
                p.metadata.uid = Some(format!("{:08x}", (i * 7919) % 10007));
                p.metadata.creation_timestamp = Some(created.clone());
                p
            })
            .collect();
        let lt = |a: &Pod, b: &Pod| delete_first(a, 1, b, 1, now);
        for a in &pods {
            assert!(!lt(a, a));
            for b in &pods {
                for c in &pods {
                    if lt(a, b) && lt(b, c) {
                        assert!(lt(a, c), "{:?} < {:?} < {:?}", a.metadata.name, b.metadata.name, c.metadata.name);
                    }
                    let eq = |x: &Pod, y: &Pod| !lt(x, y) && !lt(y, x);
                    if eq(a, b) && eq(b, c) {
                        assert!(eq(a, c));
                    }
                }
            }
        }
        let refs: Vec<&Pod> = pods.iter().collect();
        let order = pods_to_delete(&refs, &refs, refs.len(), now);
        let first_ready = order.iter().position(|p| is_ready(p)).unwrap_or(order.len());
        assert!(order[first_ready..].iter().all(|p| is_ready(p)), "unready pods go first");
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some(5));
        let now = Timestamp::now();
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 5, now));
        assert!(!is_available(&p, 10, now));
        assert!(!is_available(&pod("q", "n", "Running", None), 0, now));
    }

    #[test]
    fn claims() {
        let mut meta = ObjectMeta::default();
        assert_eq!(claim("u", false, &meta, true), Claim::Adopt);
        assert_eq!(claim("u", true, &meta, true), Claim::Ignore);
        assert_eq!(claim("u", false, &meta, false), Claim::Ignore);
        meta.owner_references = Some(vec![new_controller_ref("apps/v1", "ReplicaSet", "rs", "u")]);
        assert_eq!(claim("u", false, &meta, true), Claim::Keep);
        assert_eq!(claim("u", false, &meta, false), Claim::Release);
        assert_eq!(claim("other", false, &meta, true), Claim::Ignore);
    }
}
