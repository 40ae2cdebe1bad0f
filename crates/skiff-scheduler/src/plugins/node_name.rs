//! NodeName: a pod naming a node in `spec.nodeName` fits only that node.

use crate::cache::NodeInfo;
use crate::framework::{Code, PluginId, Status};
use crate::model::PodInfo;

/// Upstream `ErrReason`.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if pod.node_name.is_empty() || pod.node_name == node.name() {
        return None;
    }
    Some(Status::new(Code::UnschedulableAndUnresolvable, REASON).with_plugin(PluginId::NodeName))
}
