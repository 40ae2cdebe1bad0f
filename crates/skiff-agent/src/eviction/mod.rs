//! Node-pressure eviction, as the kubelet's eviction manager does it. Every 10 s (and again at
//! once after an eviction, once the pod is gone, or when the root memory cgroup's usage crosses
//! a `memory.available` threshold on a cgroup v1 host: [`memcg`]) the manager measures the signals
//! ([`signals`]), finds the thresholds met ([`thresholds`]: hard ones at once, soft ones after
//! their grace period, both until the minimum reclaim is free again), and
//!
//! - reports pressure: `MemoryPressure`, `DiskPressure`, `PIDPressure` are on while a threshold
//!   of theirs was met within `--eviction-pressure-transition-period`; the node status
//!   ([`crate::node`]) publishes them and the pod workers admit new pods against them
//!   ([`EvictionManager::admit`]);
//! - under disk pressure first reclaims node-level resources ([`reclaim`]: dead containers,
//!   unused images) and stops there if that was enough;
//! - otherwise evicts one pod per pass, ranked for the starved resource ([`rank`], with usage
//!   from [`stats`]); critical pods never. The pod's worker kills it (1 s grace for hard
//!   thresholds, as upstream's `immediateEvictionGracePeriodSeconds`; at most
//!   `--eviction-max-pod-grace-period` for soft ones) and marks it `Failed`/`Evicted` with the
//!   `DisruptionTarget` condition; the manager records `EvictionThresholdMet` on the Node.
//!
//! What does not live here: the per-pod `sizeLimit` evictions of emptyDirs (the volume
//! manager), killing containers and reporting pod status (the pod worker), the node taints (the
//! node lifecycle controller in `skiff-controllers`).

pub mod memcg;
pub mod rank;
pub mod reclaim;
pub mod signals;
pub mod stats;
pub mod thresholds;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use skiff_runtime::cgroups::{Layout, QosClass};
use skiff_runtime::container::Runtime;
use tokio::sync::{oneshot, watch};

use signals::{Measurement, MemorySource, Observations};
use thresholds::{Condition, Signal, Threshold};

/// How often the signals are measured.
pub const MONITORING_INTERVAL: Duration = Duration::from_secs(10);
/// Grace period of pods evicted for a hard threshold (upstream's
/// `immediateEvictionGracePeriodSeconds`).
pub const IMMEDIATE_GRACE: Duration = Duration::from_secs(1);
/// How long the manager waits for an evicted pod to be cleaned up.
pub const POD_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `--eviction-pressure-transition-period`.
pub const DEFAULT_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(300);

/// The reason of evicted and refused pods.
pub const REASON: &str = "Evicted";

/// The `DisruptionTarget` condition of a pod evicted for node pressure (upstream's
/// `TerminationByKubelet`), stamped now.
pub fn disruption_condition(message: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "TerminationByKubelet",
        "message": message,
        "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    })
}

/// How the manager is set up (the eviction flags).
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionConfig {
    /// Hard and soft thresholds.
    pub thresholds: Vec<Threshold>,
    /// How long a condition stays on after its thresholds were last met.
    pub pressure_transition_period: Duration,
    /// Longest grace period given to pods evicted for a soft threshold (negative: the pod's).
    pub max_pod_grace_period_seconds: i64,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        Self {
            thresholds: thresholds::parse_config(thresholds::DEFAULT_EVICTION_HARD, "", "", "").unwrap_or_default(),
            pressure_transition_period: DEFAULT_PRESSURE_TRANSITION_PERIOD,
            max_pod_grace_period_seconds: 0,
        }
    }
}

/// The pressure conditions that are on.
pub type Pressure = BTreeSet<Condition>;

/// A pod the manager wants gone, handed to its worker.
#[derive(Debug)]
pub struct PodEviction {
    /// Why (the pod's status message and the `Evicted` event's note).
    pub message: String,
    /// How long its containers get after SIGTERM.
    pub grace: Duration,
    /// Set the `DisruptionTarget` condition (reason `TerminationByKubelet`).
    pub disruption_condition: bool,
    done: Option<oneshot::Sender<()>>,
}

impl PodEviction {
    /// Tells the manager the pod's containers are stopped.
    pub fn finished(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// What the manager remembers between passes (upstream's `thresholdsFirstObservedAt`,
/// `nodeConditionsLastObservedAt`, `thresholdsMet`), thresholds named by their index.
#[derive(Debug, Default, Clone)]
pub struct State {
    first_observed: HashMap<usize, Instant>,
    conditions_last_observed: BTreeMap<Condition, Instant>,
    met: Vec<usize>,
}

/// What one pass decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Conditions to report.
    pub pressure: Pressure,
    /// Thresholds to act on (grace periods satisfied), most urgent first: memory, then the
    /// others in flag order.
    pub act_on: Vec<usize>,
}

/// One pass of upstream's `synchronize` over the thresholds: updates `state` with what
/// `observations` show at `now`.
pub fn decide(state: &mut State, cfg: &EvictionConfig, observations: &Observations, now: Instant) -> Decision {
    let met_now = |i: &usize, min_reclaim: bool| {
        let t = &cfg.thresholds[*i];
        observations.get(&t.signal).is_some_and(|o| t.met(o.available, o.capacity, min_reclaim))
    };
    let mut met: Vec<usize> = (0..cfg.thresholds.len()).filter(|i| met_now(i, false)).collect();
    // Thresholds that acted before hold until their minimum reclaim is free.
    for i in state.met.iter().filter(|i| met_now(i, true)) {
        if !met.contains(i) {
            met.push(*i);
        }
    }
    let first_observed: HashMap<usize, Instant> =
        met.iter().map(|i| (*i, state.first_observed.get(i).copied().unwrap_or(now))).collect();
    for i in &met {
        state.conditions_last_observed.insert(cfg.thresholds[*i].signal.condition(), now);
    }
    let pressure: Pressure = state
        .conditions_last_observed
        .iter()
        .filter(|(_, at)| now.duration_since(**at) < cfg.pressure_transition_period)
        .map(|(c, _)| *c)
        .collect();
    let mut act_on: Vec<usize> = first_observed
        .iter()
        .filter(|(i, at)| now.duration_since(**at) >= cfg.thresholds[**i].grace_period)
        .map(|(i, _)| *i)
        .collect();
    act_on.sort_by_key(|i| (cfg.thresholds[*i].signal != Signal::MemoryAvailable, *i));
    state.first_observed = first_observed;
    state.met = act_on.clone();
    Decision { pressure, act_on }
}

/// Whether the pod's tolerations tolerate the `node.kubernetes.io/memory-pressure:NoSchedule`
/// taint.
fn tolerates_memory_pressure(pod: &Pod) -> bool {
    let key = "node.kubernetes.io/memory-pressure";
    pod.spec.as_ref().and_then(|s| s.tolerations.as_ref()).into_iter().flatten().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "NoSchedule");
        let exists = t.operator.as_deref() == Some("Exists");
        let key_ok = match t.key.as_deref() {
            None | Some("") => exists,
            Some(k) => k == key,
        };
        let value_ok = exists || t.value.as_deref().unwrap_or("").is_empty();
        effect_ok && key_ok && value_ok
    })
}

/// The kubelet's eviction admission: under memory pressure alone only BestEffort pods that do
/// not tolerate it are refused; under any other pressure every pod is; critical pods never.
/// Returns upstream's message for a refusal.
pub fn admit(pressure: &Pressure, pod: &Pod) -> Result<(), String> {
    if pressure.is_empty() || rank::is_critical(pod) {
        return Ok(());
    }
    if pressure.len() == 1
        && pressure.contains(&Condition::Memory)
        && (crate::pods::resources::qos(pod) != QosClass::BestEffort || tolerates_memory_pressure(pod))
    {
        return Ok(());
    }
    let names: Vec<&str> = pressure.iter().map(|c| c.type_name()).collect();
    Err(format!("The node had condition: [{}]. ", names.join(" ")))
}

/// What the manager needs from the rest of the agent.
pub struct Deps {
    /// API client (the node's pods).
    pub client: kube::Client,
    /// The container runtime (dead containers).
    pub runtime: Arc<Runtime>,
    /// The image manager (unused images).
    pub images: Arc<crate::images::ImageManager>,
    /// Event recorder.
    pub recorder: Recorder,
    /// The node's name.
    pub node_name: String,
    /// Where the node's signals are measured.
    pub paths: signals::Paths,
    /// Where pods' files are.
    pub pod_paths: stats::PodPaths,
}

/// The node's eviction manager, shared by the node status, the pod workers and its own loop.
pub struct EvictionManager {
    cfg: EvictionConfig,
    state: Mutex<State>,
    pressure: watch::Sender<Pressure>,
    requests: Mutex<HashMap<String, PodEviction>>,
    /// Pods already evicted (their Failed status may not have been seen yet).
    evicted: Mutex<HashSet<String>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EvictionManager {
    /// A manager with no pressure yet.
    pub fn new(cfg: EvictionConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            state: Mutex::new(State::default()),
            pressure: watch::channel(Pressure::new()).0,
            requests: Mutex::new(HashMap::new()),
            evicted: Mutex::new(HashSet::new()),
        })
    }

    /// The pressure conditions, updated after every pass.
    pub fn pressure(&self) -> watch::Receiver<Pressure> {
        self.pressure.subscribe()
    }

    /// Admission of a new pod against the current pressure (see [`admit`]).
    pub fn admit(&self, pod: &Pod) -> Result<(), String> {
        admit(&self.pressure.borrow(), pod)
    }

    /// The eviction the manager asked of pod `uid`, if any (taken once).
    pub fn take(&self, uid: &str) -> Option<PodEviction> {
        locked(&self.requests).remove(uid)
    }

    /// Runs the monitoring loop until the task is aborted.
    pub async fn run(self: Arc<Self>, deps: Deps) {
        let api: Api<Pod> = Api::all(deps.client.clone());
        let (pods, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", deps.node_name));
        let stream = watcher::watcher(api, config).default_backoff().reflect(writer).applied_objects();
        let watch = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    tracing::debug!(error = %e, "eviction manager's pod watch");
                }
            }
        });
        let memory_source = MemorySource::host();
        let mut notifiers = memcg::Notifiers::default();
        loop {
            let evicted = self.synchronize(&deps, &pods, &memory_source).await;
            if let MemorySource::V1(root) = &memory_source {
                notifiers = self.rearm(notifiers, root.clone()).await;
            }
            match evicted {
                Some(done) => {
                    // As upstream: wait for the pod to be cleaned up, then measure again at once.
                    if tokio::time::timeout(POD_CLEANUP_TIMEOUT, done).await.is_err() {
                        tracing::info!("eviction manager: timed out waiting for the evicted pod to be cleaned up");
                    }
                }
                None if notifiers.is_empty() => tokio::time::sleep(MONITORING_INTERVAL).await,
                None => {
                    let waited = tokio::task::spawn_blocking(move || {
                        let crossed = notifiers.wait(MONITORING_INTERVAL);
                        (notifiers, crossed)
                    });
                    let crossed;
                    (notifiers, crossed) = waited.await.unwrap_or_default();
                    if crossed {
                        tracing::info!("eviction manager: a memory threshold was crossed");
                    }
                }
            }
            if watch.is_finished() {
                tracing::warn!("eviction manager's pod watch ended");
            }
        }
    }

    /// Arms the memory-threshold notifiers again at the levels of now.
    async fn rearm(&self, mut notifiers: memcg::Notifiers, root: std::path::PathBuf) -> memcg::Notifiers {
        let thresholds = self.cfg.thresholds.clone();
        let rearmed = tokio::task::spawn_blocking(move || {
            notifiers.update(&root, &thresholds);
            notifiers
        });
        rearmed.await.unwrap_or_default()
    }

    async fn measure(deps: &Deps, memory_source: &MemorySource) -> Measurement {
        let (paths, source) = (deps.paths.clone(), memory_source.clone());
        tokio::task::spawn_blocking(move || signals::measure(&paths, &source)).await.unwrap_or_default()
    }

    /// One pass; the receiver of the evicted pod's cleanup when a pod was evicted.
    async fn synchronize(
        &self,
        deps: &Deps,
        pods: &Store<Pod>,
        memory_source: &MemorySource,
    ) -> Option<oneshot::Receiver<()>> {
        if self.cfg.thresholds.is_empty() {
            return None;
        }
        let measurement = Self::measure(deps, memory_source).await;
        let decision = decide(&mut locked(&self.state), &self.cfg, &measurement.observations, Instant::now());
        self.pressure.send_if_modified(|p| {
            let changed = *p != decision.pressure;
            *p = decision.pressure.clone();
            changed
        });
        let &first = decision.act_on.first()?;
        let threshold = &self.cfg.thresholds[first];
        let resource = threshold.signal.resource();
        tracing::info!(resource = resource.name(), "eviction manager: attempting to reclaim");
        self.node_event(deps, "EvictionThresholdMet", format!("Attempting to reclaim {}", resource.name())).await;
        if threshold.signal.condition() == Condition::Disk && self.reclaim_node_level(deps, pods, memory_source).await {
            tracing::info!(resource = resource.name(), "eviction manager: reduced pressure without evicting pods");
            return None;
        }
        let all = pods.state();
        self.forget_gone(&all);
        let active: Vec<Arc<Pod>> = all.into_iter().filter(|p| self.is_active(p)).collect();
        if active.is_empty() {
            tracing::warn!("eviction manager: thresholds are met, but no pods are active to evict");
            return None;
        }
        let stats = self.pod_stats(deps, &active).await;
        let mut candidates: Vec<rank::Candidate<'_>> =
            active.iter().zip(&stats).map(|(pod, stats)| rank::Candidate { pod, stats: stats.as_ref() }).collect();
        rank::rank(&mut candidates, threshold.signal, measurement.dedicated_image_fs);
        let met: Vec<&Threshold> = decision.act_on.iter().map(|i| &self.cfg.thresholds[*i]).collect();
        for candidate in candidates {
            let pod = candidate.pod;
            let name = pod.metadata.name.as_deref().unwrap_or("");
            if rank::is_critical(pod) {
                tracing::error!(pod = name, "eviction manager: cannot evict a critical pod");
                continue;
            }
            let message = rank::eviction_message(resource, pod, candidate.stats, &met, &measurement.observations);
            let grace = if threshold.is_hard() { IMMEDIATE_GRACE } else { self.soft_grace(pod) };
            let (tx, rx) = oneshot::channel();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            tracing::info!(pod = name, %message, "eviction manager: evicting pod");
            let eviction = PodEviction { message, grace, disruption_condition: true, done: Some(tx) };
            locked(&self.evicted).insert(uid.clone());
            locked(&self.requests).insert(uid, eviction);
            return Some(rx);
        }
        tracing::warn!("eviction manager: unable to evict any pods from the node");
        None
    }

    /// Running or starting pods of this node that were not evicted already.
    fn is_active(&self, pod: &Pod) -> bool {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        !matches!(phase, Some("Succeeded" | "Failed")) && !locked(&self.evicted).contains(uid)
    }

    /// Drops the evictions of pods no longer on the node.
    fn forget_gone(&self, pods: &[Arc<Pod>]) {
        let present: HashSet<&str> = pods.iter().filter_map(|p| p.metadata.uid.as_deref()).collect();
        locked(&self.evicted).retain(|uid| present.contains(uid.as_str()));
        locked(&self.requests).retain(|uid, _| present.contains(uid.as_str()));
    }

    /// The grace period of a soft eviction: the pod's, capped by the flag (unless negative).
    fn soft_grace(&self, pod: &Pod) -> Duration {
        let own = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).max(0);
        let max = self.cfg.max_pod_grace_period_seconds;
        Duration::from_secs(if max < 0 { own } else { own.min(max) } as u64)
    }

    async fn pod_stats(&self, deps: &Deps, pods: &[Arc<Pod>]) -> Vec<Option<stats::PodStats>> {
        let (pods, runtime, paths) = (pods.to_vec(), Arc::clone(&deps.runtime), deps.pod_paths.clone());
        tokio::task::spawn_blocking(move || {
            let reader = stats::CgroupReader::new(Layout::host());
            let instances = runtime.list().unwrap_or_default();
            pods.iter()
                .map(|pod| {
                    let cgroup = crate::pods::resources::pod_cgroup(pod);
                    stats::pod_stats(pod, &cgroup, &reader, &paths, &instances)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Deletes dead containers and unused images, then measures again: true when no threshold
    /// (with its minimum reclaim) is met any more.
    async fn reclaim_node_level(&self, deps: &Deps, pods: &Store<Pod>, memory_source: &MemorySource) -> bool {
        let finished: HashSet<String> = pods
            .state()
            .iter()
            .filter(|p| matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let (runtime, images) = (Arc::clone(&deps.runtime), Arc::clone(&deps.images));
        let _ = tokio::task::spawn_blocking(move || {
            reclaim::delete_dead_containers(&runtime, &finished);
            reclaim::delete_unused_images(&images);
        })
        .await;
        let measurement = Self::measure(deps, memory_source).await;
        !self
            .cfg
            .thresholds
            .iter()
            .any(|t| measurement.observations.get(&t.signal).is_some_and(|o| t.met(o.available, o.capacity, true)))
    }

    async fn node_event(&self, deps: &Deps, reason: &str, note: String) {
        publish_node_event(&deps.recorder, &deps.node_name, EventType::Warning, reason, note).await;
    }
}

/// Records an event on the Node (the kubelet's node reference: the node name as uid).
pub async fn publish_node_event(recorder: &Recorder, node: &str, kind: EventType, reason: &str, note: String) {
    let reference = ObjectReference {
        kind: Some("Node".into()),
        api_version: Some("v1".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    };
    let ev = Event { type_: kind, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
    if let Err(e) = recorder.publish(&ev, &reference).await {
        tracing::debug!(error = %e, "publishing node event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signals::Observation;

    fn cfg(hard: &str, soft: &str, grace: &str) -> EvictionConfig {
        EvictionConfig {
            thresholds: thresholds::parse_config(hard, soft, grace, "memory.available=100").expect("thresholds"),
            pressure_transition_period: Duration::from_secs(300),
            max_pod_grace_period_seconds: 0,
        }
    }

    fn obs(memory: i64, disk: i64) -> Observations {
        Observations::from([
            (Signal::MemoryAvailable, Observation { available: memory, capacity: 10_000 }),
            (Signal::NodeFsAvailable, Observation { available: disk, capacity: 10_000 }),
        ])
    }

    #[test]
    fn hard_thresholds_act_at_once_and_conditions_linger() {
        let cfg = cfg("memory.available<1000,nodefs.available<10%", "", "");
        let mut state = State::default();
        let t0 = Instant::now();
        let d = decide(&mut state, &cfg, &obs(5000, 5000), t0);
        assert!(d.pressure.is_empty() && d.act_on.is_empty());
        let d = decide(&mut state, &cfg, &obs(500, 500), t0 + Duration::from_secs(10));
        assert_eq!(d.pressure, Pressure::from([Condition::Memory, Condition::Disk]));
        assert_eq!(d.act_on, [0, 1], "memory first");
        // Above the threshold but within the minimum reclaim: memory still acts.
        let d = decide(&mut state, &cfg, &obs(1050, 5000), t0 + Duration::from_secs(20));
        assert_eq!(d.act_on, [0]);
        // Recovered: nothing to act on, but the conditions stay for the transition period.
        let d = decide(&mut state, &cfg, &obs(5000, 5000), t0 + Duration::from_secs(30));
        assert!(d.act_on.is_empty());
        assert_eq!(d.pressure, Pressure::from([Condition::Memory, Condition::Disk]));
        let d = decide(&mut state, &cfg, &obs(5000, 5000), t0 + Duration::from_secs(315));
        assert_eq!(d.pressure, Pressure::from([Condition::Memory]), "memory was last met at 20 s, disk at 10 s");
        let d = decide(&mut state, &cfg, &obs(5000, 5000), t0 + Duration::from_secs(325));
        assert!(d.pressure.is_empty());
    }

    #[test]
    fn soft_thresholds_wait_for_their_grace_period() {
        let cfg = cfg("", "memory.available<1000", "memory.available=30s");
        let mut state = State::default();
        let t0 = Instant::now();
        let d = decide(&mut state, &cfg, &obs(500, 5000), t0);
        assert_eq!(d.pressure, Pressure::from([Condition::Memory]), "the condition is on at once");
        assert!(d.act_on.is_empty());
        assert!(decide(&mut state, &cfg, &obs(500, 5000), t0 + Duration::from_secs(20)).act_on.is_empty());
        assert_eq!(decide(&mut state, &cfg, &obs(500, 5000), t0 + Duration::from_secs(30)).act_on, [0]);
        // Recovering resets the clock.
        decide(&mut state, &cfg, &obs(5000, 5000), t0 + Duration::from_secs(40));
        assert!(decide(&mut state, &cfg, &obs(500, 5000), t0 + Duration::from_secs(50)).act_on.is_empty());
    }

    fn pod(qos_requests: bool, tolerations: serde_json::Value, priority: Option<i32>) -> Pod {
        let resources =
            if qos_requests { serde_json::json!({"requests": {"memory": "10Mi"}}) } else { serde_json::json!({}) };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"priority": priority, "tolerations": tolerations,
                     "containers": [{"name": "c", "resources": resources}]}
        }))
        .expect("pod")
    }

    #[test]
    fn admission_under_pressure() {
        let none = Pressure::new();
        let memory = Pressure::from([Condition::Memory]);
        let disk = Pressure::from([Condition::Disk, Condition::Pid]);
        let best_effort = pod(false, serde_json::json!([]), None);
        let burstable = pod(true, serde_json::json!([]), None);
        assert!(admit(&none, &best_effort).is_ok());
        assert_eq!(admit(&memory, &best_effort), Err("The node had condition: [MemoryPressure]. ".into()));
        assert!(admit(&memory, &burstable).is_ok());
        assert_eq!(admit(&disk, &burstable), Err("The node had condition: [DiskPressure PIDPressure]. ".into()));
        let tolerant = pod(
            false,
            serde_json::json!([{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]),
            None,
        );
        assert!(admit(&memory, &tolerant).is_ok());
        let tolerates_all = pod(false, serde_json::json!([{"operator": "Exists"}]), None);
        assert!(admit(&memory, &tolerates_all).is_ok());
        let wrong_effect = pod(
            false,
            serde_json::json!([{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoExecute"}]),
            None,
        );
        assert!(admit(&memory, &wrong_effect).is_err());
        let critical = pod(false, serde_json::json!([]), Some(rank::SYSTEM_CRITICAL_PRIORITY));
        assert!(admit(&disk, &critical).is_ok());
    }
}
