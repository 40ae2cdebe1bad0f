//! [`NodeSpec`]: what the scheduler reads of a Node object (name, labels, taints,
//! `spec.unschedulable`, allocatable resources, images), parsed once per Node event, plus the
//! zone key upstream's node tree interleaves nodes by.
//!
//! The per-node accounting of pods (requested resources, ports, …) is the cache's
//! ([`crate::cache::NodeInfo`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::pod::{LABEL_REGION, LABEL_ZONE};
use super::resources::Resources;
use super::taints::Taint;

/// An image present on a node: its names and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    /// Every name of the image.
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: i64,
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `status.allocatable` (with the allowed pod count).
    pub allocatable: Resources,
    /// `status.images`.
    pub images: Vec<NodeImage>,
}

impl NodeSpec {
    /// Parses a Node.
    pub fn new(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.as_ref()).into_iter().flatten().map(Taint::new).collect(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: status.and_then(|s| s.allocatable.as_ref()).map(Resources::from_list).unwrap_or_default(),
            images: status
                .and_then(|s| s.images.as_ref())
                .into_iter()
                .flatten()
                .map(|i| NodeImage { names: i.names.clone().unwrap_or_default(), size: i.size_bytes.unwrap_or(0) })
                .collect(),
        }
    }

    /// Upstream `utilnode.GetZoneKey`: region and zone joined, empty when the node has neither.
    pub fn zone_key(&self) -> String {
        let region =
            self.labels.get(LABEL_REGION).or_else(|| self.labels.get("failure-domain.beta.kubernetes.io/region"));
        let zone = self.labels.get(LABEL_ZONE).or_else(|| self.labels.get("failure-domain.beta.kubernetes.io/zone"));
        match (region, zone) {
            (None, None) => String::new(),
            (r, z) => format!("{}:\u{0}:{}", r.map(String::as_str).unwrap_or(""), z.map(String::as_str).unwrap_or("")),
        }
    }
}
