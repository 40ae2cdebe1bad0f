//! Defaults and strategies of Services, Endpoints and EndpointSlices.
//!
//! Cluster IP and node port allocation are the API server's; the strategy here only carries
//! allocated values over on updates that omit them, as upstream's REST layer does.

use k8s_openapi::api::core::v1::{ClientIPConfig, Endpoints, LoadBalancerStatus, Service, ServiceSpec, ServiceStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{or_set, or_str};
use crate::kinds::{Defaulting, Strategy};

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (three hours).
const DEFAULT_CLIENT_IP_TIMEOUT: i32 = 10_800;

impl Defaulting for Service {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_str(&mut spec.session_affinity, "None");
        if spec.session_affinity.as_deref() == Some("ClientIP") {
            let cfg = spec.session_affinity_config.get_or_insert_with(Default::default);
            let client = cfg.client_ip.get_or_insert_with(ClientIPConfig::default);
            or_set(&mut client.timeout_seconds, DEFAULT_CLIENT_IP_TIMEOUT);
        }
        or_str(&mut spec.type_, "ClusterIP");
        for p in spec.ports.iter_mut().flatten() {
            or_str(&mut p.protocol, "TCP");
            let unset = match &p.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        let ty = spec.type_.clone().unwrap_or_default();
        if ty == "NodePort" || ty == "LoadBalancer" {
            or_str(&mut spec.external_traffic_policy, "Cluster");
        }
        if ty == "LoadBalancer" {
            or_set(&mut spec.allocate_load_balancer_node_ports, true);
        }
        if ty != "ExternalName" {
            or_str(&mut spec.internal_traffic_policy, "Cluster");
            // skiff runs single-stack IPv4, where upstream gives every service that can have a
            // cluster IP (headless ones included) this family.
            or_str(&mut spec.ip_family_policy, "SingleStack");
            if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
                spec.ip_families = Some(vec!["IPv4".to_string()]);
            }
        }
        if let Some(ip) = spec.cluster_ip.clone().filter(|ip| !ip.is_empty())
            && spec.cluster_ips.as_ref().is_none_or(Vec::is_empty)
        {
            spec.cluster_ips = Some(vec![ip]);
        }
    }
}

/// Whether a service of this spec gets a cluster IP allocated.
fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() != Some("ExternalName") && spec.cluster_ip.as_deref() != Some("None")
}

/// Whether a service of this spec gets node ports allocated.
fn needs_node_ports(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

impl Strategy for Service {
    fn prepare_for_create(&mut self) {
        self.status = Some(ServiceStatus { load_balancer: Some(LoadBalancerStatus::default()), ..Default::default() });
    }

    fn prepare_for_update(&mut self, old: &Self) {
        let (Some(new), Some(old)) = (self.spec.as_mut(), old.spec.as_ref()) else {
            return;
        };
        let old_is_external = old.type_.as_deref() == Some("ExternalName");
        let new_is_external = new.type_.as_deref() == Some("ExternalName");
        if !old_is_external && !new_is_external && new.cluster_ip.as_deref().is_none_or(str::is_empty) {
            new.cluster_ip.clone_from(&old.cluster_ip);
            new.cluster_ips.clone_from(&old.cluster_ips);
        }
        if needs_cluster_ip(old) && needs_cluster_ip(new) && new.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
            new.cluster_ips.clone_from(&old.cluster_ips);
        }
        if needs_node_ports(old) && needs_node_ports(new) {
            for p in new.ports.iter_mut().flatten() {
                if p.node_port.unwrap_or(0) != 0 {
                    continue;
                }
                let same = old.ports.iter().flatten().find(|o| o.port == p.port && o.protocol == p.protocol);
                p.node_port = same.and_then(|o| o.node_port);
            }
        }
        if new.health_check_node_port.is_none() && new.external_traffic_policy.as_deref() == Some("Local") {
            new.health_check_node_port = old.health_check_node_port;
        }
    }
}

impl Defaulting for Endpoints {
    fn set_defaults(&mut self) {
        for subset in self.subsets.iter_mut().flatten() {
            for p in subset.ports.iter_mut().flatten() {
                or_str(&mut p.protocol, "TCP");
            }
        }
    }
}

impl Strategy for Endpoints {}

impl Defaulting for EndpointSlice {
    fn set_defaults(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            or_str(&mut p.protocol, "TCP");
            or_set(&mut p.name, String::new());
        }
    }
}

impl Strategy for EndpointSlice {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).expect("service")
    }

    #[test]
    fn service_defaults() {
        let cases = [
            (
                json!({"ports": [{"port": 80}]}),
                json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                    "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}),
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}),
                json!({"type": "NodePort", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                    "externalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}]}),
            ),
            (
                json!({"type": "ExternalName", "externalName": "example.com"}),
                json!({"type": "ExternalName", "sessionAffinity": "None", "externalName": "example.com"}),
            ),
            (
                json!({"clusterIP": "None", "sessionAffinity": "ClientIP"}),
                json!({"type": "ClusterIP", "sessionAffinity": "ClientIP", "clusterIP": "None", "clusterIPs": ["None"],
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                    "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
            ),
        ];
        for (input, want) in cases {
            let mut s = svc(input.clone());
            s.set_defaults();
            assert_eq!(serde_json::to_value(&s.spec).expect("json"), want, "{input}");
        }
    }

    #[test]
    fn update_keeps_allocated_cluster_ip_and_node_ports() {
        let old = svc(json!({"type": "NodePort", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}));
        let mut new = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        new.set_defaults();
        new.prepare_for_update(&old);
        let spec = new.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.0.0.5".to_string()]));
        assert_eq!(spec.ports.expect("ports")[0].node_port, Some(30080));
    }

    #[test]
    fn service_create_resets_status() {
        let mut s = svc(json!({}));
        s.status = Some(ServiceStatus { conditions: Some(vec![]), ..Default::default() });
        s.prepare_for_create();
        assert_eq!(serde_json::to_value(&s.status).expect("json"), json!({"loadBalancer": {}}));
    }
}
