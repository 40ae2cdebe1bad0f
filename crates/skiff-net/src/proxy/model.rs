//! The proxy's view of the cluster: Services and EndpointSlices turned into one
//! [`ServicePort`] per (Service, port) with the endpoints it may use, as upstream's proxies
//! categorise them (ready endpoints first, serving-but-terminating ones only when no endpoint is
//! ready, node-local subsets for the `Local` traffic policies).
//!
//! What does not live here: nftables syntax ([`super::render`]) and watching ([`super::sync`]).
//! Only IPv4 is modelled (skiff's service CIDR is single-stack); IPv6 and FQDN slices are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name (`TCP` when unset).
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The nftables name.
    pub fn nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One endpoint address of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The endpoint's address.
    pub ip: Ipv4Addr,
    /// The target port.
    pub port: u16,
    /// `conditions.ready` (unset means ready).
    pub ready: bool,
    /// `conditions.serving` (unset means as `ready`).
    pub serving: bool,
    /// `conditions.terminating` (unset means not).
    pub terminating: bool,
    /// Whether the endpoint is on this node (`nodeName`).
    pub local: bool,
}

/// One port of one Service, with everything the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name (may be empty for a single-port Service).
    pub port_name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The cluster IP (none for headless and ExternalName Services).
    pub cluster_ip: Option<Ipv4Addr>,
    /// `port`.
    pub port: u16,
    /// `nodePort`, if allocated.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (those not in `Proxy` ipMode).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Every endpoint of the port (sorted, one per address and port).
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// The readable identity of the port: `ns/name/proto/port-name`.
    pub fn key(&self) -> String {
        let port = if self.port_name.is_empty() { self.port.to_string() } else { self.port_name.clone() };
        format!("{}/{}/{}/{}", self.namespace, self.name, self.protocol.nft(), port)
    }

    /// Whether the port is reached from outside the cluster network (NodePort, externalIPs,
    /// LoadBalancer).
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// The endpoints for traffic that may go anywhere: the ready ones, else those still
    /// serving while terminating.
    pub fn cluster_endpoints(&self) -> Vec<Endpoint> {
        usable(self.endpoints.iter())
    }

    /// The same choice among this node's endpoints.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        usable(self.endpoints.iter().filter(|e| e.local))
    }

    /// The endpoints for traffic to the cluster IP (node-local ones under
    /// `internalTrafficPolicy: Local`).
    pub fn internal_endpoints(&self) -> Vec<Endpoint> {
        if self.internal_local { self.local_endpoints() } else { self.cluster_endpoints() }
    }
}

fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<Endpoint> {
    let ready: Vec<Endpoint> = endpoints.clone().filter(|e| e.ready).copied().collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).copied().collect()
}

/// Builds the service ports of `services` from `slices`, for the node named `node`.
///
/// Services without a cluster IP (headless, ExternalName) get no rules, as upstream.
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
) -> Vec<ServicePort> {
    // (namespace, service) → slices
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(slice);
    }
    let mut out = Vec::new();
    for svc in services {
        let (Some(spec), Some(name)) = (svc.spec.as_ref(), svc.metadata.name.as_ref()) else { continue };
        let namespace = svc.metadata.namespace.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let Some(cluster_ip) = cluster_ip else { continue };
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let load_balancer_ips: Vec<Ipv4Addr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(10_800)
        });
        let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
        let is_np = is_lb || spec.type_.as_deref() == Some("NodePort");
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let slices = by_service.get(&(namespace.clone(), name.clone()));
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else { continue };
            let Ok(number) = u16::try_from(port.port) else { continue };
            let port_name = port.name.clone().unwrap_or_default();
            let node_port =
                if is_np { port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) } else { None };
            let endpoints = slices.map(|s| endpoints_of(s, &port_name, protocol, node)).unwrap_or_default();
            out.push(ServicePort {
                namespace: namespace.clone(),
                name: name.clone(),
                port_name,
                protocol,
                cluster_ip: Some(cluster_ip),
                port: number,
                node_port,
                external_ips: external_ips.clone(),
                load_balancer_ips: if is_lb { load_balancer_ips.clone() } else { Vec::new() },
                affinity_timeout,
                external_local: external_local && (is_np || !external_ips.is_empty()),
                internal_local,
                endpoints,
            });
        }
    }
    out.sort_by_key(ServicePort::key);
    out
}

/// The endpoints of the slices' port named `port_name` with `protocol`, one per address and
/// target port (a duplicate across slices keeps its first, most ready, occurrence).
fn endpoints_of(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol, node: &str) -> Vec<Endpoint> {
    let mut out: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(target) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else { continue };
        for ep in &slice.endpoints {
            let conditions = ep.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<Ipv4Addr>() else { continue };
                let candidate = Endpoint { ip, port: target, ready, serving, terminating, local };
                out.entry((ip, target))
                    .and_modify(|e| {
                        if candidate.ready && !e.ready {
                            *e = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    fn web() -> Service {
        svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", "externalTrafficPolicy": "Local",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
    }

    fn web_slice() -> EndpointSlice {
        slice(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "nodeName": "n1"},
                {"addresses": ["10.42.1.5"], "nodeName": "n2", "conditions": {"ready": false}},
                {"addresses": ["10.42.1.6"], "nodeName": "n2", "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }))
    }

    #[test]
    fn ports_carry_their_endpoints_and_policies() {
        let (s, e) = (web(), web_slice());
        let ports = service_ports([&s], [&e], "n1");
        assert_eq!(ports.len(), 2);
        let dns = &ports[1];
        assert_eq!((dns.key().as_str(), dns.endpoints.len()), ("default/web/udp/dns", 0));
        let http = &ports[0];
        assert_eq!(http.key(), "default/web/tcp/http");
        assert_eq!(http.node_port, Some(30080));
        assert!(http.external_local);
        assert_eq!(http.endpoints.len(), 3);
        let ips = |v: Vec<Endpoint>| v.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>();
        assert_eq!(ips(http.cluster_endpoints()), ["10.42.0.5"]);
        assert_eq!(ips(http.local_endpoints()), ["10.42.0.5"]);
        // On the other node nothing local is ready; the serving terminating one is used.
        let ports = service_ports([&s], [&e], "n2");
        assert_eq!(ips(ports[0].local_endpoints()), ["10.42.1.6"]);
    }

    #[test]
    fn terminating_endpoints_only_when_nothing_is_ready() {
        let s = web();
        let e = slice(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.42.1.5"], "conditions": {"ready": false, "serving": false, "terminating": true}},
                {"addresses": ["10.42.1.6"], "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }));
        let ports = service_ports([&s], [&e], "n1");
        assert_eq!(ports[0].cluster_endpoints().iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.42.1.6"]);
    }

    #[test]
    fn headless_and_external_name_services_get_no_rules() {
        let headless = svc(serde_json::json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        let ext = svc(serde_json::json!({"metadata": {"name": "x", "namespace": "d"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(service_ports([&headless, &ext], [], "n1").is_empty());
    }

    #[test]
    fn affinity_defaults_to_three_hours_and_lb_ips_need_a_load_balancer() {
        let s = svc(serde_json::json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9", "sessionAffinity": "ClientIP",
                     "ports": [{"port": 80, "nodePort": 31000}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2", "ipMode": "Proxy"}]}}}));
        let p = &service_ports([&s], [], "n1")[0];
        assert_eq!(p.affinity_timeout, Some(10_800));
        assert_eq!(p.load_balancer_ips, ["192.0.2.1".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(p.key(), "d/a/tcp/80");
    }
}
