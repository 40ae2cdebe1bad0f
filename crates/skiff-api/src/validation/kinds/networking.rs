//! Validation of Ingress, IngressClass, NetworkPolicy and EndpointSlice.

use std::collections::BTreeSet;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressClass, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    cidr, dns_label, dns_subdomain, each, immutable, label_selector, port_num, port_num_or_name, supported,
};
use crate::kinds::Validation;
use crate::validation::names::{is_dns1035_label, parse_cidr};
use crate::validation::{ErrorList, FieldError, child, index};

fn backend(errs: &mut ErrorList, b: &IngressBackend, path: &str) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(path, "", "cannot set both service and resource backends")),
        (None, None) => errs.push(FieldError::invalid(path, "", "resource or service backend is required")),
        (Some(s), None) => {
            let sp = child(path, "service");
            each(errs, &child(&sp, "name"), &s.name, is_dns1035_label(&s.name));
            let pp = child(&sp, "port");
            match s.port.as_ref().map(|p| (p.name.as_deref().filter(|n| !n.is_empty()), p.number.filter(|n| *n != 0))) {
                None | Some((None, None)) => errs.push(FieldError::required(pp, "port name or number is required")),
                Some((Some(_), Some(_))) => {
                    errs.push(FieldError::invalid(pp, "", "cannot set both port name & port number"))
                }
                Some((Some(n), None)) => {
                    port_num_or_name(errs, &child(&pp, "name"), &IntOrString::String(n.to_string()))
                }
                Some((None, Some(n))) => port_num(errs, &child(&pp, "number"), n),
            }
        }
        (None, Some(r)) => {
            if r.kind.is_empty() {
                errs.push(FieldError::required(child(&child(path, "resource"), "kind"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(child(&child(path, "resource"), "name"), ""));
            }
        }
    }
}

fn host(errs: &mut ErrorList, h: &str, path: &str) {
    if h.parse::<std::net::IpAddr>().is_ok() {
        errs.push(FieldError::invalid(path, h, "must be a DNS name, not an IP address"));
    } else if let Some(rest) = h.strip_prefix("*.") {
        dns_subdomain(errs, path, rest);
    } else {
        dns_subdomain(errs, path, h);
    }
}

impl Validation for Ingress {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        let rules = spec.rules.as_deref().unwrap_or_default();
        if rules.is_empty() && spec.default_backend.is_none() {
            errs.push(FieldError::invalid("spec", "", "either `defaultBackend` or `rules` must be specified"));
        }
        if let Some(b) = &spec.default_backend {
            backend(&mut errs, b, "spec.defaultBackend");
        }
        if let Some(c) = spec.ingress_class_name.as_deref() {
            dns_subdomain(&mut errs, "spec.ingressClassName", c);
        }
        for (i, r) in rules.iter().enumerate() {
            let rp = index("spec.rules", i);
            if let Some(h) = r.host.as_deref().filter(|h| !h.is_empty()) {
                host(&mut errs, h, &child(&rp, "host"));
            }
            let Some(http) = &r.http else { continue };
            let pp = child(&child(&rp, "http"), "paths");
            if http.paths.is_empty() {
                errs.push(FieldError::required(&pp, ""));
            }
            for (j, p) in http.paths.iter().enumerate() {
                let p_path = index(&pp, j);
                let path = p.path.as_deref().unwrap_or_default();
                match p.path_type.as_str() {
                    "" => errs.push(FieldError::required(child(&p_path, "pathType"), "pathType must be specified")),
                    "Exact" | "Prefix" => {
                        if !path.starts_with('/') {
                            errs.push(FieldError::invalid(child(&p_path, "path"), path, "must be an absolute path"));
                        }
                    }
                    "ImplementationSpecific" => {
                        if !path.is_empty() && !path.starts_with('/') {
                            errs.push(FieldError::invalid(child(&p_path, "path"), path, "must be an absolute path"));
                        }
                    }
                    other => errs.push(FieldError::not_supported(
                        child(&p_path, "pathType"),
                        other,
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    )),
                }
                backend(&mut errs, &p.backend, &child(&p_path, "backend"));
            }
        }
        for (i, t) in spec.tls.iter().flatten().enumerate() {
            for (j, h) in t.hosts.iter().flatten().enumerate() {
                host(&mut errs, h, &index(&child(&index("spec.tls", i), "hosts"), j));
            }
        }
        errs
    }
}

impl Validation for IngressClass {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        match self.spec.as_ref().and_then(|s| s.controller.as_deref()) {
            None | Some("") => errs.push(FieldError::required("spec.controller", "")),
            Some(c) if c.len() > 250 => errs.push(FieldError::too_long("spec.controller", 250)),
            Some(_) => {}
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let controller = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
        immutable(&mut errs, "spec.controller", &controller(self), &controller(old));
        errs
    }
}

fn np_ports(errs: &mut ErrorList, ports: &[NetworkPolicyPort], path: &str) {
    for (i, p) in ports.iter().enumerate() {
        let pp = index(path, i);
        if let Some(proto) = p.protocol.as_deref() {
            supported(errs, &child(&pp, "protocol"), proto, &["SCTP", "TCP", "UDP"]);
        }
        if let Some(port) = &p.port {
            port_num_or_name(errs, &child(&pp, "port"), port);
        }
        if let Some(end) = p.end_port {
            match &p.port {
                Some(IntOrString::Int(start)) => {
                    port_num(errs, &child(&pp, "endPort"), end);
                    if end < *start {
                        errs.push(FieldError::invalid(
                            child(&pp, "endPort"),
                            end,
                            "must be greater than or equal to `port`",
                        ));
                    }
                }
                Some(IntOrString::String(_)) => errs.push(FieldError::forbidden(
                    child(&pp, "endPort"),
                    "may not be specified when `port` is non-numeric",
                )),
                None => {
                    errs.push(FieldError::required(child(&pp, "port"), "must be specified when `endPort` is specified"))
                }
            }
        }
    }
}

fn np_peers(errs: &mut ErrorList, peers: &[NetworkPolicyPeer], path: &str) {
    for (i, p) in peers.iter().enumerate() {
        let pp = index(path, i);
        if let Some(s) = &p.pod_selector {
            label_selector(errs, &child(&pp, "podSelector"), s);
        }
        if let Some(s) = &p.namespace_selector {
            label_selector(errs, &child(&pp, "namespaceSelector"), s);
        }
        match &p.ip_block {
            Some(_) if p.pod_selector.is_some() || p.namespace_selector.is_some() => {
                errs.push(FieldError::forbidden(&pp, "may not specify more than 1 peer type"))
            }
            Some(b) => {
                let bp = child(&pp, "ipBlock");
                let cp = child(&bp, "cidr");
                if b.cidr.is_empty() {
                    errs.push(FieldError::required(&cp, ""));
                    continue;
                }
                cidr(errs, &cp, &b.cidr);
                let outer = parse_cidr(&b.cidr);
                for (j, e) in b.except.iter().flatten().enumerate() {
                    let ep = index(&child(&bp, "except"), j);
                    cidr(errs, &ep, e);
                    if let (Some(o), Some(inner)) = (outer, parse_cidr(e))
                        && !strict_subset(o, inner)
                    {
                        errs.push(FieldError::invalid(&ep, e.as_str(), "must be a strict subset of `cidr`"));
                    }
                }
            }
            None if p.pod_selector.is_none() && p.namespace_selector.is_none() => {
                errs.push(FieldError::required(&pp, "must specify a peer"))
            }
            None => {}
        }
    }
}

/// Whether `inner` is a strictly smaller network inside `outer`.
fn strict_subset(outer: (std::net::IpAddr, u8), inner: (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr;
    if inner.1 <= outer.1 {
        return false;
    }
    let bits = |ip: IpAddr| -> u128 {
        match ip {
            IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
            IpAddr::V6(v) => u128::from(v),
        }
    };
    if outer.0.is_ipv4() != inner.0.is_ipv4() {
        return false;
    }
    // IPv4 addresses sit in the top 32 bits, so the prefix counts from the top either way.
    let prefix = u32::from(outer.1);
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    bits(outer.0) & mask == bits(inner.0) & mask
}

impl Validation for NetworkPolicy {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        if let Some(s) = &spec.pod_selector {
            label_selector(&mut errs, "spec.podSelector", s);
        }
        for (i, r) in spec.ingress.iter().flatten().enumerate() {
            let p = index("spec.ingress", i);
            np_ports(&mut errs, r.ports.as_deref().unwrap_or_default(), &child(&p, "ports"));
            np_peers(&mut errs, r.from.as_deref().unwrap_or_default(), &child(&p, "from"));
        }
        for (i, r) in spec.egress.iter().flatten().enumerate() {
            let p = index("spec.egress", i);
            np_ports(&mut errs, r.ports.as_deref().unwrap_or_default(), &child(&p, "ports"));
            np_peers(&mut errs, r.to.as_deref().unwrap_or_default(), &child(&p, "to"));
        }
        let types = spec.policy_types.as_deref().unwrap_or_default();
        for (i, t) in types.iter().enumerate() {
            supported(&mut errs, &index("spec.policyTypes", i), t, &["Ingress", "Egress"]);
        }
        if types.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.policyTypes",
                super::common::json(types),
                "may not specify more than two policyTypes",
            ));
        }
        errs
    }
}

impl Validation for EndpointSlice {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let ty = self.address_type.as_str();
        supported(&mut errs, "addressType", ty, &["IPv4", "IPv6", "FQDN"]);
        if self.endpoints.len() > 1000 {
            errs.push(FieldError::too_many("endpoints", self.endpoints.len(), 1000));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let p = index("endpoints", i);
            let ap = child(&p, "addresses");
            if e.addresses.is_empty() {
                errs.push(FieldError::required(&ap, "must contain at least 1 address"));
            } else if e.addresses.len() > 100 {
                errs.push(FieldError::too_many(&ap, e.addresses.len(), 100));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let aip = index(&ap, j);
                match ty {
                    "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                        errs.push(FieldError::invalid(&aip, a.as_str(), "must be a valid IPv4 address"))
                    }
                    "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                        errs.push(FieldError::invalid(&aip, a.as_str(), "must be a valid IPv6 address"))
                    }
                    "FQDN" => dns_subdomain(&mut errs, &aip, a),
                    _ => {}
                }
            }
            if let Some(h) = e.hostname.as_deref() {
                dns_label(&mut errs, &child(&p, "hostname"), h);
            }
            if let Some(n) = e.node_name.as_deref() {
                dns_subdomain(&mut errs, &child(&p, "nodeName"), n);
            }
        }
        let ports = self.ports.as_deref().unwrap_or_default();
        if ports.len() > 100 {
            errs.push(FieldError::too_many("ports", ports.len(), 100));
        }
        let mut names = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let pp = index("ports", i);
            let name = p.name.as_deref().unwrap_or_default();
            if !name.is_empty() {
                dns_label(&mut errs, &child(&pp, "name"), name);
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&pp, "name"), name));
            }
            if let Some(n) = p.port {
                port_num(&mut errs, &child(&pp, "port"), n);
            }
            match p.protocol.as_deref() {
                None => errs.push(FieldError::required(child(&pp, "protocol"), "")),
                Some(v) => supported(&mut errs, &child(&pp, "protocol"), v, &["SCTP", "TCP", "UDP"]),
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        immutable(&mut errs, "addressType", &self.address_type, &old.address_type);
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn has(errs: &ErrorList, field: &str, kind: ErrorKind) -> bool {
        errs.iter().any(|e| e.field == field && e.kind == kind)
    }

    fn ingress(spec: Value) -> Ingress {
        serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": spec})).expect("ingress")
    }

    #[test]
    fn ingresses() {
        let path = |p: Value| json!({"rules": [{"host": "a.example.com", "http": {"paths": [p]}}]});
        let good =
            json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}});
        assert_eq!(ingress(path(good.clone())).validate_create(), ErrorList::new());
        let p0 = "spec.rules[0].http.paths[0]";
        let cases = [
            (
                json!({"path": "x", "pathType": "Prefix", "backend": good["backend"]}),
                format!("{p0}.path"),
                ErrorKind::Invalid,
            ),
            (
                json!({"path": "/", "pathType": "Sometimes", "backend": good["backend"]}),
                format!("{p0}.pathType"),
                ErrorKind::NotSupported,
            ),
            (json!({"path": "/", "pathType": "Exact", "backend": {}}), format!("{p0}.backend"), ErrorKind::Invalid),
            (
                json!({"path": "/", "pathType": "Exact", "backend": {"service": {"name": "s"}}}),
                format!("{p0}.backend.service.port"),
                ErrorKind::Required,
            ),
        ];
        for (p, field, kind) in cases {
            let errs = ingress(path(p.clone())).validate_create();
            assert!(has(&errs, &field, kind), "{p}: want {kind:?} at {field}, got {errs:?}");
        }
        let mut bad_host = path(good);
        bad_host["rules"][0]["host"] = json!("1.2.3.4");
        assert!(has(&ingress(bad_host).validate_create(), "spec.rules[0].host", ErrorKind::Invalid));
        assert!(has(&ingress(json!({})).validate_create(), "spec", ErrorKind::Invalid));
    }

    #[test]
    fn network_policies() {
        let np = |spec: Value| -> NetworkPolicy {
            let mut n: NetworkPolicy =
                serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec})).expect("np");
            n.set_defaults();
            n
        };
        let good = json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
            "ports": [{"port": 80, "endPort": 90}]}]});
        assert_eq!(np(good).validate_create(), ErrorList::new());
        let errs = np(json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}, {}],
            "ports": [{"port": 90, "endPort": 80, "protocol": "ICMP"}]}]}))
        .validate_create();
        assert!(has(&errs, "spec.ingress[0].from[0].ipBlock.except[0]", ErrorKind::Invalid), "{errs:?}");
        assert!(has(&errs, "spec.ingress[0].from[1]", ErrorKind::Required));
        assert!(has(&errs, "spec.ingress[0].ports[0].endPort", ErrorKind::Invalid));
        assert!(has(&errs, "spec.ingress[0].ports[0].protocol", ErrorKind::NotSupported));
    }

    #[test]
    fn endpoint_slices() {
        let es = |v: Value| -> EndpointSlice {
            let mut e: EndpointSlice = serde_json::from_value(v).expect("slice");
            e.set_defaults();
            e
        };
        let good = json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]});
        assert_eq!(es(good).validate_create(), ErrorList::new());
        let errs = es(json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}],
            "ports": [{"port": 80}, {"port": 81}]}))
        .validate_create();
        assert!(has(&errs, "endpoints[0].addresses[0]", ErrorKind::Invalid));
        assert!(has(&errs, "endpoints[1].addresses", ErrorKind::Required));
        assert!(has(&errs, "ports[1].name", ErrorKind::Duplicate));
    }
}
