//! InterPodAffinity, as upstream: required affinity (the node's domain must hold a pod matching
//! all the terms, or the pod is the first of a self-affine series), required anti-affinity (no
//! matching pod in the domain), existing pods' required anti-affinity against the incoming pod
//! (symmetry); the score adds preferred term weights for matching pods per domain, existing
//! pods' preferred terms and required affinity (`hardPodAffinityWeight`) towards the incoming
//! pod, normalized between the minimum and the maximum.
//!
//! Counts come from the cache's match index (per node) and anti-affinity index (per distinct
//! term) and are kept per topology domain id.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::index::MatchKey;
use crate::cache::{Cache, Domains, NodeInfo, Slot};
use crate::framework::{Code, PluginId, Profile, Status};
use crate::model::PodInfo;
use crate::model::pod::AffinityTerm;

/// Upstream `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const REASON_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream `ErrReasonAffinityRulesNotMatch`.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Upstream `ErrReasonAntiAffinityRulesNotMatch`.
pub const REASON_ANTI: &str = "node(s) didn't match pod anti-affinity rules";

/// Counts per topology pair: per key, per domain id, plus pairs whose key has no interned
/// domains (only reachable through nominated pods).
#[derive(Debug, Clone, Default)]
pub struct PairCounts {
    keys: Vec<(String, Arc<Domains>, Vec<i64>)>,
    extra: HashMap<String, HashMap<String, i64>>,
}

impl PairCounts {
    fn ensure_key(&mut self, key: &str, domains: Arc<Domains>) -> usize {
        if let Some(i) = self.keys.iter().position(|(k, _, _)| k == key) {
            return i;
        }
        let n = domains.names.len();
        self.keys.push((key.to_string(), domains, vec![0; n]));
        self.keys.len() - 1
    }

    /// Adds `n` to the pair (key, domain of `slot`).
    fn add(&mut self, key: &str, slot: Slot, node: &NodeInfo, n: i64, domains: Option<Arc<Domains>>) {
        let existing = self.keys.iter().position(|(k, _, _)| k == key);
        let i = match (existing, domains) {
            (Some(i), _) => Some(i),
            (None, Some(d)) => Some(self.ensure_key(key, d)),
            (None, None) => None,
        };
        match i {
            Some(i) => {
                let (_, domains, counts) = &mut self.keys[i];
                if let Some(d) = domains.of(slot) {
                    counts[d as usize] += n;
                }
            }
            None => {
                if let Some(value) = node.spec.as_ref().and_then(|s| s.labels.get(key)) {
                    *self.extra.entry(key.to_string()).or_default().entry(value.clone()).or_default() += n;
                }
            }
        }
    }

    /// The count of the pair (key, domain of `slot`).
    fn get(&self, key: &str, slot: Slot, node: &NodeInfo) -> i64 {
        let own = self
            .keys
            .iter()
            .find(|(k, _, _)| k == key)
            .and_then(|(_, d, c)| d.of(slot).map(|d| c[d as usize]))
            .unwrap_or(0);
        let extra = self
            .extra
            .get(key)
            .and_then(|m| node.spec.as_ref().and_then(|s| s.labels.get(key)).and_then(|v| m.get(v)))
            .copied()
            .unwrap_or(0);
        own + extra
    }

    /// Whether every pair counts zero (upstream's empty map: zero entries are deleted there).
    fn is_empty(&self) -> bool {
        self.keys.iter().all(|(_, _, c)| c.iter().all(|n| *n == 0))
            && self.extra.values().all(|m| m.values().all(|n| *n == 0))
    }

    /// Whether any pair of the node's domains counts more than zero.
    fn any_on(&self, slot: Slot, node: &NodeInfo) -> bool {
        self.keys.iter().any(|(_, d, c)| d.of(slot).is_some_and(|d| c[d as usize] > 0))
            || self.extra.iter().any(|(k, m)| {
                node.spec.as_ref().and_then(|s| s.labels.get(k)).and_then(|v| m.get(v)).is_some_and(|n| *n > 0)
            })
    }
}

/// PreFilter state.
#[derive(Debug, Clone)]
pub struct FilterState {
    existing_anti: PairCounts,
    affinity: PairCounts,
    anti: PairCounts,
    matches_own_terms: bool,
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns_labels: &std::collections::BTreeMap<String, String>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(&pod.namespace, &pod.labels, ns_labels))
}

/// PreFilter: `None` (Skip) when neither the pod nor any placed pod has a required term that
/// concerns it.
pub fn pre_filter(pod: &PodInfo, cache: &mut Cache) -> Option<FilterState> {
    let own_ns = cache.namespace_labels(&pod.namespace).clone();
    let existing = cache.anti.counts_against(pod, &own_ns);
    if existing.is_empty() && pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
        return None;
    }
    let slots: Vec<Slot> = cache.node_order().to_vec();
    let mut existing_anti = PairCounts::default();
    for ((key, value), n) in existing {
        let domains = cache.domains(&key);
        if let Some(d) = domains.id(&value) {
            let i = existing_anti.ensure_key(&key, domains);
            existing_anti.keys[i].2[d as usize] += n;
        }
    }
    let mut affinity = PairCounts::default();
    if pod.required_affinity.len() == 1 {
        let term = &pod.required_affinity[0];
        let domains = cache.domains(&term.topology_key);
        let counts = cache.match_counts(&MatchKey::of_term(term)).clone();
        if counts.total > 0 {
            let i = affinity.ensure_key(&term.topology_key, domains.clone());
            for &slot in &slots {
                if let Some(d) = domains.of(slot) {
                    affinity.keys[i].2[d as usize] += i64::from(counts.on(slot, true));
                }
            }
        }
    } else if !pod.required_affinity.is_empty() {
        let keys: Vec<(String, Arc<Domains>)> =
            pod.required_affinity.iter().map(|t| (t.topology_key.clone(), cache.domains(&t.topology_key))).collect();
        let placed: Vec<(Arc<PodInfo>, Slot)> = cache.pods().map(|(p, s)| (p.clone(), s)).collect();
        for (other, slot) in placed {
            if cache.nodes[slot].spec.is_none() {
                continue;
            }
            if matches_all(&pod.required_affinity, &other, cache.namespace_labels(&other.namespace)) {
                for (key, domains) in &keys {
                    affinity.add(key, slot, &cache.nodes[slot], 1, Some(domains.clone()));
                }
            }
        }
    }
    let mut anti = PairCounts::default();
    for term in &pod.required_anti_affinity {
        let domains = cache.domains(&term.topology_key);
        let counts = cache.match_counts(&MatchKey::of_term(term)).clone();
        if counts.total == 0 {
            continue;
        }
        let i = anti.ensure_key(&term.topology_key, domains.clone());
        for &slot in &slots {
            if let Some(d) = domains.of(slot) {
                anti.keys[i].2[d as usize] += i64::from(counts.on(slot, true));
            }
        }
    }
    Some(FilterState {
        existing_anti,
        affinity,
        anti,
        matches_own_terms: matches_all(&pod.required_affinity, pod, &own_ns),
    })
}

impl FilterState {
    /// Upstream `updateWithPod` for nominated pods and preemption victims.
    pub fn update_with_pod(
        &mut self,
        other: &PodInfo,
        preemptor: &PodInfo,
        node: &NodeInfo,
        slot: Slot,
        delta: i64,
        cache: &Cache,
    ) {
        if node.spec.is_none() {
            return;
        }
        let preemptor_ns = cache.namespace_labels(&preemptor.namespace);
        for t in &other.required_anti_affinity {
            if t.matches(&preemptor.namespace, &preemptor.labels, preemptor_ns) {
                self.existing_anti.add(&t.topology_key, slot, node, delta, cache.domains_built(&t.topology_key));
            }
        }
        let other_ns = cache.namespace_labels(&other.namespace);
        if matches_all(&preemptor.required_affinity, other, other_ns) {
            for t in &preemptor.required_affinity {
                self.affinity.add(&t.topology_key, slot, node, delta, cache.domains_built(&t.topology_key));
            }
        }
        for t in &preemptor.required_anti_affinity {
            if t.matches(&other.namespace, &other.labels, other_ns) {
                self.anti.add(&t.topology_key, slot, node, delta, cache.domains_built(&t.topology_key));
            }
        }
    }

    /// Filter.
    pub fn filter(&self, pod: &PodInfo, slot: Slot, node: &NodeInfo) -> Option<Status> {
        let labels = node.spec.as_ref().map(|s| &s.labels)?;
        let mut pods_exist = true;
        let mut affinity_ok = true;
        for t in &pod.required_affinity {
            if !labels.contains_key(&t.topology_key) {
                affinity_ok = false;
                break;
            }
            if self.affinity.get(&t.topology_key, slot, node) <= 0 {
                pods_exist = false;
            }
        }
        if affinity_ok && !pods_exist {
            affinity_ok = self.affinity.is_empty() && self.matches_own_terms;
        }
        if !affinity_ok {
            return Some(
                Status::new(Code::UnschedulableAndUnresolvable, REASON_AFFINITY)
                    .with_plugin(PluginId::InterPodAffinity),
            );
        }
        if !self.anti.is_empty() {
            for t in &pod.required_anti_affinity {
                if labels.contains_key(&t.topology_key) && self.anti.get(&t.topology_key, slot, node) > 0 {
                    return Some(
                        Status::unschedulable(vec![REASON_ANTI.into()]).with_plugin(PluginId::InterPodAffinity),
                    );
                }
            }
        }
        if self.existing_anti.any_on(slot, node) {
            return Some(
                Status::unschedulable(vec![REASON_EXISTING_ANTI.into()]).with_plugin(PluginId::InterPodAffinity),
            );
        }
        None
    }
}

/// PreScore state: score per topology key and value.
#[derive(Debug, Default)]
pub struct ScoreState {
    topology: HashMap<String, HashMap<String, i64>>,
}

impl ScoreState {
    fn add(&mut self, key: &str, node: &NodeInfo, weight: i64) {
        let Some(spec) = node.spec.as_ref() else { return };
        if spec.labels.is_empty() {
            return;
        }
        if let Some(v) = spec.labels.get(key) {
            *self.topology.entry(key.to_string()).or_default().entry(v.clone()).or_default() += weight;
        }
    }

    /// Score.
    pub fn score(&self, node: &NodeInfo) -> i64 {
        let Some(spec) = node.spec.as_ref() else { return 0 };
        self.topology.iter().filter_map(|(k, values)| spec.labels.get(k).and_then(|v| values.get(v))).sum()
    }

    /// NormalizeScore: linear between the minimum and the maximum.
    pub fn normalize(scores: &mut [(Slot, i64)]) {
        let min = scores.iter().map(|(_, s)| *s).min().unwrap_or(0);
        let max = scores.iter().map(|(_, s)| *s).max().unwrap_or(0);
        let diff = max - min;
        for (_, s) in scores.iter_mut() {
            *s = if diff > 0 { (100.0 * ((*s - min) as f64 / diff as f64)) as i64 } else { 0 };
        }
    }
}

/// PreScore: `None` (Skip) when nothing can weigh on this pod's placement.
pub fn pre_score(pod: &PodInfo, cache: &mut Cache, profile: &Profile) -> Option<ScoreState> {
    let has_constraints = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    if !has_constraints && !cache.has_scoring_pods() {
        return None;
    }
    let mut state = ScoreState::default();
    let slots: Vec<Slot> = cache.node_order().to_vec();
    let terms =
        pod.preferred_affinity.iter().map(|w| (w, 1)).chain(pod.preferred_anti_affinity.iter().map(|w| (w, -1)));
    for (w, sign) in terms {
        let counts = cache.match_counts(&MatchKey::of_term(&w.term)).clone();
        if counts.total == 0 {
            continue;
        }
        for &slot in &slots {
            let n = i64::from(counts.on(slot, true));
            if n > 0 {
                state.add(&w.term.topology_key, &cache.nodes[slot], w.weight * sign * n);
            }
        }
    }
    let own_ns = cache.namespace_labels(&pod.namespace);
    let mut contributions = Vec::new();
    for (other, slot) in cache.scoring_pods() {
        if cache.nodes[slot].spec.is_none() {
            continue;
        }
        let matches = |t: &AffinityTerm| t.matches(&pod.namespace, &pod.labels, own_ns);
        if profile.hard_pod_affinity_weight > 0 {
            for t in other.required_affinity.iter().filter(|t| matches(t)) {
                contributions.push((t.topology_key.clone(), slot, profile.hard_pod_affinity_weight));
            }
        }
        for w in other.preferred_affinity.iter().filter(|w| matches(&w.term)) {
            contributions.push((w.term.topology_key.clone(), slot, w.weight));
        }
        for w in other.preferred_anti_affinity.iter().filter(|w| matches(&w.term)) {
            contributions.push((w.term.topology_key.clone(), slot, -w.weight));
        }
    }
    for (key, slot, weight) in contributions {
        state.add(&key, &cache.nodes[slot], weight);
    }
    if state.topology.is_empty() { None } else { Some(state) }
}
