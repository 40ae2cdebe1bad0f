//! What one DaemonSet sync should do, as pure functions: which nodes need a daemon pod and which
//! pods must go (upstream's `podsShouldBeOnNode`), the rolling-update step with `maxUnavailable`
//! and `maxSurge` (upstream's `rollingUpdate`), the status counts (upstream's
//! `updateDaemonSetStatus`), and the facts they share (updated pods, pod order, template
//! generation).
//!
//! What does not live here: node eligibility ([`super::placement`]) and API calls ([`super`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::history::CONTROLLER_REVISION_HASH;
use crate::intstr::scaled;
use crate::podutil;

/// The pod label carrying the DaemonSet's template generation.
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";

/// The DaemonSet annotation the API server keeps the template generation in (apps/v1's form of
/// the internal `spec.templateGeneration`).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The DaemonSet's template generation, if it has a valid one.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata.annotations.as_ref()?.get(TEMPLATE_GENERATION_ANNOTATION)?.parse().ok()
}

/// Whether `pod` runs the current template: its hash label is `hash` or its generation label is
/// `generation` (upstream's `IsPodUpdated`).
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let template_matches = generation.is_some_and(|g| label(POD_TEMPLATE_GENERATION) == Some(g.to_string().as_str()));
    let hash_matches = !hash.is_empty() && label(CONTROLLER_REVISION_HASH) == Some(hash);
    hash_matches || template_matches
}

/// Orders daemon pods scheduled first, then oldest first, then by name (upstream's
/// `podByCreationTimestampAndPhase`).
pub fn pod_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// What one node needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeNeeds {
    /// A daemon pod must be created on the node.
    pub create: bool,
    /// Names of pods to delete (excess, misplaced, or old pods a surged pod replaces).
    pub delete: Vec<String>,
    /// Names of failed pods, to delete once their back-off allows.
    pub failed: Vec<String>,
    /// Names of succeeded pods, to delete (with a `SucceededDaemonPod` event).
    pub succeeded: Vec<String>,
}

/// How a sync treats the pods of one node.
#[derive(Debug, Clone, Copy)]
pub struct NodePolicy<'a> {
    /// The current revision's hash.
    pub hash: &'a str,
    /// Whether the DaemonSet surges (a node may then hold one old and one new pod).
    pub surge: bool,
    /// `minReadySeconds`.
    pub min_ready: i32,
    /// Now.
    pub now: Timestamp,
}

/// What the node with eligibility `(should_run, should_continue)` and daemon pods `pods` needs
/// (upstream's `podsShouldBeOnNode`).
pub fn node_needs(should_run: bool, should_continue: bool, pods: &[&Pod], policy: &NodePolicy<'_>) -> NodeNeeds {
    let mut needs = NodeNeeds::default();
    if should_run && pods.is_empty() {
        needs.create = true;
        return needs;
    }
    if !should_continue {
        let live = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none());
        needs.delete.extend(live.map(|p| name_of(p)));
        return needs;
    }
    let mut running: Vec<&Pod> = Vec::new();
    for pod in pods.iter().copied().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        match phase(pod) {
            "Failed" => needs.failed.push(name_of(pod)),
            "Succeeded" => needs.succeeded.push(name_of(pod)),
            _ => running.push(pod),
        }
    }
    running.sort_by(|a, b| pod_order(a, b));
    if !policy.surge {
        needs.delete.extend(running.iter().skip(1).map(|p| name_of(p)));
        return needs;
    }
    if running.is_empty() {
        // Surging needs at least one live pod on the node.
        needs.create = should_run;
        return needs;
    }
    // With surge a node keeps the oldest new pod and the oldest old pod; the old one goes once
    // it is not ready or the new one is available.
    let (mut newest, mut oldest): (Option<&Pod>, Option<&Pod>) = (None, None);
    for pod in running {
        let is_new = pod.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).map(String::as_str)
            == Some(policy.hash);
        let slot = if is_new { &mut newest } else { &mut oldest };
        if slot.is_none() {
            *slot = Some(pod);
        } else {
            needs.delete.push(name_of(pod));
        }
    }
    if let (Some(new), Some(old)) = (newest, oldest)
        && (!podutil::is_ready(old) || podutil::is_available(new, policy.min_ready, policy.now))
    {
        needs.delete.push(name_of(old));
    }
    needs
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let s = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if s.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    s.rolling_update.as_ref()
}

/// `maxSurge` of `desired` nodes (0 unless the strategy is RollingUpdate with a surge).
pub fn surge_count(ds: &DaemonSet, desired: i32) -> i32 {
    rolling(ds).and_then(|r| r.max_surge.as_ref()).and_then(|v| scaled(v, desired, true).ok()).unwrap_or(0)
}

/// `maxUnavailable` of `desired` nodes (0 unless the strategy is RollingUpdate).
pub fn unavailable_count(ds: &DaemonSet, desired: i32) -> i32 {
    rolling(ds).and_then(|r| r.max_unavailable.as_ref()).and_then(|v| scaled(v, desired, true).ok()).unwrap_or(0)
}

/// Whether the DaemonSet surges (upstream's `AllowsSurge`).
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1) != 0
}

/// `(maxSurge, maxUnavailable)` for `desired` nodes; an impossible 0/0 reads as unavailable 1.
pub fn max_counts(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let surge = surge_count(ds, desired);
    let unavailable = unavailable_count(ds, desired);
    if desired > 0 && surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// The new and the old pod on a node, or `None` when it has two of either (the main loop
/// cleans such a node up first) (upstream's `findUpdatedPodsOnNode`).
pub fn updated_and_old<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().copied().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let slot = if is_updated(pod, hash, generation) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// The facts a rolling-update step reads.
pub struct Rollout<'a> {
    /// Daemon pods by node, including an empty entry for every node that should run one.
    pub by_node: &'a BTreeMap<String, Vec<&'a Pod>>,
    /// Nodes that should run a daemon pod (their number is `desiredNumberScheduled`); other
    /// nodes in `by_node` hold pods the DaemonSet is leaving.
    pub should_run: &'a HashSet<String>,
    /// The current revision's hash.
    pub hash: &'a str,
    /// The template generation.
    pub generation: Option<i64>,
    /// `minReadySeconds`.
    pub min_ready: i32,
    /// `maxSurge`.
    pub max_surge: i32,
    /// `maxUnavailable`.
    pub max_unavailable: i32,
    /// Now.
    pub now: Timestamp,
}

/// One rolling-update step: old pods to delete and nodes to surge new pods onto (upstream's
/// `rollingUpdate`).
///
/// Without surge, old available pods are deleted while fewer than `maxUnavailable` nodes are
/// unavailable (an unavailable old pod is always replaced and counts as unavailable). With surge,
/// a node whose old pod is unavailable gets its new pod at once, up to `maxSurge` other nodes get
/// one next to their available old pod, and an old pod goes once the new pod next to it is
/// available. On a node that should no longer run the pod (but may keep it), an unavailable old
/// pod is deleted and no pod surged; an available one is deleted only while more pods are
/// available than nodes should run one, so the DaemonSet never drops below full availability.
pub fn rolling_update(r: &Rollout<'_>) -> (Vec<String>, Vec<String>) {
    let available = |p: &Pod| podutil::is_available(p, r.min_ready, r.now);
    if r.max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in r.by_node.values() {
            match updated_and_old(pods, r.hash, r.generation) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replace.push(name_of(old));
                        unavailable += 1;
                    } else if unavailable < r.max_unavailable {
                        candidates.push(name_of(old));
                    }
                }
            }
        }
        let room = usize::try_from((r.max_unavailable - unavailable).max(0)).unwrap_or(0).min(candidates.len());
        replace.extend(candidates.into_iter().take(room));
        return (replace, Vec::new());
    }
    let mut delete = Vec::new();
    let mut unwanted = Vec::new();
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut surging = 0;
    let mut num_available = 0;
    for (node, pods) in r.by_node {
        let Some((new, old)) = updated_and_old(pods, r.hash, r.generation) else {
            surging += 1;
            continue;
        };
        // Availability counts every node, including those the DaemonSet is leaving.
        if old.or(new).is_some_and(available) {
            num_available += 1;
        }
        let wanted = r.should_run.contains(node);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !available(old) => {
                if wanted {
                    allowed.push(node.clone());
                } else {
                    delete.push(name_of(old));
                }
            }
            (None, Some(old)) if !wanted => unwanted.push(name_of(old)),
            (None, Some(_)) => {
                if surging < r.max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    delete.push(name_of(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let desired = i32::try_from(r.should_run.len()).unwrap_or(i32::MAX);
    let deletable = usize::try_from(num_available - desired).unwrap_or(0).min(unwanted.len());
    delete.extend(unwanted.into_iter().take(deletable));
    let room = usize::try_from((r.max_surge - surging).max(0)).unwrap_or(0).min(candidates.len());
    allowed.extend(candidates.into_iter().take(room));
    (delete, allowed)
}

/// The counts of a DaemonSet's status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `desiredNumberScheduled`.
    pub desired: i32,
    /// `currentNumberScheduled`.
    pub current: i32,
    /// `numberMisscheduled`.
    pub misscheduled: i32,
    /// `numberReady`.
    pub ready: i32,
    /// `updatedNumberScheduled`.
    pub updated: i32,
    /// `numberAvailable`.
    pub available: i32,
    /// `numberUnavailable`.
    pub unavailable: i32,
}

/// The status counts over nodes given as `(name, should_run)` and daemon pods by node: for
/// each node that should run a pod, its oldest pod decides ready, available and updated.
pub fn counts(
    nodes: &[(String, bool)],
    by_node: &BTreeMap<String, Vec<&Pod>>,
    hash: &str,
    generation: Option<i64>,
    min_ready: i32,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for (node, want) in nodes {
        let pods = by_node.get(node).filter(|p| !p.is_empty());
        if !want {
            if pods.is_some() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(pods) = pods else { continue };
        c.current += 1;
        let Some(pod) = pods.iter().copied().min_by(|a, b| pod_order(a, b)) else { continue };
        if podutil::is_ready(pod) {
            c.ready += 1;
            if podutil::is_available(pod, min_ready, now) {
                c.available += 1;
            }
        }
        if is_updated(pod, hash, generation) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(name: &str, node: &str, hash: &str, ready: bool, age_s: i64) -> Pod {
        let now = Timestamp::now();
        let created = now - k8s_openapi::jiff::SignedDuration::from_secs(age_s);
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"controller-revision-hash": hash}},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .expect("pod");
        p.metadata.creation_timestamp = Some(Time(created));
        if let Some(c) = p.status.as_mut().and_then(|s| s.conditions.as_mut()).and_then(|c| c.first_mut()) {
            c.last_transition_time = Some(Time(created));
        }
        p
    }

    fn ds(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"selector": {},
            "template": {"spec": {"containers": []}}, "updateStrategy": strategy}}))
        .expect("ds")
    }

    #[test]
    fn updated_pods_by_hash_or_generation() {
        let mut p = pod("a", "n", "h1", true, 10);
        assert!(is_updated(&p, "h1", None));
        assert!(!is_updated(&p, "h2", Some(2)));
        p.metadata.labels.get_or_insert_default().insert(POD_TEMPLATE_GENERATION.into(), "2".into());
        assert!(is_updated(&p, "h2", Some(2)));
        assert!(!is_updated(&p, "", None));
        let mut d = ds(json!({"type": "OnDelete"}));
        assert_eq!(template_generation(&d), None);
        d.metadata.annotations = Some([(TEMPLATE_GENERATION_ANNOTATION.to_string(), "3".to_string())].into());
        assert_eq!(template_generation(&d), Some(3));
    }

    fn policy(surge: bool, min_ready: i32) -> NodePolicy<'static> {
        NodePolicy { hash: "h", surge, min_ready, now: Timestamp::now() }
    }

    #[test]
    fn a_node_gets_one_pod() {
        let a = pod("a", "n", "h", true, 30);
        let b = pod("b", "n", "h", true, 20);
        let mut c = pod("c", "n", "old", true, 10);
        let (plain, surge) = (policy(false, 0), policy(true, 0));
        assert_eq!(node_needs(true, true, &[], &plain), NodeNeeds { create: true, ..Default::default() });
        assert_eq!(node_needs(false, true, &[], &plain), NodeNeeds::default());
        // Without surge all but the oldest go.
        assert_eq!(node_needs(true, true, &[&c, &b, &a], &plain).delete, vec!["b", "c"]);
        // With surge the oldest new and the oldest old stay while the new one is not available.
        assert_eq!(node_needs(true, true, &[&c, &b, &a], &policy(true, 60)).delete, vec!["b"]);
        // A node that no longer qualifies loses its pods.
        assert_eq!(node_needs(false, false, &[&a, &b], &plain).delete, vec!["a", "b"]);
        assert_eq!(node_needs(false, false, &[&a, &b], &surge).delete, vec!["a", "b"]);
        // A failed pod is reported, not counted as running; no new pod while it exists.
        c.status.get_or_insert_default().phase = Some("Failed".into());
        let n = node_needs(true, true, &[&c], &plain);
        assert_eq!((n.create, n.failed, n.delete.len()), (false, vec!["c".to_string()], 0));
        // With surge a node needs one live pod: a new one is created next to the failed one.
        let n = node_needs(true, true, &[&c], &surge);
        assert_eq!((n.create, n.failed), (true, vec!["c".to_string()]));
        // ... but not on a node that should only keep what it has.
        assert!(!node_needs(false, true, &[&c], &surge).create);
        // A succeeded pod is reported for deletion.
        c.status.get_or_insert_default().phase = Some("Succeeded".into());
        let n = node_needs(true, true, &[&c, &a], &plain);
        assert_eq!((n.succeeded, n.delete.len(), n.create), (vec!["c".to_string()], 0, false));
        // An unscheduled pod sorts after a scheduled one.
        let mut u = pod("u", "", "h", false, 100);
        u.spec.get_or_insert_default().node_name = None;
        assert_eq!(pod_order(&a, &u), Ordering::Less);
    }

    #[test]
    fn surge_node_drops_the_old_pod_when_new_is_available_or_old_not_ready() {
        let old_ready = pod("old", "n", "old", true, 60);
        let old_unready = pod("old", "n", "old", false, 60);
        let new_young = pod("new", "n", "h", true, 5);
        // The new pod is ready but not yet available for minReadySeconds: both stay.
        assert!(node_needs(true, true, &[&old_ready, &new_young], &policy(true, 30)).delete.is_empty());
        // Once available, the old pod goes.
        assert_eq!(node_needs(true, true, &[&old_ready, &new_young], &policy(true, 3)).delete, vec!["old"]);
        // An old pod that is not ready goes at once.
        assert_eq!(node_needs(true, true, &[&old_unready, &new_young], &policy(true, 30)).delete, vec!["old"]);
        // Without surge the newer pod is the excess one.
        assert_eq!(node_needs(true, true, &[&old_ready, &new_young], &policy(false, 0)).delete, vec!["new"]);
    }

    #[test]
    fn surge_and_unavailable_arithmetic() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0}}));
        assert_eq!(max_counts(&d, 15), (0, 2), "10% of 15 rounds up");
        assert_eq!(max_counts(&d, 0), (0, 0));
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}));
        assert_eq!(max_counts(&d, 5), (2, 0));
        assert_eq!(max_counts(&d, 1), (1, 0), "25% of 1 rounds up");
        assert_eq!(max_counts(&d, 0), (0, 0));
        assert!(allows_surge(&d));
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 2}}));
        assert_eq!(max_counts(&d, 10), (2, 1), "counts are taken as they are");
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}));
        assert_eq!(max_counts(&d, 3), (0, 1), "0/0 falls back to one unavailable");
        let d = ds(json!({"type": "OnDelete"}));
        assert_eq!((surge_count(&d, 4), unavailable_count(&d, 4), allows_surge(&d)), (0, 0, false));
    }

    fn by_node<'a>(pairs: &[(&str, Vec<&'a Pod>)]) -> BTreeMap<String, Vec<&'a Pod>> {
        pairs.iter().map(|(n, p)| (n.to_string(), p.clone())).collect()
    }

    #[test]
    fn rolling_update_without_surge_respects_max_unavailable() {
        let now = Timestamp::now();
        let (a, b, c) =
            (pod("a", "n1", "old", true, 60), pod("b", "n2", "old", true, 60), pod("c", "n3", "old", false, 60));
        let map = by_node(&[("n1", vec![&a]), ("n2", vec![&b]), ("n3", vec![&c]), ("n4", vec![])]);
        let run: HashSet<String> = ["n1", "n2", "n3", "n4"].iter().map(|s| s.to_string()).collect();
        let r = |max_unavailable| Rollout {
            by_node: &map,
            should_run: &run,
            hash: "new",
            generation: None,
            min_ready: 0,
            max_surge: 0,
            max_unavailable,
            now,
        };
        // n4 (no pod) counts as unavailable; n3's old pod is unavailable so it is replaced anyway,
        // and its replacement uses up the budget too.
        assert_eq!(rolling_update(&r(1)), (vec!["c".to_string()], vec![]));
        assert_eq!(rolling_update(&r(2)), (vec!["c".to_string()], vec![]));
        assert_eq!(rolling_update(&r(3)), (vec!["c".to_string(), "a".to_string()], vec![]));
        assert_eq!(rolling_update(&r(5)), (vec!["c".to_string(), "a".to_string(), "b".to_string()], vec![]));
        // An unavailable new pod holds the budget.
        let n = pod("n", "n1", "new", false, 1);
        let map = by_node(&[("n1", vec![&n]), ("n2", vec![&b])]);
        let r = Rollout {
            by_node: &map,
            should_run: &run,
            hash: "new",
            generation: None,
            min_ready: 0,
            max_surge: 0,
            max_unavailable: 1,
            now,
        };
        assert_eq!(rolling_update(&r), (vec![], vec![]));
    }

    #[test]
    fn rolling_update_with_surge() {
        let now = Timestamp::now();
        let (a, b, c) =
            (pod("a", "n1", "old", true, 60), pod("b", "n2", "old", true, 60), pod("c", "n3", "old", false, 60));
        let run: HashSet<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let map = by_node(&[("n1", vec![&a]), ("n2", vec![&b]), ("n3", vec![&c])]);
        let r = Rollout {
            by_node: &map,
            should_run: &run,
            hash: "new",
            generation: None,
            min_ready: 0,
            max_surge: 1,
            max_unavailable: 0,
            now,
        };
        // n3's unavailable old pod is replaced outright; one more node surges.
        assert_eq!(rolling_update(&r), (vec![], vec!["n3".to_string(), "n1".to_string()]));
        // A surged pod that is available lets the old one go; one not yet available holds the budget.
        let na = pod("na", "n1", "new", true, 5);
        let nb = pod("nb", "n2", "new", false, 1);
        let map = by_node(&[("n1", vec![&a, &na]), ("n2", vec![&b, &nb]), ("n3", vec![&c])]);
        let r = Rollout {
            by_node: &map,
            should_run: &run,
            hash: "new",
            generation: None,
            min_ready: 0,
            max_surge: 1,
            max_unavailable: 0,
            now,
        };
        assert_eq!(rolling_update(&r), (vec!["a".to_string()], vec!["n3".to_string()]));
        // minReadySeconds: the surged pod is not yet available.
        let r = Rollout { min_ready: 30, ..r };
        assert_eq!(rolling_update(&r), (vec![], vec!["n3".to_string()]));
    }

    #[test]
    fn surge_leaves_nodes_that_should_not_run_the_pod_without_losing_availability() {
        let now = Timestamp::now();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let run: HashSet<String> = ["n1", "n2"].iter().map(|s| s.to_string()).collect();
        let (a, b, c, d) = (
            pod("a", "n1", "old", true, 60),
            pod("b", "n2", "old", true, 60),
            pod("c", "n3", "old", true, 60),
            pod("d", "n4", "old", false, 60),
        );
        // n3 and n4 should no longer run the pod: n4's unavailable old pod is deleted, not
        // surged; n3's available one goes because three pods are available for two nodes.
        let map = by_node(&[("n1", vec![&a]), ("n2", vec![&b]), ("n3", vec![&c]), ("n4", vec![&d])]);
        let step = |map| {
            rolling_update(&Rollout {
                by_node: map,
                should_run: &run,
                hash: "new",
                generation: None,
                min_ready: 0,
                max_surge: 1,
                max_unavailable: 0,
                now,
            })
        };
        assert_eq!(step(&map), (names(&["d", "c"]), names(&["n1"])));
        // With n1's old pod unavailable only two pods are available for two nodes: n3 keeps its
        // pod; n1 is replaced at once and n2 surges within the budget.
        let a_down = pod("a", "n1", "old", false, 60);
        let map = by_node(&[("n1", vec![&a_down]), ("n2", vec![&b]), ("n3", vec![&c])]);
        assert_eq!(step(&map), (vec![], names(&["n1", "n2"])));
        // Once n1's new pod is available its old pod goes; n3's old pod stays until another
        // node's pod is available beyond the two desired.
        let na = pod("na", "n1", "new", true, 5);
        let nb = pod("nb", "n2", "new", false, 1);
        let map = by_node(&[("n1", vec![&a, &na]), ("n2", vec![&b, &nb]), ("n3", vec![&c])]);
        assert_eq!(step(&map), (names(&["a", "c"]), vec![]));
        let map = by_node(&[("n1", vec![&na]), ("n2", vec![&nb]), ("n3", vec![&c])]);
        assert_eq!(step(&map), (vec![], vec![]), "one new pod is still unavailable");
        let nb_ready = pod("nb", "n2", "new", true, 5);
        let map = by_node(&[("n1", vec![&na]), ("n2", vec![&nb_ready]), ("n3", vec![&c])]);
        assert_eq!(step(&map), (names(&["c"]), vec![]));
    }

    #[test]
    fn status_counts() {
        let now = Timestamp::now();
        let a = pod("a", "n1", "h", true, 60);
        let b = pod("b", "n2", "old", true, 5);
        let c = pod("c", "n3", "h", false, 60);
        let d = pod("d", "n4", "h", true, 60);
        let map = by_node(&[("n1", vec![&a]), ("n2", vec![&b]), ("n3", vec![&c]), ("n4", vec![&d])]);
        let nodes: Vec<(String, bool)> = [("n1", true), ("n2", true), ("n3", true), ("n4", false), ("n5", true)]
            .iter()
            .map(|(n, w)| (n.to_string(), *w))
            .collect();
        let got = counts(&nodes, &map, "h", None, 10, now);
        assert_eq!(
            got,
            Counts { desired: 4, current: 3, misscheduled: 1, ready: 2, updated: 2, available: 1, unavailable: 3 }
        );
        assert_eq!(counts(&nodes, &map, "h", None, 0, now).available, 2);
    }
}
