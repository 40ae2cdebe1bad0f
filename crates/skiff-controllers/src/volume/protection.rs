//! The storage-object-in-use protection controllers, as upstream's `pvc-protection-controller`
//! and `pv-protection-controller`: they add the `kubernetes.io/pvc-protection` and
//! `kubernetes.io/pv-protection` finalizers to claims and volumes that lack them (the API
//! server's admission adds them at creation), and remove them from deleted objects once
//! nothing uses them: a claim while a scheduled pod names it (the informer's pods, confirmed by
//! a live list before the finalizer goes), a volume while it is Bound.
//!
//! What does not live here: what happens to a volume when its claim is gone (the binder's).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};

use super::{PV_PROTECTION, PVC_PROTECTION};
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::queue::{WorkQueue, run_workers};

/// Whether `pod` uses claim `claim` of its namespace (upstream `podUsesPVC`): only scheduled
/// pods count, naming it as a `persistentVolumeClaim` volume or through a generic ephemeral
/// volume (`<pod>-<volume>`).
pub fn pod_uses(pod: &Pod, claim: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    if spec.node_name.as_deref().unwrap_or("").is_empty() {
        return false;
    }
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    spec.volumes.iter().flatten().any(|v| {
        v.persistent_volume_claim.as_ref().is_some_and(|p| p.claim_name == claim)
            || (v.ephemeral.is_some() && format!("{pod_name}-{}", v.name) == claim)
    })
}

/// What the protection controllers do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Keep,
    /// Add the finalizer.
    Add,
    /// Remove the finalizer.
    Remove,
}

fn has(finalizers: Option<&Vec<String>>, f: &str) -> bool {
    finalizers.is_some_and(|l| l.iter().any(|x| x == f))
}

/// The decision for an object with `meta`, carrying finalizer `finalizer`, and whether it is in use.
pub fn decide<K: Resource>(obj: &K, finalizer: &str, in_use: impl FnOnce() -> bool) -> Action {
    let meta = obj.meta();
    let present = has(meta.finalizers.as_ref(), finalizer);
    match (meta.deletion_timestamp.is_some(), present) {
        (false, false) => Action::Add,
        (true, true) if !in_use() => Action::Remove,
        _ => Action::Keep,
    }
}

fn with_finalizer<K: Resource + Clone>(obj: &K, finalizer: &str, add: bool) -> K {
    let mut next = obj.clone();
    let list = next.meta_mut().finalizers.get_or_insert_with(Vec::new);
    list.retain(|f| f != finalizer);
    if add {
        list.push(finalizer.into());
    }
    next
}

/// Runs both protection controllers until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let claims = WorkQueue::new();
    let volumes = WorkQueue::new();
    let q = claims.clone();
    informers.claims.on_change(move |_, new| {
        if let Some(c) = new {
            q.add(key_of(c));
        }
    });
    let q = claims.clone();
    informers.pods.on_change(move |old, new| {
        // A pod going away (or whose claims change) may free a deleted claim.
        let Some(pod) = old else { return };
        if new.is_some_and(|n| n.spec.as_ref().map(|s| &s.volumes) == pod.spec.as_ref().map(|s| &s.volumes)) {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(p) = &v.persistent_volume_claim {
                q.add(format!("{ns}/{}", p.claim_name));
            }
        }
    });
    let q = volumes.clone();
    informers.volumes.on_change(move |_, new| {
        if let Some(v) = new {
            q.add(key_of(v));
        }
    });
    async move {
        futures::join!(informers.claims.ready(), informers.volumes.ready(), informers.pods.ready());
        let (c1, i1) = (client.clone(), informers.clone());
        let pvc = run_workers("pvc-protection-controller", claims, 2, move |key: String| {
            let (client, informers) = (c1.clone(), i1.clone());
            async move {
                let Some(claim) = get(&informers.claims.store(), &key) else { return Ok(()) };
                let (ns, name) = split_key(&key);
                let cached = || {
                    informers
                        .pods
                        .store()
                        .state()
                        .iter()
                        .any(|p| p.metadata.namespace.as_deref() == Some(ns) && pod_uses(p, name))
                };
                let mut action = decide(claim.as_ref(), PVC_PROTECTION, cached);
                if action == Action::Remove {
                    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await?;
                    if pods.items.iter().any(|p| pod_uses(p, name)) {
                        action = Action::Keep;
                    }
                }
                write(Api::<PersistentVolumeClaim>::namespaced(client, ns), claim.as_ref(), PVC_PROTECTION, action)
                    .await
            }
        });
        let (c2, i2) = (client.clone(), informers.clone());
        let pv = run_workers("pv-protection-controller", volumes, 2, move |key: String| {
            let (client, informers) = (c2.clone(), i2.clone());
            async move {
                let Some(volume) = get(&informers.volumes.store(), &key) else { return Ok(()) };
                let bound = || volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                let action = decide(volume.as_ref(), PV_PROTECTION, bound);
                write(Api::<PersistentVolume>::all(client), volume.as_ref(), PV_PROTECTION, action).await
            }
        });
        futures::join!(pvc, pv);
    }
}

async fn write<K>(api: Api<K>, obj: &K, finalizer: &str, action: Action) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if action == Action::Keep {
        return Ok(());
    }
    let next = with_finalizer(obj, finalizer, action == Action::Add);
    let name = obj.meta().name.clone().unwrap_or_default();
    match api.replace(&name, &PostParams::default(), &next).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, claim: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}},
                                 {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}
        }))
        .expect("pod")
    }

    #[test]
    fn scheduled_pods_use_their_claims() {
        assert!(pod_uses(&pod("n1", "data"), "data"));
        assert!(pod_uses(&pod("n1", "data"), "p-scratch"), "generic ephemeral volumes");
        assert!(!pod_uses(&pod("n1", "data"), "other"));
        assert!(!pod_uses(&pod("", "data"), "data"), "unscheduled pods do not hold claims");
    }

    #[test]
    fn finalizer_added_and_removed_when_unused() {
        let mut c: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"}})).expect("pvc");
        assert_eq!(decide(&c, PVC_PROTECTION, || true), Action::Add);
        c = with_finalizer(&c, PVC_PROTECTION, true);
        assert_eq!(decide(&c, PVC_PROTECTION, || false), Action::Keep);
        c.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(decide(&c, PVC_PROTECTION, || true), Action::Keep, "in use");
        assert_eq!(decide(&c, PVC_PROTECTION, || false), Action::Remove);
        assert_eq!(with_finalizer(&c, PVC_PROTECTION, false).metadata.finalizers, Some(vec![]));
    }
}
