//! The node side of the built-in local-path provisioner: a PersistentVolume it made for this
//! node (annotation `pv.kubernetes.io/provisioned-by: rancher.io/local-path`, node affinity to
//! this node) that is being deleted still carries the `skiff.io/local-path-cleanup` finalizer;
//! the agent removes the volume's directory, then the finalizer, and the volume is gone.
//! (rancher's provisioner runs a helper pod on the node for the same job.)
//!
//! Only directories named `pvc-…` at an absolute path are removed, so a crafted volume cannot
//! point the agent at arbitrary host paths. Creating the directory is the hostPath volume's
//! `DirectoryOrCreate` at mount time ([`super::host_path`]).
//!
//! What does not live here: provisioning and the decision to delete (the controller manager's
//! `volume::localpath`).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

/// The provisioner whose volumes are cleaned.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The finalizer the provisioner puts on its volumes.
pub const CLEANUP_FINALIZER: &str = "skiff.io/local-path-cleanup";
const RETRY: Duration = Duration::from_secs(5);

/// The directory to remove for `pv` on node `node`, when the volume is this node's to clean now.
pub fn cleanup_path<'a>(pv: &'a PersistentVolume, node: &str) -> Option<&'a Path> {
    let meta = &pv.metadata;
    meta.deletion_timestamp.as_ref()?;
    if !meta.finalizers.as_ref()?.iter().any(|f| f == CLEANUP_FINALIZER)
        || meta.annotations.as_ref()?.get("pv.kubernetes.io/provisioned-by").map(String::as_str) != Some(PROVISIONER)
    {
        return None;
    }
    let spec = pv.spec.as_ref()?;
    let on_node = spec
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .any(|e| e.key == "kubernetes.io/hostname" && e.values.iter().flatten().any(|v| v == node));
    if !on_node {
        return None;
    }
    let path = Path::new(&spec.host_path.as_ref()?.path);
    let safe = path.is_absolute()
        && !path.components().any(|c| matches!(c, std::path::Component::ParentDir))
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pvc-"));
    safe.then_some(path)
}

/// Removes the directory and then the finalizer of one volume.
async fn clean(api: &Api<PersistentVolume>, pv: &PersistentVolume, path: &Path) -> Result<(), String> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => tracing::info!(path = %path.display(), "removed a local-path volume's directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
    }
    let name = pv.metadata.name.clone().unwrap_or_default();
    let mut next = pv.clone();
    if let Some(f) = next.metadata.finalizers.as_mut() {
        f.retain(|x| x != CLEANUP_FINALIZER);
    }
    match api.replace(&name, &PostParams::default(), &next).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Watches PersistentVolumes and cleans this node's deleted local-path volumes until dropped.
pub async fn run(client: kube::Client, node: String) {
    let api: Api<PersistentVolume> = Api::all(client);
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        let pv = match event {
            Ok(pv) => pv,
            Err(e) => {
                tracing::debug!(error = %e, "local-path cleanup watch failed; retrying");
                continue;
            }
        };
        let Some(path) = cleanup_path(&pv, &node).map(Path::to_path_buf) else { continue };
        let api = api.clone();
        tokio::spawn(async move {
            let name = pv.metadata.name.clone().unwrap_or_default();
            let mut pv = pv;
            loop {
                match clean(&api, &pv, &path).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(volume = %name, error = %e, "cannot clean up a local-path volume; retrying")
                    }
                }
                tokio::time::sleep(RETRY).await;
                match api.get_opt(&name).await {
                    Ok(Some(fresh)) if fresh.metadata.uid == pv.metadata.uid => pv = fresh,
                    Ok(_) => return,
                    Err(_) => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(path: &str, node: &str, deleting: bool) -> PersistentVolume {
        let mut meta = json!({"name": "pvc-u1", "finalizers": [CLEANUP_FINALIZER],
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({"metadata": meta, "spec": {
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}))
        .expect("pv")
    }

    #[test]
    fn cleans_only_this_nodes_deleted_volumes_under_pvc_directories() {
        let dir = "/var/lib/skiff/storage/pvc-u1_ns_data";
        assert_eq!(cleanup_path(&pv(dir, "n1", true), "n1"), Some(Path::new(dir)));
        assert_eq!(cleanup_path(&pv(dir, "n1", false), "n1"), None, "not being deleted");
        assert_eq!(cleanup_path(&pv(dir, "n2", true), "n1"), None, "another node's");
        assert_eq!(cleanup_path(&pv("/etc", "n1", true), "n1"), None);
        assert_eq!(cleanup_path(&pv("/x/pvc-a/../../etc", "n1", true), "n1"), None);
        let mut other = pv(dir, "n1", true);
        other.metadata.finalizers = Some(vec!["kubernetes.io/pv-protection".into()]);
        assert_eq!(cleanup_path(&other, "n1"), None, "cleaned already");
    }
}
