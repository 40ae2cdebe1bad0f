//! PodTopologySpread, as upstream: `DoNotSchedule` constraints filter (a node's domain may not
//! exceed the global minimum by more than `maxSkew` once the pod is added, honoring `minDomains`
//! and the node inclusion policies), `ScheduleAnyway` constraints score (fewer matching pods in
//! the node's domains is better, weighted by `log(domains + 2)`). Pods without constraints get
//! the profile's default constraints (system defaults: hostname skew 3, zone skew 5, both
//! `ScheduleAnyway`) with the selector of the Services and controller selecting them.
//!
//! Counting uses the cache's per-selector match index and interned topology domains, so a
//! PreFilter over thousands of nodes adds integers instead of matching every pod.

use std::sync::Arc;

use crate::cache::{Cache, Domains, NodeInfo, Slot};
use crate::framework::{Code, PluginId, Profile, Status};
use crate::model::PodInfo;
use crate::model::pod::{LABEL_HOSTNAME, SpreadConstraint, WhenUnsatisfiable};
use crate::model::taints::{Taint, first_untolerated};
use crate::objects::Objects;

use crate::cache::index::MatchKey;

/// Upstream `ErrReasonConstraintsNotMatch`.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// Upstream `ErrReasonNodeLabelNotMatch`.
pub const REASON_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

/// The constraints of `pod` for `when`: its own, else the profile's defaults with the default
/// selector (none when nothing selects the pod).
pub fn constraints(
    pod: &PodInfo,
    when: WhenUnsatisfiable,
    profile: &Profile,
    objects: &Objects,
) -> Vec<SpreadConstraint> {
    if pod.has_spread {
        return pod.spread.iter().filter(|c| c.when == when).cloned().collect();
    }
    let defaults: Vec<_> = profile
        .default_spread_constraints()
        .into_iter()
        .filter(|d| (when == WhenUnsatisfiable::DoNotSchedule) == d.do_not_schedule)
        .collect();
    if defaults.is_empty() {
        return Vec::new();
    }
    let selector = objects.default_selector(pod);
    if selector.requirements.is_empty() {
        return Vec::new();
    }
    defaults
        .into_iter()
        .map(|d| SpreadConstraint {
            max_skew: d.max_skew,
            topology_key: d.topology_key,
            selector: selector.clone(),
            min_domains: 1,
            honor_node_affinity: true,
            honor_node_taints: false,
            when,
        })
        .collect()
}

/// Upstream `matchNodeInclusionPolicies`.
fn included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = node.spec.as_ref() else { return false };
    if c.honor_node_affinity && !pod.node_affinity.matches(&spec.name, &spec.labels) {
        return false;
    }
    if c.honor_node_taints && first_untolerated(&spec.taints, &pod.tolerations, Taint::blocks_scheduling).is_some() {
        return false;
    }
    true
}

/// Matching pods on a node for a constraint: an empty selector counts nothing (upstream).
fn count_on(cache: &mut Cache, pod: &PodInfo, c: &SpreadConstraint, slots: &[Slot]) -> Vec<(Slot, i64)> {
    if c.selector.is_empty() {
        return slots.iter().map(|s| (*s, 0)).collect();
    }
    let counts = cache.match_counts(&MatchKey::of_spread(&pod.namespace, &c.selector));
    slots.iter().map(|s| (*s, i64::from(counts.on(*s, false)))).collect()
}

#[derive(Debug, Clone)]
struct FilterConstraint {
    c: SpreadConstraint,
    domains: Arc<Domains>,
    counts: Vec<i64>,
    eligible: Vec<bool>,
    domains_num: usize,
    /// The two smallest counts (upstream's critical paths): (domain, count).
    critical: [(u32, i64); 2],
    self_match: bool,
}

impl FilterConstraint {
    fn update_critical(&mut self, d: u32, n: i64) {
        let p = &mut self.critical;
        if p[0].0 == d {
            p[0].1 = n;
            if p[0].1 > p[1].1 {
                p.swap(0, 1);
            }
        } else if p[1].0 == d {
            p[1].1 = n;
            if p[0].1 > p[1].1 {
                p.swap(0, 1);
            }
        } else if n < p[0].1 {
            p[1] = p[0];
            p[0] = (d, n);
        } else if n < p[1].1 {
            p[1] = (d, n);
        }
    }

    fn min_match(&self) -> i64 {
        if (self.domains_num as i64) < i64::from(self.c.min_domains) { 0 } else { self.critical[0].1 }
    }
}

/// PreFilter state.
#[derive(Debug, Clone)]
pub struct FilterState {
    constraints: Vec<FilterConstraint>,
}

/// PreFilter: `None` when the pod has no `DoNotSchedule` constraint (Skip).
pub fn pre_filter(pod: &PodInfo, cache: &mut Cache, profile: &Profile, objects: &Objects) -> Option<FilterState> {
    let cs = constraints(pod, WhenUnsatisfiable::DoNotSchedule, profile, objects);
    if cs.is_empty() {
        return None;
    }
    let slots: Vec<Slot> = cache.node_order().to_vec();
    let mut out = Vec::with_capacity(cs.len());
    for c in cs {
        let domains = cache.domains(&c.topology_key);
        let n = domains.names.len();
        out.push(FilterConstraint {
            self_match: c.selector.matches(&pod.labels),
            counts: vec![0; n],
            eligible: vec![false; n],
            domains_num: 0,
            critical: [(u32::MAX, i64::from(i32::MAX)), (u32::MAX, i64::from(i32::MAX))],
            domains,
            c,
        });
    }
    // Nodes carrying every topology key.
    let with_keys: Vec<Slot> = slots.into_iter().filter(|s| out.iter().all(|fc| fc.domains.of(*s).is_some())).collect();
    for fc in &mut out {
        let counts = count_on(cache, pod, &fc.c, &with_keys);
        for (slot, n) in counts {
            if !included(&fc.c, pod, &cache.nodes[slot]) {
                continue;
            }
            let Some(d) = fc.domains.of(slot) else { continue };
            fc.eligible[d as usize] = true;
            fc.counts[d as usize] += n;
        }
        for d in 0..fc.counts.len() {
            if fc.eligible[d] {
                fc.domains_num += 1;
                let n = fc.counts[d];
                fc.update_critical(d as u32, n);
            }
        }
    }
    Some(FilterState { constraints: out })
}

impl FilterState {
    /// Upstream `updateWithPod`: accounts a pod added to (`delta` 1) or removed from (-1) `node`
    /// while evaluating nominated pods or preemption victims.
    pub fn update_with_pod(&mut self, other: &PodInfo, preemptor: &PodInfo, node: &NodeInfo, slot: Slot, delta: i64) {
        if other.namespace != preemptor.namespace || node.spec.is_none() {
            return;
        }
        if !self.constraints.iter().all(|fc| fc.domains.of(slot).is_some()) {
            return;
        }
        for fc in &mut self.constraints {
            if !fc.c.selector.matches(&other.labels) || !included(&fc.c, preemptor, node) {
                continue;
            }
            let Some(d) = fc.domains.of(slot) else { continue };
            let di = d as usize;
            fc.counts[di] += delta;
            let n = fc.counts[di];
            fc.update_critical(d, n);
        }
    }

    /// Filter.
    pub fn filter(&self, slot: Slot) -> Option<Status> {
        for fc in &self.constraints {
            let Some(d) = fc.domains.of(slot) else {
                return Some(
                    Status::new(Code::UnschedulableAndUnresolvable, REASON_LABEL)
                        .with_plugin(PluginId::PodTopologySpread),
                );
            };
            let di = d as usize;
            let matched = if fc.eligible[di] { fc.counts[di] } else { 0 };
            let skew = matched + i64::from(fc.self_match) - fc.min_match();
            if skew > i64::from(fc.c.max_skew) {
                return Some(Status::unschedulable(vec![REASON.to_string()]).with_plugin(PluginId::PodTopologySpread));
            }
        }
        None
    }
}

#[derive(Debug)]
struct ScoreConstraint {
    c: SpreadConstraint,
    hostname: bool,
    domains: Arc<Domains>,
    /// Per domain id (the last entry is nodes without the label): matching pods, or `None`
    /// when no filtered node is in the domain.
    counts: Vec<Option<i64>>,
    weight: f64,
    index: MatchKey,
}

/// PreScore state.
#[derive(Debug)]
pub struct ScoreState {
    constraints: Vec<ScoreConstraint>,
    require_all: bool,
}

/// PreScore: `None` when the pod has no `ScheduleAnyway` constraint (Skip).
pub fn pre_score(
    pod: &PodInfo,
    filtered: &[Slot],
    cache: &mut Cache,
    profile: &Profile,
    objects: &Objects,
) -> Option<ScoreState> {
    if cache.num_nodes() == 0 {
        return None;
    }
    let cs = constraints(pod, WhenUnsatisfiable::ScheduleAnyway, profile, objects);
    if cs.is_empty() {
        return None;
    }
    let require_all = pod.has_spread || !profile.system_defaulted_spread();
    let mut out: Vec<ScoreConstraint> = cs
        .into_iter()
        .map(|c| {
            let domains = cache.domains(&c.topology_key);
            let n = domains.names.len();
            ScoreConstraint {
                hostname: c.topology_key == LABEL_HOSTNAME,
                index: MatchKey::of_spread(&pod.namespace, &c.selector),
                counts: vec![None; n + 1],
                weight: 0.0,
                domains,
                c,
            }
        })
        .collect();
    let has_all = |out: &[ScoreConstraint], s: Slot| out.iter().all(|sc| sc.domains.of(s).is_some());
    let mut ignored = 0usize;
    let mut sizes = vec![0usize; out.len()];
    for &slot in filtered {
        if require_all && !has_all(&out, slot) {
            ignored += 1;
            continue;
        }
        for (i, sc) in out.iter_mut().enumerate() {
            if sc.hostname {
                continue;
            }
            let d = sc.domains.of(slot).map(|d| d as usize).unwrap_or(sc.domains.names.len());
            if sc.counts[d].is_none() {
                sc.counts[d] = Some(0);
                sizes[i] += 1;
            }
        }
    }
    for (i, sc) in out.iter_mut().enumerate() {
        let size = if sc.hostname { filtered.len() - ignored } else { sizes[i] };
        sc.weight = ((size + 2) as f64).ln();
    }
    let all: Vec<Slot> = cache.node_order().iter().copied().filter(|s| !require_all || has_all(&out, *s)).collect();
    for sc in out.iter_mut().filter(|sc| !sc.hostname) {
        let empty = sc.c.selector.is_empty();
        for &slot in &all {
            let d = sc.domains.of(slot).map(|d| d as usize).unwrap_or(sc.domains.names.len());
            if sc.counts[d].is_none() {
                continue;
            }
            if !included(&sc.c, pod, &cache.nodes[slot]) {
                continue;
            }
            let n = if empty { 0 } else { i64::from(cache.match_counts(&sc.index).on(slot, false)) };
            if let Some(c) = sc.counts[d].as_mut() {
                *c += n;
            }
        }
    }
    Some(ScoreState { constraints: out, require_all })
}

impl ScoreState {
    /// Whether `slot` is left out of scoring (lacks a required topology key).
    pub fn ignored(&self, slot: Slot) -> bool {
        self.require_all && !self.constraints.iter().all(|sc| sc.domains.of(slot).is_some())
    }

    /// Score (before normalization).
    pub fn score(&self, slot: Slot, cache: &Cache) -> i64 {
        if self.ignored(slot) {
            return 0;
        }
        let mut score = 0.0;
        for sc in &self.constraints {
            let Some(d) = sc.domains.of(slot) else { continue };
            let cnt = if sc.hostname {
                if sc.c.selector.is_empty() {
                    0
                } else {
                    let pod_ns = sc.index.namespaces.iter().next().map(String::as_str).unwrap_or("");
                    cache.nodes[slot]
                        .pods
                        .iter()
                        .filter(|p| !p.terminating && p.namespace == pod_ns && sc.c.selector.matches(&p.labels))
                        .count() as i64
                }
            } else {
                sc.counts[d as usize].unwrap_or(0)
            };
            score += cnt as f64 * sc.weight + f64::from(sc.c.max_skew - 1);
        }
        score.round() as i64
    }

    /// NormalizeScore over (slot, score) pairs.
    pub fn normalize(&self, scores: &mut [(Slot, i64)]) {
        let mut min = i64::MAX;
        let mut max = 0;
        for (slot, s) in scores.iter() {
            if self.ignored(*slot) {
                continue;
            }
            min = min.min(*s);
            max = max.max(*s);
        }
        for (slot, s) in scores.iter_mut() {
            if self.ignored(*slot) {
                *s = 0;
            } else if max == 0 {
                *s = super::fit::MAX_NODE_SCORE;
            } else {
                *s = super::fit::MAX_NODE_SCORE * (max + min - *s) / max;
            }
        }
    }
}
