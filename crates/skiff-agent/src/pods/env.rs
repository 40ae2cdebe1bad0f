//! A container's environment, in the kubelet's order: the image's `Env`, then `envFrom`
//! (ConfigMaps and Secrets, with `prefix` and `optional`), then `env` (`value` with `$(VAR)`
//! expansion, `valueFrom` configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef).
//! Errors are the messages the kubelet puts in `CreateContainerConfigError`. Service variables
//! come from [`super::service_env`] and are appended after the container's own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use skiff_runtime::images::ContainerDefaults;

use super::convert::expand;
use crate::AgentConfig;

async fn config_map(client: &kube::Client, ns: &str, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(cm)) => Ok(Some(cm.data.unwrap_or_default())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("failed to get configmap {ns}/{name}: {e}")),
    }
}

async fn secret(client: &kube::Client, ns: &str, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(s)) => Ok(Some(
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .chain(s.string_data.unwrap_or_default())
                .collect(),
        )),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("failed to get secret {ns}/{name}: {e}")),
    }
}

/// The value of a `fieldRef` path.
pub fn field_value(pod: &Pod, path: &str, node_ip: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let from_map =
        |map: Option<&BTreeMap<String, String>>, key: &str| map.and_then(|m| m.get(key)).cloned().unwrap_or_default();
    let bracket =
        |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_prefix("['")).and_then(|r| r.strip_suffix("']"));
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => node_ip.to_string(),
        "status.hostIPs" => node_ip.to_string(),
        "status.podIP" | "status.podIPs" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        _ if bracket("metadata.labels").is_some() => {
            from_map(meta.labels.as_ref(), bracket("metadata.labels").unwrap_or(""))
        }
        _ if bracket("metadata.annotations").is_some() => {
            from_map(meta.annotations.as_ref(), bracket("metadata.annotations").unwrap_or(""))
        }
        other => return Err(format!("unsupported fieldRef path {other:?}")),
    })
}

/// Resolves the environment of `container` in `pod`.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    image: &ContainerDefaults,
    cfg: &AgentConfig,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for entry in image.env.iter().flatten() {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(&mut env, k.to_string(), v.to_string());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what, name) = if let Some(cm) = &from.config_map_ref {
            (config_map(client, ns, &cm.name).await?, cm.optional.unwrap_or(false), "configmap", cm.name.clone())
        } else if let Some(s) = &from.secret_ref {
            (secret(client, ns, &s.name).await?, s.optional.unwrap_or(false), "secret", s.name.clone())
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => return Err(format!("{what} \"{name}\" not found")),
        }
    }
    let service_env = super::service_env::for_pod(client, pod).await?;
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                // Service variables are visible to expansion; the container's own win.
                let mut visible = service_env.clone();
                visible.extend(env.iter().cloned());
                expand(var.value.as_deref().unwrap_or(""), &visible)
            }
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match config_map(client, ns, &r.name).await? {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if r.optional == Some(true) => continue,
                            None => return Err(format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name)),
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("configmap \"{}\" not found", r.name)),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match secret(client, ns, &r.name).await? {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if r.optional == Some(true) => continue,
                            None => return Err(format!("couldn't find key {} in Secret {ns}/{}", r.key, r.name)),
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("secret \"{}\" not found", r.name)),
                    }
                } else if let Some(r) = &from.field_ref {
                    field_value(pod, &r.field_path, &cfg.node_ip.to_string())?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(container, &r.resource, cfg)?
                } else {
                    continue;
                }
            }
        };
        set(&mut env, var.name.clone(), value);
    }
    for (k, v) in service_env {
        if !env.iter().any(|(name, _)| *name == k) {
            env.push((k, v));
        }
    }
    Ok(env)
}

/// `resourceFieldRef` values (divisor 1): limits default to the node's allocatable.
fn resource_value(container: &Container, resource: &str, cfg: &AgentConfig) -> Result<String, String> {
    let res = container.resources.as_ref();
    let (kind, name) = resource.split_once('.').ok_or_else(|| format!("unsupported resource {resource:?}"))?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported resource {resource:?}")),
    };
    let q = map.and_then(|m| m.get(name)).and_then(|q| skiff_api::quantity::Quantity::parse(&q.0).ok());
    Ok(match (name, q) {
        ("cpu", Some(q)) => ((q.milli_value() + 999) / 1000).to_string(),
        ("cpu", None) if kind == "limits" => std::thread::available_parallelism().map_or(1, |n| n.get()).to_string(),
        ("memory", Some(q)) | ("ephemeral-storage", Some(q)) => q.value().to_string(),
        ("memory", None) if kind == "limits" => cfg.node_memory_bytes().to_string(),
        (_, None) => "0".into(),
        _ => return Err(format!("unsupported resource {resource:?}")),
    })
}
