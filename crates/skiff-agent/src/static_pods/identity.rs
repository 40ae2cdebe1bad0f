//! The identity the agent gives a static pod read from a file, as the kubelet's file source does:
//! the API server's defaults (without admission), a UID hashed from the defaulted manifest, the
//! node name and the file's path (stable across agent restarts, new whenever the file changes),
//! the name `<name>-<node>`, namespace `default` when none, `spec.nodeName`, the
//! `kubernetes.io/config.hash` annotation, a toleration of every `NoExecute` taint, and then the
//! API server's validation of a new pod.
//!
//! What does not live here: parsing files (`manifest`), the source and first-seen annotations
//! (`source`).

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Toleration};
use sha2::{Digest, Sha256};
use skiff_api::catalogue::NameRule;
use skiff_api::kinds::Validation;

use super::manifest::ManifestError;
use super::{CONFIG_HASH, FILE_SOURCE};

/// Gives `pod`, read from the file at `path`, its identity as a static pod of node `node`, and
/// validates it as the API server would validate a new pod.
pub fn apply(mut pod: Pod, path: &Path, node: &str) -> Result<Pod, ManifestError> {
    skiff_api::defaults::default_pod(&mut pod);
    let uid = uid(&pod, path, node);
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(pod_name(&name, node));
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.annotations.get_or_insert_default().insert(CONFIG_HASH.into(), uid);
    let spec = pod.spec.get_or_insert_default();
    spec.node_name = Some(node.to_string());
    tolerate_no_execute(spec.tolerations.get_or_insert_default());
    pod.status = Some(PodStatus { phase: Some("Pending".into()), ..Default::default() });
    validate(&pod)?;
    Ok(pod)
}

/// `<name>-<node>` (the node name lowercased), unique in the cluster per node.
pub fn pod_name(name: &str, node: &str) -> String {
    format!("{name}-{}", node.to_ascii_lowercase())
}

/// The static pod's UID: 32 hex digits of a hash of the defaulted manifest (before the agent
/// names it), the node and the file. The hash is sha256 where the kubelet's is an md5 of Go's
/// in-memory form; only its stability matters.
fn uid(pod: &Pod, path: &Path, node: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(pod).unwrap_or_default());
    hasher.update(format!("host:{node}"));
    hasher.update(format!("file:{}", path.display()));
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds the toleration of every `NoExecute` taint unless an equal one is there (upstream's
/// `AddOrUpdateTolerationInPod`), so node problems never evict a static pod.
fn tolerate_no_execute(tolerations: &mut Vec<Toleration>) {
    let all = Toleration { operator: Some("Exists".into()), effect: Some("NoExecute".into()), ..Default::default() };
    let same = |t: &Toleration| {
        t.key.as_deref().unwrap_or_default().is_empty()
            && t.value.as_deref().unwrap_or_default().is_empty()
            && t.operator.as_deref() == Some("Exists")
            && t.effect.as_deref() == Some("NoExecute")
    };
    if let Some(existing) = tolerations.iter_mut().find(|t| same(t)) {
        *existing = all;
    } else {
        tolerations.push(all);
    }
}

/// Upstream's `ValidatePodCreate`: the metadata (a DNS subdomain name, labels, annotations) and
/// the pod itself.
fn validate(pod: &Pod) -> Result<(), ManifestError> {
    let meta = serde_json::to_value(&pod.metadata).unwrap_or_default();
    let mut errors: Vec<String> = meta
        .as_object()
        .map(|m| skiff_api::validation::objectmeta::validate(m, "metadata", NameRule::Subdomain))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    errors.extend(pod.validate_create().iter().map(ToString::to_string));
    if errors.is_empty() { Ok(()) } else { Err(ManifestError::Invalid(errors)) }
}

/// Whether `pod` came from a file (its `kubernetes.io/config.source`).
pub fn from_file(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(super::CONFIG_SOURCE)).is_some_and(|s| s == FILE_SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_pods::manifest;

    const WEB: &[u8] = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations: {a: b}\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    fn static_pod(bytes: &[u8], path: &str, node: &str) -> Pod {
        apply(manifest::parse(bytes).expect("manifest"), Path::new(path), node).expect("valid")
    }

    #[test]
    fn static_pods_are_named_placed_and_defaulted_like_the_kubelets() {
        let pod = static_pod(WEB, "/m/web.yaml", "node-1");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        assert_eq!(uid.len(), 32);
        assert!(uid.chars().all(|c| c.is_ascii_hexdigit()));
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get(CONFIG_HASH), Some(&uid));
        assert_eq!(annotations.get("a").map(String::as_str), Some("b"));
        let spec = pod.spec.clone().unwrap_or_default();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        let tolerations = spec.tolerations.unwrap_or_default();
        assert_eq!(tolerations.len(), 1);
        assert_eq!(
            (tolerations[0].operator.as_deref(), tolerations[0].effect.as_deref()),
            (Some("Exists"), Some("NoExecute"))
        );
        // The API server's defaults, without the ServiceAccount admission.
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(spec.service_account_name, None);
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    }

    #[test]
    fn the_uid_is_stable_and_follows_content_node_and_file() {
        let uid = |bytes: &[u8], path: &str, node: &str| static_pod(bytes, path, node).metadata.uid;
        let first = uid(WEB, "/m/web.yaml", "n");
        assert_eq!(first, uid(WEB, "/m/web.yaml", "n"), "same file, same uid");
        let edited = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations: {a: c}\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        assert_ne!(first, uid(edited, "/m/web.yaml", "n"), "the content changed");
        assert_ne!(first, uid(WEB, "/m/other.yaml", "n"), "another file");
        assert_ne!(first, uid(WEB, "/m/web.yaml", "m"), "another node");
        // The namespace defaults after hashing: stating it changes the uid, not the name.
        let explicit = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n  annotations: {a: b}\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let pod = static_pod(explicit, "/m/web.yaml", "n");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n"));
        assert_ne!(first, pod.metadata.uid);
    }

    #[test]
    fn an_existing_no_execute_toleration_is_replaced_not_doubled() {
        let with = b"apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  tolerations:\n  - {operator: Exists, effect: NoExecute, tolerationSeconds: 5}\n  - {key: k, operator: Exists}\n  containers:\n  - {name: c, image: busybox}\n";
        let tolerations = static_pod(with, "/m/t.yaml", "n").spec.and_then(|s| s.tolerations).unwrap_or_default();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0].toleration_seconds, None);
    }

    #[test]
    fn invalid_pods_are_refused_with_the_api_servers_reasons() {
        let bad =
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n  - {name: c, image: ''}\n";
        let Err(ManifestError::Invalid(errors)) = apply(manifest::parse(bad).expect("parses"), Path::new("/m/b"), "n")
        else {
            panic!("accepted");
        };
        assert!(errors.iter().any(|e| e.starts_with("metadata.name: Invalid value: \"Bad_Name-n\"")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("spec.containers[0].image: Required value")), "{errors:?}");
    }
}
