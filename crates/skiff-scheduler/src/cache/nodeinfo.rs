//! [`NodeInfo`]: one node plus the accounting of the pods placed on it (upstream
//! `framework.NodeInfo`): requested and non-zero requested resources, host ports in use, and the
//! pods themselves. Cheap to clone (shared node spec, pods behind `Arc`), which is what
//! preemption's "what if these pods were gone" simulation does.

use std::sync::Arc;

use crate::model::pod::HostPort;
use crate::model::{NodeSpec, PodInfo, Resources};

/// A host port as compared: `0.0.0.0` for all addresses, `TCP` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedPort {
    ip: String,
    protocol: String,
    port: i32,
}

const ALL_IPS: &str = "0.0.0.0";

impl UsedPort {
    /// Upstream `HostPortInfo.sanitize`.
    pub fn new(p: &HostPort) -> Self {
        Self {
            ip: if p.ip.is_empty() { ALL_IPS.to_string() } else { p.ip.clone() },
            protocol: if p.protocol.is_empty() { "TCP".to_string() } else { p.protocol.clone() },
            port: p.port,
        }
    }
}

/// A node and the pods on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node (`None` once the Node was deleted while pods still reference it).
    pub spec: Option<Arc<NodeSpec>>,
    /// Pods placed on the node (bound or assumed).
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' CPU requests with the scoring default for containers without one.
    pub non_zero_milli_cpu: i64,
    /// Sum of the pods' memory requests with the scoring default.
    pub non_zero_memory: i64,
    /// Host ports in use.
    pub used_ports: Vec<UsedPort>,
    /// Bumped on every change.
    pub generation: u64,
}

impl NodeInfo {
    /// An empty node info for `spec`.
    pub fn new(spec: Option<Arc<NodeSpec>>) -> Self {
        Self {
            spec,
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            used_ports: Vec::new(),
            generation: 0,
        }
    }

    /// The node's name ("" when gone).
    pub fn name(&self) -> &str {
        self.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
    }

    /// Accounts a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_milli_cpu += pod.non_zero_milli_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().map(UsedPort::new));
        self.pods.push(pod);
        self.generation += 1;
    }

    /// Removes the pod with `uid`; returns it.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_milli_cpu -= pod.non_zero_milli_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        for hp in &pod.host_ports {
            let used = UsedPort::new(hp);
            if let Some(j) = self.used_ports.iter().position(|u| *u == used) {
                self.used_ports.swap_remove(j);
            }
        }
        self.generation += 1;
        Some(pod)
    }

    /// Upstream `HostPortInfo.CheckConflict`: whether `want` collides with a port in use
    /// (`0.0.0.0` collides with every address).
    pub fn port_conflicts(&self, want: &HostPort) -> bool {
        if want.port <= 0 {
            return false;
        }
        let w = UsedPort::new(want);
        self.used_ports.iter().any(|u| {
            u.port == w.port && u.protocol == w.protocol && (w.ip == ALL_IPS || u.ip == ALL_IPS || u.ip == w.ip)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(ip: &str, proto: &str, port: i32) -> HostPort {
        HostPort { ip: ip.into(), protocol: proto.into(), port }
    }

    #[test]
    fn host_port_conflicts_follow_upstream() {
        let mut n = NodeInfo::new(None);
        let pod = PodInfo { uid: "a".into(), host_ports: vec![hp("127.0.0.1", "", 80)], ..Default::default() };
        n.add_pod(Arc::new(pod));
        assert!(n.port_conflicts(&hp("", "TCP", 80)));
        assert!(n.port_conflicts(&hp("127.0.0.1", "TCP", 80)));
        assert!(!n.port_conflicts(&hp("127.0.0.2", "TCP", 80)));
        assert!(!n.port_conflicts(&hp("", "UDP", 80)));
        assert!(!n.port_conflicts(&hp("", "", 81)));
        n.remove_pod("a");
        assert!(!n.port_conflicts(&hp("", "", 80)));
        let all = PodInfo { uid: "b".into(), host_ports: vec![hp("", "", 90)], ..Default::default() };
        n.add_pod(Arc::new(all));
        assert!(n.port_conflicts(&hp("10.0.0.1", "TCP", 90)));
    }
}
