//! The scheduler cache: every node with the pods placed on it (bound, or assumed while their
//! binding is in flight), kept up to date incrementally from watch events and from the
//! scheduler's own decisions. It is owned by the scheduling thread, so a scheduling cycle reads
//! it directly: no per-cycle snapshot or copy (upstream clones changed node infos into a
//! snapshot each cycle because its cache is shared between goroutines).
//!
//! Also kept here: the node list in upstream's zone-interleaved order, image presence across
//! nodes, namespace labels, and the indexes of [`index`] that make affinity and spreading cheap.
//!
//! What the cache does not do: decide anything (plugins) or talk to the API (informers, binder).

pub mod index;
pub mod nodeinfo;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use index::{AntiIndex, Counts, MatchIndex, MatchKey};
pub use nodeinfo::NodeInfo;

use crate::model::{NodeSpec, PodInfo};

/// Index of a node in [`Cache::nodes`].
pub type Slot = usize;

/// How many nodes carry an image, and its size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageState {
    /// Size in bytes (as first reported).
    pub size: i64,
    /// Number of nodes reporting it.
    pub nodes: usize,
}

#[derive(Debug, Clone)]
struct CachedPod {
    info: Arc<PodInfo>,
    slot: Slot,
    assumed: bool,
}

/// The cache (see the module doc).
#[derive(Debug, Default)]
pub struct Cache {
    /// Nodes by slot; a slot whose node and pods are all gone is free for reuse.
    pub nodes: Vec<NodeInfo>,
    slots: HashMap<String, Slot>,
    free: Vec<Slot>,
    zones: Vec<(String, Vec<Slot>)>,
    order: Vec<Slot>,
    order_dirty: bool,
    pods: HashMap<String, CachedPod>,
    images: HashMap<String, ImageState>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Per-selector match counts.
    pub matches: MatchIndex,
    /// Existing pods' required anti-affinity terms.
    pub anti: AntiIndex,
    /// Placed pods whose affinity terms can weigh on other pods' scores, by uid.
    scoring_pods: HashMap<String, Slot>,
    empty_labels: BTreeMap<String, String>,
    topology: HashMap<String, Arc<Domains>>,
}

/// The domains of one topology key: each node's domain id (its label value, interned).
#[derive(Debug, Clone, Default)]
pub struct Domains {
    /// Domain id per node slot (`NO_DOMAIN` when the node lacks the label or is gone).
    pub of_slot: Vec<u32>,
    /// Label value per domain id.
    pub names: Vec<String>,
    ids: HashMap<String, u32>,
}

/// The domain id of a node without the topology label.
pub const NO_DOMAIN: u32 = u32::MAX;

impl Domains {
    /// The domain of `slot`, if the node has the label.
    pub fn of(&self, slot: Slot) -> Option<u32> {
        self.of_slot.get(slot).copied().filter(|d| *d != NO_DOMAIN)
    }

    /// The id of the domain named `value`.
    pub fn id(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes that exist.
    pub fn num_nodes(&self) -> usize {
        self.order_len()
    }

    fn order_len(&self) -> usize {
        self.zones.iter().map(|(_, s)| s.len()).sum()
    }

    /// Existing nodes in upstream's node-tree order: round-robin over zones (in the order zones
    /// appeared), nodes of a zone in the order they were added.
    pub fn node_order(&mut self) -> &[Slot] {
        if self.order_dirty {
            self.order.clear();
            let longest = self.zones.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
            for i in 0..longest {
                for (_, slots) in &self.zones {
                    if let Some(s) = slots.get(i) {
                        self.order.push(*s);
                    }
                }
            }
            self.order_dirty = false;
        }
        &self.order
    }

    /// The slot of a node by name (existing or still holding pods).
    pub fn slot(&self, name: &str) -> Option<Slot> {
        self.slots.get(name).copied()
    }

    /// The existing node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.slot(name).map(|s| &self.nodes[s]).filter(|n| n.spec.is_some())
    }

    /// The domains of topology key `key` (built on first use after a node change).
    pub fn domains(&mut self, key: &str) -> Arc<Domains> {
        if !self.topology.contains_key(key) {
            let mut d = Domains { of_slot: vec![NO_DOMAIN; self.nodes.len()], ..Default::default() };
            for (slot, n) in self.nodes.iter().enumerate() {
                let Some(value) = n.spec.as_ref().and_then(|s| s.labels.get(key)) else { continue };
                let next = d.names.len() as u32;
                let id = *d.ids.entry(value.clone()).or_insert(next);
                if id == next {
                    d.names.push(value.clone());
                }
                d.of_slot[slot] = id;
            }
            self.topology.insert(key.to_string(), Arc::new(d));
        }
        self.topology[key].clone()
    }

    /// The domains of `key` if already built (see [`Cache::domains`]).
    pub fn domains_built(&self, key: &str) -> Option<Arc<Domains>> {
        self.topology.get(key).cloned()
    }

    /// Labels of namespace `ns` (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> &BTreeMap<String, String> {
        self.namespaces.get(ns).unwrap_or(&self.empty_labels)
    }

    /// Records a namespace's labels; returns whether they changed.
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) -> bool {
        if self.namespaces.get(name) == Some(&labels) {
            return false;
        }
        self.namespaces.insert(name.to_string(), labels);
        self.matches.forget_namespace_selectors();
        true
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.remove(name).is_some() {
            self.matches.forget_namespace_selectors();
        }
    }

    /// Image presence summary.
    pub fn image(&self, name: &str) -> Option<ImageState> {
        self.images.get(name).copied()
    }

    fn slot_for(&mut self, name: &str) -> Slot {
        if let Some(s) = self.slots.get(name) {
            return *s;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.nodes.push(NodeInfo::new(None));
                self.nodes.len() - 1
            }
        };
        self.nodes[slot] = NodeInfo::new(None);
        self.slots.insert(name.to_string(), slot);
        slot
    }

    fn account_images(&mut self, spec: &NodeSpec, add: bool) {
        for img in &spec.images {
            for name in &img.names {
                if add {
                    let e = self.images.entry(name.clone()).or_insert(ImageState { size: img.size, nodes: 0 });
                    e.nodes += 1;
                } else if let Some(e) = self.images.get_mut(name) {
                    e.nodes = e.nodes.saturating_sub(1);
                    if e.nodes == 0 {
                        self.images.remove(name);
                    }
                }
            }
        }
    }

    fn remove_from_zone(&mut self, slot: Slot, zone: &str) {
        if let Some(zi) = self.zones.iter().position(|(z, _)| z == zone) {
            self.zones[zi].1.retain(|s| *s != slot);
            if self.zones[zi].1.is_empty() {
                self.zones.remove(zi);
            }
        }
        self.order_dirty = true;
    }

    fn add_to_zone(&mut self, slot: Slot, zone: String) {
        match self.zones.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, slots)) => slots.push(slot),
            None => self.zones.push((zone, vec![slot])),
        }
        self.order_dirty = true;
    }

    /// Re-accounts the anti-affinity index for the pods of `slot` when its labels change.
    fn reindex_labels(
        &mut self,
        slot: Slot,
        old: Option<&BTreeMap<String, String>>,
        new: Option<&BTreeMap<String, String>>,
    ) {
        if old == new {
            return;
        }
        for pod in &self.nodes[slot].pods {
            if pod.has_required_anti_affinity() {
                if let Some(old) = old {
                    self.anti.on_pod(pod, old, false);
                }
                if let Some(new) = new {
                    self.anti.on_pod(pod, new, true);
                }
            }
        }
    }

    /// Adds or updates a node; returns its previous spec.
    pub fn upsert_node(&mut self, spec: NodeSpec) -> Option<Arc<NodeSpec>> {
        let slot = self.slot_for(&spec.name);
        let spec = Arc::new(spec);
        let old = self.nodes[slot].spec.replace(spec.clone());
        let new_zone = spec.zone_key();
        match &old {
            Some(o) => {
                let old_zone = o.zone_key();
                if old_zone != new_zone {
                    self.remove_from_zone(slot, &old_zone);
                    self.add_to_zone(slot, new_zone);
                }
                if o.images != spec.images {
                    self.account_images(o, false);
                    self.account_images(&spec, true);
                }
            }
            None => {
                self.add_to_zone(slot, new_zone);
                self.account_images(&spec, true);
            }
        }
        let old_labels = old.as_ref().map(|o| o.labels.clone());
        if old_labels.as_ref() != Some(&spec.labels) {
            self.topology.clear();
        }
        self.reindex_labels(slot, old_labels.as_ref(), Some(&spec.labels));
        self.nodes[slot].generation += 1;
        old
    }

    /// Removes a node; its pods stay accounted (out of every list) until they are removed.
    pub fn remove_node(&mut self, name: &str) -> Option<Arc<NodeSpec>> {
        let slot = self.slot(name)?;
        let old = self.nodes[slot].spec.take()?;
        self.remove_from_zone(slot, &old.zone_key());
        self.topology.clear();
        self.account_images(&old, false);
        self.reindex_labels(slot, Some(&old.labels), None);
        self.release_if_empty(slot, name);
        Some(old)
    }

    fn release_if_empty(&mut self, slot: Slot, name: &str) {
        let n = &self.nodes[slot];
        if n.spec.is_none() && n.pods.is_empty() {
            self.slots.remove(name);
            self.free.push(slot);
        }
    }

    /// The placed pod with `uid`, and whether it is assumed.
    pub fn pod(&self, uid: &str) -> Option<(&Arc<PodInfo>, bool)> {
        self.pods.get(uid).map(|c| (&c.info, c.assumed))
    }

    /// Whether the pod is assumed (placed by this scheduler, binding not yet observed).
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|c| c.assumed)
    }

    /// Number of placed pods.
    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }

    fn account_pod(&mut self, pod: &Arc<PodInfo>, slot: Slot, add: bool) {
        let Cache { nodes, matches, anti, namespaces, scoring_pods, empty_labels, .. } = self;
        let ns_labels = namespaces.get(&pod.namespace).unwrap_or(empty_labels);
        matches.on_pod(pod, slot, ns_labels, add);
        if pod.has_required_anti_affinity()
            && let Some(spec) = &nodes[slot].spec
        {
            anti.on_pod(pod, &spec.labels, add);
        }
        if pod.has_scoring_terms() {
            if add {
                scoring_pods.insert(pod.uid.clone(), slot);
            } else {
                scoring_pods.remove(&pod.uid);
            }
        }
    }

    /// Places a pod on node `pod.node_name` (`assumed` when the scheduler chose it and the
    /// binding is not yet observed). An already placed pod is moved/updated.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, assumed: bool) {
        self.remove_pod(&pod.uid);
        let slot = self.slot_for(&pod.node_name);
        self.account_pod(&pod, slot, true);
        self.nodes[slot].add_pod(pod.clone());
        self.pods.insert(pod.uid.clone(), CachedPod { info: pod, slot, assumed });
    }

    /// Removes a placed pod; returns it.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let cached = self.pods.remove(uid)?;
        let slot = cached.slot;
        self.nodes[slot].remove_pod(uid);
        self.account_pod(&cached.info, slot, false);
        let name = cached.info.node_name.clone();
        self.release_if_empty(slot, &name);
        Some(cached.info)
    }

    /// Per-node counts of placed pods matching `key` (built on first use).
    pub fn match_counts(&mut self, key: &MatchKey) -> &Counts {
        let Cache { matches, pods, namespaces, empty_labels, .. } = self;
        let (namespaces, empty_labels): (&HashMap<_, _>, &BTreeMap<_, _>) = (namespaces, empty_labels);
        matches.get(key, || {
            pods.values()
                .map(move |c| (c.info.as_ref(), c.slot, namespaces.get(&c.info.namespace).unwrap_or(empty_labels)))
        })
    }

    /// Placed pods with terms that weigh on other pods' scores, with their node slots.
    pub fn scoring_pods(&self) -> impl Iterator<Item = (&Arc<PodInfo>, Slot)> {
        self.scoring_pods.iter().filter_map(|(uid, slot)| self.pods.get(uid).map(|c| (&c.info, *slot)))
    }

    /// Whether any placed pod has terms that weigh on other pods' scores.
    pub fn has_scoring_pods(&self) -> bool {
        !self.scoring_pods.is_empty()
    }

    /// Every placed pod with its slot.
    pub fn pods(&self) -> impl Iterator<Item = (&Arc<PodInfo>, Slot)> {
        self.pods.values().map(|c| (&c.info, c.slot))
    }

    /// Housekeeping: drops idle index entries.
    pub fn evict_idle(&mut self) {
        self.matches.evict_idle();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::node::NodeImage;

    fn node(name: &str, zone: &str) -> NodeSpec {
        let mut labels = BTreeMap::new();
        if !zone.is_empty() {
            labels.insert("topology.kubernetes.io/zone".to_string(), zone.to_string());
        }
        NodeSpec { name: name.into(), labels, ..Default::default() }
    }

    #[test]
    fn node_order_interleaves_zones_like_the_node_tree() {
        let mut c = Cache::new();
        for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a"), ("c1", "c"), ("b2", "b")] {
            c.upsert_node(node(n, z));
        }
        let names: Vec<String> = c.node_order().to_vec().into_iter().map(|s| c.nodes[s].name().to_string()).collect();
        assert_eq!(names, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        c.remove_node("b1");
        let names: Vec<String> = c.node_order().to_vec().into_iter().map(|s| c.nodes[s].name().to_string()).collect();
        assert_eq!(names, ["a1", "b2", "c1", "a2", "a3"]);
        assert_eq!(c.num_nodes(), 5);
    }

    #[test]
    fn pods_are_accounted_and_slots_reused_after_node_and_pods_are_gone() {
        let mut c = Cache::new();
        c.upsert_node(node("n1", ""));
        let mut p = PodInfo { uid: "u1".into(), node_name: "n1".into(), ..Default::default() };
        p.requests.milli_cpu = 250;
        c.add_pod(Arc::new(p.clone()), true);
        assert!(c.is_assumed("u1"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 250);
        // The bound pod replaces the assumed one.
        c.add_pod(Arc::new(p), false);
        assert!(!c.is_assumed("u1"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 250);
        c.remove_node("n1");
        assert!(c.node("n1").is_none());
        assert!(c.slot("n1").is_some(), "the slot lives while pods reference it");
        c.remove_pod("u1");
        assert!(c.slot("n1").is_none());
        c.upsert_node(node("n2", ""));
        assert_eq!(c.slot("n2"), Some(0));
    }

    #[test]
    fn images_count_nodes() {
        let mut c = Cache::new();
        let mut a = node("a", "");
        a.images = vec![NodeImage { names: vec!["img:1".into()], size: 10 }];
        let mut b = node("b", "");
        b.images = a.images.clone();
        c.upsert_node(a);
        c.upsert_node(b);
        assert_eq!(c.image("img:1"), Some(ImageState { size: 10, nodes: 2 }));
        c.remove_node("a");
        assert_eq!(c.image("img:1").map(|i| i.nodes), Some(1));
    }
}
