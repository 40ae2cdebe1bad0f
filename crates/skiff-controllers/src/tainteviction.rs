//! The taint eviction controller (upstream's `TaintEvictionController`): pods bound to a Node
//! with `NoExecute` taints are deleted when they do not tolerate every one of them (at once) or
//! when the shortest `tolerationSeconds` of the tolerations they use has passed since this
//! controller first saw them there (a toleration without `tolerationSeconds` keeps the pod for
//! good). Before the delete the pod gets a `TaintManagerEviction` event ("Marking for deletion
//! Pod ns/name") and the `DisruptionTarget` condition (`DeletionByTaintManager`); a pod whose
//! taints go away before its time gets "Cancelling deletion of Pod ns/name".
//!
//! What does not live here: tainting Nodes ([`crate::nodehealth`], [`crate::nodelifecycle`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;

use crate::events::Events;
use crate::informer::{Informer, SharedInformers};

const NO_EXECUTE: &str = "NoExecute";
/// How often the controller looks at tainted Nodes' pods.
const PERIOD: Duration = Duration::from_millis(500);

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// What to do with a pod on a Node with `NoExecute` taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It tolerates them for good.
    Keep,
    /// Delete it now.
    Evict,
    /// Delete it this long after it was first seen there.
    After(Duration),
}

/// The verdict for a pod with `tolerations` on a Node with `taints` (only `NoExecute` ones
/// count), as upstream's `getMatchingTolerations` and `getMinTolerationTime`.
pub fn verdict(taints: &[Taint], tolerations: &[Toleration]) -> Verdict {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    if taints.is_empty() {
        return Verdict::Keep;
    }
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in &taints {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Verdict::Evict;
        }
        used.extend(matching);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(secs) = t.toleration_seconds {
            if secs <= 0 {
                return Verdict::Evict;
            }
            min = Some(min.map_or(secs, |m| m.min(secs)));
        }
    }
    match min {
        None => Verdict::Keep,
        Some(s) => Verdict::After(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    }
}

/// The `DisruptionTarget` condition of a pod the taint manager deletes.
fn disruption_target(now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(now),
    })
}

/// Runs the controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let nodes: Arc<Informer<Node>> = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let events = Events::new(client.clone(), "taint-eviction-controller");
    async move {
        let work = async {
            nodes.ready().await;
            informers.pods.ready().await;
            // Pod uid → (namespace/name, first seen on a tainted node).
            let mut scheduled: HashMap<String, (String, Instant)> = HashMap::new();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                pass(&client, &events, &nodes, &informers, &mut scheduled).await;
            }
        };
        futures::join!(nodes.clone().run(), work);
    }
}

async fn pass(
    client: &kube::Client,
    events: &Events,
    nodes: &Informer<Node>,
    informers: &SharedInformers,
    scheduled: &mut HashMap<String, (String, Instant)>,
) {
    let tainted: HashMap<String, Vec<Taint>> = nodes
        .store()
        .state()
        .iter()
        .filter_map(|n| {
            let taints: Vec<Taint> =
                n.spec.as_ref()?.taints.iter().flatten().filter(|t| t.effect == NO_EXECUTE).cloned().collect();
            (!taints.is_empty()).then(|| (n.metadata.name.clone().unwrap_or_default(), taints))
        })
        .collect();
    if tainted.is_empty() && scheduled.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut still: HashMap<String, (String, Instant)> = HashMap::new();
    for pod in informers.pods.store().state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
        let Some(taints) = tainted.get(node) else { continue };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        let since = scheduled.get(&uid).map_or(now, |(_, at)| *at);
        let due = match verdict(taints, &tolerations) {
            Verdict::Keep => continue,
            Verdict::Evict => true,
            Verdict::After(d) => now.saturating_duration_since(since) >= d,
        };
        if due {
            evict(client, events, &pod, &key).await;
            scheduled.remove(&uid);
        } else {
            still.insert(uid, (key, since));
        }
    }
    for (uid, (key, _)) in scheduled.iter() {
        if !still.contains_key(uid)
            && let Some(pod) =
                informers.pods.store().state().into_iter().find(|p| p.metadata.uid.as_deref() == Some(uid))
            && pod.metadata.deletion_timestamp.is_none()
        {
            events.normal(pod.as_ref(), "TaintManagerEviction", format!("Cancelling deletion of Pod {key}")).await;
        }
    }
    *scheduled = still;
}

/// Upstream `addConditionAndDeletePod` with the event before it.
async fn evict(client: &kube::Client, events: &Events, pod: &Pod, key: &str) {
    events.normal(pod, "TaintManagerEviction", format!("Marking for deletion Pod {key}")).await;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut conds: Vec<serde_json::Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_ != "DisruptionTarget")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conds.push(disruption_target(Timestamp::now()));
    let patch = serde_json::json!({"status": {"conditions": conds}});
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::debug!(pod = key, error = %e, "cannot add the DisruptionTarget condition");
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::info!(pod = key, "deleted a pod from a NoExecute-tainted node"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(pod = key, error = %e, "cannot delete a pod from a NoExecute-tainted node"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taints(v: serde_json::Value) -> Vec<Taint> {
        serde_json::from_value(v).expect("taints")
    }

    fn tolerations(v: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(v).expect("tolerations")
    }

    #[test]
    fn toleration_times() {
        let unreachable = taints(json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]));
        assert_eq!(verdict(&unreachable, &[]), Verdict::Evict);
        let defaults = tolerations(json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]));
        assert_eq!(verdict(&unreachable, &defaults), Verdict::After(Duration::from_secs(300)));
        let mut short = defaults.clone();
        short.push(
            tolerations(json!([{"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}])).remove(0),
        );
        assert_eq!(verdict(&unreachable, &short), Verdict::After(Duration::from_secs(5)), "the shortest matching one");
        let forever = tolerations(json!([{"operator": "Exists"}]));
        assert_eq!(verdict(&unreachable, &forever), Verdict::Keep);
        let zero = tolerations(
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 0}]),
        );
        assert_eq!(verdict(&unreachable, &zero), Verdict::Evict);
        let two = taints(json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "dedicated", "value": "db", "effect": "NoExecute"}
        ]));
        assert_eq!(verdict(&two, &defaults), Verdict::Evict, "one untolerated taint is enough");
        let db = tolerations(json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]));
        let mut both = defaults.clone();
        both.extend(db);
        assert_eq!(verdict(&two, &both), Verdict::After(Duration::from_secs(300)));
        let no_schedule = taints(json!([{"key": "x", "effect": "NoSchedule"}]));
        assert_eq!(verdict(&no_schedule, &[]), Verdict::Keep, "only NoExecute taints evict");
    }

    #[test]
    fn toleration_matching() {
        let taint = taints(json!([{"key": "k", "value": "v", "effect": "NoExecute"}])).remove(0);
        let t = |v: serde_json::Value| serde_json::from_value::<Toleration>(v).expect("toleration");
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(tolerates(&t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})), &taint));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
    }
}
