//! The scheduling queue (upstream `PriorityQueue`): an active queue ordered by priority then
//! queue timestamp (PrioritySort), a backoff queue (per-pod exponential back-off, 1 s doubling
//! to 10 s), an unschedulable pool indexed by the plugins that rejected each pod (a cluster
//! event moves only the pods whose rejecting plugins care about it and whose queueing hint says
//! it may help), gated pods (non-empty `schedulingGates`, upstream's SchedulingGates PreEnqueue),
//! and the periodic flush of pods left unschedulable for 5 minutes.
//!
//! The queue holds decisions about *when* to retry; what an event means for a plugin is decided
//! by the caller's hint closure ([`crate::hints`]).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::PluginId;
use crate::model::PodInfo;

/// Upstream `podInitialBackoffDuration`.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Upstream `podMaxBackoffDuration`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Upstream `podMaxInUnschedulablePodsDuration`.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A pod waiting to be scheduled.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Queue timestamp (arrival or last failure), the tie-breaker of the active queue.
    pub timestamp: Instant,
    /// When the first attempt started.
    pub initial_attempt: Option<Instant>,
    /// Plugins that rejected the pod in its last attempt (empty: any event may help).
    pub unschedulable_plugins: Vec<PluginId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    Gated,
    InFlight,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    uid: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.timestamp.cmp(&self.timestamp))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue (see the module doc).
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, (QueuedPod, Place, u64)>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    by_plugin: HashMap<PluginId, HashSet<String>>,
    any_event: HashSet<String>,
    unschedulable_since: HashMap<String, Instant>,
    seq: u64,
}

/// Upstream `calculateBackoffDuration`.
pub fn backoff_duration(attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let mut d = INITIAL_BACKOFF;
    for _ in 1..attempts {
        if d > MAX_BACKOFF - d {
            return MAX_BACKOFF;
        }
        d += d;
    }
    d
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Number of pods in the queue (every pool, in flight included).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the queue holds no pod.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Whether the pod is known.
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The queued pod with `uid`.
    pub fn get(&self, uid: &str) -> Option<&QueuedPod> {
        self.pods.get(uid).map(|(p, _, _)| p)
    }

    /// Number of pods in the active queue.
    pub fn active_len(&self) -> usize {
        self.pods.values().filter(|(_, p, _)| *p == Place::Active).count()
    }

    fn push_active(&mut self, uid: &str) {
        let seq = self.next_seq();
        if let Some((p, place, s)) = self.pods.get_mut(uid) {
            *place = Place::Active;
            *s = seq;
            self.active.push(ActiveKey {
                priority: p.info.priority,
                timestamp: p.timestamp,
                seq,
                uid: uid.to_string(),
            });
        }
    }

    fn push_backoff(&mut self, uid: &str, until: Instant) {
        let seq = self.next_seq();
        if let Some((_, place, s)) = self.pods.get_mut(uid) {
            *place = Place::Backoff;
            *s = seq;
            self.backoff.push(Reverse((until, seq, uid.to_string())));
        }
    }

    fn leave_pool(&mut self, uid: &str) {
        if let Some((p, Place::Unschedulable, _)) = self.pods.get(uid) {
            for plugin in &p.unschedulable_plugins {
                if let Some(set) = self.by_plugin.get_mut(plugin) {
                    set.remove(uid);
                }
            }
            self.any_event.remove(uid);
            self.unschedulable_since.remove(uid);
        }
    }

    /// Adds a new pending pod (to the active queue, or the gated set).
    pub fn add(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        if self.pods.contains_key(&uid) {
            self.update(info, now);
            return;
        }
        let gated = info.gated;
        let pod =
            QueuedPod { info, attempts: 0, timestamp: now, initial_attempt: None, unschedulable_plugins: Vec::new() };
        self.pods.insert(uid.clone(), (pod, Place::Gated, 0));
        if !gated {
            self.push_active(&uid);
        }
    }

    /// A pending pod changed: its record is replaced; an unschedulable or gated pod whose
    /// scheduling-relevant fields changed is moved to be retried (after its back-off).
    pub fn update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        let Some((p, place, _)) = self.pods.get_mut(&uid) else {
            self.add(info, now);
            return;
        };
        let relevant = scheduling_relevant_change(&p.info, &info);
        p.info = info;
        let place = *place;
        match place {
            Place::Gated if !p.info.gated => self.push_active(&uid),
            Place::Unschedulable if relevant => {
                self.leave_pool(&uid);
                self.requeue(&uid, now);
            }
            // Stale heap entries are skipped on pop by their sequence number; re-push so the
            // new priority takes effect.
            Place::Active => self.push_active(&uid),
            _ => {}
        }
    }

    /// Removes a pod (deleted, or bound by someone else).
    pub fn delete(&mut self, uid: &str) -> Option<QueuedPod> {
        self.leave_pool(uid);
        self.pods.remove(uid).map(|(p, _, _)| p)
    }

    fn backoff_until(p: &QueuedPod) -> Instant {
        p.timestamp + backoff_duration(p.attempts)
    }

    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some((p, _, _)) = self.pods.get(uid) else { return };
        let until = Self::backoff_until(p);
        if until > now { self.push_backoff(uid, until) } else { self.push_active(uid) }
    }

    /// Moves pods whose back-off has expired to the active queue.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, seq, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if matches!(self.pods.get(&uid), Some((_, Place::Backoff, s)) if *s == seq) {
                self.push_active(&uid);
            }
        }
    }

    /// Moves pods left unschedulable for more than [`MAX_IN_UNSCHEDULABLE`].
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let old: Vec<String> = self
            .unschedulable_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) > MAX_IN_UNSCHEDULABLE)
            .map(|(u, _)| u.clone())
            .collect();
        for uid in old {
            self.leave_pool(&uid);
            self.requeue(&uid, now);
        }
    }

    /// When the earliest back-off ends.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Takes the highest-priority active pod; it is in flight until [`Self::failed`] or
    /// [`Self::delete`].
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        while let Some(key) = self.active.pop() {
            let Some((p, place, seq)) = self.pods.get_mut(&key.uid) else { continue };
            if *place != Place::Active || *seq != key.seq {
                continue;
            }
            *place = Place::InFlight;
            p.attempts += 1;
            p.initial_attempt.get_or_insert(now);
            return Some(p.clone());
        }
        None
    }

    /// Records a failed attempt of an in-flight pod: rejected pods wait in the unschedulable
    /// pool for an event one of `plugins` cares about; other failures back off.
    pub fn failed(
        &mut self,
        uid: &str,
        info: Option<Arc<PodInfo>>,
        rejected: bool,
        plugins: Vec<PluginId>,
        now: Instant,
    ) {
        let Some((p, place, _)) = self.pods.get_mut(uid) else { return };
        if let Some(i) = info {
            p.info = i;
        }
        p.timestamp = now;
        p.unschedulable_plugins = plugins.clone();
        if !rejected {
            *place = Place::Backoff;
            self.requeue(uid, now);
            return;
        }
        *place = Place::Unschedulable;
        if plugins.is_empty() {
            self.any_event.insert(uid.to_string());
        }
        for plugin in plugins {
            self.by_plugin.entry(plugin).or_default().insert(uid.to_string());
        }
        self.unschedulable_since.insert(uid.to_string(), now);
    }

    /// Puts an in-flight pod back with back-off (a binding that failed).
    pub fn retry(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        match self.pods.get_mut(&uid) {
            Some((p, _, _)) => {
                p.info = info;
                p.timestamp = now;
            }
            None => {
                let pod = QueuedPod {
                    info,
                    attempts: 1,
                    timestamp: now,
                    initial_attempt: Some(now),
                    unschedulable_plugins: vec![],
                };
                self.pods.insert(uid.clone(), (pod, Place::Backoff, 0));
            }
        }
        self.requeue(&uid, now);
    }

    /// Upstream `MoveAllToActiveOrBackoffQueue` for one cluster event: every unschedulable pod
    /// rejected by a plugin in `plugins` (or by none) for which `hint(plugin, pod)` says the
    /// event may help is retried (after its back-off). Returns how many moved.
    pub fn on_event(&mut self, plugins: &[PluginId], now: Instant, hint: impl Fn(PluginId, &PodInfo) -> bool) -> usize {
        let mut candidates: HashSet<String> = self.any_event.clone();
        for p in plugins {
            if let Some(set) = self.by_plugin.get(p) {
                candidates.extend(set.iter().cloned());
            }
        }
        let mut moved = 0;
        for uid in candidates {
            let Some((pod, Place::Unschedulable, _)) = self.pods.get(&uid) else { continue };
            let worth = pod.unschedulable_plugins.is_empty()
                || pod.unschedulable_plugins.iter().any(|p| plugins.contains(p) && hint(*p, &pod.info));
            if worth {
                self.leave_pool(&uid);
                self.requeue(&uid, now);
                moved += 1;
            }
        }
        moved
    }

    /// Pods currently in the unschedulable pool (for tests and metrics).
    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable_since.len()
    }
}

/// Upstream `isPodUpdated` for a pending pod: anything but status and bookkeeping changed.
fn scheduling_relevant_change(old: &PodInfo, new: &PodInfo) -> bool {
    let strip = |p: &PodInfo| {
        let mut c = p.clone();
        c.resource_version.clear();
        c.scheduled_condition = None;
        c.nominated_node_name.clear();
        c.phase.clear();
        c.start_time = None;
        c
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo { uid: uid.into(), priority, ..Default::default() })
    }

    #[test]
    fn backoff_doubles_from_one_to_ten_seconds() {
        let secs: Vec<u64> = (0..7).map(|a| backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn active_queue_orders_by_priority_then_arrival() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("low", 0), t0);
        q.add(pod("high", 10), t0 + Duration::from_millis(2));
        q.add(pod("low2", 0), t0 + Duration::from_millis(1));
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t0).map(|p| p.info.uid.clone())).collect();
        assert_eq!(order, ["high", "low", "low2"]);
    }

    #[test]
    fn gated_pods_wait_until_their_gates_are_removed() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(Arc::new(PodInfo { uid: "g".into(), gated: true, ..Default::default() }), t0);
        assert!(q.pop(t0).is_none());
        q.update(pod("g", 0), t0);
        assert_eq!(q.pop(t0).map(|p| p.info.uid.clone()).as_deref(), Some("g"));
    }

    #[test]
    fn unschedulable_pods_move_only_on_relevant_events_then_back_off() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        let p = q.pop(t0).expect("pod");
        q.failed(&p.info.uid, None, true, vec![PluginId::NodeAffinity], t0);
        assert_eq!(q.unschedulable_len(), 1);
        assert_eq!(q.on_event(&[PluginId::NodeResourcesFit], t0, |_, _| true), 0);
        assert_eq!(q.on_event(&[PluginId::NodeAffinity], t0, |_, _| false), 0, "hint said no");
        assert_eq!(q.on_event(&[PluginId::NodeAffinity], t0, |_, _| true), 1);
        // One attempt so far: a 1 s back-off from the failure.
        assert!(q.pop(t0).is_none());
        assert!(q.pop(t0 + Duration::from_millis(999)).is_none());
        assert!(q.pop(t0 + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn pods_left_unschedulable_are_flushed_after_five_minutes() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        let p = q.pop(t0).expect("pod");
        q.failed(&p.info.uid, None, true, vec![PluginId::TaintToleration], t0);
        q.flush_unschedulable(t0 + Duration::from_secs(299));
        assert_eq!(q.unschedulable_len(), 1);
        q.flush_unschedulable(t0 + Duration::from_secs(301));
        assert_eq!(q.unschedulable_len(), 0);
        assert!(q.pop(t0 + Duration::from_secs(301)).is_some());
    }

    #[test]
    fn errors_back_off_and_any_event_moves_pods_without_plugins() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("e", 0), t0);
        q.pop(t0);
        q.failed("e", None, false, vec![], t0);
        assert_eq!(q.next_backoff(), Some(t0 + INITIAL_BACKOFF));
        q.add(pod("n", 0), t0);
        q.pop(t0 + Duration::from_secs(2));
        let next = q.pop(t0 + Duration::from_secs(2)).expect("n");
        q.failed(&next.info.uid, None, true, vec![], t0);
        assert_eq!(q.on_event(&[PluginId::NodeName], t0 + Duration::from_secs(5), |_, _| false), 1);
    }
}
