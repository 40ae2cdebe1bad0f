//! The disruption controller: keeps every PodDisruptionBudget's status current, as upstream's
//! `DisruptionController` does:
//! - `expectedPods`: the number of selected pods for an integer `minAvailable`, else the sum of
//!   the scales of the selected pods' controllers (a ReplicaSet owned by a Deployment counts the
//!   Deployment's replicas; ReplicationControllers and StatefulSets their own; any other owner,
//!   e.g. a custom resource, its `/scale` through [`scale`]); pods without a controller are
//!   reported with an `UnmanagedPods` warning and count nothing; a count that cannot be computed
//!   (an owner without `/scale`, a pod whose controller is gone) is reported with a
//!   `CalculateExpectedPodCountFailed` warning and the `SyncFailed` condition;
//! - `desiredHealthy`: `minAvailable` (a percentage of `expectedPods`, rounded up), or
//!   `expectedPods - maxUnavailable` (likewise rounded up);
//! - `currentHealthy`: ready pods that are neither terminating nor recently evicted;
//! - `disruptedPods`: the eviction API's records, dropped (with a `NotDeleted` event on the pod)
//!   once a pod outlives its record by two minutes; the budget is requeued for that moment;
//! - `disruptionsAllowed` (never negative, zero while no pod is expected), `observedGeneration`
//!   and the `DisruptionAllowed` condition (`SufficientPods`/`InsufficientPods`, or `SyncFailed`
//!   with zero disruptions when the status cannot be computed).
//!
//! What does not live here: spending disruptions (the API server's eviction subresource), reading
//! an arbitrary owner's `/scale` ([`scale`]).

pub mod scale;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

use crate::events::Events;
use crate::informer::{Informer, SharedInformers, get, key_of, split_key};
use crate::intstr::scaled;
use crate::podutil;
use crate::queue::{WorkQueue, run_workers};
use crate::selector;

/// How long an eviction's record keeps a pod out of `currentHealthy` (upstream
/// `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);
const NAME: &str = "disruption-controller";
/// The condition type the controller maintains.
pub const CONDITION: &str = "DisruptionAllowed";

/// The scale that expected pods come from: the sum over the selected pods' controllers, and the
/// names of the pods without one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scale {
    /// Sum of the controllers' replicas.
    pub expected: i32,
    /// Pods with no controller.
    pub unmanaged: Vec<String>,
}

/// Whether the budget's numbers need its pods' controllers' scale (`maxUnavailable` or a
/// percentage `minAvailable`).
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.is_some_and(|s| s.max_unavailable.is_some() || matches!(s.min_available, Some(IntOrString::String(_))))
}

/// `(expectedPods, desiredHealthy)` of a budget over `pods` selected pods, with `scale`
/// computing the controllers' scale when the budget needs it (upstream `getExpectedPodCount`).
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: usize,
    scale: impl FnOnce() -> Result<Scale, String>,
) -> Result<(i32, i32, Vec<String>), String> {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let s = scale()?;
        let max = scaled(max, s.expected, true)?;
        return Ok((s.expected, (s.expected - max).max(0), s.unmanaged));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(i)) => Ok((i32::try_from(pods).unwrap_or(i32::MAX), *i, Vec::new())),
        Some(min @ IntOrString::String(_)) => {
            let s = scale()?;
            Ok((s.expected, scaled(min, s.expected, true)?, s.unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The eviction records still pending among `pods`, the earliest moment one of them expires,
/// and the pods whose records expired (upstream `buildDisruptedPodMap`).
pub fn disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut expired = Vec::new();
    let Some(records) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (kept, recheck, expired);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = records.get(&name) else { continue };
        let deadline = at.0 + DELETION_TIMEOUT;
        if deadline < now {
            expired.push(name);
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            kept.insert(name, at.clone());
        }
    }
    (kept, recheck, expired)
}

/// Ready pods that are not terminating and not about to be evicted (upstream
/// `countHealthyPods`).
pub fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("");
            disrupted.get(name).is_none_or(|t| t.0 + DELETION_TIMEOUT <= now)
        })
        .filter(|p| podutil::is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Sets the `DisruptionAllowed` condition as `apimeta.SetStatusCondition` does (the transition
/// time moves only when the status changes).
fn set_condition(
    conds: &mut Vec<Condition>,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    let new = Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: Time(now),
    };
    match conds.iter_mut().find(|c| c.type_ == CONDITION) {
        Some(c) => {
            let since = (c.status == status).then(|| c.last_transition_time.clone());
            *c = new;
            if let Some(t) = since {
                c.last_transition_time = t;
            }
        }
        None => conds.push(new),
    }
}

/// The budget's new status from the computed numbers, or `None` when it is current (upstream
/// `updatePdbStatus`).
pub fn new_status(
    pdb: &PodDisruptionBudget,
    current: i32,
    desired: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let allowed = if expected <= 0 || current - desired <= 0 { 0 } else { current - desired };
    let generation = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.clone().unwrap_or_default();
    let disrupted = (!disrupted.is_empty()).then_some(disrupted);
    let old_disrupted = old.disrupted_pods.clone().filter(|d| !d.is_empty());
    let conditions_current = old.conditions.iter().flatten().any(|c| {
        c.type_ == CONDITION
            && c.observed_generation == Some(old.observed_generation.unwrap_or(0))
            && (c.status == "True") == (old.disruptions_allowed > 0)
    });
    if old.current_healthy == current
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old_disrupted == disrupted
        && old.observed_generation.unwrap_or(0) == generation
        && conditions_current
    {
        return None;
    }
    let mut conditions = old.conditions.unwrap_or_default();
    let (state, reason) = if allowed > 0 { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    set_condition(&mut conditions, state, reason, "", generation, now);
    Some(PodDisruptionBudgetStatus {
        current_healthy: current,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: disrupted,
        observed_generation: Some(generation),
        conditions: Some(conditions),
    })
}

/// The status of a budget whose sync failed (upstream `failSafe`).
pub fn fail_safe(pdb: &PodDisruptionBudget, message: &str, now: Timestamp) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let generation = status.observed_generation.unwrap_or(0);
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(&mut conditions, "False", "SyncFailed", message, generation, now);
    status.conditions = Some(conditions);
    status
}

/// Runs the controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let pdbs: Arc<Informer<PodDisruptionBudget>> = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let queue = WorkQueue::new();
    let q = queue.clone();
    pdbs.on_change(move |_, new| {
        if let Some(p) = new {
            q.add(key_of(p));
        }
    });
    let (q, store) = (queue.clone(), pdbs.store());
    informers.pods.on_change(move |old, new| {
        for pod in [old, new].into_iter().flatten() {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            for pdb in store.state() {
                let selected = pdb
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| selector::matches(sel, pod.metadata.labels.as_ref()));
                if pdb.metadata.namespace.as_deref() == Some(ns) && selected {
                    q.add(key_of(pdb.as_ref()));
                }
            }
        }
    });
    // A scale change moves the expected count of percentage budgets.
    let requeue_ns = |q: Arc<WorkQueue>, store: kube::runtime::reflector::Store<PodDisruptionBudget>| {
        move |ns: Option<&str>| {
            for pdb in store.state().iter().filter(|p| p.metadata.namespace.as_deref() == ns) {
                q.add(key_of(pdb.as_ref()));
            }
        }
    };
    let on_rs = requeue_ns(queue.clone(), pdbs.store());
    informers.replicasets.on_change(move |_, new| on_rs(new.and_then(|o| o.metadata.namespace.as_deref())));
    let on_deploy = requeue_ns(queue.clone(), pdbs.store());
    informers.deployments.on_change(move |_, new| on_deploy(new.and_then(|o| o.metadata.namespace.as_deref())));
    let on_rc = requeue_ns(queue.clone(), pdbs.store());
    informers.replicationcontrollers.on_change(move |_, new| on_rc(new.and_then(|o| o.metadata.namespace.as_deref())));
    let events = Events::new(client.clone(), "controllermanager");
    async move {
        let run = pdbs.clone().run();
        let work = async {
            pdbs.ready().await;
            informers.pods.ready().await;
            informers.replicasets.ready().await;
            informers.deployments.ready().await;
            informers.replicationcontrollers.ready().await;
            let q = queue.clone();
            run_workers(NAME, queue, 2, move |key| {
                let (client, informers, q, pdbs, events) =
                    (client.clone(), informers.clone(), q.clone(), pdbs.clone(), events.clone());
                async move {
                    let Some(pdb) = get(&pdbs.store(), &key) else { return Ok(()) };
                    sync(&client, &informers, &events, &q, &key, &pdb).await
                }
            })
            .await;
        };
        futures::join!(run, work);
    }
}

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

async fn sync(
    client: &kube::Client,
    informers: &SharedInformers,
    events: &Events,
    queue: &Arc<WorkQueue>,
    key: &str,
    pdb: &PodDisruptionBudget,
) -> Result<(), SyncError> {
    let (ns, name) = split_key(key);
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let now = Timestamp::now();
    let all = informers.pods.store().state();
    let pods: Vec<&Pod> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            pdb.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selector::matches(sel, p.metadata.labels.as_ref()))
        })
        .collect();
    if pods.is_empty() {
        events.normal(pdb, "NoPods", "No matching pods found".into()).await;
    }
    let owners_scale = if needs_scale(pdb) { Some(expected_scale(client, informers, &pods).await) } else { None };
    let computed = expected_and_desired(pdb, pods.len(), || owners_scale.unwrap_or_else(|| Ok(Scale::default())));
    let result = match computed {
        Err(e) => {
            events
                .warning(
                    pdb,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                )
                .await;
            Err(e)
        }
        Ok((expected, desired, unmanaged)) => {
            if !unmanaged.is_empty() {
                let sel = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
                events
                    .warning(
                        pdb,
                        "UnmanagedPods",
                        format!(
                            "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                            render_selector(sel)
                        ),
                    )
                    .await;
            }
            let (disrupted, recheck, expired) = disrupted_pods(pdb, &pods, now);
            for pod in pods.iter().filter(|p| expired.iter().any(|e| Some(e.as_str()) == p.metadata.name.as_deref())) {
                events
                    .warning(
                        *pod,
                        "NotDeleted",
                        format!("Pod was expected by PDB {ns}/{name} to be deleted but it wasn't"),
                    )
                    .await;
            }
            let current = count_healthy(&pods, &disrupted, now);
            if let Some(status) = new_status(pdb, current, desired, expected, disrupted, now) {
                write_status(&api, pdb, status).await?;
            }
            if let Some(at) = recheck {
                let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
                queue.add_after(key.to_string(), wait + Duration::from_secs(1));
            }
            Ok(())
        }
    };
    if let Err(message) = result {
        write_status(&api, pdb, fail_safe(pdb, &message, now)).await?;
    }
    Ok(())
}

/// Writes `status` over the budget's, guarded by the resourceVersion it was computed from.
async fn write_status(
    api: &Api<PodDisruptionBudget>,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), kube::Error> {
    let mut new = pdb.clone();
    new.status = Some(status);
    new.metadata.managed_fields = None;
    let name = pdb.metadata.name.as_deref().unwrap_or("");
    match api.replace_status(name, &PostParams::default(), &new).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A selector as Go's `%v` of a `*metav1.LabelSelector` prints it, near enough for the event.
fn render_selector(sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>) -> String {
    let Some(sel) = sel else { return "nil".into() };
    let labels: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}:{v}")).collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{},}},MatchExpressions:[]LabelSelectorRequirement{{}},}}",
        labels.join(",")
    )
}

/// The controller of `pod` and its replicas, looked up as upstream's finders do: the built-in
/// workloads from the informers (a ReplicaSet of a Deployment stands for the Deployment), then
/// any owner through its `/scale`.
async fn controller_scale(
    client: &kube::Client,
    informers: &SharedInformers,
    ns: &str,
    r: &OwnerReference,
) -> Result<Option<(String, i32)>, String> {
    match workload_scale(client, informers, ns, r).await? {
        Some(found) => Ok(Some(found)),
        None => scale::owner_scale(client, ns, r).await,
    }
}

/// The built-in workload `r` names and its replicas, from the informers (the StatefulSet by a
/// read); `None` when `r` is not one or it is missing.
async fn workload_scale(
    client: &kube::Client,
    informers: &SharedInformers,
    ns: &str,
    r: &OwnerReference,
) -> Result<Option<(String, i32)>, String> {
    let key = format!("{ns}/{}", r.name);
    let (group, _) = scale::group_version(&r.api_version)?;
    match (group, r.kind.as_str()) {
        ("apps" | "extensions", "ReplicaSet") => {
            let Some(rs) = get(&informers.replicasets.store(), &key) else { return Ok(None) };
            if rs.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                return Ok(None);
            }
            if let Some(owner) = podutil::controller_ref(&rs.metadata).filter(|o| o.kind == "Deployment") {
                // A Deployment's ReplicaSet counts only through the Deployment (or, when that
                // is gone, through its own `/scale`).
                let Some(d) = get(&informers.deployments.store(), &format!("{ns}/{}", owner.name)) else {
                    return Ok(None);
                };
                if d.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                    return Ok(None);
                }
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((owner.uid.clone(), replicas)));
            }
            Ok(Some((r.uid.clone(), rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))))
        }
        ("", "ReplicationController") => {
            let Some(rc) = get(&informers.replicationcontrollers.store(), &key) else { return Ok(None) };
            if rc.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                return Ok(None);
            }
            Ok(Some((r.uid.clone(), rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))))
        }
        ("apps", "StatefulSet") => match Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(&r.name).await {
            Ok(Some(ss)) if ss.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                Ok(Some((r.uid.clone(), ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(crate::apierr::message(&e)),
        },
        _ => Ok(None),
    }
}

/// Upstream `getExpectedScale`: the sum of the selected pods' controllers' scales.
async fn expected_scale(client: &kube::Client, informers: &SharedInformers, pods: &[&Pod]) -> Result<Scale, String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut out = Scale::default();
    for pod in pods {
        let Some(r) = podutil::controller_ref(&pod.metadata) else {
            out.unmanaged.push(pod.metadata.name.clone().unwrap_or_default());
            continue;
        };
        if scales.contains_key(&r.uid) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        match controller_scale(client, informers, ns, r).await? {
            Some((uid, n)) => {
                scales.insert(r.uid.clone(), 0);
                scales.insert(uid, n);
            }
            None => {
                return Err(format!("found no controllers for pod {:?}", pod.metadata.name.as_deref().unwrap_or("")));
            }
        }
    }
    out.expected = scales.values().sum();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value, status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "b", "namespace": "ns", "generation": 2}, "spec": spec, "status": status}),
        )
        .expect("pdb")
    }

    fn pod(name: &str, ready: bool, deleting: bool) -> Pod {
        let mut meta = json!({"name": name, "namespace": "ns"});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
            .expect("pod")
    }

    fn scale(n: i32) -> impl FnOnce() -> Result<Scale, String> {
        move || Ok(Scale { expected: n, unmanaged: vec![] })
    }

    #[test]
    fn percentages_round_up() {}

    #[test]
    fn expected_and_desired_counts() {
        let min_int = pdb(json!({"minAvailable": 2}), json!({}));
        assert!(!needs_scale(&min_int), "an integer minAvailable counts the selected pods");
        assert_eq!(expected_and_desired(&min_int, 3, || Err("unused".into())), Ok((3, 2, vec![])));
        let min_pct = pdb(json!({"minAvailable": "50%"}), json!({}));
        assert_eq!(expected_and_desired(&min_pct, 1, scale(5)), Ok((5, 3, vec![])));
        let max_int = pdb(json!({"maxUnavailable": 1}), json!({}));
        assert!(needs_scale(&min_pct) && needs_scale(&max_int));
        assert!(!needs_scale(&pdb(json!({}), json!({}))));
        assert_eq!(expected_and_desired(&max_int, 1, scale(4)), Ok((4, 3, vec![])));
        let max_pct = pdb(json!({"maxUnavailable": "30%"}), json!({}));
        assert_eq!(expected_and_desired(&max_pct, 1, scale(5)), Ok((5, 3, vec![])), "30% of 5 rounds up to 2");
        let too_many = pdb(json!({"maxUnavailable": 9}), json!({}));
        assert_eq!(expected_and_desired(&too_many, 1, scale(5)), Ok((5, 0, vec![])));
        assert_eq!(
            expected_and_desired(&max_int, 1, || Err("found no controllers for pod \"p\"".into())),
            Err("found no controllers for pod \"p\"".into())
        );
    }

    #[test]
    fn healthy_pods_exclude_terminating_and_evicted() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        let (a, b, c, d) = (pod("a", true, false), pod("b", true, true), pod("c", false, false), pod("d", true, false));
        let budget = pdb(
            json!({"minAvailable": 1}),
            json!({"disruptedPods": {"d": "2026-01-01T00:00:30Z", "a": "2025-12-31T23:00:00Z"}}),
        );
        let pods = [&a, &b, &c, &d];
        let (kept, recheck, expired) = disrupted_pods(&budget, &pods, now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["d"]);
        assert_eq!(expired, ["a"]);
        assert_eq!(recheck, Some("2026-01-01T00:02:30Z".parse().expect("ts")));
        assert_eq!(count_healthy(&pods, &kept, now), 1, "only a: b terminates, c is unready, d is evicted");
    }

    #[test]
    fn status_and_conditions() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let budget = pdb(json!({"minAvailable": 1}), json!({}));
        let s = new_status(&budget, 3, 1, 3, BTreeMap::new(), now).expect("changed");
        assert_eq!((s.disruptions_allowed, s.observed_generation), (2, Some(2)));
        let cond = &s.conditions.as_ref().expect("conditions")[0];
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "SufficientPods"));
        let mut settled = budget.clone();
        settled.status = Some(s);
        assert_eq!(new_status(&settled, 3, 1, 3, BTreeMap::new(), now), None, "nothing to write");
        let short = new_status(&settled, 1, 1, 3, BTreeMap::new(), now).expect("changed");
        assert_eq!(short.disruptions_allowed, 0);
        assert_eq!(short.conditions.as_ref().expect("c")[0].reason, "InsufficientPods");
        let none_expected = new_status(&budget, 2, 0, 0, BTreeMap::new(), now).expect("changed");
        assert_eq!(none_expected.disruptions_allowed, 0, "no expected pods allows nothing");
        let failed = fail_safe(&settled, "found no controllers for pod \"p\"", now);
        assert_eq!(failed.disruptions_allowed, 0);
        let cond = &failed.conditions.as_ref().expect("c")[0];
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "SyncFailed"));
    }
}
