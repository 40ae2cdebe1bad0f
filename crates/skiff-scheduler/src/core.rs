//! The scheduling thread: it owns the cache, the queue, the nominator and the objects, applies
//! informer events between scheduling cycles (so a cycle sees a consistent cluster without
//! copying it), and runs one cycle per popped pod: schedule, then assume the pod on its node and
//! hand the binding to the writer (upstream's asynchronous binding cycle), or record the failure
//! (event, `PodScheduled=False` condition, unschedulable pool) after trying preemption.
//!
//! It is a plain OS thread: cycles are CPU-bound and must not stall the async runtime that
//! serves the informers and writers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::binder::{Request, VolumeBinding};
use crate::cache::Cache;
use crate::events::{PodEvent, Recorder};
use crate::framework::Profile;
use crate::framework::status::truncate_message;
use crate::hints::{self, ClusterEvent};
use crate::model::{NodeSpec, PodInfo};
use crate::nominator::Nominator;
use crate::objects::{Claim, Class, Objects, Pdb, Volume, WorkloadSelector};
use crate::plugins::volume_binding;
use crate::preemption;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::schedule::{Algorithm, CycleState, Failure};

/// One informer event.
#[derive(Debug)]
pub enum Watch<T> {
    /// A (re)list starts.
    Init,
    /// An object exists (listed, added or modified).
    Apply(T),
    /// An object was deleted.
    Delete(T),
    /// The (re)list is complete: objects not seen since `Init` are gone.
    InitDone,
}

/// (namespace, name).
pub type NamespacedName = (String, String);
/// A Service's pod selector (`None`: it selects nothing).
pub type ServiceSelector = Option<BTreeMap<String, String>>;

/// What the scheduling thread receives.
#[derive(Debug)]
pub enum Input {
    /// Nodes.
    Nodes(Watch<Box<NodeSpec>>),
    /// Pods.
    Pods(Watch<Box<PodInfo>>),
    /// Namespaces: name and labels.
    Namespaces(Watch<(String, BTreeMap<String, String>)>),
    /// Claims by (namespace, name).
    Claims(Watch<((String, String), Claim)>),
    /// Volumes by name.
    Volumes(Watch<(String, Volume)>),
    /// Storage classes by name.
    Classes(Watch<(String, Class)>),
    /// Services by (namespace, name), with their selector (`None`: selects nothing).
    Services(Watch<(NamespacedName, ServiceSelector)>),
    /// Workloads by (kind, namespace, name).
    Workloads(Watch<((String, String, String), WorkloadSelector)>),
    /// PodDisruptionBudgets by (namespace, name).
    Pdbs(Watch<((String, String), Pdb)>),
    /// A binding finished.
    BindResult {
        /// The pod.
        uid: String,
        /// The node it was bound to.
        node: String,
        /// `Err` with the reason when the binding failed.
        result: Result<(), String>,
    },
    /// Stop the thread.
    Stop,
}

/// Counters the scheduling thread keeps (read by `skiff bench scheduler` and logs).
#[derive(Debug, Default)]
pub struct Stats {
    /// Pods assumed on a node.
    pub scheduled: AtomicU64,
    /// Bindings that succeeded.
    pub bound: AtomicU64,
    /// Failed attempts.
    pub failed: AtomicU64,
    /// Scheduling attempts.
    pub attempts: AtomicU64,
    /// Nanoseconds spent in scheduling cycles.
    pub cycle_nanos: AtomicU64,
}

/// Which informers finished their first list.
#[derive(Debug, Default)]
struct Synced {
    nodes: bool,
    pods: bool,
}

/// The scheduling thread's state.
pub struct Core {
    cache: Cache,
    queue: SchedulingQueue,
    nominator: Nominator,
    objects: Objects,
    algorithm: Algorithm,
    profiles: Vec<Arc<Profile>>,
    writer: UnboundedSender<Request>,
    recorder: Recorder,
    leader: Arc<AtomicBool>,
    stats: Arc<Stats>,
    synced: Synced,
    relist_nodes: Option<HashSet<String>>,
    relist_pods: Option<HashSet<String>>,
    last_flush: Instant,
    last_report: (Instant, u64, u64),
}

impl Core {
    /// A new core.
    pub fn new(
        profiles: Vec<Profile>,
        percentage_of_nodes_to_score: i32,
        writer: UnboundedSender<Request>,
        recorder: Recorder,
        leader: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            cache: Cache::new(),
            queue: SchedulingQueue::new(),
            nominator: Nominator::default(),
            objects: Objects::default(),
            algorithm: Algorithm::new(percentage_of_nodes_to_score),
            profiles: profiles.into_iter().map(Arc::new).collect(),
            writer,
            recorder,
            leader,
            stats,
            synced: Synced::default(),
            relist_nodes: None,
            relist_pods: None,
            last_flush: Instant::now(),
            last_report: (Instant::now(), 0, 0),
        }
    }

    /// Runs until [`Input::Stop`] or until every sender is gone.
    pub fn run(mut self, rx: Receiver<Input>) {
        loop {
            // Apply everything pending before the next cycle (bounded, to keep cycles flowing).
            for _ in 0..20_000 {
                match rx.try_recv() {
                    Ok(Input::Stop) => return,
                    Ok(input) => self.apply(input),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now.duration_since(self.last_flush) >= Duration::from_secs(30) {
                self.queue.flush_unschedulable(now);
                self.cache.evict_idle();
                self.last_flush = now;
            }
            self.report(now);
            let may_schedule = self.synced.nodes && self.synced.pods && self.leader.load(Ordering::Relaxed);
            if may_schedule && let Some(pod) = self.queue.pop(now) {
                self.schedule_one(pod);
                continue;
            }
            let wait = self
                .queue
                .next_backoff()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(input) => self.apply(input),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Logs throughput and how busy the scheduling thread was, every 10 s of activity.
    fn report(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.last_report.0);
        if elapsed < Duration::from_secs(10) {
            return;
        }
        let attempts = self.stats.attempts.load(Ordering::Relaxed);
        let busy = self.stats.cycle_nanos.load(Ordering::Relaxed);
        if attempts != self.last_report.1 {
            tracing::debug!(
                attempts_per_s = (attempts - self.last_report.1) as f64 / elapsed.as_secs_f64(),
                busy_percent = (busy - self.last_report.2) as f64 / elapsed.as_nanos() as f64 * 100.0,
                scheduled = self.stats.scheduled.load(Ordering::Relaxed),
                bound = self.stats.bound.load(Ordering::Relaxed),
                queued = self.queue.len(),
                placed = self.cache.num_pods(),
                "scheduler activity"
            );
        }
        self.last_report = (now, attempts, busy);
    }

    fn profile_index(&self, scheduler_name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.scheduler_name == scheduler_name)
    }

    fn event(&mut self, ev: ClusterEvent<'_>) {
        let plugins = hints::interested(&ev);
        self.queue.on_event(plugins, Instant::now(), |plugin, pod| hints::hint(plugin, pod, &ev));
    }

    /// Applies one input to the cache, queue and objects.
    pub fn apply(&mut self, input: Input) {
        match input {
            Input::Nodes(w) => self.on_node(w),
            Input::Pods(w) => self.on_pod(w),
            Input::Namespaces(w) => match w {
                Watch::Apply((name, labels)) => {
                    if self.cache.set_namespace(&name, labels) {
                        self.event(ClusterEvent::Namespace);
                    }
                }
                Watch::Delete((name, _)) => self.cache.remove_namespace(&name),
                Watch::Init | Watch::InitDone => {}
            },
            Input::Claims(w) => {
                if apply_keyed(&mut self.objects.claims, w) {
                    self.event(ClusterEvent::Storage);
                }
            }
            Input::Volumes(w) => {
                if apply_keyed(&mut self.objects.volumes, w) {
                    self.event(ClusterEvent::Storage);
                }
            }
            Input::Classes(w) => {
                if apply_keyed(&mut self.objects.classes, w) {
                    self.event(ClusterEvent::Storage);
                }
            }
            Input::Services(w) => {
                match w {
                    Watch::Apply(((ns, name), Some(sel))) => {
                        self.objects.services.entry(ns).or_default().insert(name, sel);
                    }
                    Watch::Apply(((ns, name), None)) | Watch::Delete(((ns, name), _)) => {
                        if let Some(m) = self.objects.services.get_mut(&ns) {
                            m.remove(&name);
                        }
                    }
                    Watch::Init | Watch::InitDone => return,
                }
                self.event(ClusterEvent::Workload);
            }
            Input::Workloads(w) => {
                if apply_keyed(&mut self.objects.workloads, w) {
                    self.event(ClusterEvent::Workload);
                }
            }
            Input::Pdbs(w) => {
                if apply_keyed(&mut self.objects.pdb_by_name, w) {
                    self.objects.pdbs = self.objects.pdb_by_name.values().cloned().collect();
                }
            }
            Input::BindResult { uid, node, result } => self.on_bind_result(uid, node, result),
            Input::Stop => {}
        }
    }

    fn on_node(&mut self, w: Watch<Box<NodeSpec>>) {
        match w {
            Watch::Init => self.relist_nodes = Some(HashSet::new()),
            Watch::InitDone => {
                if let Some(seen) = self.relist_nodes.take() {
                    let gone: Vec<String> = self
                        .cache
                        .node_order()
                        .iter()
                        .map(|&s| self.cache.nodes[s].name().to_string())
                        .filter(|n| !seen.contains(n))
                        .collect();
                    for name in gone {
                        self.cache.remove_node(&name);
                        self.event(ClusterEvent::NodeDelete);
                    }
                }
                self.synced.nodes = true;
            }
            Watch::Apply(spec) => {
                if let Some(seen) = self.relist_nodes.as_mut() {
                    seen.insert(spec.name.clone());
                }
                let new = (*spec).clone();
                match self.cache.upsert_node(*spec) {
                    None => self.event(ClusterEvent::NodeAdd(&new)),
                    Some(old) if *old != new => self.event(ClusterEvent::NodeUpdate(&old, &new)),
                    Some(_) => {}
                }
            }
            Watch::Delete(spec) => {
                if self.cache.remove_node(&spec.name).is_some() {
                    self.event(ClusterEvent::NodeDelete);
                }
            }
        }
    }

    fn on_pod(&mut self, w: Watch<Box<PodInfo>>) {
        match w {
            Watch::Init => self.relist_pods = Some(HashSet::new()),
            Watch::InitDone => {
                if let Some(seen) = self.relist_pods.take() {
                    let placed: Vec<String> =
                        self.cache.pods().map(|(p, _)| p.uid.clone()).filter(|u| !seen.contains(u)).collect();
                    for uid in placed {
                        if let Some(p) = self.cache.remove_pod(&uid) {
                            self.event(ClusterEvent::AssignedPodDelete(&p));
                        }
                    }
                }
                self.synced.pods = true;
            }
            Watch::Apply(pod) => {
                if let Some(seen) = self.relist_pods.as_mut() {
                    seen.insert(pod.uid.clone());
                }
                self.apply_pod(*pod);
            }
            Watch::Delete(pod) => self.delete_pod(&pod.uid),
        }
    }

    fn delete_pod(&mut self, uid: &str) {
        self.queue.delete(uid);
        self.nominator.remove(uid);
        if let Some(p) = self.cache.remove_pod(uid) {
            self.event(ClusterEvent::AssignedPodDelete(&p));
        }
    }

    fn apply_pod(&mut self, pod: PodInfo) {
        let pod = Arc::new(pod);
        if !pod.node_name.is_empty() {
            self.queue.delete(&pod.uid);
            self.nominator.remove(&pod.uid);
            if pod.is_finished() {
                self.delete_pod(&pod.uid);
                return;
            }
            let old = self.cache.pod(&pod.uid).map(|(p, assumed)| (p.clone(), assumed));
            self.cache.add_pod(pod.clone(), false);
            match old {
                Some((o, false)) => self.event(ClusterEvent::AssignedPodUpdate(&o, &pod)),
                _ => self.event(ClusterEvent::AssignedPodAdd(&pod)),
            }
            return;
        }
        if self.profile_index(&pod.scheduler_name).is_none() || self.cache.is_assumed(&pod.uid) {
            return;
        }
        if pod.nominated_node_name.is_empty() {
            self.nominator.remove(&pod.uid);
        } else {
            self.nominator.set(pod.clone(), &pod.nominated_node_name);
        }
        self.queue.update(pod, Instant::now());
    }

    fn on_bind_result(&mut self, uid: String, node: String, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.stats.bound.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                tracing::info!(pod = %uid, node = %node, error = %reason, "binding failed");
                let Some(assumed) = self.cache.remove_pod(&uid) else { return };
                self.event(ClusterEvent::AssignedPodDelete(&assumed));
                let mut pod = (*assumed).clone();
                pod.node_name.clear();
                let pod = Arc::new(pod);
                // Upstream records the Bind plugin's error as is, with reason SchedulerError.
                self.record_failure(&pod, "SchedulerError", &reason, None);
                self.queue.retry(pod, Instant::now());
            }
        }
    }

    fn schedule_one(&mut self, qp: QueuedPod) {
        let pod = qp.info.clone();
        let started = Instant::now();
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let Some(pi) = self.profile_index(&pod.scheduler_name) else {
            self.queue.delete(&pod.uid);
            return;
        };
        if pod.terminating {
            self.recorder.record(PodEvent {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                type_: "Warning",
                reason: "FailedScheduling",
                action: "Scheduling",
                note: format!("skip schedule deleting pod: {}/{}", pod.namespace, pod.name),
            });
            self.queue.delete(&pod.uid);
            return;
        }
        if self.cache.is_assumed(&pod.uid) {
            self.queue.delete(&pod.uid);
            return;
        }
        let profile = Arc::clone(&self.profiles[pi]);
        let outcome = self.algorithm.schedule(&pod, &mut self.cache, &profile, &self.objects, &self.nominator);
        match outcome {
            Ok(placement) => {
                let volumes = placement
                    .state
                    .volumes
                    .as_ref()
                    .map(|v| self.volume_plan(&pod, v, &placement.node))
                    .unwrap_or_default();
                let mut assumed = (*pod).clone();
                assumed.node_name = placement.node.clone();
                self.cache.add_pod(Arc::new(assumed), true);
                self.nominator.remove(&pod.uid);
                self.queue.delete(&pod.uid);
                self.stats.scheduled.fetch_add(1, Ordering::Relaxed);
                let _ = self.writer.send(Request::Bind {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    uid: pod.uid.clone(),
                    node: placement.node,
                    volumes,
                });
            }
            Err(mut failure) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let mut nominated: Option<String> = None;
                if let Failure::Unschedulable { diagnosis, num_nodes, state } = &mut failure
                    && profile.preemption
                {
                    let result = preemption::preempt(
                        &pod,
                        state.as_ref().unwrap_or(&CycleState::default()),
                        diagnosis,
                        *num_nodes,
                        &mut self.cache,
                        &profile,
                        &self.objects,
                        &self.nominator,
                    );
                    diagnosis.post_filter_msg = result.message.clone();
                    nominated = result.nominated_node.clone();
                    if let Some(plan) = result.plan {
                        self.execute_preemption(&pod, &plan);
                    }
                }
                let plugins = match &failure {
                    Failure::Unschedulable { diagnosis, .. } => diagnosis.unschedulable_plugins.clone(),
                    Failure::NoNodes => Vec::new(),
                };
                let message = failure.message();
                let mut updated = (*pod).clone();
                if let Some(n) = &nominated {
                    updated.nominated_node_name = n.clone();
                    let arc = Arc::new(updated.clone());
                    self.nominator.set(arc, n);
                }
                let updated = Arc::new(updated);
                self.record_failure(&updated, "Unschedulable", &message, nominated.as_deref().or(Some("")));
                self.queue.failed(&pod.uid, Some(updated), true, plugins, Instant::now());
            }
        }
        self.stats.cycle_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn volume_plan(&self, pod: &PodInfo, state: &volume_binding::State, node: &str) -> Vec<VolumeBinding> {
        let Some(info) = self.cache.node(node) else { return Vec::new() };
        let mut plan = Vec::new();
        for (name, claim) in state.to_bind() {
            match volume_binding::find_volume(&self.objects, &pod.namespace, name, claim, info) {
                Some(Some(volume)) => {
                    plan.push(VolumeBinding::Static { claim: name.clone(), claim_uid: claim.uid.clone(), volume })
                }
                Some(None) => plan.push(VolumeBinding::Provision { claim: name.clone() }),
                None => {}
            }
        }
        plan
    }

    fn execute_preemption(&mut self, pod: &PodInfo, plan: &preemption::Plan) {
        for victim in &plan.victims {
            self.recorder.record(PodEvent {
                namespace: victim.namespace.clone(),
                name: victim.name.clone(),
                uid: victim.uid.clone(),
                type_: "Normal",
                reason: "Preempted",
                action: "Preempting",
                note: format!("Preempted by pod {} on node {}", pod.uid, plan.node),
            });
            let _ = self.writer.send(Request::Evict {
                namespace: victim.namespace.clone(),
                name: victim.name.clone(),
                uid: victim.uid.clone(),
                scheduler_name: pod.scheduler_name.clone(),
            });
        }
        for lower in &plan.clear_nominations {
            self.nominator.remove(&lower.uid);
            let _ = self.writer.send(Request::Status {
                namespace: lower.namespace.clone(),
                name: lower.name.clone(),
                patch: json!({"status": {"nominatedNodeName": null}}),
            });
        }
    }

    /// Records a failed attempt: a `FailedScheduling` event and, when it changes, the
    /// `PodScheduled=False` condition (and `nominatedNodeName` when `nominated` differs).
    fn record_failure(&mut self, pod: &PodInfo, reason: &str, message: &str, nominated: Option<&str>) {
        self.recorder.record(PodEvent {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            type_: "Warning",
            reason: "FailedScheduling",
            action: "Scheduling",
            note: truncate_message(message),
        });
        if let Some(patch) = status_patch(pod, reason, message, nominated) {
            let _ =
                self.writer.send(Request::Status { namespace: pod.namespace.clone(), name: pod.name.clone(), patch });
        }
    }
}

/// The `pods/status` strategic merge patch for a failed attempt (upstream `updatePod`), or
/// `None` when nothing changes.
pub fn status_patch(pod: &PodInfo, reason: &str, message: &str, nominated: Option<&str>) -> Option<Value> {
    let cond = pod.scheduled_condition.as_ref();
    let status_changes = cond.is_none_or(|c| c.status != "False");
    let cond_changes = status_changes || cond.is_some_and(|c| c.reason != reason || c.message != message);
    let nnn_changes = nominated.is_some_and(|n| n != pod.nominated_node_name);
    if !cond_changes && !nnn_changes {
        return None;
    }
    let mut status = serde_json::Map::new();
    if cond_changes {
        let mut c = json!({"type": "PodScheduled", "status": "False", "reason": reason, "message": message, "lastProbeTime": null});
        if status_changes {
            c["lastTransitionTime"] = json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        status.insert("conditions".into(), json!([c]));
    }
    if let Some(n) = nominated.filter(|_| nnn_changes) {
        status.insert("nominatedNodeName".into(), if n.is_empty() { Value::Null } else { json!(n) });
    }
    Some(json!({"status": status}))
}

/// Applies a keyed watch change to `map`: `true` when it changed something (the list markers
/// change nothing; objects missing after a relist arrive as deletes).
fn apply_keyed<K: std::hash::Hash + Eq, V>(map: &mut std::collections::HashMap<K, V>, w: Watch<(K, V)>) -> bool {
    match w {
        Watch::Apply((k, v)) => {
            map.insert(k, v);
            true
        }
        Watch::Delete((k, _)) => {
            map.remove(&k);
            true
        }
        Watch::Init | Watch::InitDone => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pod::ScheduledCondition;

    #[test]
    fn status_patch_only_when_the_condition_or_nomination_changes() {
        let mut pod = PodInfo::default();
        let p = status_patch(&pod, "Unschedulable", "m", None).expect("first failure");
        assert_eq!(p["status"]["conditions"][0]["reason"], "Unschedulable");
        assert!(p["status"]["conditions"][0].get("lastTransitionTime").is_some());
        pod.scheduled_condition = Some(ScheduledCondition {
            status: "False".into(),
            reason: "Unschedulable".into(),
            message: "m".into(),
            last_transition_time: None,
        });
        assert!(status_patch(&pod, "Unschedulable", "m", None).is_none());
        assert!(status_patch(&pod, "Unschedulable", "m", Some("")).is_none());
        let p = status_patch(&pod, "Unschedulable", "other", None).expect("message changed");
        assert!(p["status"]["conditions"][0].get("lastTransitionTime").is_none(), "status unchanged keeps the time");
        let p = status_patch(&pod, "Unschedulable", "m", Some("n1")).expect("nominated");
        assert_eq!(p["status"]["nominatedNodeName"], "n1");
        assert!(p["status"].get("conditions").is_none());
    }
}
