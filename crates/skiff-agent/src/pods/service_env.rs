//! Service environment variables, as the kubelet computes them when a container starts: for
//! every Service of the pod's namespace with a cluster IP (all of them only with
//! `enableServiceLinks`, which defaults to true) and always the `kubernetes` Service of
//! `default`: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`, `<NAME>_SERVICE_PORT_<PORT>` per named
//! port, and the Docker-link variables `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>` with its
//! `_PROTO`, `_PORT` and `_ADDR`. They are available to `$(VAR)` expansion and never override a
//! variable the container defines.
//!
//! What does not live here: the rest of the environment ([`super::env`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Whether the Service has a cluster IP (not headless, not ExternalName).
fn has_ip(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The variables of `services` for a pod in `namespace` (`services` may hold other namespaces;
/// only the pod's, and `default/kubernetes`, count).
pub fn variables(services: &[Service], namespace: &str, enable_service_links: bool) -> Vec<(String, String)> {
    // name → Service; the pod's namespace wins over the master service of `default`.
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for svc in services.iter().filter(|s| has_ip(s)) {
        let (ns, name) = (svc.metadata.namespace.as_deref().unwrap_or(""), svc.metadata.name.as_deref().unwrap_or(""));
        if ns == "default" && name == "kubernetes" && !chosen.contains_key(name) {
            chosen.insert(name.to_string(), svc);
        }
    }
    if enable_service_links {
        for svc in services.iter().filter(|s| has_ip(s)) {
            if svc.metadata.namespace.as_deref() == Some(namespace) {
                chosen.insert(svc.metadata.name.clone().unwrap_or_default(), svc);
            }
        }
    }
    let mut out = Vec::new();
    for (name, svc) in chosen {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.clone() };
        let prefix = env_name(&name);
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        if let Some(first) = ports.first() {
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        }
        for port in ports {
            if let Some(pname) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{prefix}_SERVICE_PORT_{}", env_name(pname)), port.port.to_string()));
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_ascii_lowercase();
            let url = format!("{lower}://{host}:{}", port.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let link = format!("{prefix}_PORT_{}_{}", port.port, proto.to_ascii_uppercase());
            out.push((link.clone(), url));
            out.push((format!("{link}_PROTO"), lower));
            out.push((format!("{link}_PORT"), port.port.to_string()));
            out.push((format!("{link}_ADDR"), ip.clone()));
        }
    }
    out
}

/// Fetches the Services `pod` sees and returns its variables.
pub async fn for_pod(client: &kube::Client, pod: &Pod) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut services = Vec::new();
    if links {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        services = api.list(&ListParams::default()).await.map_err(|e| format!("failed to list services: {e}"))?.items;
    }
    if !(links && ns == "default") {
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        if let Some(svc) = api.get_opt("kubernetes").await.map_err(|e| format!("failed to get service: {e}"))? {
            services.push(svc);
        }
    }
    Ok(variables(&services, ns, links))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap()
    }

    fn services() -> Vec<Service> {
        vec![
            svc(
                "default",
                "kubernetes",
                serde_json::json!({"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443}]}),
            ),
            svc(
                "shop",
                "web-front",
                serde_json::json!({"clusterIP": "10.43.0.20",
                "ports": [{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}),
            ),
            svc("shop", "headless", serde_json::json!({"clusterIP": "None", "ports": [{"port": 80}]})),
            svc("other", "elsewhere", serde_json::json!({"clusterIP": "10.43.0.30", "ports": [{"port": 80}]})),
        ]
    }

    #[test]
    fn variables_as_the_kubelet_writes_them() {
        let vars: BTreeMap<String, String> = variables(&services(), "shop", true).into_iter().collect();
        let get = |k: &str| vars.get(k).map(String::as_str);
        assert_eq!(get("WEB_FRONT_SERVICE_HOST"), Some("10.43.0.20"));
        assert_eq!(get("WEB_FRONT_SERVICE_PORT"), Some("80"));
        assert_eq!(get("WEB_FRONT_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(get("WEB_FRONT_SERVICE_PORT_DNS_UDP"), Some("53"));
        assert_eq!(get("WEB_FRONT_PORT"), Some("tcp://10.43.0.20:80"));
        assert_eq!(get("WEB_FRONT_PORT_80_TCP"), Some("tcp://10.43.0.20:80"));
        assert_eq!(get("WEB_FRONT_PORT_80_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("WEB_FRONT_PORT_80_TCP_PORT"), Some("80"));
        assert_eq!(get("WEB_FRONT_PORT_80_TCP_ADDR"), Some("10.43.0.20"));
        assert_eq!(get("WEB_FRONT_PORT_53_UDP"), Some("udp://10.43.0.20:53"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), Some("tcp://10.43.0.1:443"));
        assert!(!vars.keys().any(|k| k.starts_with("HEADLESS_") || k.starts_with("ELSEWHERE_")));
    }

    #[test]
    fn without_service_links_only_the_master_service() {
        let vars = variables(&services(), "shop", false);
        assert!(vars.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
        assert_eq!(vars.len(), 8);
    }
}
