//! The ServiceAccount controller: every active namespace has a ServiceAccount `default`
//! (recreated if deleted), as upstream's `serviceaccounts-controller`.
//!
//! What does not live here: tokens (the API server's TokenRequest, later) and the root CA
//! ConfigMap ([`crate::rootca`]).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::apierr;
use crate::informer::{SharedInformers, get};
use crate::queue::{WorkQueue, run_workers};

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

/// Whether a namespace is active (not being deleted).
pub fn active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

/// Runs the controller until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.namespaces.on_change(move |_, new| {
        if let Some(ns) = new {
            q.add(ns.metadata.name.clone().unwrap_or_default());
        }
    });
    let q = queue.clone();
    informers.serviceaccounts.on_change(move |old, new| {
        if let (Some(sa), None) = (old, new)
            && sa.metadata.name.as_deref() == Some(DEFAULT)
        {
            q.add(sa.metadata.namespace.clone().unwrap_or_default());
        }
    });
    async move {
        futures::join!(informers.namespaces.ready(), informers.serviceaccounts.ready());
        run_workers("serviceaccount-controller", queue, 2, move |ns: String| {
            let client = client.clone();
            let informers = informers.clone();
            async move {
                let Some(namespace) = get(&informers.namespaces.store(), &ns) else { return Ok(()) };
                if !active(&namespace) || get(&informers.serviceaccounts.store(), &format!("{ns}/{DEFAULT}")).is_some()
                {
                    return Ok(());
                }
                let sa = ServiceAccount {
                    metadata: ObjectMeta { name: Some(DEFAULT.into()), ..Default::default() },
                    ..Default::default()
                };
                match Api::<ServiceAccount>::namespaced(client, &ns).create(&PostParams::default(), &sa).await {
                    Ok(_) => Ok(()),
                    Err(e) if apierr::benign(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await;
    }
}
