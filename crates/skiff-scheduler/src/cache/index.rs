//! Incremental indexes that keep pod (anti-)affinity and topology spreading cheap at scale.
//!
//! - [`MatchIndex`]: for each selector a pending pod asked about (namespaces + namespace
//!   selector + label selector), how many placed pods it matches on each node, split into all and
//!   terminating pods. Built once by a scan when first asked, then kept exact on every pod add or
//!   removal, so a scheduling cycle reads per-node counts instead of matching every pod in the
//!   cluster (what upstream does, in parallel, every cycle). Entries nobody asked about for a
//!   while are dropped.
//! - [`AntiIndex`]: existing pods' required anti-affinity terms grouped by identical term, with
//!   the number of such pods per topology value, so checking whether an incoming pod is repelled
//!   matches each distinct term once instead of once per pod.
//!
//! The cache ([`super::Cache`]) feeds both; the plugins read them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use skiff_api::selector::LabelSelectorExpr;

use crate::model::PodInfo;
use crate::model::pod::AffinityTerm;

/// What a [`MatchIndex`] entry counts: pods in `namespaces` (or in a namespace the namespace
/// selector selects) whose labels match `selector`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MatchKey {
    /// Namespaces by name.
    pub namespaces: BTreeSet<String>,
    /// Namespaces by labels.
    pub namespace_selector: LabelSelectorExpr,
    /// The pod label selector.
    pub selector: LabelSelectorExpr,
}

impl MatchKey {
    /// The key of an affinity term's pod selection.
    pub fn of_term(t: &AffinityTerm) -> Self {
        Self {
            namespaces: t.namespaces.clone(),
            namespace_selector: t.namespace_selector.clone(),
            selector: t.selector.clone(),
        }
    }

    /// The key of a spread constraint of a pod in `namespace`.
    pub fn of_spread(namespace: &str, selector: &LabelSelectorExpr) -> Self {
        Self {
            namespaces: [namespace.to_string()].into(),
            namespace_selector: LabelSelectorExpr::nothing(),
            selector: selector.clone(),
        }
    }

    /// Whether the key selects `pod`, whose namespace has `ns_labels`.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.contains(&pod.namespace) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(&pod.labels)
    }
}

/// Per-node match counts of one key.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Matching pods per node slot.
    pub all: Vec<u32>,
    /// Matching terminating pods per node slot.
    pub terminating: Vec<u32>,
    /// Matching pods overall.
    pub total: u64,
    last_used: u64,
}

impl Counts {
    /// Matching pods on `slot`, optionally without terminating ones.
    pub fn on(&self, slot: usize, include_terminating: bool) -> u32 {
        let all = self.all.get(slot).copied().unwrap_or(0);
        if include_terminating { all } else { all - self.terminating.get(slot).copied().unwrap_or(0) }
    }

    fn bump(&mut self, slot: usize, terminating: bool, add: bool) {
        if self.all.len() <= slot {
            self.all.resize(slot + 1, 0);
            self.terminating.resize(slot + 1, 0);
        }
        if add {
            self.all[slot] += 1;
            self.total += 1;
            if terminating {
                self.terminating[slot] += 1;
            }
        } else {
            self.all[slot] = self.all[slot].saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if terminating {
                self.terminating[slot] = self.terminating[slot].saturating_sub(1);
            }
        }
    }
}

/// Lazily built, incrementally maintained match counts (see the module doc).
#[derive(Debug, Default)]
pub struct MatchIndex {
    entries: HashMap<MatchKey, Counts>,
    clock: u64,
}

/// Cycles of the index clock an entry may go unused before it is dropped.
const IDLE_LIMIT: u64 = 10_000;

impl MatchIndex {
    /// The counts of `key`, built by scanning `pods` (pod, node slot, namespace labels) when new.
    pub fn get<'a, I>(&mut self, key: &MatchKey, pods: impl FnOnce() -> I) -> &Counts
    where
        I: Iterator<Item = (&'a PodInfo, usize, &'a BTreeMap<String, String>)>,
    {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.entry(key.clone()).or_insert_with(|| {
            let mut c = Counts::default();
            for (pod, slot, ns_labels) in pods() {
                if key.matches(pod, ns_labels) {
                    c.bump(slot, pod.terminating, true);
                }
            }
            c
        });
        entry.last_used = clock;
        entry
    }

    /// Accounts a pod placed on (`add`) or removed from `slot`.
    pub fn on_pod(&mut self, pod: &PodInfo, slot: usize, ns_labels: &BTreeMap<String, String>, add: bool) {
        for (key, counts) in &mut self.entries {
            if key.matches(pod, ns_labels) {
                counts.bump(slot, pod.terminating, add);
            }
        }
    }

    /// Drops entries that depend on namespace labels (after a namespace's labels changed).
    pub fn forget_namespace_selectors(&mut self) {
        self.entries.retain(|k, _| k.namespace_selector.match_nothing);
    }

    /// Drops entries unused for a long time.
    pub fn evict_idle(&mut self) {
        let clock = self.clock;
        self.entries.retain(|_, c| clock - c.last_used < IDLE_LIMIT);
    }

    /// Number of entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Existing pods' required anti-affinity terms, per distinct term, counted per topology value.
#[derive(Debug, Default)]
pub struct AntiIndex {
    terms: HashMap<AffinityTerm, HashMap<String, u32>>,
}

impl AntiIndex {
    /// Accounts the anti-affinity terms of `pod` on a node with `node_labels`.
    pub fn on_pod(&mut self, pod: &PodInfo, node_labels: &BTreeMap<String, String>, add: bool) {
        for term in &pod.required_anti_affinity {
            let Some(value) = node_labels.get(&term.topology_key) else { continue };
            if add {
                *self.terms.entry(term.clone()).or_default().entry(value.clone()).or_default() += 1;
            } else if let Some(values) = self.terms.get_mut(term) {
                if let Some(n) = values.get_mut(value) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.terms.remove(term);
                }
            }
        }
    }

    /// Upstream `existingAntiAffinityCounts`: topology pairs where a placed pod's anti-affinity
    /// term selects `pod` (in a namespace with `ns_labels`).
    pub fn counts_against(
        &self,
        pod: &PodInfo,
        ns_labels: &BTreeMap<String, String>,
    ) -> HashMap<(String, String), i64> {
        let mut out = HashMap::new();
        for (term, values) in &self.terms {
            if term.matches(&pod.namespace, &pod.labels, ns_labels) {
                for (v, n) in values {
                    *out.entry((term.topology_key.clone(), v.clone())).or_insert(0) += i64::from(*n);
                }
            }
        }
        out
    }

    /// Whether no placed pod has required anti-affinity.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(ns: &str, labels: &[(&str, &str)], terminating: bool) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            terminating,
            ..Default::default()
        }
    }

    #[test]
    fn match_index_builds_once_then_follows_adds_and_removes() {
        let empty = BTreeMap::new();
        let a = pod("ns", &[("app", "x")], false);
        let b = pod("ns", &[("app", "x")], true);
        let c = pod("other", &[("app", "x")], false);
        let placed = [(&a, 0usize, &empty), (&b, 1, &empty), (&c, 1, &empty)];
        let key = MatchKey::of_spread("ns", &LabelSelectorExpr::parse("app=x").unwrap());
        let mut idx = MatchIndex::default();
        let counts = idx.get(&key, || placed.iter().copied());
        assert_eq!((counts.on(0, false), counts.on(1, true), counts.on(1, false)), (1, 1, 0));
        let d = pod("ns", &[("app", "x")], false);
        idx.on_pod(&d, 3, &empty, true);
        idx.on_pod(&a, 0, &empty, false);
        let counts = idx.get(&key, std::iter::empty);
        assert_eq!((counts.on(0, true), counts.on(3, true), counts.total), (0, 1, 2));
    }

    #[test]
    fn anti_index_counts_matching_terms_per_topology_value() {
        let term = AffinityTerm {
            namespaces: ["ns".to_string()].into(),
            namespace_selector: LabelSelectorExpr::nothing(),
            selector: LabelSelectorExpr::parse("app=db").unwrap(),
            topology_key: "zone".into(),
        };
        let mut existing = pod("ns", &[("app", "db")], false);
        existing.required_anti_affinity = vec![term];
        let node = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let mut idx = AntiIndex::default();
        idx.on_pod(&existing, &node, true);
        idx.on_pod(&existing, &node, true);
        let incoming = pod("ns", &[("app", "db")], false);
        let counts = idx.counts_against(&incoming, &BTreeMap::new());
        assert_eq!(counts.get(&("zone".to_string(), "a".to_string())), Some(&2));
        assert!(idx.counts_against(&pod("ns", &[("app", "web")], false), &BTreeMap::new()).is_empty());
        idx.on_pod(&existing, &node, false);
        idx.on_pod(&existing, &node, false);
        assert!(idx.is_empty());
    }
}
