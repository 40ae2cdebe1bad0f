//! Service validation (upstream `ValidateService`, `ValidateServiceUpdate`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    cidr, dns_label, dns_subdomain, immutable, ip, port_num, port_num_or_name, supported, supported_opt,
};
use crate::kinds::Validation;
use crate::validation::names::validate_labels;
use crate::validation::{ErrorList, FieldError, child, index};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn validate_spec(errs: &mut ErrorList, spec: &ServiceSpec) {
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    supported(errs, "spec.type", ty, TYPES);
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ty == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => errs.push(FieldError::required("spec.externalName", "")),
            Some(n) => dns_subdomain(errs, "spec.externalName", n.strip_suffix('.').unwrap_or(n)),
        }
        if !cluster_ip.is_empty() {
            errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if !cluster_ip.is_empty() && !headless && !crate::validation::names::is_valid_ip(cluster_ip).is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    if let Some(ips) = &spec.cluster_ips
        && let Some(first) = ips.first()
        && !cluster_ip.is_empty()
        && first != cluster_ip
    {
        errs.push(FieldError::invalid("spec.clusterIPs", first.as_str(), "element [0] must match clusterIP"));
    }
    if headless && (ty == "LoadBalancer" || ty == "NodePort") {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let np = child(&pp, "name");
        match p.name.as_deref() {
            None | Some("") if ports.len() > 1 => errs.push(FieldError::required(&np, "")),
            None | Some("") => {}
            Some(n) => {
                dns_label(errs, &np, n);
                if !names.insert(n.to_string()) {
                    errs.push(FieldError::duplicate(&np, n));
                }
            }
        }
        port_num(errs, &child(&pp, "port"), p.port);
        let proto = p.protocol.as_deref().unwrap_or_default();
        match proto {
            "" => errs.push(FieldError::required(child(&pp, "protocol"), "")),
            v => supported(errs, &child(&pp, "protocol"), v, &["SCTP", "TCP", "UDP"]),
        }
        if !keys.insert((p.port, proto.to_string())) {
            errs.push(FieldError::duplicate(&pp, serde_json::json!({"port": p.port, "protocol": proto})));
        }
        if let Some(t) = &p.target_port
            && !matches!(t, IntOrString::Int(0))
        {
            port_num_or_name(errs, &child(&pp, "targetPort"), t);
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            let path = child(&pp, "nodePort");
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(path, format!("may not be used when `type` is '{ty}'")));
            } else {
                port_num(errs, &path, np);
            }
        }
    }
    if let Some(sel) = &spec.selector {
        errs.extend(validate_labels(sel, "spec.selector"));
    }
    supported_opt(errs, "spec.sessionAffinity", spec.session_affinity.as_deref(), &["ClientIP", "None"]);
    if let Some(t) =
        spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds)
        && !(1..=86400).contains(&t)
    {
        errs.push(FieldError::invalid(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            t,
            "must be greater than 0 and less than 86400",
        ));
    }
    if let Some(p) = spec.external_traffic_policy.as_deref().filter(|p| !p.is_empty()) {
        if ty == "ClusterIP" || ty == "ExternalName" {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                p,
                "may only be set for externally-accessible services",
            ));
        } else {
            supported(errs, "spec.externalTrafficPolicy", p, &["Cluster", "Local"]);
        }
    }
    supported_opt(errs, "spec.internalTrafficPolicy", spec.internal_traffic_policy.as_deref(), &["Cluster", "Local"]);
    supported_opt(
        errs,
        "spec.ipFamilyPolicy",
        spec.ip_family_policy.as_deref(),
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        supported(errs, &index("spec.ipFamilies", i), f, &["IPv4", "IPv6"]);
    }
    for (i, a) in spec.external_ips.iter().flatten().enumerate() {
        ip(errs, &index("spec.externalIPs", i), a);
    }
    for (i, r) in spec.load_balancer_source_ranges.iter().flatten().enumerate() {
        cidr(errs, &index("spec.loadBalancerSourceRanges", i), r.trim());
    }
    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
}

impl Validation for Service {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        match &self.spec {
            Some(spec) => validate_spec(&mut errs, spec),
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return errs;
        };
        let has_ip = |s: &ServiceSpec| s.type_.as_deref() != Some("ExternalName");
        if has_ip(new) && has_ip(old) {
            let new_ip = new.cluster_ip.as_deref().unwrap_or_default();
            let old_ip = old.cluster_ip.as_deref().unwrap_or_default();
            if !old_ip.is_empty() {
                immutable(&mut errs, "spec.clusterIPs[0]", new_ip, old_ip);
            }
        }
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> ErrorList {
        let mut errs = ErrorList::new();
        let ingress = self.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for (i, ing) in ingress.into_iter().flatten().enumerate() {
            let p = index("status.loadBalancer.ingress", i);
            if let Some(a) = ing.ip.as_deref().filter(|a| !a.is_empty()) {
                ip(&mut errs, &child(&p, "ip"), a);
            }
            if let Some(h) = ing.hostname.as_deref().filter(|h| !h.is_empty()) {
                dns_subdomain(&mut errs, &child(&p, "hostname"), h);
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn svc(spec: Value) -> Service {
        let mut s: Service = serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).expect("svc");
        s.set_defaults();
        s
    }

    #[test]
    fn valid_services_pass() {
        for spec in [
            json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
            json!({"clusterIP": "None", "selector": {"app": "a"}}),
            json!({"type": "ExternalName", "externalName": "example.com."}),
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 443}]}),
        ] {
            assert_eq!(svc(spec.clone()).validate_create(), ErrorList::new(), "{spec}");
        }
    }

    #[test]
    fn invalid_services() {
        let cases = [
            (json!({"type": "Weird", "ports": [{"port": 80}]}), "spec.type", ErrorKind::NotSupported),
            (json!({}), "spec.ports", ErrorKind::Required),
            (json!({"ports": [{"port": 0}]}), "spec.ports[0].port", ErrorKind::Invalid),
            (json!({"ports": [{"port": 80}, {"port": 81}]}), "spec.ports[0].name", ErrorKind::Required),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
                "spec.ports[1].name",
                ErrorKind::Duplicate,
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
                "spec.ports[1]",
                ErrorKind::Duplicate,
            ),
            (
                json!({"ports": [{"port": 80, "targetPort": "Bad_Name"}]}),
                "spec.ports[0].targetPort",
                ErrorKind::Invalid,
            ),
            (json!({"ports": [{"port": 80, "nodePort": 30001}]}), "spec.ports[0].nodePort", ErrorKind::Forbidden),
            (json!({"type": "ExternalName"}), "spec.externalName", ErrorKind::Required),
            (json!({"type": "ExternalName", "externalName": "a_b"}), "spec.externalName", ErrorKind::Invalid),
            (
                json!({"ports": [{"port": 80}], "sessionAffinity": "Cookie"}),
                "spec.sessionAffinity",
                ErrorKind::NotSupported,
            ),
            (json!({"ports": [{"port": 80}], "selector": {"a": "b c"}}), "spec.selector[a]", ErrorKind::Invalid),
            (json!({"ports": [{"port": 80}], "clusterIP": "1.2.3"}), "spec.clusterIPs[0]", ErrorKind::Invalid),
            (
                json!({"ports": [{"port": 80}], "externalTrafficPolicy": "Local"}),
                "spec.externalTrafficPolicy",
                ErrorKind::Invalid,
            ),
            (
                json!({"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 80}]}),
                "spec.clusterIPs[0]",
                ErrorKind::Invalid,
            ),
        ];
        for (spec, field, kind) in cases {
            let errs = svc(spec.clone()).validate_create();
            assert!(
                errs.iter().any(|e| e.field == field && e.kind == kind),
                "{spec}: want {kind:?} at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let old = svc(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}));
        let new = svc(json!({"clusterIP": "10.0.0.2", "ports": [{"port": 80}]}));
        let errs = new.validate_update(&old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "spec.clusterIPs[0]: Invalid value: \"10.0.0.2\": field is immutable");
        let to_external = svc(json!({"type": "ExternalName", "externalName": "x.example"}));
        assert_eq!(to_external.validate_update(&old), ErrorList::new());
    }
}
