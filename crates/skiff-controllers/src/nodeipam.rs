//! The node IPAM controller: gives every Node without one a pod CIDR (`spec.podCIDR` and
//! `spec.podCIDRs`), a /24 (by default) out of the cluster CIDR, lowest free first.
//!
//! The allocation is persisted in the Node itself: at start (and after every re-list) the
//! controller rebuilds the set of used ranges from the Nodes, so a restart never hands a range
//! out twice. A deleted Node frees its range. What does not live here: the pod addresses inside
//! a node's range (the agent's IPAM in `skiff-net`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};

/// How the controller carves up the cluster CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIpamConfig {
    /// The cluster CIDR's network address.
    pub cluster_network: Ipv4Addr,
    /// The cluster CIDR's prefix length.
    pub cluster_prefix: u8,
    /// The prefix length of each node's range (24 as upstream's default `--node-cidr-mask-size`).
    pub node_prefix: u8,
}

/// The ranges in use and the ones free, from the Nodes seen.
#[derive(Debug, Default)]
pub struct Allocator {
    /// Node name → its range (network address).
    by_node: BTreeMap<String, u32>,
    used: BTreeSet<u32>,
}

impl NodeIpamConfig {
    fn block(&self) -> u32 {
        1u32 << (32 - u32::from(self.node_prefix))
    }

    fn blocks(&self) -> u32 {
        1u32 << (self.node_prefix - self.cluster_prefix).min(31)
    }

    fn base(&self) -> u32 {
        let mask = if self.cluster_prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.cluster_prefix)) };
        u32::from(self.cluster_network) & mask
    }

    /// The network address of `cidr` when it is one of this cluster's node ranges.
    fn parse(&self, cidr: &str) -> Option<u32> {
        let (addr, prefix) = cidr.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let network = u32::from(addr);
        let inside = network.wrapping_sub(self.base()) < self.blocks().saturating_mul(self.block());
        (prefix == self.node_prefix && inside && network % self.block() == 0).then_some(network)
    }

    fn format(&self, network: u32) -> String {
        format!("{}/{}", Ipv4Addr::from(network), self.node_prefix)
    }
}

impl Allocator {
    /// Records what `node` holds (a node range of `cfg`), or forgets it when it holds none.
    pub fn observe(&mut self, cfg: &NodeIpamConfig, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.forget(&name);
        let held = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| cfg.parse(c));
        if let Some(network) = held {
            self.by_node.insert(name, network);
            self.used.insert(network);
        }
    }

    /// Frees the range of a deleted node.
    pub fn forget(&mut self, node: &str) {
        if let Some(network) = self.by_node.remove(node) {
            self.used.remove(&network);
        }
    }

    /// Reserves the lowest free range for `node`; `None` when the cluster CIDR is full.
    pub fn allocate(&mut self, cfg: &NodeIpamConfig, node: &str) -> Option<String> {
        let network = (0..cfg.blocks()).map(|i| cfg.base() + i * cfg.block()).find(|n| !self.used.contains(n))?;
        self.by_node.insert(node.to_string(), network);
        self.used.insert(network);
        Some(cfg.format(network))
    }
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client, cfg: NodeIpamConfig) {
    let api: Api<Node> = Api::all(client);
    let mut allocator = Allocator::default();
    let mut listing = Allocator::default();
    let mut pending: Vec<Node> = Vec::new();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => {
                listing = Allocator::default();
                pending.clear();
            }
            Ok(Event::InitApply(node)) => {
                listing.observe(&cfg, &node);
                pending.push(node);
            }
            Ok(Event::InitDone) => {
                allocator = std::mem::take(&mut listing);
                for node in std::mem::take(&mut pending) {
                    assign(&api, &cfg, &mut allocator, &node).await;
                }
            }
            Ok(Event::Apply(node)) => {
                allocator.observe(&cfg, &node);
                assign(&api, &cfg, &mut allocator, &node).await;
            }
            Ok(Event::Delete(node)) => allocator.forget(node.metadata.name.as_deref().unwrap_or("")),
            Err(e) => {
                tracing::warn!(error = %e, "node watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Gives `node` a range if it has none (a failed patch frees it again; the next event retries).
async fn assign(api: &Api<Node>, cfg: &NodeIpamConfig, allocator: &mut Allocator, node: &Node) {
    let has_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty());
    let Some(name) = node.metadata.name.as_deref() else { return };
    if has_cidr || node.metadata.deletion_timestamp.is_some() {
        return;
    }
    let Some(cidr) = allocator.allocate(cfg, name) else {
        tracing::error!(node = name, "no pod CIDR left in the cluster CIDR");
        return;
    };
    let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!(node = name, %cidr, "assigned pod CIDR"),
        Err(e) => {
            tracing::warn!(node = name, error = %e, "assigning the pod CIDR failed");
            allocator.forget(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn cfg() -> NodeIpamConfig {
        NodeIpamConfig { cluster_network: Ipv4Addr::new(10, 42, 0, 0), cluster_prefix: 16, node_prefix: 24 }
    }

    fn node(name: &str, cidr: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.spec = Some(NodeSpec { pod_cidr: cidr.map(Into::into), ..Default::default() });
        n
    }

    #[test]
    fn allocates_lowest_free_and_reuses_freed() {
        let cfg = cfg();
        let mut a = Allocator::default();
        a.observe(&cfg, &node("a", Some("10.42.0.0/24")));
        a.observe(&cfg, &node("b", Some("10.42.2.0/24")));
        assert_eq!(a.allocate(&cfg, "c").as_deref(), Some("10.42.1.0/24"));
        assert_eq!(a.allocate(&cfg, "d").as_deref(), Some("10.42.3.0/24"));
        a.forget("a");
        assert_eq!(a.allocate(&cfg, "e").as_deref(), Some("10.42.0.0/24"));
    }

    #[test]
    fn ignores_foreign_ranges_and_reports_exhaustion() {
        let cfg = NodeIpamConfig { cluster_network: Ipv4Addr::new(10, 42, 0, 0), cluster_prefix: 23, node_prefix: 24 };
        let mut a = Allocator::default();
        a.observe(&cfg, &node("x", Some("192.168.0.0/24")));
        a.observe(&cfg, &node("y", Some("10.42.0.128/25")));
        assert_eq!(a.allocate(&cfg, "a").as_deref(), Some("10.42.0.0/24"));
        assert_eq!(a.allocate(&cfg, "b").as_deref(), Some("10.42.1.0/24"));
        assert_eq!(a.allocate(&cfg, "c"), None);
    }

    #[test]
    fn re_observing_a_node_moves_its_range() {
        let cfg = cfg();
        let mut a = Allocator::default();
        a.observe(&cfg, &node("a", Some("10.42.0.0/24")));
        a.observe(&cfg, &node("a", None));
        assert_eq!(a.allocate(&cfg, "b").as_deref(), Some("10.42.0.0/24"));
    }
}
