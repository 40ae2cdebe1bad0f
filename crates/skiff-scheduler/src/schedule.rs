//! One scheduling attempt (upstream `schedulePod`): PreFilter, Filter over the nodes starting
//! where the previous attempt stopped until `numFeasibleNodesToFind` nodes fit (upstream's
//! adaptive percentage), the nominated node first if the pod has one, filters run with
//! equal-or-higher priority nominated pods accounted, then PreScore/Score/Normalize with the
//! profile's weights and a uniformly random choice among the best nodes.
//!
//! It reads the cache directly (the scheduling thread owns it). What happens with the result
//! (assume, bind, record the failure, preempt) is [`crate::core`]'s.

use std::sync::Arc;

use crate::cache::{Cache, NodeInfo, Slot};
use crate::framework::status::{Diagnosis, NO_NODES_AVAILABLE};
use crate::framework::{Code, PluginId, Profile, Status};
use crate::model::PodInfo;
use crate::nominator::Nominator;
use crate::objects::Objects;
use crate::plugins::{
    self, balanced, fit, image_locality, interpod, node_affinity, node_name, node_ports, node_unschedulable, spread,
    taint_toleration, volume_binding,
};

/// Upstream `minFeasibleNodesToFind`.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Upstream `minFeasibleNodesPercentageToFind`.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// What PreFilter computed for one attempt (upstream `CycleState`).
#[derive(Debug, Clone, Default)]
pub struct CycleState {
    /// Filter plugins whose PreFilter said Skip.
    pub skip: Vec<PluginId>,
    /// PodTopologySpread's PreFilter state.
    pub spread: Option<spread::FilterState>,
    /// InterPodAffinity's PreFilter state.
    pub interpod: Option<interpod::FilterState>,
    /// VolumeBinding's PreFilter state.
    pub volumes: Option<volume_binding::State>,
}

impl CycleState {
    /// Upstream `RunPreFilterExtensionAddPod`/`RemovePod`: accounts `other` added to (`delta`
    /// 1) or removed from (-1) the node at `slot`.
    pub fn update_with_pod(
        &mut self,
        other: &PodInfo,
        pod: &PodInfo,
        node: &NodeInfo,
        slot: Slot,
        delta: i64,
        cache: &Cache,
    ) {
        if let Some(s) = self.spread.as_mut() {
            s.update_with_pod(other, pod, node, slot, delta);
        }
        if let Some(s) = self.interpod.as_mut() {
            s.update_with_pod(other, pod, node, slot, delta, cache);
        }
    }
}

/// The outcome of PreFilter.
pub struct PreFiltered {
    /// State for the filters.
    pub state: CycleState,
    /// Nodes a PreFilter result restricted the attempt to, with the plugins that did.
    pub only: Option<(Vec<String>, Vec<PluginId>)>,
}

/// Runs the PreFilter extensions in profile order; a rejection ends the attempt.
pub fn pre_filter(
    pod: &PodInfo,
    cache: &mut Cache,
    profile: &Profile,
    objects: &Objects,
) -> Result<PreFiltered, Status> {
    let mut state = CycleState::default();
    let mut only: Option<(Vec<String>, Vec<PluginId>)> = None;
    for &plugin in &profile.filters {
        match plugin {
            PluginId::NodeAffinity => match node_affinity::pre_filter(pod) {
                node_affinity::PreFilter::Skip => state.skip.push(plugin),
                node_affinity::PreFilter::All => {}
                node_affinity::PreFilter::Conflict(s) => return Err(s),
                node_affinity::PreFilter::Nodes(names) => {
                    only = Some(match only {
                        None => (names, vec![plugin]),
                        Some((prev, mut plugins)) => {
                            plugins.push(plugin);
                            (prev.into_iter().filter(|n| names.contains(n)).collect(), plugins)
                        }
                    });
                    if let Some((names, plugins)) = &only
                        && names.is_empty()
                    {
                        let list: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
                        let msg = if list.len() == 1 {
                            format!("node(s) didn't satisfy plugin {}", list[0])
                        } else {
                            format!("node(s) didn't satisfy plugin(s) [{}] simultaneously", list.join(" "))
                        };
                        return Err(Status::new(Code::UnschedulableAndUnresolvable, msg));
                    }
                }
            },
            PluginId::NodePorts if !node_ports::applies(pod) => state.skip.push(plugin),
            PluginId::VolumeBinding => match volume_binding::pre_filter(pod, objects)? {
                None => state.skip.push(plugin),
                Some(s) => state.volumes = Some(s),
            },
            PluginId::PodTopologySpread => match spread::pre_filter(pod, cache, profile, objects) {
                None => state.skip.push(plugin),
                Some(s) => state.spread = Some(s),
            },
            PluginId::InterPodAffinity => match interpod::pre_filter(pod, cache) {
                None => state.skip.push(plugin),
                Some(s) => state.interpod = Some(s),
            },
            _ => {}
        }
    }
    Ok(PreFiltered { state, only })
}

/// Everything a filter pass reads.
pub struct FilterCtx<'a> {
    /// The pod.
    pub pod: &'a PodInfo,
    /// The profile.
    pub profile: &'a Profile,
    /// Other objects.
    pub objects: &'a Objects,
    /// The cache.
    pub cache: &'a Cache,
}

impl FilterCtx<'_> {
    /// Upstream `RunFilterPlugins`: the first failing filter's status, in profile order.
    pub fn run(&self, state: &CycleState, slot: Slot, node: &NodeInfo) -> Option<Status> {
        let pod = self.pod;
        for &plugin in &self.profile.filters {
            if state.skip.contains(&plugin) {
                continue;
            }
            let verdict = match plugin {
                PluginId::NodeUnschedulable => node_unschedulable::filter(pod, node),
                PluginId::NodeName => node_name::filter(pod, node),
                PluginId::TaintToleration => taint_toleration::filter(pod, node),
                PluginId::NodeAffinity => node_affinity::filter(pod, node),
                PluginId::NodePorts => node_ports::filter(pod, node),
                PluginId::NodeResourcesFit => fit::filter(pod, node, self.profile),
                PluginId::VolumeBinding => state.volumes.as_ref().and_then(|v| v.filter(pod, node, self.objects)),
                PluginId::PodTopologySpread => state.spread.as_ref().and_then(|s| s.filter(slot)),
                PluginId::InterPodAffinity => state.interpod.as_ref().and_then(|s| s.filter(pod, slot, node)),
                _ => None,
            };
            if verdict.is_some() {
                return verdict;
            }
        }
        None
    }

    /// Upstream `RunFilterPluginsWithNominatedPods`: with equal-or-higher priority pods
    /// nominated to the node accounted first, then (if that passes) without them.
    pub fn run_with_nominated(
        &self,
        state: &CycleState,
        slot: Slot,
        node: &NodeInfo,
        nominator: &Nominator,
    ) -> Option<Status> {
        let nominated: Vec<&Arc<PodInfo>> = nominator
            .on_node(node.name())
            .iter()
            .filter(|p| p.priority >= self.pod.priority && p.uid != self.pod.uid)
            .collect();
        if nominated.is_empty() {
            return self.run(state, slot, node);
        }
        let mut with = node.clone();
        let mut with_state = state.clone();
        for p in nominated {
            with.add_pod(p.clone());
            with_state.update_with_pod(p, self.pod, &with, slot, 1, self.cache);
        }
        if let Some(s) = self.run(&with_state, slot, &with) {
            return Some(s);
        }
        self.run(state, slot, node)
    }
}

/// A successful attempt.
#[derive(Debug)]
pub struct Placement {
    /// The chosen node.
    pub node: String,
    /// Nodes evaluated.
    pub evaluated: usize,
    /// Nodes that fit.
    pub feasible: usize,
    /// The PreFilter state (the binder needs VolumeBinding's).
    pub state: CycleState,
}

/// A failed attempt.
// Built once per failed attempt and matched right away; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Failure {
    /// The cluster has no nodes.
    NoNodes,
    /// No node fits (upstream `FitError`).
    Unschedulable {
        /// Why.
        diagnosis: Diagnosis,
        /// Nodes in the cluster.
        num_nodes: usize,
        /// The PreFilter state (for preemption), when PreFilter passed.
        state: Option<CycleState>,
    },
}

impl Failure {
    /// The message users see.
    pub fn message(&self) -> String {
        match self {
            Failure::NoNodes => NO_NODES_AVAILABLE.to_string(),
            Failure::Unschedulable { diagnosis, num_nodes, .. } => {
                crate::framework::status::fit_error_message(*num_nodes, diagnosis)
            }
        }
    }
}

/// The scheduling algorithm's own state across attempts.
#[derive(Debug)]
pub struct Algorithm {
    /// Where the next filter pass starts in the node list.
    pub next_start: usize,
    /// The global `percentageOfNodesToScore` (0: adaptive).
    pub percentage_of_nodes_to_score: i32,
    rng: u64,
}

impl Algorithm {
    /// A new algorithm state.
    pub fn new(percentage_of_nodes_to_score: i32) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Self { next_start: 0, percentage_of_nodes_to_score, rng: seed | 1 }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Upstream `numFeasibleNodesToFind`.
    pub fn num_feasible_nodes_to_find(&self, profile_percentage: Option<i32>, num_all: usize) -> usize {
        if num_all < MIN_FEASIBLE_NODES_TO_FIND {
            return num_all;
        }
        let mut percentage = i64::from(profile_percentage.unwrap_or(self.percentage_of_nodes_to_score));
        if percentage == 0 {
            percentage = (50 - num_all as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
        }
        let n = (num_all as i64 * percentage / 100) as usize;
        n.max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// One attempt for `pod`.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        cache: &mut Cache,
        profile: &Profile,
        objects: &Objects,
        nominator: &Nominator,
    ) -> Result<Placement, Failure> {
        let num_nodes = cache.num_nodes();
        if num_nodes == 0 {
            return Err(Failure::NoNodes);
        }
        let mut diagnosis = Diagnosis::default();
        let pre = match pre_filter(pod, cache, profile, objects) {
            Ok(p) => p,
            Err(status) => {
                diagnosis.pre_filter_msg = status.message();
                diagnosis.add_plugin(&status);
                diagnosis.absent = Some(status);
                return Err(Failure::Unschedulable { diagnosis, num_nodes, state: None });
            }
        };
        let state = pre.state;
        let all: Vec<Slot> = cache.node_order().to_vec();
        let ctx = FilterCtx { pod, profile, objects, cache };

        // The nominated node first.
        if !pod.nominated_node_name.is_empty()
            && let Some(slot) = cache.slot(&pod.nominated_node_name)
            && cache.nodes[slot].spec.is_some()
        {
            let node = &cache.nodes[slot];
            match ctx.run_with_nominated(&state, slot, node, nominator) {
                None => {
                    return Ok(Placement { node: node.name().to_string(), evaluated: 1, feasible: 1, state });
                }
                Some(s) => {
                    diagnosis.add_plugin(&s);
                    diagnosis.node_statuses.insert(node.name().to_string(), s);
                }
            }
        }

        let nodes: Vec<Slot> = match &pre.only {
            None => all.clone(),
            Some((names, plugins)) => {
                let mut sorted: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
                sorted.sort_unstable();
                diagnosis.absent = Some(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    format!("node(s) didn't satisfy plugin(s) [{}]", sorted.join(" ")),
                ));
                names.iter().filter_map(|n| cache.slot(n)).filter(|s| cache.nodes[*s].spec.is_some()).collect()
            }
        };
        let has_scoring = !profile.scores.is_empty();
        let to_find = if has_scoring {
            self.num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, nodes.len())
        } else {
            1
        };
        let mut feasible: Vec<Slot> = Vec::with_capacity(to_find.min(nodes.len()));
        let n = nodes.len();
        let mut processed = 0;
        for i in 0..n {
            let slot = nodes[(self.next_start + i) % n.max(1)];
            let node = &cache.nodes[slot];
            processed += 1;
            match ctx.run_with_nominated(&state, slot, node, nominator) {
                None => {
                    feasible.push(slot);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Some(s) => {
                    diagnosis.add_plugin(&s);
                    diagnosis.node_statuses.insert(node.name().to_string(), s);
                }
            }
        }
        if !all.is_empty() {
            self.next_start = (self.next_start + processed) % all.len();
        }
        if feasible.is_empty() {
            return Err(Failure::Unschedulable { diagnosis, num_nodes, state: Some(state) });
        }
        let evaluated = feasible.len() + diagnosis.node_statuses.len();
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            let scores = prioritize(pod, &feasible, cache, profile, objects);
            self.select(&scores)
        };
        Ok(Placement { node: cache.nodes[chosen].name().to_string(), evaluated, feasible: feasible.len(), state })
    }

    /// The best-scored node, ties broken uniformly at random (reservoir sampling, as upstream).
    fn select(&mut self, scores: &[(Slot, i64)]) -> Slot {
        let mut best = scores[0];
        let mut ties = 1u64;
        for &(slot, s) in &scores[1..] {
            if s > best.1 {
                best = (slot, s);
                ties = 1;
            } else if s == best.1 {
                ties += 1;
                if self.next_random().is_multiple_of(ties) {
                    best = (slot, s);
                }
            }
        }
        best.0
    }
}

/// Upstream `prioritizeNodes`: PreScore, Score, NormalizeScore, weighted sum per node.
pub fn prioritize(
    pod: &PodInfo,
    nodes: &[Slot],
    cache: &mut Cache,
    profile: &Profile,
    objects: &Objects,
) -> Vec<(Slot, i64)> {
    let mut totals: Vec<(Slot, i64)> = nodes.iter().map(|s| (*s, 0)).collect();
    for &(plugin, weight) in &profile.scores {
        let mut scores: Vec<(Slot, i64)> = match plugin {
            PluginId::TaintToleration => {
                let tolerations = taint_toleration::prefer_no_schedule_tolerations(pod);
                let mut s: Vec<_> =
                    nodes.iter().map(|&n| (n, taint_toleration::score(&tolerations, &cache.nodes[n]))).collect();
                plugins::default_normalize(&mut s, true);
                s
            }
            PluginId::NodeAffinity => {
                if pod.preferred_node_affinity.is_empty() {
                    continue;
                }
                let mut s: Vec<_> = nodes.iter().map(|&n| (n, node_affinity::score(pod, &cache.nodes[n]))).collect();
                plugins::default_normalize(&mut s, false);
                s
            }
            PluginId::NodeResourcesFit => {
                let reqs = fit::pre_score(pod, profile);
                nodes.iter().map(|&n| (n, fit::score(&reqs, &cache.nodes[n], profile))).collect()
            }
            PluginId::NodeResourcesBalancedAllocation => {
                let Some(reqs) = balanced::pre_score(pod, profile) else { continue };
                nodes.iter().map(|&n| (n, balanced::score(&reqs, &cache.nodes[n], profile))).collect()
            }
            PluginId::ImageLocality => {
                nodes.iter().map(|&n| (n, image_locality::score(pod, &cache.nodes[n], cache))).collect()
            }
            PluginId::PodTopologySpread => {
                let Some(st) = spread::pre_score(pod, nodes, cache, profile, objects) else { continue };
                let mut s: Vec<_> = nodes.iter().map(|&n| (n, st.score(n, cache))).collect();
                st.normalize(&mut s);
                s
            }
            PluginId::InterPodAffinity => {
                let Some(st) = interpod::pre_score(pod, cache, profile) else { continue };
                let mut s: Vec<_> = nodes.iter().map(|&n| (n, st.score(&cache.nodes[n]))).collect();
                interpod::ScoreState::normalize(&mut s);
                s
            }
            _ => continue,
        };
        for (i, (_, s)) in scores.iter_mut().enumerate() {
            totals[i].1 += *s * weight;
        }
    }
    totals
}
