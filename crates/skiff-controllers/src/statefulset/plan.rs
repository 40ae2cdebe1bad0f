//! What one StatefulSet sync does to its pods, decided without I/O (upstream
//! `defaultStatefulSetControl.updateStatefulSet`): the pods in the ordinal range are replicas,
//! the others are condemned. Replicas are processed lowest ordinal first (a finished pod is
//! deleted to be recreated, a missing one created, a pending one gets its missing claims);
//! condemned pods are deleted highest ordinal first; then a RollingUpdate deletes, highest
//! ordinal first and at or above the partition, replicas not at the update revision: with
//! `maxUnavailable` set, as many as it leaves room for (upstream's MaxUnavailableStatefulSet
//! behaviour: a percentage of `replicas` rounded down but at least 1, less the replicas already
//! unavailable); without it one at a time, as upstream with that feature off (its default).
//! `OrderedReady` stops at the first step that must wait (a create, a deletion, a pod not yet
//! Running, Ready and available); `Parallel` does not wait. Also the status counts
//! (upstream `computeReplicaStatus`, `completeRollingUpdate`).
//!
//! What does not live here: executing the plan and the API calls ([`super`]).

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::identity::{self, pod_revision};
use crate::intstr::scaled;
use crate::podutil;

/// Which revision a pod is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev {
    /// `status.currentRevision` (ordinals below the partition).
    Current,
    /// `status.updateRevision`.
    Update,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It finished (Failed or Succeeded) and is recreated.
    Finished,
    /// Its ordinal is out of range.
    ScaleDown,
    /// It is not at the update revision.
    Update,
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the pod with this ordinal (its claims first).
    Create {
        /// The ordinal.
        ordinal: i32,
        /// The revision it is created from.
        rev: Rev,
    },
    /// Delete this pod.
    Delete {
        /// The pod's name.
        name: String,
        /// Why.
        why: Why,
    },
    /// Create the missing claims of the pod with this ordinal.
    CreateClaims {
        /// The ordinal.
        ordinal: i32,
    },
    /// Restore the identity labels of this pod.
    FixIdentity {
        /// The pod's name.
        name: String,
    },
}

/// What the planner reads besides the set and its pods.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    /// The name of the current revision.
    pub current: &'a str,
    /// The name of the update revision.
    pub update: &'a str,
    /// The names of the claims that exist in the set's namespace.
    pub claims: HashSet<String>,
    /// Now, for availability.
    pub now: Option<Timestamp>,
}

/// Whether the pod has a phase (the API server gives every created pod one).
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running with its Ready condition true.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && podutil::is_ready(pod)
}

/// Running, Ready and available for `min_ready` seconds.
pub fn is_running_and_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && podutil::is_available(pod, min_ready, now)
}

/// Running, Ready and not being deleted.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// `spec.minReadySeconds`.
pub fn min_ready(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn monotonic(set: &StatefulSet) -> bool {
    set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel")
}

fn max_unavailable_field(set: &StatefulSet) -> Option<&IntOrString> {
    let s = set.spec.as_ref()?.update_strategy.as_ref()?;
    s.rolling_update.as_ref()?.max_unavailable.as_ref()
}

/// How many replicas a rolling update may have unavailable at once: `maxUnavailable` (default 1),
/// a percentage taken of `replicas` and rounded down, never below 1 (upstream
/// `getStatefulSetMaxUnavailable`).
pub fn max_unavailable(set: &StatefulSet) -> usize {
    let n = max_unavailable_field(set).map_or(Ok(1), |v| scaled(v, identity::replicas(set), false));
    usize::try_from(n.unwrap_or(0).max(1)).unwrap_or(1)
}

fn strategy(set: &StatefulSet) -> (&str, Option<i32>) {
    let s = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let type_ = s.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate");
    let partition = s.and_then(|s| s.rolling_update.as_ref()).map(|r| r.partition.unwrap_or(0));
    (type_, partition)
}

/// The revision a pod created now at `ordinal` gets: the current one below a RollingUpdate's
/// partition, else the update revision (upstream `newVersionedStatefulSetPod`).
pub fn revision_for(set: &StatefulSet, ordinal: i32) -> Rev {
    match strategy(set) {
        ("RollingUpdate", Some(partition)) if ordinal < partition => Rev::Current,
        ("RollingUpdate", None) if ordinal < set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0) => {
            Rev::Current
        }
        _ => Rev::Update,
    }
}

/// The plan of one sync; `pods` are the set's pods (named `<set>-<ordinal>`).
pub fn plan(set: &StatefulSet, pods: &[&Pod], input: &Inputs<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    if set.metadata.deletion_timestamp.is_some() {
        return actions;
    }
    let now = input.now.unwrap_or_else(Timestamp::now);
    let set_name = set.metadata.name.as_deref().unwrap_or("");
    let start = identity::start_ordinal(set);
    let count = identity::replicas(set);
    let monotonic = monotonic(set);
    let min_ready = min_ready(set);
    let ordinal = |p: &Pod| identity::ordinal_of(set_name, p.metadata.name.as_deref().unwrap_or(""));
    let mut replicas: Vec<Option<&Pod>> = vec![None; usize::try_from(count).unwrap_or(0)];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let Some(o) = ordinal(p) else { continue };
        if identity::in_range(set, o) {
            if let Some(slot) = replicas.get_mut(usize::try_from(o - start).unwrap_or(usize::MAX)) {
                *slot = Some(p);
            }
        } else {
            condemned.push((o, p));
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    let first_unhealthy: Option<String> = replicas
        .iter()
        .map(|p| p.filter(|p| is_healthy(p)).is_none().then(|| p.map(name).unwrap_or_default()))
        .chain(condemned.iter().rev().map(|(_, p)| (!is_healthy(p)).then(|| name(p))))
        .flatten()
        .next();

    // Replicas, lowest ordinal first.
    for (i, slot) in replicas.iter().enumerate() {
        let ord = start + i32::try_from(i).unwrap_or(0);
        let Some(pod) = slot else {
            actions.push(Action::Create { ordinal: ord, rev: revision_for(set, ord) });
            if monotonic {
                return actions;
            }
            continue;
        };
        let ph = phase(pod);
        if ph == "Failed" || ph == "Succeeded" {
            if !is_terminating(pod) {
                actions.push(Action::Delete { name: name(pod), why: Why::Finished });
            }
            if monotonic {
                return actions;
            }
            continue;
        }
        let missing_claims = identity::claims_for(set, ord)
            .values()
            .any(|c| !input.claims.contains(c.metadata.name.as_deref().unwrap_or("")));
        if ph == "Pending" && missing_claims {
            actions.push(Action::CreateClaims { ordinal: ord });
        }
        if monotonic
            && (is_terminating(pod) || !is_running_and_ready(pod) || !is_running_and_available(pod, min_ready, now))
        {
            return actions;
        }
        if !identity::missing_identity_labels(set, pod).is_empty() && !is_terminating(pod) {
            actions.push(Action::FixIdentity { name: name(pod) });
        }
        if ph != "Pending" && missing_claims && !is_terminating(pod) {
            actions.push(Action::CreateClaims { ordinal: ord });
        }
    }

    // Condemned pods, highest ordinal first.
    for (_, pod) in &condemned {
        if is_terminating(pod) {
            if monotonic {
                return actions;
            }
            continue;
        }
        let first = first_unhealthy.as_deref() == Some(name(pod).as_str());
        if monotonic && !first && (!is_running_and_ready(pod) || !is_running_and_available(pod, min_ready, now)) {
            return actions;
        }
        actions.push(Action::Delete { name: name(pod), why: Why::ScaleDown });
        if monotonic {
            return actions;
        }
    }

    let (type_, partition) = strategy(set);
    if type_ != "RollingUpdate" {
        return actions;
    }
    let update_min = usize::try_from(partition.unwrap_or(0).max(0)).unwrap_or(0);
    if max_unavailable_field(set).is_none() {
        // Without the field, as upstream without MaxUnavailableStatefulSet (its default): one
        // pod at a time, and an outdated pod is replaced even when it is unhealthy.
        for slot in replicas.iter().skip(update_min).rev() {
            let Some(pod) = slot else { return actions };
            if pod_revision(pod) != input.update && !is_terminating(pod) {
                actions.push(Action::Delete { name: name(pod), why: Why::Update });
                return actions;
            }
            if !is_healthy(pod) {
                return actions;
            }
        }
        return actions;
    }
    // Every replica counts towards the budget, missing ones (being created) included.
    let unavailable = replicas
        .iter()
        .filter(|slot| slot.is_none_or(|p| is_terminating(p) || !is_running_and_available(p, min_ready, now)))
        .count();
    let budget = max_unavailable(set).saturating_sub(unavailable);
    let outdated = replicas
        .iter()
        .skip(update_min)
        .rev()
        .flatten()
        .filter(|p| pod_revision(p) != input.update && !is_terminating(p))
        .take(budget)
        .map(|p| Action::Delete { name: name(p), why: Why::Update });
    actions.extend(outdated);
    actions
}

/// The status counts over the set's `pods` (upstream `computeReplicaStatus`), with the revisions,
/// `observedGeneration` and `collisionCount`, the rolling update completed when every replica is
/// updated and ready.
pub fn status(
    set: &StatefulSet,
    pods: &[&Pod],
    current: &str,
    update: &str,
    collision_count: i32,
    now: Timestamp,
) -> StatefulSetStatus {
    let min_ready = min_ready(set);
    let mut s = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0);
    for p in pods {
        if is_created(p) {
            s.replicas += 1;
        }
        if is_running_and_ready(p) {
            ready += 1;
            if is_running_and_available(p, min_ready, now) {
                available += 1;
            }
        }
        if is_created(p) && !is_terminating(p) {
            if pod_revision(p) == current {
                cur += 1;
            }
            if pod_revision(p) == update {
                upd += 1;
            }
        }
    }
    s.ready_replicas = Some(ready);
    s.available_replicas = Some(available);
    s.current_replicas = Some(cur);
    s.updated_replicas = Some(upd);
    if strategy(set).0 == "RollingUpdate" && upd == s.replicas && ready == s.replicas {
        s.current_replicas = Some(upd);
        s.current_revision = Some(update.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::tests::set;
    use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategy};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(ord: i32, phase: &str, ready: bool, rev: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("web-{ord}")),
                labels: Some(
                    [
                        (identity::POD_NAME_LABEL.to_string(), format!("web-{ord}")),
                        (identity::POD_INDEX_LABEL.to_string(), ord.to_string()),
                        (crate::history::CONTROLLER_REVISION_HASH.to_string(), rev.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn ready(ord: i32) -> Pod {
        pod(ord, "Running", true, "r1")
    }

    fn terminating(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        p
    }

    fn inputs(s: &StatefulSet) -> Inputs<'static> {
        let claims = (0..10).flat_map(|o| identity::claims_for(s, o).into_values()).filter_map(|c| c.metadata.name);
        Inputs { current: "r1", update: "r1", claims: claims.collect(), now: None }
    }

    fn parallel(mut s: StatefulSet) -> StatefulSet {
        if let Some(spec) = s.spec.as_mut() {
            spec.pod_management_policy = Some("Parallel".into());
        }
        s
    }

    fn partitioned(mut s: StatefulSet, partition: Option<i32>, type_: &str) -> StatefulSet {
        if let Some(spec) = s.spec.as_mut() {
            spec.update_strategy = Some(StatefulSetUpdateStrategy {
                type_: Some(type_.into()),
                rolling_update: partition
                    .map(|p| RollingUpdateStatefulSetStrategy { partition: Some(p), max_unavailable: None }),
            });
        }
        s
    }

    fn create(ordinal: i32) -> Action {
        Action::Create { ordinal, rev: Rev::Update }
    }

    fn delete(ord: i32, why: Why) -> Action {
        Action::Delete { name: format!("web-{ord}"), why }
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_after_ready_predecessors() {
        let s = set(3, None);
        assert_eq!(plan(&s, &[], &inputs(&s)), vec![create(0)]);
        let p0 = pod(0, "Pending", false, "r1");
        assert_eq!(plan(&s, &[&p0], &inputs(&s)), vec![], "waits for web-0 to be Running and Ready");
        let p0 = pod(0, "Running", false, "r1");
        assert_eq!(plan(&s, &[&p0], &inputs(&s)), vec![]);
        let p0 = ready(0);
        assert_eq!(plan(&s, &[&p0], &inputs(&s)), vec![create(1)]);
        let p1 = ready(1);
        assert_eq!(plan(&s, &[&p0, &p1], &inputs(&s)), vec![create(2)]);
        let p2 = ready(2);
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &inputs(&s)), vec![]);
    }

    #[test]
    fn start_ordinals_shift_names() {
        let s = set(2, Some(3));
        assert_eq!(plan(&s, &[], &inputs(&s)), vec![create(3)]);
        let p3 = ready(3);
        let p0 = ready(0);
        assert_eq!(plan(&s, &[&p3, &p0], &inputs(&s)), vec![create(4)]);
        let p4 = ready(4);
        assert_eq!(plan(&s, &[&p3, &p4, &p0], &inputs(&s)), vec![delete(0, Why::ScaleDown)]);
    }

    #[test]
    fn parallel_creates_and_deletes_everything_at_once() {
        let s = parallel(set(3, None));
        assert_eq!(plan(&s, &[], &inputs(&s)), vec![create(0), create(1), create(2)]);
        let s = parallel(set(1, None));
        let (p0, p1, p2) = (ready(0), pod(1, "Pending", false, "r1"), ready(2));
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &inputs(&s)), vec![delete(2, Why::ScaleDown), delete(1, Why::ScaleDown)]);
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_and_waits_for_termination() {
        let s = set(1, None);
        let (p0, p1, p2) = (ready(0), ready(1), ready(2));
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &inputs(&s)), vec![delete(2, Why::ScaleDown)]);
        let t2 = terminating(ready(2));
        assert_eq!(plan(&s, &[&p0, &p1, &t2], &inputs(&s)), vec![], "web-2 is still terminating");
        assert_eq!(plan(&s, &[&p0, &p1], &inputs(&s)), vec![delete(1, Why::ScaleDown)]);
        // An unhealthy condemned pod other than the first unhealthy one blocks.
        let u2 = pod(2, "Running", false, "r1");
        let u1 = pod(1, "Running", false, "r1");
        assert_eq!(plan(&s, &[&p0, &u1, &u2], &inputs(&s)), vec![]);
        // The first unhealthy pod may go.
        assert_eq!(plan(&s, &[&p0, &p1, &u2], &inputs(&s)), vec![delete(2, Why::ScaleDown)]);
        // An unready replica blocks scale-down.
        let u0 = pod(0, "Running", false, "r1");
        assert_eq!(plan(&s, &[&u0, &p1], &inputs(&s)), vec![]);
    }

    #[test]
    fn failed_pods_are_deleted_to_be_recreated() {
        let s = set(2, None);
        let (p0, f1) = (ready(0), pod(1, "Failed", false, "r1"));
        assert_eq!(plan(&s, &[&p0, &f1], &inputs(&s)), vec![delete(1, Why::Finished)]);
        let t1 = terminating(pod(1, "Failed", false, "r1"));
        assert_eq!(plan(&s, &[&p0, &t1], &inputs(&s)), vec![]);
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let s = set(3, None);
        let mut input = inputs(&s);
        input.update = "r2";
        let (p0, p1, p2) = (ready(0), ready(1), ready(2));
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &input), vec![delete(2, Why::Update)]);
        let n2 = pod(2, "Running", false, "r2");
        assert_eq!(plan(&s, &[&p0, &p1, &n2], &input), vec![], "waits for the updated pod to be Ready");
        let n2 = pod(2, "Running", true, "r2");
        assert_eq!(plan(&s, &[&p0, &p1, &n2], &input), vec![delete(1, Why::Update)]);
        // With partition 2 only web-2 is updated.
        let s = partitioned(set(3, None), Some(2), "RollingUpdate");
        assert_eq!(plan(&s, &[&p0, &p1, &n2], &input), vec![]);
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &input), vec![delete(2, Why::Update)]);
        // Below the partition pods are recreated at the current revision.
        assert_eq!(plan(&s, &[&p0, &n2], &input), vec![Action::Create { ordinal: 1, rev: Rev::Current }]);
        // OnDelete never deletes for an update, and recreates at the update revision.
        let s = partitioned(set(3, None), None, "OnDelete");
        assert_eq!(plan(&s, &[&p0, &p1, &p2], &input), vec![]);
        assert_eq!(plan(&s, &[&p0, &p2], &input), vec![create(1)]);
    }

    fn max_unavailable_of(s: StatefulSet, v: IntOrString) -> StatefulSet {
        let mut s = partitioned(s, Some(0), "RollingUpdate");
        if let Some(ru) =
            s.spec.as_mut().and_then(|s| s.update_strategy.as_mut()).and_then(|u| u.rolling_update.as_mut())
        {
            ru.max_unavailable = Some(v);
        }
        s
    }

    #[test]
    fn max_unavailable_scales_rounds_down_and_is_at_least_one() {
        assert_eq!(max_unavailable(&set(4, None)), 1, "default");
        assert_eq!(max_unavailable(&max_unavailable_of(set(4, None), IntOrString::String("0%".into()))), 1);
        assert_eq!(max_unavailable(&max_unavailable_of(set(4, None), IntOrString::Int(2))), 2);
        assert_eq!(max_unavailable(&max_unavailable_of(set(4, None), IntOrString::Int(9))), 9);
        assert_eq!(max_unavailable(&max_unavailable_of(set(10, None), IntOrString::String("25%".into()))), 2);
        assert_eq!(max_unavailable(&max_unavailable_of(set(3, None), IntOrString::String("10%".into()))), 1);
        assert_eq!(max_unavailable(&max_unavailable_of(set(4, None), IntOrString::String("100%".into()))), 4);
    }

    #[test]
    fn parallel_rolls_max_unavailable_pods_at_a_time() {
        let s = parallel(max_unavailable_of(set(4, None), IntOrString::Int(2)));
        let mut input = inputs(&s);
        input.update = "r2";
        let (p0, p1, p2, p3) = (ready(0), ready(1), ready(2), ready(3));
        assert_eq!(plan(&s, &[&p0, &p1, &p2, &p3], &input), vec![delete(3, Why::Update), delete(2, Why::Update)]);
        // One replaced pod is back but not ready, one is terminating: no room.
        let (n3, t2) = (pod(3, "Running", false, "r2"), terminating(ready(2)));
        assert_eq!(plan(&s, &[&p0, &p1, &t2, &n3], &input), vec![]);
        // web-3 ready, web-2 still missing (created now): room for one more.
        let n3 = pod(3, "Running", true, "r2");
        assert_eq!(
            plan(&s, &[&p0, &p1, &n3], &input),
            vec![Action::Create { ordinal: 2, rev: Rev::Update }, delete(1, Why::Update)]
        );
        // An unavailable outdated pod counts against the budget but may itself be replaced.
        let u1 = pod(1, "Running", false, "r1");
        let n2 = pod(2, "Running", true, "r2");
        assert_eq!(plan(&s, &[&p0, &u1, &n2, &n3], &input), vec![delete(1, Why::Update)]);
        // The partition still bounds the update.
        let mut s = s;
        if let Some(ru) =
            s.spec.as_mut().and_then(|s| s.update_strategy.as_mut()).and_then(|u| u.rolling_update.as_mut())
        {
            ru.partition = Some(3);
        }
        assert_eq!(plan(&s, &[&p0, &p1, &p2, &p3], &input), vec![delete(3, Why::Update)]);
    }

    #[test]
    fn without_the_field_an_unhealthy_outdated_pod_is_still_replaced() {
        let mut input = inputs(&set(2, None));
        input.update = "r2";
        let (p0, u1) = (ready(0), pod(1, "Running", false, "r1"));
        let s = parallel(set(2, None));
        assert_eq!(plan(&s, &[&p0, &u1], &input), vec![delete(1, Why::Update)]);
        // With maxUnavailable 1 the unavailable pod uses up the budget, as upstream.
        let s = parallel(max_unavailable_of(set(2, None), IntOrString::Int(1)));
        assert_eq!(plan(&s, &[&p0, &u1], &input), vec![]);
    }

    #[test]
    fn ordered_ready_deletes_a_batch_then_waits_for_every_pod() {
        let s = max_unavailable_of(set(4, None), IntOrString::String("50%".into()));
        let mut input = inputs(&s);
        input.update = "r2";
        let (p0, p1, p2, p3) = (ready(0), ready(1), ready(2), ready(3));
        assert_eq!(plan(&s, &[&p0, &p1, &p2, &p3], &input), vec![delete(3, Why::Update), delete(2, Why::Update)]);
        // Recreated in order, one at a time; no further deletions until all are Running and Ready.
        assert_eq!(plan(&s, &[&p0, &p1], &input), vec![create(2)]);
        let n2 = pod(2, "Running", true, "r2");
        let n3 = pod(3, "Pending", false, "r2");
        assert_eq!(plan(&s, &[&p0, &p1, &n2, &n3], &input), vec![]);
        let n3 = pod(3, "Running", true, "r2");
        assert_eq!(plan(&s, &[&p0, &p1, &n2, &n3], &input), vec![delete(1, Why::Update), delete(0, Why::Update)]);
    }

    #[test]
    fn missing_claims_and_identity_are_repaired() {
        let s = set(1, None);
        let mut input = inputs(&s);
        input.claims.clear();
        let p0 = pod(0, "Pending", false, "r1");
        assert_eq!(plan(&s, &[&p0], &input), vec![Action::CreateClaims { ordinal: 0 }]);
        let mut p0 = ready(0);
        p0.metadata.labels.as_mut().map(|l| l.remove(identity::POD_INDEX_LABEL));
        assert_eq!(plan(&s, &[&p0], &inputs(&s)), vec![Action::FixIdentity { name: "web-0".into() }]);
    }

    #[test]
    fn deleting_sets_do_nothing() {
        let mut s = set(3, None);
        s.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(plan(&s, &[], &inputs(&s)).is_empty());
    }

    #[test]
    fn status_counts_revisions_and_completes_rollouts() {
        let s = set(3, None);
        let now = Timestamp::now();
        let (p0, p1, p2) = (ready(0), pod(1, "Running", true, "r2"), pod(2, "Pending", false, "r2"));
        let t = terminating(ready(3));
        let st = status(&s, &[&p0, &p1, &p2, &t], "r1", "r2", 0, now);
        assert_eq!(st.replicas, 4);
        assert_eq!(st.ready_replicas, Some(3));
        assert_eq!(st.available_replicas, Some(3));
        assert_eq!(st.current_replicas, Some(1));
        assert_eq!(st.updated_replicas, Some(2));
        assert_eq!(st.current_revision.as_deref(), Some("r1"));
        let (n0, n2) = (pod(0, "Running", true, "r2"), pod(2, "Running", true, "r2"));
        let st = status(&s, &[&n0, &p1, &n2], "r1", "r2", 1, now);
        assert_eq!(st.current_revision.as_deref(), Some("r2"), "every replica updated and ready");
        assert_eq!(st.current_replicas, Some(3));
        assert_eq!(st.collision_count, Some(1));
        let s = partitioned(set(3, None), None, "OnDelete");
        assert_eq!(status(&s, &[&n0, &p1, &n2], "r1", "r2", 0, now).current_revision.as_deref(), Some("r1"));
    }
}
