//! Node health monitoring, the part of upstream's node lifecycle controller that watches
//! heartbeats (`monitorNodeHealth`) and taints for eviction (`doNoExecuteTaintingPass`):
//! - a Node whose Lease in `kube-node-lease` (or `Ready` heartbeat) has not moved for the grace
//!   period (`--node-monitor-grace-period`, 40 s) gets `Ready`, `MemoryPressure`, `DiskPressure`
//!   and `PIDPressure` set to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node
//!   status."; `NodeStatusNeverUpdated` for conditions it never posted); staleness is measured
//!   on this process's clock from when a change was last observed, as upstream does;
//! - when a Node stops being Ready it gets a `NodeNotReady` event and its pods' `Ready`
//!   conditions turn `False` (upstream `MarkPodsNotReady`, with a `NodeNotReady` event each);
//! - a Node whose `Ready` is `False` carries `node.kubernetes.io/not-ready:NoExecute`, one whose
//!   `Ready` is `Unknown` `node.kubernetes.io/unreachable:NoExecute`; adding a taint is limited
//!   per zone (`--node-eviction-rate`, 0.1 node/s; none in a partially disrupted zone of at most
//!   50 Nodes, 0.01/s in larger ones), swapping one for the other or removing them is not; when
//!   every zone is fully disrupted (no Ready Node at all) no Node is tainted and the taints go.
//!
//! What does not live here: the `NoSchedule` condition taints ([`crate::nodelifecycle`]) and
//! deleting pods from tainted Nodes ([`crate::tainteviction`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

use crate::events::Events;
use crate::informer::{Informer, SharedInformers};

/// The `NoExecute` taint of a Node whose `Ready` is `False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The `NoExecute` taint of a Node whose `Ready` is `Unknown`.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NO_EXECUTE: &str = "NoExecute";
/// The conditions set to `Unknown` on a silent Node.
const CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// Zones with more Nodes than this keep a slow eviction rate when partially disrupted.
const LARGE_CLUSTER: usize = 50;
/// Share of not-ready Nodes from which a zone is partially disrupted.
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;

/// Settings of node health monitoring.
#[derive(Debug, Clone, Copy)]
pub struct NodeHealthConfig {
    /// How long a Node may stay silent before it is `Unknown` (upstream 40 s).
    pub grace_period: Duration,
    /// Nodes tainted for eviction per second and zone (upstream 0.1).
    pub eviction_rate: f64,
}

impl Default for NodeHealthConfig {
    fn default() -> Self {
        Self { grace_period: Duration::from_secs(40), eviction_rate: 0.1 }
    }
}

impl NodeHealthConfig {
    /// How often Nodes are checked: upstream's 5 s, shorter for short grace periods.
    pub fn monitor_period(&self) -> Duration {
        (self.grace_period / 8).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }
}

/// What was last heard from a Node and when this process noticed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    heartbeat: String,
    seen: Instant,
}

impl Probe {
    /// A probe first observed at `now`.
    pub fn new(heartbeat: String, now: Instant) -> Self {
        Self { heartbeat, seen: now }
    }

    /// Records the heartbeat observed at `now` (the clock restarts only when it moved).
    pub fn observe(&mut self, heartbeat: String, now: Instant) {
        if heartbeat != self.heartbeat {
            self.heartbeat = heartbeat;
            self.seen = now;
        }
    }

    /// Whether nothing moved for longer than `grace` at `now`.
    pub fn stale(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.seen) > grace
    }
}

/// The heartbeat of a Node: its Lease's `renewTime` and its `Ready` condition's heartbeat.
pub fn heartbeat(node: &Node, lease: Option<&Lease>) -> String {
    let renew = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string());
    let ready = condition(node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0.to_string());
    format!("{}|{}", renew.unwrap_or_default(), ready.unwrap_or_default())
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// The `Ready` status of a Node (`Unknown` when it has none).
pub fn ready_status(node: &Node) -> &str {
    condition(node, "Ready").map_or("Unknown", |c| c.status.as_str())
}

/// The conditions of a silent Node, when any of them still needs to become `Unknown`.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conds = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    for type_ in CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conds.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(Time(now)),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

/// The `NoExecute` taint key a Node's `Ready` status calls for.
pub fn wanted_no_execute(node: &Node) -> Option<&'static str> {
    match ready_status(node) {
        "False" => Some(NOT_READY),
        "Unknown" => Some(UNREACHABLE),
        _ => None,
    }
}

fn is_ours(t: &Taint) -> bool {
    t.effect == NO_EXECUTE && (t.key == NOT_READY || t.key == UNREACHABLE)
}

/// The `NoExecute` taint key of ours a Node carries.
pub fn current_no_execute(node: &Node) -> Option<&str> {
    node.spec.as_ref()?.taints.as_ref()?.iter().find(|t| is_ours(t)).map(|t| t.key.as_str())
}

/// The Node's taints with our `NoExecute` taint set to `wanted` (other taints in place), when
/// they differ.
pub fn with_no_execute(node: &Node, wanted: Option<&str>, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let mut taints: Vec<Taint> =
        current.iter().filter(|t| !is_ours(t) || Some(t.key.as_str()) == wanted).cloned().collect();
    if let Some(key) = wanted
        && !taints.iter().any(|t| is_ours(t) && t.key == key)
    {
        taints.push(Taint { key: key.into(), effect: NO_EXECUTE.into(), time_added: Some(Time(now)), value: None });
    }
    (taints != current).then_some(taints)
}

/// Upstream's zone states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Few Nodes are not ready.
    Normal,
    /// More than two and at least 55 % of the Nodes are not ready.
    PartialDisruption,
    /// No Node is ready.
    FullDisruption,
}

/// Upstream `ComputeZoneState`.
pub fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Nodes tainted per second in a zone of `size` Nodes in `state`.
pub fn zone_rate(state: ZoneState, size: usize, normal: f64) -> f64 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => normal,
        ZoneState::PartialDisruption if size > LARGE_CLUSTER => normal / 10.0,
        ZoneState::PartialDisruption => 0.0,
    }
}

/// Upstream `GetZoneKey`: region and zone labels.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let label = |a: &str, b: &str| labels.and_then(|l| l.get(a).or_else(|| l.get(b))).cloned().unwrap_or_default();
    let region = label("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region");
    let zone = label("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone");
    format!("{region}:\u{0}:{zone}")
}

/// A token bucket of burst one: one taint per `1/rate` seconds.
#[derive(Debug, Default)]
struct Limiter {
    last: Option<Instant>,
}

impl Limiter {
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let ok = self.last.is_none_or(|l| now.saturating_duration_since(l).as_secs_f64() >= 1.0 / rate);
        if ok {
            self.last = Some(now);
        }
        ok
    }
}

/// The pod's `Ready` condition turned `False`, when it was not already (upstream
/// `MarkPodsNotReady` through `UpdatePodCondition`).
pub fn not_ready_conditions(pod: &Pod, now: Timestamp) -> Option<Vec<PodCondition>> {
    let mut conds = pod.status.as_ref()?.conditions.clone()?;
    let c = conds.iter_mut().find(|c| c.type_ == "Ready")?;
    if c.status == "False" {
        return None;
    }
    c.status = "False".into();
    c.last_transition_time = Some(Time(now));
    Some(conds)
}

struct Monitor {
    client: kube::Client,
    cfg: NodeHealthConfig,
    probes: HashMap<String, Probe>,
    last_ready: HashMap<String, String>,
    retry_pods: HashMap<String, bool>,
    limiters: HashMap<String, Limiter>,
    events: Events,
}

/// Runs node health monitoring until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
    cfg: NodeHealthConfig,
) -> impl std::future::Future<Output = ()> + Send {
    let nodes: Arc<Informer<Node>> = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let leases: Arc<Informer<Lease>> =
        Informer::new(Api::namespaced(client.clone(), "kube-node-lease"), watcher::Config::default());
    let events = Events::new(client.clone(), "node-controller");
    let mut monitor = Monitor {
        client,
        cfg,
        probes: HashMap::new(),
        last_ready: HashMap::new(),
        retry_pods: HashMap::new(),
        limiters: HashMap::new(),
        events,
    };
    async move {
        let work = async {
            nodes.ready().await;
            leases.ready().await;
            informers.pods.ready().await;
            let mut tick = tokio::time::interval(cfg.monitor_period());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                monitor.pass(&nodes, &leases, &informers).await;
            }
        };
        futures::join!(nodes.clone().run(), leases.clone().run(), work);
    }
}

impl Monitor {
    async fn pass(&mut self, nodes: &Informer<Node>, leases: &Informer<Lease>, informers: &SharedInformers) {
        let now = Instant::now();
        let all = nodes.store().state();
        let lease_store = leases.store();
        let leases: HashMap<String, Arc<Lease>> =
            lease_store.state().into_iter().map(|l| (l.metadata.name.clone().unwrap_or_default(), l)).collect();
        self.probes.retain(|n, _| all.iter().any(|x| x.metadata.name.as_deref() == Some(n)));
        let mut observed: Vec<Node> = Vec::with_capacity(all.len());
        for node in &all {
            let Some(name) = node.metadata.name.clone() else { continue };
            let beat = heartbeat(node, leases.get(&name).map(AsRef::as_ref));
            let probe = self.probes.entry(name.clone()).or_insert_with(|| Probe::new(beat.clone(), now));
            probe.observe(beat, now);
            let mut node = node.as_ref().clone();
            if probe.stale(now, self.cfg.grace_period)
                && node.metadata.deletion_timestamp.is_none()
                && let Some(conds) = unknown_conditions(&node, Timestamp::now())
            {
                let mut updated = node.clone();
                if let Some(status) = updated.status.as_mut() {
                    status.conditions = Some(conds);
                } else {
                    updated.status =
                        Some(k8s_openapi::api::core::v1::NodeStatus { conditions: Some(conds), ..Default::default() });
                }
                updated.metadata.managed_fields = None;
                let api: Api<Node> = Api::all(self.client.clone());
                match api.replace_status(&name, &PostParams::default(), &updated).await {
                    Ok(n) => {
                        tracing::info!(node = %name, "node stopped posting status; conditions set to Unknown");
                        node = n;
                    }
                    Err(e) => {
                        tracing::debug!(node = %name, error = %e, "cannot mark the node Unknown; retrying");
                        continue;
                    }
                }
            }
            self.ready_transition(&node, informers).await;
            observed.push(node);
        }
        self.last_ready.retain(|n, _| observed.iter().any(|x| x.metadata.name.as_deref() == Some(n)));
        self.taint_pass(&observed, now).await;
    }

    /// Records a Node's `Ready` change; a Node that stops being Ready gets its event and its
    /// pods marked not ready.
    async fn ready_transition(&mut self, node: &Node, informers: &SharedInformers) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = ready_status(node).to_string();
        let before = self.last_ready.insert(name.clone(), status.clone());
        let became_not_ready = before.as_deref() == Some("True") && status != "True";
        let retry = self.retry_pods.get(&name).copied().unwrap_or(false) && status != "True";
        if became_not_ready {
            self.events.normal(node, "NodeNotReady", format!("Node {name} status is now: NodeNotReady")).await;
        }
        if !(became_not_ready || retry) {
            self.retry_pods.remove(&name);
            return;
        }
        let mut failed = false;
        let pods = informers.pods.store().state();
        for pod in pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())) {
            let Some(conds) = not_ready_conditions(pod, Timestamp::now()) else { continue };
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conds},
            });
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            match api.patch_status(pod_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => self.events.warning(pod.as_ref(), "NodeNotReady", "Node is not ready".into()).await,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::debug!(pod = pod_name, error = %e, "cannot mark the pod not ready; retrying");
                    failed = true;
                }
            }
        }
        self.retry_pods.insert(name, failed);
    }

    /// Brings every Node's `NoExecute` taint in line with its `Ready` status, rate-limited per
    /// zone.
    async fn taint_pass(&mut self, nodes: &[Node], now: Instant) {
        let mut zones: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for node in nodes {
            let entry = zones.entry(zone_key(node)).or_default();
            if ready_status(node) == "True" {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        let states: BTreeMap<&String, ZoneState> = zones.iter().map(|(z, (r, n))| (z, zone_state(*r, *n))).collect();
        let all_disrupted = !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption);
        for node in nodes {
            if node.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let wanted = if all_disrupted { None } else { wanted_no_execute(node) };
            let current = current_no_execute(node);
            if wanted == current {
                continue;
            }
            // Adding a first taint is rate-limited; swapping and removing are not.
            if current.is_none() && wanted.is_some() {
                let zone = zone_key(node);
                let (r, n) = zones.get(&zone).copied().unwrap_or_default();
                let rate = zone_rate(zone_state(r, n), r + n, self.cfg.eviction_rate);
                if !self.limiters.entry(zone).or_default().take(rate, now) {
                    continue;
                }
            }
            let Some(taints) = with_no_execute(node, wanted, Timestamp::now()) else { continue };
            let name = node.metadata.name.as_deref().unwrap_or("");
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            let api: Api<Node> = Api::all(self.client.clone());
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => tracing::info!(node = name, taint = ?wanted, "updated the node's NoExecute taint"),
                Err(e) => {
                    // Retried by the next pass; the limiter's token is spent as upstream's queue would.
                    tracing::debug!(node = name, error = %e, "cannot update the node's NoExecute taint");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: Option<&str>, taints: serde_json::Value) -> Node {
        let conditions: Vec<serde_json::Value> = ready
            .map(|s| json!({"type": "Ready", "status": s, "reason": "KubeletReady", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}))
            .into_iter()
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"taints": taints}, "status": {"conditions": conditions}}),
        )
        .expect("node")
    }

    #[test]
    fn leases_go_stale_after_the_grace_period() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(40);
        let mut probe = Probe::new("a".into(), t0);
        assert!(!probe.stale(t0 + Duration::from_secs(40), grace));
        assert!(probe.stale(t0 + Duration::from_secs(41), grace));
        probe.observe("a".into(), t0 + Duration::from_secs(30));
        assert!(probe.stale(t0 + Duration::from_secs(41), grace), "an unchanged heartbeat does not count");
        probe.observe("b".into(), t0 + Duration::from_secs(30));
        assert!(!probe.stale(t0 + Duration::from_secs(41), grace));
        assert!(probe.stale(t0 + Duration::from_secs(71), grace));
    }

    #[test]
    fn silent_nodes_become_unknown() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        let conds = unknown_conditions(&node(Some("True"), json!(null)), now).expect("changed");
        let ready = conds.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_heartbeat_time, Some(Time("2026-01-01T00:00:00Z".parse().expect("ts"))));
        let memory = conds.iter().find(|c| c.type_ == "MemoryPressure").expect("memory");
        assert_eq!(memory.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(memory.message.as_deref(), Some("Kubelet never posted node status."));
        let mut settled = node(None, json!(null));
        settled.status.as_mut().expect("status").conditions = Some(conds);
        assert_eq!(unknown_conditions(&settled, now), None);
    }

    #[test]
    fn no_execute_taints_follow_ready() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        let lost = node(Some("Unknown"), json!([{"key": "dedicated", "effect": "NoSchedule"}]));
        assert_eq!(wanted_no_execute(&lost), Some(UNREACHABLE));
        let taints = with_no_execute(&lost, wanted_no_execute(&lost), now).expect("changed");
        assert_eq!(taints.len(), 2);
        assert_eq!((taints[1].key.as_str(), taints[1].effect.as_str()), (UNREACHABLE, "NoExecute"));
        let failing = node(Some("False"), serde_json::to_value(&taints).expect("json"));
        assert_eq!(current_no_execute(&failing), Some(UNREACHABLE));
        let swapped = with_no_execute(&failing, wanted_no_execute(&failing), now).expect("changed");
        assert_eq!(swapped.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["dedicated", NOT_READY]);
        let healthy = node(Some("True"), serde_json::to_value(&swapped).expect("json"));
        assert_eq!(with_no_execute(&healthy, wanted_no_execute(&healthy), now).expect("changed").len(), 1);
    }

    #[test]
    fn zones_and_rates() {
        assert_eq!(zone_state(0, 1), ZoneState::FullDisruption);
        assert_eq!(zone_state(1, 1), ZoneState::Normal);
        assert_eq!(zone_state(2, 2), ZoneState::Normal, "two not-ready nodes are never a disruption");
        assert_eq!(zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(zone_state(10, 3), ZoneState::Normal);
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 10, 0.1), 0.0);
        assert!((zone_rate(ZoneState::PartialDisruption, 60, 0.1) - 0.01).abs() < 1e-9);
        let mut limiter = Limiter::default();
        let t0 = Instant::now();
        assert!(limiter.take(0.1, t0));
        assert!(!limiter.take(0.1, t0 + Duration::from_secs(5)));
        assert!(limiter.take(0.1, t0 + Duration::from_secs(10)));
        assert!(!Limiter::default().take(0.0, t0));
    }

    #[test]
    fn pods_are_marked_not_ready_once() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        let pod: Pod = serde_json::from_value(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}})).expect("pod");
        let conds = not_ready_conditions(&pod, now).expect("changed");
        assert_eq!(conds[0].status, "False");
        assert_eq!(conds[1].status, "True");
        let mut marked = pod.clone();
        marked.status.as_mut().expect("status").conditions = Some(conds);
        assert_eq!(not_ready_conditions(&marked, now), None);
    }
}
