//! Cluster events and queueing hints: which plugins register for which event (upstream
//! `EventsToRegister`) and, per plugin, whether an event may make a pod it rejected schedulable
//! (upstream `QueueingHintFn`s, in their essentials). A pod rejected by NodeAffinity is not
//! retried when an unrelated node changes; one rejected by NodeResourcesFit is retried when a
//! placed pod goes away; and so on.

use crate::framework::PluginId;
use crate::model::pod::AffinityTerm;
use crate::model::taints::{Taint, first_untolerated};
use crate::model::{NodeSpec, PodInfo};
use crate::plugins::{fit, node_unschedulable};

/// Something that changed in the cluster.
#[derive(Debug, Clone, Copy)]
pub enum ClusterEvent<'a> {
    /// A node appeared.
    NodeAdd(&'a NodeSpec),
    /// A node changed.
    NodeUpdate(&'a NodeSpec, &'a NodeSpec),
    /// A node went away.
    NodeDelete,
    /// A pod was placed on a node (bound by anyone, or assumed).
    AssignedPodAdd(&'a PodInfo),
    /// A placed pod changed.
    AssignedPodUpdate(&'a PodInfo, &'a PodInfo),
    /// A placed pod went away (deleted, finished, or a failed binding forgotten).
    AssignedPodDelete(&'a PodInfo),
    /// A PersistentVolumeClaim, PersistentVolume or StorageClass changed.
    Storage,
    /// A Service or workload changed (default spreading selectors).
    Workload,
    /// A namespace's labels changed.
    Namespace,
}

/// Plugins that register for `event`.
pub fn interested(event: &ClusterEvent<'_>) -> &'static [PluginId] {
    use PluginId::*;
    match event {
        ClusterEvent::NodeAdd(_) => &[
            NodeUnschedulable,
            NodeName,
            TaintToleration,
            NodeAffinity,
            NodePorts,
            NodeResourcesFit,
            VolumeBinding,
            PodTopologySpread,
            InterPodAffinity,
        ],
        ClusterEvent::NodeUpdate(..) => &[
            NodeUnschedulable,
            TaintToleration,
            NodeAffinity,
            NodeResourcesFit,
            VolumeBinding,
            PodTopologySpread,
            InterPodAffinity,
        ],
        ClusterEvent::NodeDelete => &[PodTopologySpread],
        ClusterEvent::AssignedPodAdd(_) | ClusterEvent::AssignedPodUpdate(..) => &[PodTopologySpread, InterPodAffinity],
        ClusterEvent::AssignedPodDelete(_) => &[NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity],
        ClusterEvent::Storage => &[VolumeBinding],
        ClusterEvent::Workload => &[PodTopologySpread],
        ClusterEvent::Namespace => &[InterPodAffinity],
    }
}

fn tolerates_node(pod: &PodInfo, node: &NodeSpec) -> bool {
    first_untolerated(&node.taints, &pod.tolerations, Taint::blocks_scheduling).is_none()
}

fn schedulable(pod: &PodInfo, node: &NodeSpec) -> bool {
    !node.unschedulable || pod.tolerations.iter().any(|t| t.tolerates(&node_unschedulable::unschedulable_taint()))
}

fn fits_empty(pod: &PodInfo, node: &NodeSpec) -> bool {
    let info = crate::cache::NodeInfo::new(Some(std::sync::Arc::new(node.clone())));
    fit::insufficient(pod, &info, &[]).is_empty()
}

fn spread_involves(pod: &PodInfo, other: &PodInfo) -> bool {
    pod.namespace == other.namespace
        && (!pod.has_spread || pod.spread.iter().any(|c| c.selector.matches(&other.labels)))
}

/// Whether a term may select a pod; terms with a namespace selector are assumed to (the
/// namespace's labels are not at hand here).
fn term_may_select(t: &AffinityTerm, pod: &PodInfo) -> bool {
    let empty = Default::default();
    t.matches(&pod.namespace, &pod.labels, &empty) || (t.uses_namespace_selector() && t.selector.matches(&pod.labels))
}

fn affinity_involves(pod: &PodInfo, other: &PodInfo) -> bool {
    pod.required_affinity.iter().chain(pod.required_anti_affinity.iter()).any(|t| term_may_select(t, other))
        || other.required_anti_affinity.iter().any(|t| term_may_select(t, pod))
}

/// Whether `event` may make `pod`, rejected by `plugin`, schedulable.
pub fn hint(plugin: PluginId, pod: &PodInfo, event: &ClusterEvent<'_>) -> bool {
    use ClusterEvent::*;
    match (plugin, event) {
        (PluginId::NodeUnschedulable, NodeAdd(n)) => schedulable(pod, n),
        (PluginId::NodeUnschedulable, NodeUpdate(old, new)) => !schedulable(pod, old) && schedulable(pod, new),
        (PluginId::NodeName, NodeAdd(n)) => pod.node_name.is_empty() || pod.node_name == n.name,
        (PluginId::TaintToleration, NodeAdd(n)) => tolerates_node(pod, n),
        (PluginId::TaintToleration, NodeUpdate(old, new)) => !tolerates_node(pod, old) && tolerates_node(pod, new),
        (PluginId::NodeAffinity, NodeAdd(n)) => pod.node_affinity.matches(&n.name, &n.labels),
        (PluginId::NodeAffinity, NodeUpdate(old, new)) => {
            !pod.node_affinity.matches(&old.name, &old.labels) && pod.node_affinity.matches(&new.name, &new.labels)
        }
        (PluginId::NodePorts, AssignedPodDelete(other)) => {
            other.host_ports.iter().any(|o| pod.host_ports.iter().any(|p| p.port == o.port))
        }
        (PluginId::NodeResourcesFit, NodeAdd(n)) => fits_empty(pod, n),
        (PluginId::NodeResourcesFit, NodeUpdate(old, new)) => {
            let (a, b) = (&old.allocatable, &new.allocatable);
            let grew = b.allowed_pods > a.allowed_pods
                || b.milli_cpu > a.milli_cpu
                || b.memory > a.memory
                || b.ephemeral_storage > a.ephemeral_storage
                || b.scalar.iter().any(|(n, v)| *v > a.scalar(n));
            grew && fits_empty(pod, new)
        }
        (PluginId::NodeResourcesFit, AssignedPodDelete(_)) => true,
        (PluginId::PodTopologySpread, AssignedPodAdd(o) | AssignedPodDelete(o)) => spread_involves(pod, o),
        (PluginId::PodTopologySpread, AssignedPodUpdate(old, new)) => {
            old.labels != new.labels && (spread_involves(pod, old) || spread_involves(pod, new))
        }
        (PluginId::InterPodAffinity, AssignedPodAdd(o) | AssignedPodDelete(o)) => affinity_involves(pod, o),
        (PluginId::InterPodAffinity, AssignedPodUpdate(old, new)) => {
            old.labels != new.labels && (affinity_involves(pod, old) || affinity_involves(pod, new))
        }
        (PluginId::InterPodAffinity | PluginId::PodTopologySpread | PluginId::VolumeBinding, NodeUpdate(old, new)) => {
            old.labels != new.labels || old.taints != new.taints
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn node_affinity_hint_only_wakes_for_matching_nodes() {
        let mut pod = PodInfo::default();
        pod.node_affinity.node_selector = BTreeMap::from([("disk".into(), "ssd".into())]);
        let plain = NodeSpec { name: "a".into(), ..Default::default() };
        let ssd = NodeSpec {
            name: "b".into(),
            labels: BTreeMap::from([("disk".into(), "ssd".into())]),
            ..Default::default()
        };
        assert!(!hint(PluginId::NodeAffinity, &pod, &ClusterEvent::NodeAdd(&plain)));
        assert!(hint(PluginId::NodeAffinity, &pod, &ClusterEvent::NodeAdd(&ssd)));
        assert!(hint(PluginId::NodeAffinity, &pod, &ClusterEvent::NodeUpdate(&plain, &ssd)));
        assert!(!hint(PluginId::NodeAffinity, &pod, &ClusterEvent::NodeUpdate(&ssd, &ssd)));
    }

    #[test]
    fn taint_hint_wakes_when_the_blocking_taint_goes() {
        let pod = PodInfo::default();
        let tainted = NodeSpec {
            name: "a".into(),
            taints: vec![Taint { key: "k".into(), value: "v".into(), effect: "NoSchedule".into() }],
            ..Default::default()
        };
        let clean = NodeSpec { name: "a".into(), ..Default::default() };
        assert!(hint(PluginId::TaintToleration, &pod, &ClusterEvent::NodeUpdate(&tainted, &clean)));
        assert!(!hint(PluginId::TaintToleration, &pod, &ClusterEvent::NodeUpdate(&clean, &tainted)));
        assert!(interested(&ClusterEvent::AssignedPodAdd(&pod)).iter().all(|p| *p != PluginId::NodeResourcesFit));
    }
}
