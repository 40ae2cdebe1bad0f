//! The built-in local-path provisioner, as k3s ships rancher's `local-path-provisioner`
//! (provisioner name `rancher.io/local-path`, class `local-path`):
//!
//! - a claim handed to it by the binder (the `storage-provisioner` annotation) that the
//!   scheduler placed (`volume.kubernetes.io/selected-node`) gets a PersistentVolume
//!   `pvc-<claim uid>`: a `hostPath` of type `DirectoryOrCreate` at
//!   `<data-dir>/storage/pvc-<uid>_<namespace>_<claim>` with node affinity to that node,
//!   pre-bound to the claim (the binder completes the binding), with the class's reclaim policy,
//!   and the [`CLEANUP_FINALIZER`];
//! - a Released volume it provisioned with reclaim policy Delete is deleted. The agent of the
//!   volume's node then removes the directory and the finalizer (the controller manager may run
//!   on another node than the data).
//!
//! Events as the external provisioner library records them: `Provisioning`,
//! `ProvisioningSucceeded`, `ProvisioningFailed`.
//!
//! What does not live here: the `local-path` StorageClass (created by the API server at
//! bootstrap), creating the directory (the agent's hostPath `DirectoryOrCreate` at mount time)
//! and removing it (the agent's local-path cleanup).

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::json;

use super::*;
use crate::apierr;
use crate::events::Events;
use crate::informer::{SharedInformers, get, key_of};
use crate::queue::{WorkQueue, run_workers};

/// The provisioner's name.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The default StorageClass using it.
pub const CLASS: &str = "local-path";
/// The finalizer on its volumes until the node's agent has removed the directory.
pub const CLEANUP_FINALIZER: &str = "skiff.io/local-path-cleanup";
/// The annotation naming the node a volume was provisioned on (as rancher's provisioner).
pub const ANN_NODE: &str = "local.path.provisioner/selected-node";

/// Where volumes are made.
#[derive(Debug, Clone)]
pub struct LocalPathConfig {
    /// The directory holding the volumes' directories (`<data-dir>/storage`).
    pub dir: PathBuf,
}

/// Whether `volume` is one of this provisioner's.
pub fn provisioned_here(volume: &PersistentVolume) -> bool {
    volume.metadata.annotations.as_ref().and_then(|a| a.get(ANN_PROVISIONED_BY)).map(String::as_str)
        == Some(PROVISIONER)
}

/// The node a local-path volume lives on (its node affinity's `kubernetes.io/hostname`).
pub fn volume_node(volume: &PersistentVolume) -> Option<&str> {
    let terms = &volume.spec.as_ref()?.node_affinity.as_ref()?.required.as_ref()?.node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|e| e.key == "kubernetes.io/hostname" && e.operator == "In")
        .and_then(|e| e.values.as_ref()?.first().map(String::as_str))
}

/// The claim's provisioner as the binder annotated it.
fn claim_provisioner(c: &PersistentVolumeClaim) -> Option<&str> {
    let a = c.metadata.annotations.as_ref()?;
    a.get(ANN_STORAGE_PROVISIONER).or_else(|| a.get(ANN_BETA_STORAGE_PROVISIONER)).map(String::as_str)
}

/// The volume this provisioner makes for `claim` of `class` on `node`.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    dir: &std::path::Path,
) -> PersistentVolume {
    let uid = claim.metadata.uid.as_deref().unwrap_or("");
    let ns = claim.metadata.namespace.as_deref().unwrap_or("");
    let name = claim.metadata.name.as_deref().unwrap_or("");
    let spec = claim.spec.clone().unwrap_or_default();
    let storage = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    let path = dir.join(format!("pvc-{uid}_{ns}_{name}"));
    let value = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{uid}"),
            "annotations": {ANN_PROVISIONED_BY: PROVISIONER, ANN_NODE: node},
            "finalizers": [CLEANUP_FINALIZER],
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.access_modes.clone().unwrap_or_default(),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class.metadata.name,
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                "uid": uid, "resourceVersion": claim.metadata.resource_version,
            },
            "hostPath": {"path": path.to_string_lossy(), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]}]}},
        },
    });
    serde_json::from_value(value).unwrap_or_default()
}

/// What to do with a claim: provision on the node, fail with a message, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// Nothing (not ours, already provisioned, or waiting for the scheduler).
    Nothing,
    /// Provision on this node.
    Provision(String),
    /// Record `ProvisioningFailed` with this message.
    Fail(String),
}

/// The decision for `claim` given its class and whether its volume exists.
pub fn decide_claim(claim: &PersistentVolumeClaim, class: Option<&StorageClass>, volume_exists: bool) -> ClaimStep {
    if claim.metadata.deletion_timestamp.is_some()
        || claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_some_and(|v| !v.is_empty())
        || claim_provisioner(claim) != Some(PROVISIONER)
        || volume_exists
    {
        return ClaimStep::Nothing;
    }
    let Some(class) = class.filter(|c| c.provisioner == PROVISIONER) else { return ClaimStep::Nothing };
    match claim.metadata.annotations.as_ref().and_then(|a| a.get(ANN_SELECTED_NODE)) {
        Some(node) => ClaimStep::Provision(node.clone()),
        None if binder::wait_for_first_consumer(class) => ClaimStep::Nothing,
        None => ClaimStep::Fail(format!(
            "failed to provision volume with StorageClass \"{}\": configuration error, no node was specified",
            class.metadata.name.as_deref().unwrap_or("")
        )),
    }
}

/// Whether a volume of this provisioner is to be deleted now.
pub fn to_delete(volume: &PersistentVolume) -> bool {
    provisioned_here(volume)
        && volume.metadata.deletion_timestamp.is_none()
        && volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
        && volume.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()) == Some("Delete")
}

/// Runs the provisioner until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
    cfg: LocalPathConfig,
) -> impl std::future::Future<Output = ()> + Send {
    let claims = WorkQueue::new();
    let volumes = WorkQueue::new();
    let q = claims.clone();
    informers.claims.on_change(move |_, new| {
        if let Some(c) = new.filter(|c| claim_provisioner(c) == Some(PROVISIONER)) {
            q.add(key_of(c));
        }
    });
    let q = volumes.clone();
    informers.volumes.on_change(move |_, new| {
        if let Some(v) = new.filter(|v| provisioned_here(v)) {
            q.add(key_of(v));
        }
    });
    let events = Events::new(client.clone(), PROVISIONER);
    async move {
        futures::join!(informers.claims.ready(), informers.volumes.ready(), informers.storageclasses.ready());
        let (c1, i1, e1) = (client.clone(), informers.clone(), events.clone());
        let provision = run_workers("local-path-provisioner", claims, 2, move |key: String| {
            let (client, informers, events, cfg) = (c1.clone(), i1.clone(), e1.clone(), cfg.clone());
            async move {
                let Some(claim) = get(&informers.claims.store(), &key) else { return Ok(()) };
                let class_name = super::matching::claim_class(&claim);
                let class = get(&informers.storageclasses.store(), &class_name);
                let pv_name = format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or(""));
                let exists = get(&informers.volumes.store(), &pv_name).is_some();
                match decide_claim(&claim, class.as_deref(), exists) {
                    ClaimStep::Nothing => Ok(()),
                    ClaimStep::Fail(message) => {
                        events.warning(claim.as_ref(), "ProvisioningFailed", message).await;
                        Ok(())
                    }
                    ClaimStep::Provision(node) => {
                        let Some(class) = class else { return Ok(()) };
                        events
                            .normal(
                                claim.as_ref(),
                                "Provisioning",
                                format!("External provisioner is provisioning volume for claim \"{key}\""),
                            )
                            .await;
                        let pv = volume_for(&claim, &class, &node, &cfg.dir);
                        match Api::<PersistentVolume>::all(client).create(&PostParams::default(), &pv).await {
                            Ok(_) => {
                                tracing::info!(claim = %key, volume = %pv_name, node = %node, "provisioned a local-path volume");
                                events
                                    .normal(
                                        claim.as_ref(),
                                        "ProvisioningSucceeded",
                                        format!("Successfully provisioned volume {pv_name}"),
                                    )
                                    .await;
                                Ok(())
                            }
                            Err(e) if apierr::benign(&e) => Ok(()),
                            Err(e) => {
                                let message = format!(
                                    "failed to provision volume with StorageClass \"{}\": {}",
                                    class.metadata.name.as_deref().unwrap_or(""),
                                    apierr::message(&e)
                                );
                                events.warning(claim.as_ref(), "ProvisioningFailed", message).await;
                                Err(e)
                            }
                        }
                    }
                }
            }
        });
        let (c2, i2) = (client.clone(), informers.clone());
        let delete = run_workers("local-path-provisioner", volumes, 2, move |key: String| {
            let (client, informers) = (c2.clone(), i2.clone());
            async move {
                let Some(volume) = get(&informers.volumes.store(), &key) else { return Ok(()) };
                if !to_delete(&volume) {
                    return Ok(());
                }
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: volume.metadata.uid.clone(), resource_version: None }),
                    ..Default::default()
                };
                match Api::<PersistentVolume>::all(client).delete(&key, &dp).await {
                    Ok(_) => {
                        tracing::info!(volume = %key, "deleting a released local-path volume");
                        Ok(())
                    }
                    Err(e) if apierr::benign(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        });
        futures::join!(provision, delete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(mode: &str) -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": CLASS}, "provisioner": PROVISIONER,
            "volumeBindingMode": mode, "reclaimPolicy": "Delete"}))
        .expect("class")
    }

    fn claim(annotations: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "u1", "resourceVersion": "7", "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": CLASS}
        }))
        .expect("claim")
    }

    #[test]
    fn provisions_placed_claims_handed_to_it() {
        let wffc = class("WaitForFirstConsumer");
        let placed = claim(json!({ANN_STORAGE_PROVISIONER: PROVISIONER, ANN_SELECTED_NODE: "n1"}));
        assert_eq!(decide_claim(&placed, Some(&wffc), false), ClaimStep::Provision("n1".into()));
        assert_eq!(decide_claim(&placed, Some(&wffc), true), ClaimStep::Nothing, "already provisioned");
        let waiting = claim(json!({ANN_STORAGE_PROVISIONER: PROVISIONER}));
        assert_eq!(decide_claim(&waiting, Some(&wffc), false), ClaimStep::Nothing);
        assert!(matches!(decide_claim(&waiting, Some(&class("Immediate")), false), ClaimStep::Fail(_)));
        let other = claim(json!({ANN_STORAGE_PROVISIONER: "ebs.csi.aws.com", ANN_SELECTED_NODE: "n1"}));
        assert_eq!(decide_claim(&other, Some(&wffc), false), ClaimStep::Nothing);
    }

    #[test]
    fn volume_is_a_pre_bound_host_path_on_the_node() {
        let c = claim(json!({ANN_STORAGE_PROVISIONER: PROVISIONER, ANN_SELECTED_NODE: "n1"}));
        let pv = volume_for(&c, &class("WaitForFirstConsumer"), "n1", std::path::Path::new("/var/lib/skiff/storage"));
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
        assert!(provisioned_here(&pv));
        assert_eq!(volume_node(&pv), Some("n1"));
        let spec = pv.spec.as_ref().expect("spec");
        let hp = spec.host_path.as_ref().expect("hostPath");
        assert_eq!(hp.path, "/var/lib/skiff/storage/pvc-u1_ns_data");
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(spec.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.as_str()), Some("1Gi"));
        let r = spec.claim_ref.as_ref().expect("claimRef");
        assert_eq!((r.name.as_deref(), r.uid.as_deref()), (Some("data"), Some("u1")));
        assert_eq!(pv.metadata.finalizers, Some(vec![CLEANUP_FINALIZER.to_string()]));
    }

    #[test]
    fn released_delete_volumes_go() {
        let c = claim(json!({}));
        let mut pv = volume_for(&c, &class("WaitForFirstConsumer"), "n1", std::path::Path::new("/d"));
        assert!(!to_delete(&pv));
        pv.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        assert!(to_delete(&pv));
        pv.spec.as_mut().expect("spec").persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(!to_delete(&pv));
    }
}
