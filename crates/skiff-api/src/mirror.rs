//! Mirror pods: the API server's view of a node agent's static pods (upstream
//! `kubernetes.io/config.mirror`). What lives here is what the API server applies to them: the
//! ServiceAccount admission plugin's rules for mirror pods (no ServiceAccount, no Secret, no
//! ServiceAccountToken projection) and the annotation itself.
//!
//! What does not live here: the annotation checks of pod validation (`validation::kinds::pod`)
//! and the agent's side (creating, recreating and deleting mirrors, in `skiff-agent`).

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, Pod, Volume};

/// The annotation that marks a pod as the mirror of a static pod; its value is the static pod's
/// hash (`kubernetes.io/config.hash`).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether `pod` carries the mirror annotation.
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// Upstream's ServiceAccount admission for a mirror pod being created: the reason it is refused
/// (the API server answers 403 `pods "x" is forbidden: <reason>`), checked in upstream's order.
pub fn admit(pod: &Pod) -> Result<(), &'static str> {
    let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
    if spec.service_account_name.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err("a mirror pod may not reference service accounts");
    }
    if references_secrets(pod) {
        return Err("a mirror pod may not reference secrets");
    }
    let projections = spec.volumes.iter().flatten().filter_map(|v| v.projected.as_ref());
    if projections.flat_map(|p| p.sources.iter().flatten()).any(|s| s.service_account_token.is_some()) {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

/// Whether the pod names any Secret, wherever upstream's `VisitPodSecretNames` looks: pull
/// secrets, every container's env and envFrom, and every volume source that takes one.
fn references_secrets(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    if spec.image_pull_secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return true;
    }
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    let env_uses = |env: Option<&Vec<EnvVar>>, env_from: Option<&Vec<EnvFromSource>>| {
        env.into_iter().flatten().any(|e| e.value_from.as_ref().is_some_and(|v| v.secret_key_ref.is_some()))
            || env_from.into_iter().flatten().any(|e| e.secret_ref.is_some())
    };
    let container_uses = |c: &Container| env_uses(c.env.as_ref(), c.env_from.as_ref());
    if containers.into_iter().any(container_uses)
        || ephemeral.into_iter().any(|c| env_uses(c.env.as_ref(), c.env_from.as_ref()))
    {
        return true;
    }
    spec.volumes.iter().flatten().any(volume_uses_secret)
}

fn volume_uses_secret(v: &Volume) -> bool {
    v.secret.is_some()
        || v.azure_file.as_ref().is_some_and(|a| !a.secret_name.is_empty())
        || v.cephfs.as_ref().is_some_and(|c| c.secret_ref.is_some())
        || v.cinder.as_ref().is_some_and(|c| c.secret_ref.is_some())
        || v.flex_volume.as_ref().is_some_and(|f| f.secret_ref.is_some())
        || v.rbd.as_ref().is_some_and(|r| r.secret_ref.is_some())
        || v.scale_io.is_some()
        || v.iscsi.as_ref().is_some_and(|i| i.secret_ref.is_some())
        || v.storageos.as_ref().is_some_and(|s| s.secret_ref.is_some())
        || v.csi.as_ref().is_some_and(|c| c.node_publish_secret_ref.is_some())
        || v.projected.as_ref().is_some_and(|p| p.sources.iter().flatten().any(|s| s.secret.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mirror(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "m", "annotations": {MIRROR_ANNOTATION: "abc"}},
            "spec": spec,
        }))
        .expect("pod")
    }

    #[test]
    fn mirror_pods_may_not_reference_service_accounts_secrets_or_tokens() {
        let base = json!({"nodeName": "n", "containers": [{"name": "c", "image": "i"}]});
        assert!(is_mirror(&mirror(base.clone())));
        assert_eq!(admit(&mirror(base.clone())), Ok(()));
        let mut sa = base.clone();
        sa["serviceAccountName"] = json!("default");
        assert_eq!(admit(&mirror(sa)), Err("a mirror pod may not reference service accounts"));
        let mut env = base.clone();
        env["containers"][0]["env"] = json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
        assert_eq!(admit(&mirror(env)), Err("a mirror pod may not reference secrets"));
        let mut vol = base.clone();
        vol["volumes"] = json!([{"name": "v", "secret": {"secretName": "s"}}]);
        assert_eq!(admit(&mirror(vol)), Err("a mirror pod may not reference secrets"));
        let mut pull = base.clone();
        pull["imagePullSecrets"] = json!([{"name": "s"}]);
        assert_eq!(admit(&mirror(pull)), Err("a mirror pod may not reference secrets"));
        let mut token = base.clone();
        token["volumes"] = json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]);
        assert_eq!(admit(&mirror(token)), Err("a mirror pod may not use ServiceAccountToken volume projections"));
        // ConfigMaps are refused only by NodeRestriction (node identities), not here.
        let mut cm = base;
        cm["volumes"] = json!([{"name": "v", "configMap": {"name": "c"}}]);
        assert_eq!(admit(&mirror(cm)), Ok(()));
    }
}
