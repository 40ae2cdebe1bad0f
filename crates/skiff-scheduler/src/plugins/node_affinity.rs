//! NodeAffinity: `spec.nodeSelector` and required node affinity as a filter (with upstream's
//! PreFilter shortcut: terms pinning `metadata.name` restrict the nodes evaluated), preferred
//! node affinity as a score (sum of matched weights, normalized to the maximum).

use crate::cache::NodeInfo;
use crate::framework::{Code, PluginId, Status};
use crate::model::PodInfo;

/// Upstream `ErrReasonPod`.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";
/// Upstream `errReasonConflict`.
pub const REASON_CONFLICT: &str = "pod affinity terms conflict";

/// What PreFilter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreFilter {
    /// Nothing to check.
    Skip,
    /// Check every node.
    All,
    /// Only these nodes can match.
    Nodes(Vec<String>),
    /// No node can match.
    Conflict(Status),
}

/// PreFilter.
pub fn pre_filter(pod: &PodInfo) -> PreFilter {
    if pod.node_affinity.is_empty() {
        return PreFilter::Skip;
    }
    let Some(selector) = &pod.node_affinity.affinity else { return PreFilter::All };
    if selector.terms.is_empty() {
        return PreFilter::All;
    }
    let mut names: Vec<String> = Vec::new();
    for term in &selector.terms {
        match term.pinned_names() {
            None => return PreFilter::All,
            Some(n) => {
                for name in n {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
    }
    if names.is_empty() {
        return PreFilter::Conflict(
            Status::new(Code::UnschedulableAndUnresolvable, REASON_CONFLICT).with_plugin(PluginId::NodeAffinity),
        );
    }
    PreFilter::Nodes(names)
}

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let spec = node.spec.as_ref()?;
    if pod.node_affinity.matches(&spec.name, &spec.labels) {
        return None;
    }
    Some(Status::new(Code::UnschedulableAndUnresolvable, REASON).with_plugin(PluginId::NodeAffinity))
}

/// Score: the weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.spec.as_ref().map(|s| pod.preferred_node_affinity.score(&s.name, &s.labels)).unwrap_or(0)
}
