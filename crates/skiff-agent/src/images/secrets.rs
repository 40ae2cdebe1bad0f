//! The pull secrets of a pod: the Secrets its `imagePullSecrets` name, or, when it names none,
//! those of its ServiceAccount (what upstream's ServiceAccount admission would have copied into
//! the pod; skiff has no admission chain yet, so the agent reads them itself). Secrets that
//! cannot be read are reported by name, as the kubelet does, and the pull goes on without them.

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::Api;

fn names(refs: Option<&Vec<k8s_openapi::api::core::v1::LocalObjectReference>>) -> Vec<String> {
    refs.into_iter().flatten().filter(|r| !r.name.is_empty()).map(|r| r.name.clone()).collect()
}

/// The pod's pull secrets that exist, and the names of those that could not be read.
pub async fn pull_secrets(client: &kube::Client, pod: &Pod) -> (Vec<Secret>, Vec<String>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    let mut wanted = names(spec.and_then(|s| s.image_pull_secrets.as_ref()));
    if wanted.is_empty() {
        let account =
            spec.and_then(|s| s.service_account_name.as_deref()).filter(|n| !n.is_empty()).unwrap_or("default");
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        match accounts.get_opt(account).await {
            Ok(Some(sa)) => wanted = names(sa.image_pull_secrets.as_ref()),
            Ok(None) => {}
            Err(e) => tracing::debug!(account, error = %e, "reading the service account's pull secrets"),
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for name in wanted {
        match secrets.get(&name).await {
            Ok(secret) => found.push(secret),
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "unable to retrieve pull secret; the image pull may not succeed");
                missing.push(name);
            }
        }
    }
    (found, missing)
}
