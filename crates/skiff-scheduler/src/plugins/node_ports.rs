//! NodePorts: a pod's host ports must be free on the node (upstream `fitsPorts`).

use crate::cache::NodeInfo;
use crate::framework::{PluginId, Status};
use crate::model::PodInfo;

/// Upstream `ErrReason`.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Whether the plugin has anything to check (upstream PreFilter's Skip).
pub fn applies(pod: &PodInfo) -> bool {
    !pod.host_ports.is_empty()
}

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if pod.host_ports.iter().any(|p| node.port_conflicts(p)) {
        return Some(Status::unschedulable(vec![REASON.to_string()]).with_plugin(PluginId::NodePorts));
    }
    None
}
