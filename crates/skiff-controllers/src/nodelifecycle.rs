//! The part of upstream's node lifecycle controller that taints Nodes by condition
//! (`TaintNodesByCondition`): every Node carries exactly the `NoSchedule` taints its conditions
//! call for, so the scheduler keeps new pods off it:
//!
//! | condition | status | taint |
//! |---|---|---|
//! | `Ready` | `False` | `node.kubernetes.io/not-ready` |
//! | `Ready` | `Unknown` | `node.kubernetes.io/unreachable` |
//! | `MemoryPressure` | `True` | `node.kubernetes.io/memory-pressure` |
//! | `DiskPressure` | `True` | `node.kubernetes.io/disk-pressure` |
//! | `PIDPressure` | `True` | `node.kubernetes.io/pid-pressure` |
//! | `NetworkUnavailable` | `True` | `node.kubernetes.io/network-unavailable` |
//! | `spec.unschedulable` | `true` | `node.kubernetes.io/unschedulable` |
//!
//! Taints it adds carry `timeAdded`; taints of other keys or effects are never touched. What
//! does not live here: marking silent Nodes `Unknown` from their Leases and the `NoExecute`
//! taints ([`crate::nodehealth`]), and the eviction of pods from tainted Nodes
//! ([`crate::tainteviction`]).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};

/// The taint effect this controller manages.
const NO_SCHEDULE: &str = "NoSchedule";
/// The taint of an unschedulable (cordoned) Node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The taint key a condition type and status call for (upstream's
/// `nodeConditionToTaintKeyStatusMap`).
pub fn taint_for(condition: &str, status: &str) -> Option<&'static str> {
    match (condition, status) {
        ("Ready", "False") => Some("node.kubernetes.io/not-ready"),
        ("Ready", "Unknown") => Some("node.kubernetes.io/unreachable"),
        ("MemoryPressure", "True") => Some("node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "True") => Some("node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "True") => Some("node.kubernetes.io/pid-pressure"),
        ("NetworkUnavailable", "True") => Some("node.kubernetes.io/network-unavailable"),
        _ => None,
    }
}

/// Whether a taint is one this controller owns.
fn managed(taint: &Taint) -> bool {
    const KEYS: [&str; 7] = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
        UNSCHEDULABLE,
    ];
    taint.effect == NO_SCHEDULE && KEYS.contains(&taint.key.as_str())
}

/// The taint keys `node`'s conditions and `spec.unschedulable` call for.
pub fn wanted_keys(node: &Node) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| taint_for(&c.type_, &c.status))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        keys.push(UNSCHEDULABLE);
    }
    keys.dedup();
    keys
}

/// The taints `node` should have, when they differ from what it has: other taints kept in
/// place, managed ones no longer called for removed, new ones appended with `now` as their
/// `timeAdded`.
pub fn desired_taints(node: &Node, now: &Time) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let wanted = wanted_keys(node);
    let mut taints: Vec<Taint> =
        current.iter().filter(|t| !managed(t) || wanted.contains(&t.key.as_str())).cloned().collect();
    for key in &wanted {
        if !taints.iter().any(|t| t.key == *key && t.effect == NO_SCHEDULE) {
            taints.push(Taint {
                key: (*key).to_string(),
                effect: NO_SCHEDULE.into(),
                time_added: Some(now.clone()),
                value: None,
            });
        }
    }
    (taints != current).then_some(taints)
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(node) | Event::InitApply(node)) => sync(&api, &node).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "node watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Brings one Node's condition taints up to date (a conflict is retried by the next event).
async fn sync(api: &Api<Node>, node: &Node) {
    let Some(name) = node.metadata.name.as_deref() else { return };
    if node.metadata.deletion_timestamp.is_some() {
        return;
    }
    let Some(taints) = desired_taints(node, &Time(jiff::Timestamp::now())) else { return };
    // The whole list, guarded by the resourceVersion it was computed from.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": taints},
    });
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!(node = name, taints = ?wanted_keys(node), "updated the node's condition taints"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(node = name, error = %e, "updating the node's condition taints"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(conditions: &[(&str, &str)], taints: serde_json::Value, unschedulable: bool) -> Node {
        let conditions: Vec<serde_json::Value> =
            conditions.iter().map(|(t, s)| serde_json::json!({"type": t, "status": s})).collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"taints": taints, "unschedulable": unschedulable},
            "status": {"conditions": conditions}
        }))
        .expect("node")
    }

    fn keys(taints: &[Taint]) -> Vec<String> {
        taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect()
    }

    #[test]
    fn conditions_map_to_taints() {
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let healthy = node(
            &[("Ready", "True"), ("MemoryPressure", "False"), ("DiskPressure", "False")],
            serde_json::json!(null),
            false,
        );
        assert_eq!(desired_taints(&healthy, &now), None);
        let pressed = node(
            &[("Ready", "True"), ("MemoryPressure", "True"), ("DiskPressure", "True"), ("PIDPressure", "True")],
            serde_json::json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            false,
        );
        let taints = desired_taints(&pressed, &now).expect("changed");
        assert_eq!(
            keys(&taints),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/memory-pressure:NoSchedule",
                "node.kubernetes.io/disk-pressure:NoSchedule",
                "node.kubernetes.io/pid-pressure:NoSchedule",
            ]
        );
        assert_eq!(taints[1].time_added, Some(now.clone()));
        assert_eq!(taints[0].value.as_deref(), Some("gpu"), "other taints are kept as they are");
        assert_eq!(taint_for("Ready", "False"), Some("node.kubernetes.io/not-ready"));
        assert_eq!(taint_for("Ready", "Unknown"), Some("node.kubernetes.io/unreachable"));
    }

    #[test]
    fn stale_taints_go_and_current_ones_stay() {
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let recovered = node(
            &[("MemoryPressure", "False"), ("DiskPressure", "True")],
            serde_json::json!([
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule", "timeAdded": "2024-01-01T00:00:00Z"},
                {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule", "timeAdded": "2024-01-01T00:00:00Z"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoExecute"}
            ]),
            true,
        );
        let taints = desired_taints(&recovered, &now).expect("changed");
        assert_eq!(
            keys(&taints),
            [
                "node.kubernetes.io/disk-pressure:NoSchedule",
                "node.kubernetes.io/memory-pressure:NoExecute",
                "node.kubernetes.io/unschedulable:NoSchedule",
            ]
        );
        assert_ne!(taints[0].time_added, Some(now), "an existing taint keeps its time");
        let settled = node(&[("DiskPressure", "True")], serde_json::to_value(&taints).expect("json"), true);
        assert_eq!(desired_taints(&settled, &Time(jiff::Timestamp::UNIX_EPOCH)), None);
    }
}
