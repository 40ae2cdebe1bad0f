//! [`SlimPod`]: the Pod as the scheduler's informer decodes it — the spec whole, but only the
//! metadata and status fields the scheduler reads. Skipping `managedFields` (whose field sets
//! would otherwise be built as JSON trees), annotations and container statuses makes decoding
//! every pod event markedly cheaper. Converted to [`crate::model::PodInfo`] right away.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// A Pod with slimmed metadata and status.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimPod {
    /// Name, namespace, uid, resourceVersion, labels, deletionTimestamp, ownerReferences.
    #[serde(deserialize_with = "slim_meta", default)]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: Option<PodSpec>,
    /// Phase, nominatedNodeName, startTime and conditions.
    #[serde(deserialize_with = "slim_status", default)]
    pub status: Option<PodStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    deletion_timestamp: Option<Time>,
    owner_references: Option<Vec<OwnerReference>>,
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Meta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        deletion_timestamp: m.deletion_timestamp,
        owner_references: m.owner_references,
        ..Default::default()
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    phase: Option<String>,
    nominated_node_name: Option<String>,
    start_time: Option<Time>,
    conditions: Option<Vec<PodCondition>>,
}

fn slim_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PodStatus>, D::Error> {
    let Some(s) = Option::<Status>::deserialize(d)? else { return Ok(None) };
    Ok(Some(PodStatus {
        phase: s.phase,
        nominated_node_name: s.nominated_node_name,
        start_time: s.start_time,
        conditions: s.conditions,
        ..Default::default()
    }))
}

impl k8s_openapi::Resource for SlimPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for SlimPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slim_pods_keep_what_the_scheduler_reads() {
        let v = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"},
                "annotations": {"x": "y"}, "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"},
            "status": {"phase": "Running", "nominatedNodeName": "n2", "containerStatuses": [{"name": "c"}],
                "conditions": [{"type": "PodScheduled", "status": "True"}]}});
        let p: SlimPod = serde_json::from_value(v).expect("decodes");
        assert_eq!(p.metadata.name.as_deref(), Some("p"));
        assert!(p.metadata.managed_fields.is_none() && p.metadata.annotations.is_none());
        let status = p.status.expect("status");
        assert_eq!((status.phase.as_deref(), status.nominated_node_name.as_deref()), (Some("Running"), Some("n2")));
        assert!(status.container_statuses.is_none());
        assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("n"));
    }
}
