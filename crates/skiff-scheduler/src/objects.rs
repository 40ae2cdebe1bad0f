//! Other API objects some plugins read, each reduced to the fields they use: Services,
//! ReplicaSets, StatefulSets and ReplicationControllers (the default spreading selector, upstream
//! `helper.DefaultSelector`), and PersistentVolumeClaims, PersistentVolumes and StorageClasses
//! (VolumeBinding). Fed by the informers, read by the scheduling thread.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use skiff_api::selector::{LabelSelectorExpr, Operator, Requirement};

use crate::model::PodInfo;
use crate::model::nodeaffinity::Selector;
use crate::model::resources::parse;

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claim {
    /// `spec.volumeName` (bound when set).
    pub volume_name: String,
    /// `spec.storageClassName` ("" when unset).
    pub storage_class: String,
    /// Being deleted.
    pub terminating: bool,
    /// `spec.accessModes`.
    pub access_modes: Vec<String>,
    /// `spec.resources.requests.storage` in bytes.
    pub request: i64,
    /// `metadata.uid`.
    pub uid: String,
}

impl Claim {
    /// From the API type.
    pub fn new(c: &PersistentVolumeClaim) -> Self {
        let spec = c.spec.as_ref();
        Self {
            volume_name: spec.and_then(|s| s.volume_name.clone()).unwrap_or_default(),
            storage_class: spec.and_then(|s| s.storage_class_name.clone()).unwrap_or_default(),
            terminating: c.metadata.deletion_timestamp.is_some(),
            access_modes: spec.and_then(|s| s.access_modes.clone()).unwrap_or_default(),
            request: spec
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| parse(q).value())
                .unwrap_or(0),
            uid: c.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// A PersistentVolume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    /// `spec.nodeAffinity.required`.
    pub node_affinity: Option<Selector>,
    /// `spec.claimRef` as (namespace, name).
    pub claim_ref: Option<(String, String)>,
    /// `spec.storageClassName`.
    pub storage_class: String,
    /// `spec.capacity.storage` in bytes.
    pub capacity: i64,
    /// `spec.accessModes`.
    pub access_modes: Vec<String>,
    /// `status.phase`.
    pub phase: String,
    /// Being deleted.
    pub terminating: bool,
}

impl Volume {
    /// From the API type.
    pub fn new(v: &PersistentVolume) -> Self {
        let spec = v.spec.as_ref();
        Self {
            node_affinity: spec
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
                .map(Selector::new),
            claim_ref: spec
                .and_then(|s| s.claim_ref.as_ref())
                .map(|r| (r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default())),
            storage_class: spec.and_then(|s| s.storage_class_name.clone()).unwrap_or_default(),
            capacity: spec
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| parse(q).value())
                .unwrap_or(0),
            access_modes: spec.and_then(|s| s.access_modes.clone()).unwrap_or_default(),
            phase: v.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default(),
            terminating: v.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Whether the volume's node affinity admits a node.
    pub fn fits_node(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_affinity.as_ref().is_none_or(|s| s.matches(name, labels))
    }
}

/// A StorageClass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Class {
    /// `volumeBindingMode` is `WaitForFirstConsumer`.
    pub wait_for_first_consumer: bool,
    /// `provisioner`.
    pub provisioner: String,
}

impl Class {
    /// From the API type.
    pub fn new(c: &StorageClass) -> Self {
        Self {
            wait_for_first_consumer: c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"),
            provisioner: c.provisioner.clone(),
        }
    }
}

/// A workload's pod selector, for the default spreading selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadSelector {
    /// A ReplicationController's (or Service's) label map.
    Map(BTreeMap<String, String>),
    /// A ReplicaSet's or StatefulSet's label selector.
    Selector(LabelSelectorExpr),
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pdb {
    /// Namespace.
    pub namespace: String,
    /// `spec.selector` (no requirements: selects nothing).
    pub selector: LabelSelectorExpr,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Names in `status.disruptedPods`.
    pub disrupted_pods: std::collections::HashSet<String>,
}

impl Pdb {
    /// From the API type.
    pub fn new(p: &k8s_openapi::api::policy::v1::PodDisruptionBudget) -> Self {
        let status = p.status.as_ref();
        Self {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            selector: LabelSelectorExpr::from_label_selector(p.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .unwrap_or_else(|_| LabelSelectorExpr::nothing()),
            disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
            disrupted_pods: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// The objects (see the module doc).
#[derive(Debug, Default)]
pub struct Objects {
    /// Service selectors by namespace, then name.
    pub services: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
    /// Workload selectors by (kind, namespace, name); kind is `ReplicationController`,
    /// `ReplicaSet` or `StatefulSet`.
    pub workloads: HashMap<(String, String, String), WorkloadSelector>,
    /// Claims by (namespace, name).
    pub claims: HashMap<(String, String), Claim>,
    /// Volumes by name.
    pub volumes: HashMap<String, Volume>,
    /// Storage classes by name.
    pub classes: HashMap<String, Class>,
    /// PodDisruptionBudgets.
    pub pdbs: Vec<Pdb>,
    /// PodDisruptionBudgets by (namespace, name), the source of `pdbs`.
    pub pdb_by_name: HashMap<(String, String), Pdb>,
}

fn equals(set: &BTreeMap<String, String>) -> Vec<Requirement> {
    set.iter().map(|(k, v)| Requirement { key: k.clone(), op: Operator::Equals, values: [v.clone()].into() }).collect()
}

impl Objects {
    /// Upstream `DefaultSelector`: the selectors of the Services selecting the pod merged, plus
    /// the pod's controller's selector (ReplicationController, ReplicaSet or StatefulSet).
    /// Empty (no requirements) when nothing selects the pod.
    pub fn default_selector(&self, pod: &PodInfo) -> LabelSelectorExpr {
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for selector in self.services.get(&pod.namespace).into_iter().flat_map(|s| s.values()) {
            if selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut sel = LabelSelectorExpr { requirements: equals(&set), match_nothing: false };
        let Some(owner) = &pod.controller else { return sel };
        let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => "ReplicationController",
            ("apps/v1", "ReplicaSet") => "ReplicaSet",
            ("apps/v1", "StatefulSet") => "StatefulSet",
            _ => return sel,
        };
        match self.workloads.get(&(kind.to_string(), pod.namespace.clone(), owner.name.clone())) {
            Some(WorkloadSelector::Map(m)) => {
                set.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                sel = LabelSelectorExpr { requirements: equals(&set), match_nothing: false };
            }
            Some(WorkloadSelector::Selector(s)) if !s.match_nothing => {
                sel.requirements.extend(s.requirements.iter().cloned())
            }
            _ => {}
        }
        sel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pod::ControllerRef;

    #[test]
    fn default_selector_merges_services_and_the_controller() {
        let mut o = Objects::default();
        o.services.entry("ns".into()).or_default().insert("web".into(), BTreeMap::from([("app".into(), "web".into())]));
        o.services.entry("ns".into()).or_default().insert("db".into(), BTreeMap::from([("app".into(), "db".into())]));
        o.workloads.insert(
            ("ReplicaSet".into(), "ns".into(), "rs".into()),
            WorkloadSelector::Selector(LabelSelectorExpr::parse("app=web,pod-template-hash=1").unwrap_or_default()),
        );
        let mut pod = PodInfo {
            namespace: "ns".into(),
            labels: BTreeMap::from([("app".into(), "web".into()), ("pod-template-hash".into(), "1".into())]),
            ..Default::default()
        };
        assert_eq!(o.default_selector(&pod).to_string(), "app=web");
        pod.controller =
            Some(ControllerRef { api_version: "apps/v1".into(), kind: "ReplicaSet".into(), name: "rs".into() });
        assert_eq!(o.default_selector(&pod).to_string(), "app=web,app=web,pod-template-hash=1");
        let lone = PodInfo { namespace: "ns".into(), ..Default::default() };
        assert!(o.default_selector(&lone).requirements.is_empty());
    }
}
