//! NetworkPolicies as the node enforces them: which of this node's pods each policy selects and,
//! per rule, which addresses and ports it allows, with pod and namespace selectors, ipBlocks and
//! named ports already resolved against the current Pods and Namespaces.
//!
//! Semantics are upstream's NetworkPolicy API: a policy selects pods of its own namespace; a pod
//! selected by a policy whose `policyTypes` holds `Ingress` (`Egress`) is isolated for that
//! direction and allows the union of the rules of all such policies; an absent `from`/`to`
//! allows every peer, an absent `ports` every port; a peer with both a `podSelector` and a
//! `namespaceSelector` selects the pods matching both; named ports are resolved against the
//! target pod's containers (ingress) or the destination pod's (egress). Input the API server
//! would have refused (a bad operator, CIDR or port) selects nothing rather than everything.
//!
//! What does not live here: the nftables rendering ([`super::render`]) and the watches
//! ([`super::sync`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use crate::proxy::model::Protocol;

/// Numeric ports a rule allows for one protocol: `range` `None` is every port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// The protocol.
    pub protocol: Protocol,
    /// First and last port, inclusive.
    pub range: Option<(u16, u16)>,
}

/// An address, protocol and port a named port resolved to.
pub type NamedPort = (Ipv4Addr, Protocol, u16);

/// One ingress or egress rule, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// The peers' addresses as merged inclusive ranges; `None` allows every address.
    pub peers: Option<Vec<(Ipv4Addr, Ipv4Addr)>>,
    /// The numeric ports; `None` when the rule has no `ports` (every port of every protocol).
    pub ports: Option<Vec<PortRange>>,
    /// Named ports resolved to (target or destination pod address, protocol, port); for egress
    /// only destinations among the peers are listed.
    pub named: BTreeSet<NamedPort>,
}

/// One policy as this node enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `namespace/name`.
    pub key: String,
    /// Addresses of this node's pods the policy selects.
    pub targets: BTreeSet<Ipv4Addr>,
    /// Ingress rules when the policy isolates for ingress.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when the policy isolates for egress.
    pub egress: Option<Vec<Rule>>,
}

/// A pod as policies see it: only pods with an IPv4 address on the pod network count.
#[derive(Debug, Clone)]
struct PodView<'a> {
    namespace: &'a str,
    labels: Option<&'a BTreeMap<String, String>>,
    ip: Ipv4Addr,
    local: bool,
    pod: &'a Pod,
}

/// Whether `selector` selects `labels` (`LabelSelectorAsSelector`: empty selects everything,
/// an unknown operator nothing).
pub fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if selector.match_labels.iter().flatten().any(|(k, v)| labels.get(k) != Some(v)) {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    })
}

fn view<'a>(pod: &'a Pod, node: &str) -> Option<PodView<'a>> {
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref()?;
    if spec.host_network == Some(true) || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.as_deref()?.parse().ok()?;
    Some(PodView {
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        labels: pod.metadata.labels.as_ref(),
        ip,
        local: spec.node_name.as_deref() == Some(node),
        pod,
    })
}

/// The port named `name` for `protocol` among the pod's containers' ports.
fn named_port(pod: &Pod, name: &str, protocol: Protocol) -> Option<u16> {
    pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
        (p.name.as_deref() == Some(name) && Protocol::parse(p.protocol.as_deref()) == Some(protocol))
            .then(|| u16::try_from(p.container_port).ok())
            .flatten()
    })
}

/// Merges inclusive ranges, adjacent ones included.
pub fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `cidr` without the `except` blocks, as inclusive ranges; `None` if a CIDR does not parse.
pub fn ip_block(cidr: &str, except: &[String]) -> Option<Vec<(u32, u32)>> {
    let net: Ipv4Net = cidr.parse().ok()?;
    let mut ranges = vec![(u32::from(net.network()), u32::from(net.broadcast()))];
    for e in except {
        let hole: Ipv4Net = e.parse().ok()?;
        let (hlo, hhi) = (u32::from(hole.network()), u32::from(hole.broadcast()));
        ranges = ranges
            .into_iter()
            .flat_map(|(lo, hi)| {
                let mut parts = Vec::new();
                if hhi < lo || hlo > hi {
                    parts.push((lo, hi));
                } else {
                    if hlo > lo {
                        parts.push((lo, hlo - 1));
                    }
                    if hhi < hi {
                        parts.push((hhi + 1, hi));
                    }
                }
                parts
            })
            .collect();
    }
    Some(ranges)
}

/// The cluster as policies see it, built once per sync.
pub struct Cluster<'a> {
    pods: Vec<PodView<'a>>,
    namespaces: BTreeMap<&'a str, Option<&'a BTreeMap<String, String>>>,
}

impl<'a> Cluster<'a> {
    /// Indexes `pods` and `namespaces`; pods on `node` are the ones policies are enforced for.
    pub fn new(
        pods: impl IntoIterator<Item = &'a Pod>,
        namespaces: impl IntoIterator<Item = &'a Namespace>,
        node: &str,
    ) -> Self {
        Self {
            pods: pods.into_iter().filter_map(|p| view(p, node)).collect(),
            namespaces: namespaces
                .into_iter()
                .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref())))
                .collect(),
        }
    }

    /// The pods one peer selects, for a policy in `namespace`.
    fn peer_pods(&self, peer: &NetworkPolicyPeer, namespace: &str) -> Vec<&PodView<'a>> {
        let ns_ok = |ns: &str| match &peer.namespace_selector {
            None => ns == namespace,
            Some(sel) => self.namespaces.get(ns).is_some_and(|labels| selects(sel, *labels)),
        };
        self.pods
            .iter()
            .filter(|p| ns_ok(p.namespace))
            .filter(|p| peer.pod_selector.as_ref().is_none_or(|sel| selects(sel, p.labels)))
            .collect()
    }

    /// The address ranges of `peers` (`None`: every address).
    fn peer_ranges(&self, peers: Option<&Vec<NetworkPolicyPeer>>, namespace: &str) -> Option<Vec<(u32, u32)>> {
        let peers = peers.filter(|p| !p.is_empty())?;
        let mut ranges = Vec::new();
        for peer in peers {
            if let Some(block) = &peer.ip_block {
                // Mixed with selectors the API server refuses it; alone, a bad CIDR allows nothing.
                if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
                    ranges.extend(ip_block(&block.cidr, block.except.as_deref().unwrap_or(&[])).unwrap_or_default());
                }
            } else if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                ranges.extend(self.peer_pods(peer, namespace).iter().map(|p| (u32::from(p.ip), u32::from(p.ip))));
            }
        }
        Some(merge(ranges))
    }

    /// Resolves one rule; named ports are looked up on `targets` (ingress) or, when `None`
    /// (egress), on the pods among the peers.
    fn rule(
        &self,
        peers: Option<&Vec<NetworkPolicyPeer>>,
        ports: Option<&Vec<NetworkPolicyPort>>,
        namespace: &str,
        targets: Option<&[&PodView<'a>]>,
    ) -> Rule {
        let peers = self.peer_ranges(peers, namespace);
        let mut rule = Rule {
            peers: peers.as_ref().map(|r| r.iter().map(|&(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b))).collect()),
            ports: None,
            named: BTreeSet::new(),
        };
        let Some(ports) = ports.filter(|p| !p.is_empty()) else {
            return rule;
        };
        let mut numeric = Vec::new();
        for port in ports {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else { continue };
            match &port.port {
                None => numeric.push(PortRange { protocol, range: None }),
                Some(IntOrString::Int(p)) => {
                    let end = port.end_port.unwrap_or(*p);
                    if let (Ok(lo), Ok(hi)) = (u16::try_from(*p), u16::try_from(end))
                        && lo >= 1
                        && lo <= hi
                    {
                        numeric.push(PortRange { protocol, range: Some((lo, hi)) });
                    }
                }
                Some(IntOrString::String(name)) => {
                    let within = |ip: Ipv4Addr| {
                        let ip = u32::from(ip);
                        peers.as_ref().is_none_or(|r| r.iter().any(|&(lo, hi)| lo <= ip && ip <= hi))
                    };
                    let on: Vec<&PodView> = match targets {
                        Some(t) => t.to_vec(),
                        None => self.pods.iter().filter(|p| within(p.ip)).collect(),
                    };
                    for pod in on {
                        if let Some(number) = named_port(pod.pod, name, protocol) {
                            rule.named.insert((pod.ip, protocol, number));
                        }
                    }
                }
            }
        }
        numeric.sort();
        numeric.dedup();
        rule.ports = Some(numeric);
        rule
    }

    /// Resolves `policy` for this node's pods.
    pub fn policy(&self, policy: &NetworkPolicy) -> Option<Policy> {
        let spec = policy.spec.as_ref()?;
        let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
        let key = format!("{namespace}/{}", policy.metadata.name.as_deref().unwrap_or_default());
        let targets: Vec<&PodView> = self
            .pods
            .iter()
            .filter(|p| {
                p.local && p.namespace == namespace && spec.pod_selector.as_ref().is_none_or(|s| selects(s, p.labels))
            })
            .collect();
        let types: Vec<&str> = match spec.policy_types.as_deref() {
            Some(t) if !t.is_empty() => t.iter().map(String::as_str).collect(),
            _ if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) => vec!["Ingress", "Egress"],
            _ => vec!["Ingress"],
        };
        let ingress = types.contains(&"Ingress").then(|| {
            spec.ingress
                .iter()
                .flatten()
                .map(|r| self.rule(r.from.as_ref(), r.ports.as_ref(), namespace, Some(&targets)))
                .collect()
        });
        let egress = types.contains(&"Egress").then(|| {
            spec.egress.iter().flatten().map(|r| self.rule(r.to.as_ref(), r.ports.as_ref(), namespace, None)).collect()
        });
        Some(Policy { key, targets: targets.iter().map(|p| p.ip).collect(), ingress, egress })
    }
}

/// Resolves every policy for the pods of `node`; policies selecting none of them are left out.
pub fn policies<'a>(
    policies: impl IntoIterator<Item = &'a NetworkPolicy>,
    pods: impl IntoIterator<Item = &'a Pod>,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
    node: &str,
) -> Vec<Policy> {
    let cluster = Cluster::new(pods, namespaces, node);
    let mut out: Vec<Policy> =
        policies.into_iter().filter_map(|p| cluster.policy(p)).filter(|p| !p.targets.is_empty()).collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(ns: &str, name: &str, node: &str, ip: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]},
            "status": {"podIP": ip, "phase": "Running"}
        }))
        .expect("pod")
    }

    fn ns(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("ns")
    }

    fn np(ns: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": "p"}, "spec": spec})).expect("np")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    fn world() -> (Vec<Pod>, Vec<Namespace>) {
        let pods = vec![
            pod("a", "server", "n1", "10.42.0.2", json!({"app": "server"})),
            pod("a", "client", "n1", "10.42.0.3", json!({"role": "client"})),
            pod("b", "client", "n1", "10.42.0.4", json!({"role": "client"})),
            pod("b", "other", "n2", "10.42.1.5", json!({"role": "other"})),
            pod("c", "client", "n2", "10.42.1.6", json!({"role": "client"})),
        ];
        let namespaces =
            vec![ns("a", json!({"team": "x"})), ns("b", json!({"team": "y"})), ns("c", json!({"team": "x"}))];
        (pods, namespaces)
    }

    fn resolve(policy: NetworkPolicy) -> Vec<Policy> {
        let (pods, namespaces) = world();
        policies([&policy], &pods, &namespaces, "n1")
    }

    fn single(ranges: &[&str]) -> Option<Vec<(Ipv4Addr, Ipv4Addr)>> {
        Some(ranges.iter().map(|r| (ip(r), ip(r))).collect())
    }

    #[test]
    fn default_deny_selects_local_pods_of_the_namespace_and_defaults_policy_types() {
        let p = resolve(np("a", json!({"podSelector": {}})));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].targets, [ip("10.42.0.2"), ip("10.42.0.3")].into());
        assert_eq!(p[0].ingress, Some(vec![]), "isolated for ingress, nothing allowed");
        assert_eq!(p[0].egress, None);
        let p = resolve(np("a", json!({"podSelector": {}, "egress": [{}]})));
        assert_eq!(p[0].egress, Some(vec![Rule::default()]), "egress rules imply Egress");
        let p = resolve(np("b", json!({"podSelector": {"matchLabels": {"role": "other"}}})));
        assert!(p.is_empty(), "a policy selecting only other nodes' pods is not enforced here");
    }

    #[test]
    fn pod_selector_peers_stay_in_the_policy_namespace() {
        let p = resolve(np(
            "a",
            json!({"podSelector": {"matchLabels": {"app": "server"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        ));
        assert_eq!(p[0].ingress.as_ref().expect("ingress")[0].peers, single(&["10.42.0.3"]));
    }

    #[test]
    fn namespace_selector_alone_and_anded_with_pod_selector() {
        let alone = resolve(np(
            "a",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}]}),
        ));
        // Pods of a and c; 10.42.0.2-3 are adjacent and merged.
        assert_eq!(
            alone[0].ingress.as_ref().expect("ingress")[0].peers,
            Some(vec![(ip("10.42.0.2"), ip("10.42.0.3")), (ip("10.42.1.6"), ip("10.42.1.6"))])
        );
        let and = resolve(np(
            "a",
            json!({"podSelector": {}, "ingress": [{"from": [{
                "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["y", "x"]}]},
                "podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        ));
        assert_eq!(
            and[0].ingress.as_ref().expect("ingress")[0].peers,
            Some(vec![(ip("10.42.0.3"), ip("10.42.0.4")), (ip("10.42.1.6"), ip("10.42.1.6"))])
        );
        let or = resolve(np(
            "a",
            json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"team": "y"}}},
                {"podSelector": {"matchLabels": {"app": "server"}}}]}]}),
        ));
        assert_eq!(
            or[0].ingress.as_ref().expect("ingress")[0].peers,
            Some(vec![
                (ip("10.42.0.2"), ip("10.42.0.2")),
                (ip("10.42.0.4"), ip("10.42.0.4")),
                (ip("10.42.1.5"), ip("10.42.1.5"))
            ])
        );
    }

    #[test]
    fn ip_blocks_cut_out_their_exceptions() {
        assert_eq!(
            ip_block("10.0.0.0/24", &["10.0.0.16/28".into(), "10.0.0.255/32".into()]),
            Some(vec![
                (u32::from(ip("10.0.0.0")), u32::from(ip("10.0.0.15"))),
                (u32::from(ip("10.0.0.32")), u32::from(ip("10.0.0.254")))
            ])
        );
        assert_eq!(ip_block("nonsense", &[]), None);
        let p = resolve(np("a", json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "bad"}}]}]})));
        assert_eq!(p[0].ingress.as_ref().expect("ingress")[0].peers, Some(vec![]), "a bad CIDR allows nothing");
    }

    #[test]
    fn ports_numeric_ranges_and_named_per_target() {
        let p = resolve(np(
            "a",
            json!({"podSelector": {}, "ingress": [{"ports": [
                {"port": 80}, {"port": 8000, "endPort": 8010, "protocol": "UDP"}, {"protocol": "SCTP"},
                {"port": "http"}, {"port": "dns", "protocol": "UDP"}, {"port": "dns"}]}]}),
        ));
        let rule = &p[0].ingress.as_ref().expect("ingress")[0];
        assert_eq!(rule.peers, None);
        assert_eq!(
            rule.ports,
            Some(vec![
                PortRange { protocol: Protocol::Tcp, range: Some((80, 80)) },
                PortRange { protocol: Protocol::Udp, range: Some((8000, 8010)) },
                PortRange { protocol: Protocol::Sctp, range: None },
            ])
        );
        let expected: BTreeSet<NamedPort> = [
            (ip("10.42.0.2"), Protocol::Tcp, 8080),
            (ip("10.42.0.3"), Protocol::Tcp, 8080),
            (ip("10.42.0.2"), Protocol::Udp, 5353),
            (ip("10.42.0.3"), Protocol::Udp, 5353),
        ]
        .into();
        assert_eq!(rule.named, expected, "dns is UDP only: the TCP lookup resolves nothing");
    }

    #[test]
    fn egress_named_ports_resolve_on_destinations_among_the_peers() {
        let p = resolve(np(
            "b",
            json!({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "x"}},
                                        "podSelector": {"matchLabels": {"role": "client"}}}],
                               "ports": [{"port": "http"}]}]}),
        ));
        assert_eq!(p[0].ingress, None);
        let rule = &p[0].egress.as_ref().expect("egress")[0];
        assert_eq!(rule.ports, Some(vec![]));
        assert_eq!(rule.named, [(ip("10.42.0.3"), Protocol::Tcp, 8080), (ip("10.42.1.6"), Protocol::Tcp, 8080)].into());
    }

    #[test]
    fn bad_selectors_select_nothing_and_odd_pods_are_skipped() {
        let p = resolve(np("a", json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}})));
        assert!(p.is_empty());
        let mut pods = world().0;
        pods.push(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": "x"}})).expect("pod"));
        pods[0].spec.as_mut().expect("spec").host_network = Some(true);
        let policy = np("a", json!({"podSelector": {}}));
        let p = policies([&policy], &pods, &world().1, "n1");
        assert_eq!(p[0].targets, [ip("10.42.0.3")].into());
    }

    #[test]
    fn merge_joins_overlapping_and_adjacent_ranges() {
        assert_eq!(merge(vec![(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]), vec![(1, 9), (20, 30)]);
    }
}
