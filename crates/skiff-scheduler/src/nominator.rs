//! Nominated pods (upstream `PodNominator`): pending pods that preemption made room for on a
//! node (`status.nominatedNodeName`). Filters of other pods treat nominated pods of equal or
//! higher priority as already running there, so the room is not taken by someone else.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::PodInfo;

/// Nominated pods by node.
#[derive(Debug, Default)]
pub struct Nominator {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<String, String>,
}

impl Nominator {
    /// Records (or moves, or with an empty node clears) the nomination of `pod`.
    pub fn set(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove(&pod.uid);
        if node.is_empty() {
            return;
        }
        self.node_of.insert(pod.uid.clone(), node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
    }

    /// Forgets the nomination of the pod with `uid`.
    pub fn remove(&mut self, uid: &str) {
        let Some(node) = self.node_of.remove(uid) else { return };
        if let Some(list) = self.by_node.get_mut(&node) {
            list.retain(|p| p.uid != uid);
            if list.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }

    /// Pods nominated to `node`.
    pub fn on_node(&self, node: &str) -> &[Arc<PodInfo>] {
        self.by_node.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The node the pod is nominated to.
    pub fn node_of(&self, uid: &str) -> Option<&str> {
        self.node_of.get(uid).map(String::as_str)
    }

    /// Whether no pod is nominated anywhere.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominations_move_and_clear() {
        let mut n = Nominator::default();
        let p = Arc::new(PodInfo { uid: "u".into(), ..Default::default() });
        n.set(p.clone(), "a");
        assert_eq!(n.on_node("a").len(), 1);
        n.set(p.clone(), "b");
        assert!(n.on_node("a").is_empty());
        assert_eq!(n.node_of("u"), Some("b"));
        n.set(p, "");
        assert!(n.is_empty());
    }
}
