//! The scheduling framework: plugin identities ([`PluginId`]), a scheduling profile (which
//! plugins run, in which order, with which weights and arguments — upstream's defaults unless a
//! configuration says otherwise), per-cycle state, and the result types of [`status`].
//!
//! Plugins are a fixed set dispatched by `match` rather than trait objects: the set is
//! upstream's in-tree one, and static dispatch keeps a filter pass over thousands of nodes a
//! tight loop. The orchestration (PreFilter → Filter → PreScore → Score → select) is in
//! [`crate::schedule`].

pub mod status;

pub use status::{Code, Diagnosis, Status};

/// An in-tree plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginId {
    /// Keeps gated pods out of the active queue.
    SchedulingGates,
    /// Queue order: priority, then arrival.
    PrioritySort,
    /// `spec.unschedulable` nodes.
    NodeUnschedulable,
    /// `spec.nodeName`.
    NodeName,
    /// Taints and tolerations.
    TaintToleration,
    /// Node selector and node affinity.
    NodeAffinity,
    /// Host ports.
    NodePorts,
    /// Resource requests against allocatable.
    NodeResourcesFit,
    /// PersistentVolumeClaims.
    VolumeBinding,
    /// Topology spread constraints.
    PodTopologySpread,
    /// Pod affinity and anti-affinity.
    InterPodAffinity,
    /// Preemption.
    DefaultPreemption,
    /// Balanced resource usage.
    NodeResourcesBalancedAllocation,
    /// Images already on the node.
    ImageLocality,
    /// Binding through the API.
    DefaultBinder,
}

impl PluginId {
    /// Every plugin, in upstream's default order.
    pub const ALL: [PluginId; 15] = [
        PluginId::SchedulingGates,
        PluginId::PrioritySort,
        PluginId::NodeUnschedulable,
        PluginId::NodeName,
        PluginId::TaintToleration,
        PluginId::NodeAffinity,
        PluginId::NodePorts,
        PluginId::NodeResourcesFit,
        PluginId::VolumeBinding,
        PluginId::PodTopologySpread,
        PluginId::InterPodAffinity,
        PluginId::DefaultPreemption,
        PluginId::NodeResourcesBalancedAllocation,
        PluginId::ImageLocality,
        PluginId::DefaultBinder,
    ];

    /// The upstream name.
    pub fn name(self) -> &'static str {
        match self {
            PluginId::SchedulingGates => "SchedulingGates",
            PluginId::PrioritySort => "PrioritySort",
            PluginId::NodeUnschedulable => "NodeUnschedulable",
            PluginId::NodeName => "NodeName",
            PluginId::TaintToleration => "TaintToleration",
            PluginId::NodeAffinity => "NodeAffinity",
            PluginId::NodePorts => "NodePorts",
            PluginId::NodeResourcesFit => "NodeResourcesFit",
            PluginId::VolumeBinding => "VolumeBinding",
            PluginId::PodTopologySpread => "PodTopologySpread",
            PluginId::InterPodAffinity => "InterPodAffinity",
            PluginId::DefaultPreemption => "DefaultPreemption",
            PluginId::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            PluginId::ImageLocality => "ImageLocality",
            PluginId::DefaultBinder => "DefaultBinder",
        }
    }

    /// The plugin with upstream name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// Whether the plugin has a Filter (or PreFilter) extension.
    pub fn filters(self) -> bool {
        matches!(
            self,
            PluginId::NodeUnschedulable
                | PluginId::NodeName
                | PluginId::TaintToleration
                | PluginId::NodeAffinity
                | PluginId::NodePorts
                | PluginId::NodeResourcesFit
                | PluginId::VolumeBinding
                | PluginId::PodTopologySpread
                | PluginId::InterPodAffinity
        )
    }

    /// Upstream's default score weight, if the plugin scores.
    pub fn default_weight(self) -> Option<i64> {
        match self {
            PluginId::TaintToleration => Some(3),
            PluginId::NodeAffinity | PluginId::PodTopologySpread | PluginId::InterPodAffinity => Some(2),
            PluginId::NodeResourcesFit | PluginId::NodeResourcesBalancedAllocation | PluginId::ImageLocality => Some(1),
            _ => None,
        }
    }
}

/// How NodeResourcesFit scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitStrategy {
    /// Prefer nodes with more free resources (default).
    LeastAllocated,
    /// Prefer nodes with fewer free resources (bin packing).
    MostAllocated,
}

/// A topology spread constraint applied to pods that write none (`defaultConstraints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSpreadConstraint {
    /// `maxSkew`.
    pub max_skew: i32,
    /// `topologyKey`.
    pub topology_key: String,
    /// `whenUnsatisfiable` is `DoNotSchedule`.
    pub do_not_schedule: bool,
}

/// What a profile runs and how (upstream `KubeSchedulerProfile` after defaulting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Pods with this `spec.schedulerName` use the profile.
    pub scheduler_name: String,
    /// Filter plugins, in order.
    pub filters: Vec<PluginId>,
    /// Score plugins with their weights.
    pub scores: Vec<(PluginId, i64)>,
    /// Whether DefaultPreemption runs after a failed attempt.
    pub preemption: bool,
    /// The profile's `percentageOfNodesToScore` (`None`: the global setting).
    pub percentage_of_nodes_to_score: Option<i32>,
    /// NodeResourcesFit scoring strategy.
    pub fit_strategy: FitStrategy,
    /// NodeResourcesFit scored resources with weights.
    pub fit_resources: Vec<(String, i64)>,
    /// NodeResourcesBalancedAllocation resources with weights.
    pub balanced_resources: Vec<(String, i64)>,
    /// Extended resources NodeResourcesFit ignores.
    pub ignored_resources: Vec<String>,
    /// InterPodAffinity `hardPodAffinityWeight`.
    pub hard_pod_affinity_weight: i64,
    /// PodTopologySpread default constraints (`None`: the system defaults).
    pub default_spread: Option<Vec<DefaultSpreadConstraint>>,
}

impl Profile {
    /// Upstream's default profile for `scheduler_name`.
    pub fn default_named(scheduler_name: &str) -> Self {
        Self {
            scheduler_name: scheduler_name.to_string(),
            filters: PluginId::ALL.iter().copied().filter(|p| p.filters()).collect(),
            scores: PluginId::ALL.iter().filter_map(|p| p.default_weight().map(|w| (*p, w))).collect(),
            preemption: true,
            percentage_of_nodes_to_score: None,
            fit_strategy: FitStrategy::LeastAllocated,
            fit_resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
            balanced_resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
            ignored_resources: Vec::new(),
            hard_pod_affinity_weight: 1,
            default_spread: None,
        }
    }

    /// Whether `plugin` filters in this profile.
    pub fn has_filter(&self, plugin: PluginId) -> bool {
        self.filters.contains(&plugin)
    }

    /// The weight of score plugin `plugin`, if enabled.
    pub fn weight(&self, plugin: PluginId) -> Option<i64> {
        self.scores.iter().find(|(p, _)| *p == plugin).map(|(_, w)| *w)
    }

    /// The default spread constraints in effect.
    pub fn default_spread_constraints(&self) -> Vec<DefaultSpreadConstraint> {
        match &self.default_spread {
            Some(list) => list.clone(),
            None => vec![
                DefaultSpreadConstraint {
                    max_skew: 3,
                    topology_key: crate::model::pod::LABEL_HOSTNAME.into(),
                    do_not_schedule: false,
                },
                DefaultSpreadConstraint {
                    max_skew: 5,
                    topology_key: crate::model::pod::LABEL_ZONE.into(),
                    do_not_schedule: false,
                },
            ],
        }
    }

    /// Whether the system default spreading is in effect.
    pub fn system_defaulted_spread(&self) -> bool {
        self.default_spread.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_has_upstream_plugins_and_weights() {
        let p = Profile::default_named("default-scheduler");
        assert_eq!(
            p.filters.iter().map(|f| f.name()).collect::<Vec<_>>(),
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "VolumeBinding",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        let weights: Vec<(&str, i64)> = p.scores.iter().map(|(s, w)| (s.name(), *w)).collect();
        assert_eq!(
            weights,
            [
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1)
            ]
        );
        assert_eq!(PluginId::from_name("ImageLocality"), Some(PluginId::ImageLocality));
    }
}
