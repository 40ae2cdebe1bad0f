//! The namespace controller: when a namespace is being deleted, delete everything in it, then
//! remove the `kubernetes` finalizer through `/finalize` so the API server removes the namespace.
//!
//! Level-triggered: each reconcile looks at the namespace as it is now, deletes what is left,
//! and requeues until nothing remains.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// An API call failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// The namespace has no name.
    #[error("namespace without a name")]
    Unnamed,
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "namespace reconcile failed");
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, err: &NamespaceError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "namespace cleanup failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, NamespaceError> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let holds = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !holds {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().ok_or(NamespaceError::Unnamed)?;
    let remaining = delete_contents(&ctx.client, &name).await?;
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "waiting for namespace contents to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers =
            Some(spec.finalizers.take().unwrap_or_default().into_iter().filter(|f| f != FINALIZER).collect());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.replace_subresource("finalize", &name, &PostParams::default(), &finalized).await?;
    tracing::info!(namespace = %name, "namespace finalized");
    Ok(Action::await_change())
}

/// Deletes every namespaced object in `namespace`; returns how many still exist.
async fn delete_contents(client: &kube::Client, namespace: &str) -> Result<usize, NamespaceError> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut remaining = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
            let list = api.list(&ListParams::default()).await?;
            for obj in list.items {
                let Some(name) = obj.metadata.name.clone() else { continue };
                remaining += 1;
                if obj.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if remaining == 0 {
        return Ok(0);
    }
    // Count again after the deletes: objects without finalizers are already gone.
    let mut left = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
            left += api.list(&ListParams::default()).await?.items.len();
        }
    }
    Ok(left)
}
