//! NodeUnschedulable: nodes with `spec.unschedulable` take only pods tolerating the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint (upstream's message and code).

use crate::cache::NodeInfo;
use crate::framework::{Code, PluginId, Status};
use crate::model::PodInfo;
use crate::model::taints::{Taint, tolerated};

/// Upstream `ErrReasonUnschedulable`.
pub const REASON: &str = "node(s) were unschedulable";

/// The taint a pod must tolerate to land on an unschedulable node.
pub fn unschedulable_taint() -> Taint {
    Taint { key: "node.kubernetes.io/unschedulable".into(), value: String::new(), effect: "NoSchedule".into() }
}

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let spec = node.spec.as_ref()?;
    if !spec.unschedulable || tolerated(&pod.tolerations, &unschedulable_taint()) {
        return None;
    }
    Some(Status::new(Code::UnschedulableAndUnresolvable, REASON).with_plugin(PluginId::NodeUnschedulable))
}
