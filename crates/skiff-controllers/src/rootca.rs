//! The root CA publisher: every active namespace has the ConfigMap `kube-root-ca.crt` holding
//! the cluster CA under `ca.crt`, kept equal to it (recreated if deleted, restored if edited),
//! as upstream's `root-ca-cert-publisher`.
//!
//! What does not live here: the CA itself (`skiff::pki`) and ServiceAccounts
//! ([`crate::serviceaccount`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::apierr::benign;
use crate::informer::{SharedInformers, get};
use crate::queue::{WorkQueue, run_workers};
use crate::serviceaccount::active;

/// The ConfigMap's name.
pub const NAME: &str = "kube-root-ca.crt";
/// The key of the CA bundle.
pub const KEY: &str = "ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

fn wanted(ca_pem: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    (
        [(KEY.to_string(), ca_pem.to_string())].into(),
        [("kubernetes.io/description".to_string(), DESCRIPTION.to_string())].into(),
    )
}

/// Whether an existing ConfigMap needs updating to publish `ca_pem`.
pub fn needs_update(cm: &ConfigMap, ca_pem: &str) -> bool {
    let (data, annotations) = wanted(ca_pem);
    cm.data.as_ref() != Some(&data)
        || annotations.iter().any(|(k, v)| cm.metadata.annotations.as_ref().and_then(|a| a.get(k)) != Some(v))
}

/// Runs the publisher until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
    ca_pem: String,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.namespaces.on_change(move |_, new| {
        if let Some(ns) = new {
            q.add(ns.metadata.name.clone().unwrap_or_default());
        }
    });
    let q = queue.clone();
    informers.configmaps.on_change(move |old, new| {
        if let Some(cm) = new.or(old)
            && cm.metadata.name.as_deref() == Some(NAME)
        {
            q.add(cm.metadata.namespace.clone().unwrap_or_default());
        }
    });
    let ca_pem = Arc::new(ca_pem);
    async move {
        futures::join!(informers.namespaces.ready(), informers.configmaps.ready());
        run_workers("root-ca-cert-publisher", queue, 2, move |ns: String| {
            let client = client.clone();
            let informers = informers.clone();
            let ca_pem = ca_pem.clone();
            async move {
                let Some(namespace) = get(&informers.namespaces.store(), &ns) else { return Ok(()) };
                if !active(&namespace) {
                    return Ok(());
                }
                let api = Api::<ConfigMap>::namespaced(client, &ns);
                let (data, annotations) = wanted(&ca_pem);
                let result = match get(&informers.configmaps.store(), &format!("{ns}/{NAME}")) {
                    None => {
                        let cm = ConfigMap {
                            metadata: ObjectMeta {
                                name: Some(NAME.into()),
                                annotations: Some(annotations),
                                ..Default::default()
                            },
                            data: Some(data),
                            ..Default::default()
                        };
                        api.create(&PostParams::default(), &cm).await.map(|_| ())
                    }
                    Some(cm) if needs_update(&cm, &ca_pem) => {
                        let mut cm = (*cm).clone();
                        cm.data = Some(data);
                        cm.binary_data = None;
                        cm.metadata.annotations.get_or_insert_with(BTreeMap::new).extend(annotations);
                        api.replace(NAME, &PostParams::default(), &cm).await.map(|_| ())
                    }
                    Some(_) => Ok(()),
                };
                match result {
                    Err(e) if !benign(&e) => Err(e),
                    _ => Ok(()),
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_drift() {
        let (data, annotations) = wanted("PEM");
        let mut cm = ConfigMap {
            metadata: ObjectMeta { annotations: Some(annotations), ..Default::default() },
            data: Some(data),
            ..Default::default()
        };
        assert!(!needs_update(&cm, "PEM"));
        assert!(needs_update(&cm, "OTHER"));
        cm.metadata.annotations = None;
        assert!(needs_update(&cm, "PEM"));
    }
}
