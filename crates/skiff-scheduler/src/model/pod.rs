//! [`PodInfo`]: everything the scheduler needs of a pod, parsed once from the API object when it
//! arrives (requests, host ports, tolerations, node and pod affinity terms, spread constraints,
//! images, claims, priority). Scheduling cycles and the cache work on these, never on the raw
//! object, so a pod costs a few hundred bytes instead of its JSON.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, PodSpec, TopologySpreadConstraint};
use skiff_api::selector::{LabelSelectorExpr, Operator, Requirement};

use super::nodeaffinity::{Preferred, RequiredNodeAffinity, Selector};
use super::resources::{self, Resources};
use super::taints::Toleration;

/// The node label of a node's name (upstream `v1.LabelHostname`).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The node label of a node's zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// The node label of a node's region.
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";

/// A pod (anti-)affinity term (upstream `framework.AffinityTerm`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    /// Namespaces named by the term (the pod's own when neither names nor a selector are given).
    pub namespaces: BTreeSet<String>,
    /// The namespace selector (matches nothing when absent).
    pub namespace_selector: LabelSelectorExpr,
    /// The pod label selector (with `matchLabelKeys`/`mismatchLabelKeys` merged in).
    pub selector: LabelSelectorExpr,
    /// The node label defining the topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(pod_ns: &str, pod_labels: &BTreeMap<String, String>, t: &PodAffinityTerm) -> Self {
        let mut selector = LabelSelectorExpr::from_label_selector(t.label_selector.as_ref())
            .unwrap_or_else(|_| LabelSelectorExpr::nothing());
        for (keys, op) in [(&t.match_label_keys, Operator::In), (&t.mismatch_label_keys, Operator::NotIn)] {
            for key in keys.iter().flatten() {
                if let Some(v) = pod_labels.get(key) {
                    selector.requirements.push(Requirement { key: key.clone(), op, values: [v.clone()].into() });
                }
            }
        }
        let namespace_selector = LabelSelectorExpr::from_label_selector(t.namespace_selector.as_ref())
            .unwrap_or_else(|_| LabelSelectorExpr::nothing());
        let names = t.namespaces.clone().unwrap_or_default();
        let namespaces = if names.is_empty() && t.namespace_selector.is_none() {
            [pod_ns.to_string()].into()
        } else {
            names.into_iter().collect()
        };
        Self { namespaces, namespace_selector, selector, topology_key: t.topology_key.clone() }
    }

    /// Upstream `AffinityTerm.Matches`: the pod is in a named namespace or one the namespace
    /// selector selects (by `ns_labels`), and its labels match the selector.
    pub fn matches(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        ns_labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.namespaces.contains(namespace) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(labels)
    }

    /// Whether the term's namespace part depends on namespace labels.
    pub fn uses_namespace_selector(&self) -> bool {
        !self.namespace_selector.match_nothing
    }
}

/// A preferred (weighted) affinity term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTerm {
    /// The weight (1–100).
    pub weight: i64,
    /// The term.
    pub term: AffinityTerm,
}

/// When a spread constraint applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    /// A filter (`DoNotSchedule`).
    DoNotSchedule,
    /// A score (`ScheduleAnyway`).
    ScheduleAnyway,
}

/// A topology spread constraint with its selector parsed (upstream `topologySpreadConstraint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    /// `maxSkew`.
    pub max_skew: i32,
    /// `topologyKey`.
    pub topology_key: String,
    /// The selector with `matchLabelKeys` merged in.
    pub selector: LabelSelectorExpr,
    /// `minDomains` (1 when unset).
    pub min_domains: i32,
    /// `nodeAffinityPolicy` is `Honor` (the default).
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy` is `Honor` (default `Ignore`).
    pub honor_node_taints: bool,
    /// `whenUnsatisfiable`.
    pub when: WhenUnsatisfiable,
}

impl SpreadConstraint {
    fn new(c: &TopologySpreadConstraint, labels: &BTreeMap<String, String>) -> Self {
        let mut selector = LabelSelectorExpr::from_label_selector(c.label_selector.as_ref())
            .unwrap_or_else(|_| LabelSelectorExpr::nothing());
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = labels.get(key) {
                selector.requirements.push(Requirement {
                    key: key.clone(),
                    op: Operator::In,
                    values: [v.clone()].into(),
                });
            }
        }
        Self {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.unwrap_or(1),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            when: if c.when_unsatisfiable == "ScheduleAnyway" {
                WhenUnsatisfiable::ScheduleAnyway
            } else {
                WhenUnsatisfiable::DoNotSchedule
            },
        }
    }
}

/// A host port a container binds (`hostIP`/`protocol` as written; sanitized when compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `hostIP` ("" means all addresses).
    pub ip: String,
    /// `protocol` ("" means TCP).
    pub protocol: String,
    /// `hostPort`.
    pub port: i32,
}

/// The controller owning a pod (for the default spreading selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
}

/// The `PodScheduled` condition as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledCondition {
    /// `status`.
    pub status: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `lastTransitionTime` as sent.
    pub last_transition_time: Option<String>,
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `spec.schedulerName` (defaulted to `default-scheduler`).
    pub scheduler_name: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.preemptionPolicy` is `Never`.
    pub never_preempts: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `spec.schedulingGates` is non-empty.
    pub gated: bool,
    /// Terminating because the scheduler preempted it (`DisruptionTarget` condition with reason
    /// `PreemptionByScheduler`).
    pub preemption_terminating: bool,
    /// `status.phase`.
    pub phase: String,
    /// `status.nominatedNodeName`.
    pub nominated_node_name: String,
    /// `status.startTime` in nanoseconds since the epoch, for preemption's victim order.
    pub start_time: Option<i128>,
    /// The `PodScheduled` condition, if any.
    pub scheduled_condition: Option<ScheduledCondition>,
    /// Requests as the fit filter counts them.
    pub requests: Resources,
    /// CPU (milli) with the scoring default for containers that request none.
    pub non_zero_milli_cpu: i64,
    /// Memory with the scoring default for containers that request none.
    pub non_zero_memory: i64,
    /// Host ports of containers and sidecars.
    pub host_ports: Vec<HostPort>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeSelector` and required node affinity.
    pub node_affinity: RequiredNodeAffinity,
    /// Preferred node affinity terms.
    pub preferred_node_affinity: Preferred,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms.
    pub preferred_affinity: Vec<WeightedTerm>,
    /// Preferred pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    /// Whether the pod has any pod affinity or anti-affinity stanza (upstream `PodsWithAffinity`).
    pub has_affinity_stanza: bool,
    /// Topology spread constraints as written.
    pub spread: Vec<SpreadConstraint>,
    /// Whether the pod wrote topology spread constraints (else the defaults may apply).
    pub has_spread: bool,
    /// Images of init and regular containers, normalized (`:latest` added when untagged).
    pub images: Vec<String>,
    /// PersistentVolumeClaims the pod uses (ephemeral volumes' claims included).
    pub claims: Vec<String>,
    /// The controller owner.
    pub controller: Option<ControllerRef>,
}

/// Upstream `normalizedImageName`: `:latest` when the name has no tag.
pub fn normalized_image(name: &str) -> String {
    let colon = name.rfind(':').map(|i| i as isize).unwrap_or(-1);
    let slash = name.rfind('/').map(|i| i as isize).unwrap_or(-1);
    if colon <= slash { format!("{name}:latest") } else { name.to_string() }
}

fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| HostPort {
            ip: p.host_ip.clone().unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_default(),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

impl PodInfo {
    /// Parses a pod.
    pub fn new(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let requests = resources::from_requests(&resources::pod_requests(&spec, false));
        let non_zero = resources::from_requests(&resources::pod_requests(&spec, true));
        let affinity = spec.affinity.as_ref();
        let node_aff = affinity.and_then(|a| a.node_affinity.as_ref());
        let pod_aff = affinity.and_then(|a| a.pod_affinity.as_ref());
        let anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let term = |t: &PodAffinityTerm| AffinityTerm::new(&namespace, &labels, t);
        let spread: Vec<SpreadConstraint> =
            spec.topology_spread_constraints.iter().flatten().map(|c| SpreadConstraint::new(c, &labels)).collect();
        let mut claims = Vec::new();
        for v in spec.volumes.iter().flatten() {
            if let Some(pvc) = &v.persistent_volume_claim {
                claims.push(pvc.claim_name.clone());
            } else if v.ephemeral.is_some() {
                claims.push(format!("{name}-{}", v.name));
            }
        }
        let scheduled_condition = status.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
            cs.iter().find(|c| c.type_ == "PodScheduled").map(|c| ScheduledCondition {
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
                last_transition_time: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
            })
        });
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| ControllerRef { api_version: o.api_version.clone(), kind: o.kind.clone(), name: o.name.clone() });
        Self {
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().unwrap_or_default(),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default-scheduler".into()),
            priority: spec.priority.unwrap_or(0),
            never_preempts: spec.preemption_policy.as_deref() == Some("Never"),
            terminating: meta.deletion_timestamp.is_some(),
            gated: spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()),
            preemption_terminating: meta.deletion_timestamp.is_some()
                && status.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "DisruptionTarget"
                            && c.status == "True"
                            && c.reason.as_deref() == Some("PreemptionByScheduler")
                    })
                }),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            nominated_node_name: status.and_then(|s| s.nominated_node_name.clone()).unwrap_or_default(),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0.as_nanosecond()),
            scheduled_condition,
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports: host_ports(&spec),
            tolerations: spec.tolerations.iter().flatten().map(Toleration::new).collect(),
            node_affinity: RequiredNodeAffinity {
                node_selector: spec.node_selector.clone().unwrap_or_default(),
                affinity: node_aff
                    .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
                    .map(Selector::new),
            },
            preferred_node_affinity: Preferred::new(
                node_aff.and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_deref()).unwrap_or(&[]),
            ),
            required_affinity: pod_aff
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
                .into_iter()
                .flatten()
                .map(term)
                .collect(),
            required_anti_affinity: anti
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
                .into_iter()
                .flatten()
                .map(term)
                .collect(),
            preferred_affinity: pod_aff
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
                .into_iter()
                .flatten()
                .map(|w| WeightedTerm { weight: i64::from(w.weight), term: term(&w.pod_affinity_term) })
                .collect(),
            preferred_anti_affinity: anti
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
                .into_iter()
                .flatten()
                .map(|w| WeightedTerm { weight: i64::from(w.weight), term: term(&w.pod_affinity_term) })
                .collect(),
            has_affinity_stanza: pod_aff.is_some() || anti.is_some(),
            has_spread: !spread.is_empty(),
            spread,
            images: spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
                .map(|c| normalized_image(c.image.as_deref().unwrap_or("")))
                .collect(),
            claims,
            controller,
            labels,
            namespace,
            name,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has required anti-affinity terms.
    pub fn has_required_anti_affinity(&self) -> bool {
        !self.required_anti_affinity.is_empty()
    }

    /// Whether another pod's preferred scoring may depend on this one (required affinity or any
    /// preferred term: the parts of an existing pod upstream's InterPodAffinity score reads).
    pub fn has_scoring_terms(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// Whether the pod is finished (it no longer holds resources).
    pub fn is_finished(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn image_names_are_normalized_as_upstream() {
        assert_eq!(normalized_image("nginx"), "nginx:latest");
        assert_eq!(normalized_image("nginx:1.2"), "nginx:1.2");
        assert_eq!(normalized_image("registry:5000/nginx"), "registry:5000/nginx:latest");
        assert_eq!(normalized_image("registry:5000/nginx:1"), "registry:5000/nginx:1");
    }

    #[test]
    fn pod_info_parses_terms_ports_and_claims() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web", "rev": "2"}},
            "spec": {
                "priority": 7,
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}, {"name": "tmp", "ephemeral": {}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname", "matchLabelKeys": ["rev"]}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "web"}}}]
            }
        }))
        .unwrap();
        let p = PodInfo::new(&pod);
        assert_eq!(p.priority, 7);
        assert_eq!(p.scheduler_name, "default-scheduler");
        assert_eq!(p.host_ports, vec![HostPort { ip: String::new(), protocol: String::new(), port: 8080 }]);
        assert_eq!(p.claims, vec!["claim".to_string(), "p-tmp".to_string()]);
        let t = &p.required_anti_affinity[0];
        assert_eq!(t.namespaces, ["ns".to_string()].into());
        assert_eq!(t.selector.to_string(), "app=web,rev in (2)");
        let other = BTreeMap::from([("app".to_string(), "web".to_string()), ("rev".to_string(), "1".to_string())]);
        assert!(!t.matches("ns", &other, &BTreeMap::new()));
        assert!(t.matches("ns", &p.labels, &BTreeMap::new()));
        assert!(!t.matches("other", &p.labels, &BTreeMap::new()));
        assert_eq!(p.spread[0].min_domains, 1);
        assert!(p.spread[0].honor_node_affinity && !p.spread[0].honor_node_taints);
        assert_eq!(p.images, vec!["busybox:latest".to_string()]);
    }
}
