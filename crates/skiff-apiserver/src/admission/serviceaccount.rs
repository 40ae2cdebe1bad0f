//! The ServiceAccount admission plugin, as upstream's `plugin/pkg/admission/serviceaccount`, on pod
//! creates: `spec.serviceAccountName` defaults to `default`; a pod whose ServiceAccount does not
//! exist is refused (403; the `default` one is looked up ten times 100–200 ms apart, since the
//! ServiceAccount controller creates it right after the namespace); unless
//! `automountServiceAccountToken` is false on the pod (or else on the ServiceAccount) every
//! container and init container mounts the projected `kube-api-access-<5 random>` volume
//! (token, `kube-root-ca.crt`'s `ca.crt`, the namespace) read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount`; the ServiceAccount's `imagePullSecrets` are
//! copied when the pod has none. Mirror pods are left alone.

use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::GroupResource;

use crate::objects::meta_str;
use crate::state::ApiState;

/// The ServiceAccount a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Prefix of the generated volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// Where the token, CA and namespace are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Lifetime kubelet asks for (extended by the server, see `handlers::token`).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Letters of upstream's `SimpleNameGenerator` (no vowels, no confusable digits).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The projected volume source upstream's plugin adds.
pub fn token_volume_source() -> Value {
    json!({
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION_SECONDS}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
    })
}

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5).map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char).collect()
}

async fn service_account(state: &ApiState, namespace: &str, name: &str) -> Result<Option<Value>, StatusError> {
    let key = format!("/registry/core/serviceaccounts/{namespace}/{name}");
    let attempts = if name == DEFAULT_SERVICE_ACCOUNT { 10 } else { 1 };
    let pause = Duration::from_millis(rand::rng().random_range(100..200));
    for i in 0..attempts {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let kv = state.store.get(&key).await.map_err(StatusError::internal)?;
        if let Some(kv) = kv {
            return serde_json::from_slice(&kv.value).map(Some).map_err(StatusError::internal);
        }
    }
    Ok(None)
}

/// Admits a pod create (stored form, before defaulting).
pub async fn admit_pod(state: &ApiState, namespace: &str, pod: &mut Value) -> Result<(), StatusError> {
    let mirror =
        pod.get("metadata").and_then(|m| m.get("annotations")).and_then(|a| a.get(MIRROR_ANNOTATION)).is_some();
    if mirror {
        return Ok(());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    let sa_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            spec.insert("serviceAccountName".into(), json!(DEFAULT_SERVICE_ACCOUNT));
            DEFAULT_SERVICE_ACCOUNT.to_string()
        }
    };
    let Some(sa) = service_account(state, namespace, &sa_name).await? else {
        let name = meta_str(pod, "name").unwrap_or("");
        return Err(StatusError::forbidden(
            &GroupResource::new("", "pods"),
            name,
            &format!("error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"),
        ));
    };
    if should_automount(&sa, pod) {
        mount_token(pod, &random_suffix());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    let has_pull_secrets = spec.get("imagePullSecrets").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if !has_pull_secrets
        && let Some(secrets) = sa.get("imagePullSecrets").and_then(Value::as_array).filter(|a| !a.is_empty())
    {
        let refs: Vec<Value> =
            secrets.iter().map(|s| json!({"name": s.get("name").and_then(Value::as_str).unwrap_or("")})).collect();
        spec.insert("imagePullSecrets".into(), json!(refs));
    }
    Ok(())
}

/// The pod's `automountServiceAccountToken`, else the ServiceAccount's, else true.
pub fn should_automount(sa: &Value, pod: &Value) -> bool {
    if let Some(b) = pod.get("spec").and_then(|s| s.get("automountServiceAccountToken")).and_then(Value::as_bool) {
        return b;
    }
    sa.get("automountServiceAccountToken").and_then(Value::as_bool).unwrap_or(true)
}

/// Adds the token volume (named `kube-api-access-<suffix>` unless one with that prefix exists)
/// and its mount to every container and init container without a mount at [`MOUNT_PATH`].
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let volumes: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default();
    let existing = volumes.iter().find(|n| n.starts_with(VOLUME_PREFIX)).cloned();
    let volume_name = existing.unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else { continue };
            if mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH)) {
                continue;
            }
            mounts.push(mount.clone());
            needs_volume = true;
        }
    }
    if needs_volume && !volumes.contains(&volume_name) {
        let vols = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(vols) = vols.as_array_mut() {
            vols.push(json!({"name": volume_name, "projected": token_volume_source()}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automount_preference_pod_then_sa_then_true() {
        let pod = |v: Option<bool>| json!({"spec": {"automountServiceAccountToken": v}});
        let sa = |v: Option<bool>| json!({"automountServiceAccountToken": v});
        assert!(should_automount(&sa(None), &pod(None)));
        assert!(!should_automount(&sa(Some(false)), &pod(None)));
        assert!(should_automount(&sa(Some(false)), &pod(Some(true))));
        assert!(!should_automount(&sa(Some(true)), &pod(Some(false))));
    }

    #[test]
    fn mounts_the_volume_in_every_container_once() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "x", "mountPath": "/x"}]},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            ],
            "ephemeralContainers": [{"name": "e"}],
        }});
        mount_token(&mut pod, "abcde");
        let spec = &pod["spec"];
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"][1], mount);
        assert_eq!(spec["containers"][1]["volumeMounts"].as_array().expect("test value").len(), 1);
        assert!(spec["ephemeralContainers"][0].get("volumeMounts").is_none());
        assert_eq!(spec["volumes"], json!([{"name": "kube-api-access-abcde", "projected": token_volume_source()}]));
        let src = token_volume_source();
        assert_eq!(src["defaultMode"], 420);
        assert_eq!(src["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        // Idempotent: the existing volume is reused.
        let before = pod.clone();
        mount_token(&mut pod, "zzzzz");
        assert_eq!(pod, before);
    }

    #[test]
    fn suffixes_use_the_name_generator_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }
}
