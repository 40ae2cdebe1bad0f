//! The nftables ruleset of the service proxy, rendered from [`ServicePort`]s.
//!
//! One table, `ip skiff-proxy`:
//! - maps `service-ips` (address . protocol . port → verdict: cluster IPs, externalIPs,
//!   LoadBalancer addresses) and `service-nodeports` (protocol . port → verdict), consulted by
//!   the `services` chain from the `nat-prerouting` and `nat-output` hooks (node ports only for
//!   destinations local to the node, 127.0.0.1 included);
//! - per port: `service-…` (all usable endpoints), `local-…` (this node's, for the `Local`
//!   traffic policies), `external-…` (what NodePort/externalIPs/LoadBalancer traffic enters);
//!   per endpoint: `endpoint-…` (hairpin masquerade, affinity bookkeeping, DNAT), choice by a
//!   cascade of `numgen random mod k 0 goto …` rules (no anonymous maps: they make big
//!   transactions quadratic), ClientIP affinity by a timeout set per endpoint;
//! - `no-endpoint-services` / `no-endpoint-nodeports`, consulted from filter hooks for new
//!   connections: ICMP reject when a port has no endpoint at all, drop when it has some but none
//!   for this traffic (a `Local` policy);
//! - `mark-for-masquerade` and `masquerading` (postrouting): marked packets leave with the
//!   node's address (hairpin, NodePort with `Cluster` policy, off-cluster sources).
//!
//! A [`Ruleset`] knows its chains and sets, so [`Ruleset::script`] can turn a previous one into it
//! in one transaction touching only what differs (changed chains refilled, map elements added and
//! deleted, what went away deleted, affinity sets' contents kept), and how many rules and map
//! elements it holds, so a listing of the kernel's table can be checked against it. What does not live here: running `nft` ([`super::sync`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sha2::{Digest as _, Sha256};

use super::model::{Endpoint, ServicePort};

/// The proxy's table (family `ip`).
pub const TABLE: &str = "skiff-proxy";

/// The packet mark asking for masquerade.
const MASQ_MARK: &str = "0x4000";

/// What the rendering needs besides the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The cluster's pod CIDR: traffic to a cluster IP from outside it is masqueraded, and
    /// traffic from it to external addresses is treated as cluster traffic.
    pub cluster_cidr: Option<Ipv4Net>,
}

/// A chain of the table, with its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    name: String,
    /// `type … hook … priority …; policy accept;` for base chains.
    hook: Option<&'static str>,
    rules: Vec<String>,
}

/// A rendered ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    chains: Vec<Chain>,
    /// Affinity sets: name → timeout in seconds.
    sets: Vec<(String, u32)>,
    /// (map, element) pairs.
    elements: Vec<(&'static str, String)>,
    /// The names in `chains`, for the endpoint chains a port's choice chains share.
    names: HashSet<String>,
}

/// The maps of the table and their types.
const MAPS: [(&str, &str); 4] = [
    ("service-ips", "ipv4_addr . inet_proto . inet_service : verdict"),
    ("service-nodeports", "inet_proto . inet_service : verdict"),
    ("no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict"),
    ("no-endpoint-nodeports", "inet_proto . inet_service : verdict"),
];

/// Chain names: a hash of the port's (or endpoint's) identity keeps them unique, the readable
/// part helps whoever lists the table.
fn name(kind: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{id}").as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hash}-{id}")
}

fn endpoint_id(port: &ServicePort, ep: &Endpoint) -> String {
    format!("{}__{}/{}", port.key(), ep.ip, ep.port)
}

impl Ruleset {
    /// Renders the ruleset of `ports`.
    pub fn render(ports: &[ServicePort], cfg: &RenderConfig) -> Self {
        let mut rs = Ruleset { chains: Vec::new(), sets: Vec::new(), elements: Vec::new(), names: HashSet::new() };
        rs.base_chains();
        for port in ports {
            rs.port(port, cfg);
        }
        rs
    }

    fn chain(&mut self, name: String, hook: Option<&'static str>, rules: Vec<String>) {
        self.names.insert(name.clone());
        self.chains.push(Chain { name, hook, rules });
    }

    fn base_chains(&mut self) {
        let mark = MASQ_MARK;
        self.chain("mark-for-masquerade".into(), None, vec![format!("meta mark set meta mark | {mark}")]);
        self.chain(
            "masquerading".into(),
            Some("type nat hook postrouting priority 100; policy accept;"),
            vec![
                format!("meta mark & {mark} == 0 return"),
                format!("meta mark set meta mark ^ {mark}"),
                "masquerade fully-random".into(),
            ],
        );
        self.chain(
            "services".into(),
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
                "fib daddr type local meta l4proto . th dport vmap @service-nodeports".into(),
            ],
        );
        for (chain, hook) in [
            ("nat-prerouting", "type nat hook prerouting priority -100; policy accept;"),
            ("nat-output", "type nat hook output priority -100; policy accept;"),
        ] {
            self.chain(chain.into(), Some(hook), vec!["jump services".into()]);
        }
        self.chain("reject-chain".into(), None, vec!["reject".into()]);
        self.chain(
            "endpoints-check".into(),
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
                "fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
            ],
        );
        for (chain, hook) in [
            ("filter-input", "type filter hook input priority -110; policy accept;"),
            ("filter-forward", "type filter hook forward priority -110; policy accept;"),
            ("filter-output", "type filter hook output priority -110; policy accept;"),
        ] {
            let mut rules = vec!["ct state new jump endpoints-check".to_string()];
            if chain == "filter-input" {
                // route_localnet lets node ports answer on 127.0.0.1; keep other hosts from
                // sending to the loopback range, as upstream does.
                rules.insert(
                    0,
                    "iifname != \"lo\" ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 ct status & dnat == 0 drop".into(),
                );
            }
            self.chain(chain.into(), Some(hook), rules);
        }
    }

    /// The chain choosing among `endpoints` (named `chain`), creating the endpoint chains it
    /// jumps to unless they exist.
    fn endpoint_choice(&mut self, chain: String, port: &ServicePort, endpoints: &[Endpoint], cfg: &RenderConfig) {
        let mut rules = Vec::new();
        if let (Some(cip), Some(cidr)) = (port.cluster_ip, cfg.cluster_cidr) {
            rules.push(format!("ip daddr {cip} ip saddr != {} jump mark-for-masquerade", cidr.trunc()));
        }
        let targets: Vec<String> = endpoints.iter().map(|ep| name("endpoint", &endpoint_id(port, ep))).collect();
        if let Some(timeout) = port.affinity_timeout {
            for (ep, target) in endpoints.iter().zip(&targets) {
                let set = affinity_set(port, ep, timeout);
                rules.push(format!("ip saddr @{set} goto {target}"));
            }
        }
        rules.extend(random_choice(&targets));
        self.chain(chain, None, rules);
        for (ep, target) in endpoints.iter().zip(targets) {
            if self.names.contains(&target) {
                continue;
            }
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
            if let Some(timeout) = port.affinity_timeout {
                let set = affinity_set(port, ep, timeout);
                rules.push(format!("update @{set} {{ ip saddr }}"));
                self.sets.push((set, timeout));
            }
            rules.push(format!("meta l4proto {} dnat to {}:{}", port.protocol.nft(), ep.ip, ep.port));
            self.chain(target, None, rules);
        }
    }

    fn port(&mut self, port: &ServicePort, cfg: &RenderConfig) {
        let key = port.key();
        let proto = port.protocol.nft();
        let cluster = port.cluster_endpoints();
        let local = port.local_endpoints();
        let service_chain = name("service", &key);
        let local_chain = name("local", &key);
        if !cluster.is_empty() {
            self.endpoint_choice(service_chain.clone(), port, &cluster, cfg);
        }
        let needs_local = port.internal_local || (port.external_local && port.has_external());
        if needs_local && !local.is_empty() {
            self.endpoint_choice(local_chain.clone(), port, &local, cfg);
        }
        // No usable endpoint anywhere: reject; some but none for this traffic: drop.
        let nothing = if cluster.is_empty() { "goto reject-chain" } else { "drop" };

        if let Some(cip) = port.cluster_ip {
            let element = format!("{cip} . {proto} . {}", port.port);
            let internal = if port.internal_local { &local } else { &cluster };
            if internal.is_empty() {
                self.elements.push(("no-endpoint-services", format!("{element} : {nothing}")));
            } else {
                let target = if port.internal_local { &local_chain } else { &service_chain };
                self.elements.push(("service-ips", format!("{element} : goto {target}")));
            }
        }
        if !port.has_external() {
            return;
        }
        let external_targets: Vec<String> = port
            .external_ips
            .iter()
            .chain(&port.load_balancer_ips)
            .collect::<BTreeSet<&Ipv4Addr>>()
            .into_iter()
            .map(|ip| format!("{ip} . {proto} . {}", port.port))
            .collect();
        let node_port = port.node_port.map(|np| format!("{proto} . {np}"));
        if cluster.is_empty() {
            for e in external_targets {
                self.elements.push(("no-endpoint-services", format!("{e} : goto reject-chain")));
            }
            if let Some(np) = node_port {
                self.elements.push(("no-endpoint-nodeports", format!("{np} : goto reject-chain")));
            }
            return;
        }
        let external_chain = name("external", &key);
        let rules = if port.external_local {
            // Source preserved: pods and the node itself still reach every endpoint (masqueraded
            // from the node), everyone else only this node's endpoints, or nothing.
            let mut rules = Vec::new();
            if let Some(cidr) = cfg.cluster_cidr {
                rules.push(format!("ip saddr {} goto {service_chain}", cidr.trunc()));
            }
            rules.push("fib saddr type local jump mark-for-masquerade".into());
            rules.push(format!("fib saddr type local goto {service_chain}"));
            rules.push(if local.is_empty() { "drop".into() } else { format!("goto {local_chain}") });
            rules
        } else {
            vec!["jump mark-for-masquerade".into(), format!("goto {service_chain}")]
        };
        self.chain(external_chain.clone(), None, rules);
        for e in external_targets {
            self.elements.push(("service-ips", format!("{e} : goto {external_chain}")));
        }
        if let Some(np) = node_port {
            self.elements.push(("service-nodeports", format!("{np} : goto {external_chain}")));
        }
    }

    /// The names of the regular and base chains.
    pub fn chain_names(&self) -> BTreeSet<&str> {
        self.chains.iter().map(|c| c.name.as_str()).collect()
    }

    /// The names of the affinity sets.
    pub fn set_names(&self) -> BTreeSet<&str> {
        self.sets.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// How many rules the table holds.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// How many map elements the table holds.
    pub fn element_count(&self) -> usize {
        self.elements.len()
    }

    /// The `nft -f` script that makes the kernel's table this ruleset, in one transaction.
    ///
    /// With `previous` (the ruleset last applied, assumed to be what the kernel holds), only the
    /// difference is written: chains that are new are added, chains whose rules changed are
    /// flushed and refilled, map elements that went away are deleted and new ones added, and
    /// chains and sets `previous` had and this one lacks are deleted last; unchanged chains,
    /// elements and affinity sets are not touched. Without `previous`, the table is deleted and
    /// created anew (first sync, repair). If the kernel's table is not `previous` after all, the
    /// update is refused as a whole and the caller replaces the table.
    pub fn script(&self, previous: Option<&Ruleset>) -> String {
        match previous {
            None => self.full_script(),
            Some(previous) => self.update_script(previous),
        }
    }

    fn full_script(&self) -> String {
        let mut s = String::with_capacity(256 + self.chains.len() * 200 + self.elements.len() * 80);
        let t = TABLE;
        let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}\nadd table ip {t}");
        for (map, ty) in MAPS {
            let _ = writeln!(s, "add map ip {t} {map} {{ type {ty}; }}");
        }
        self.write_sets(&mut s, |_| true);
        for c in &self.chains {
            write_chain(&mut s, c);
        }
        for c in &self.chains {
            write_rules(&mut s, c);
        }
        for (map, _) in MAPS {
            let elements: Vec<&str> =
                self.elements.iter().filter(|(m, _)| *m == map).map(|(_, e)| e.as_str()).collect();
            write_elements(&mut s, "add", map, &elements);
        }
        s
    }

    fn update_script(&self, previous: &Ruleset) -> String {
        let t = TABLE;
        let mut s = String::new();
        let _ = writeln!(s, "add table ip {t}");
        for (map, ty) in MAPS {
            let _ = writeln!(s, "add map ip {t} {map} {{ type {ty}; }}");
        }
        let old_sets = previous.set_names();
        self.write_sets(&mut s, |name| !old_sets.contains(name));
        let old: HashMap<&str, &Chain> = previous.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut changed = Vec::new();
        for c in &self.chains {
            match old.get(c.name.as_str()) {
                None => {
                    write_chain(&mut s, c);
                    changed.push(c);
                }
                Some(o) if o.hook != c.hook => {
                    // A base chain's hook cannot change in place.
                    let _ = writeln!(s, "delete chain ip {t} {}", c.name);
                    write_chain(&mut s, c);
                    changed.push(c);
                }
                Some(o) if o.rules != c.rules => {
                    let _ = writeln!(s, "flush chain ip {t} {}", c.name);
                    changed.push(c);
                }
                Some(_) => {}
            }
        }
        for (map, _) in MAPS {
            let before: HashSet<&str> =
                previous.elements.iter().filter(|(m, _)| *m == map).map(|(_, e)| e.as_str()).collect();
            let after: HashSet<&str> =
                self.elements.iter().filter(|(m, _)| *m == map).map(|(_, e)| e.as_str()).collect();
            let mut gone: Vec<&str> = before.difference(&after).map(|e| element_key(e)).collect();
            let mut new: Vec<&str> = after.difference(&before).copied().collect();
            gone.sort_unstable();
            new.sort_unstable();
            write_elements(&mut s, "delete", map, &gone);
            write_elements(&mut s, "add", map, &new);
        }
        for c in changed {
            write_rules(&mut s, c);
        }
        let chains = self.chain_names();
        for gone in previous.chain_names().difference(&chains) {
            let _ = writeln!(s, "flush chain ip {t} {gone}\ndelete chain ip {t} {gone}");
        }
        let sets = self.set_names();
        for gone in old_sets.difference(&sets) {
            let _ = writeln!(s, "delete set ip {t} {gone}");
        }
        s
    }

    fn write_sets(&self, s: &mut String, wanted: impl Fn(&str) -> bool) {
        for (set, timeout) in self.sets.iter().filter(|(set, _)| wanted(set)) {
            let _ = writeln!(
                s,
                "add set ip {TABLE} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            );
        }
    }
}

/// `add chain` for `c` (with its hook for base chains).
fn write_chain(s: &mut String, c: &Chain) {
    match c.hook {
        Some(hook) => {
            let _ = writeln!(s, "add chain ip {TABLE} {} {{ {hook} }}", c.name);
        }
        None => {
            let _ = writeln!(s, "add chain ip {TABLE} {}", c.name);
        }
    }
}

/// `add rule` for each of `c`'s rules.
fn write_rules(s: &mut String, c: &Chain) {
    for rule in &c.rules {
        let _ = writeln!(s, "add rule ip {TABLE} {} {rule}", c.name);
    }
}

/// `add element`/`delete element` commands for `elements` of `map`, a thousand per command.
fn write_elements(s: &mut String, verb: &str, map: &str, elements: &[&str]) {
    for chunk in elements.chunks(1000) {
        let _ = writeln!(s, "{verb} element ip {TABLE} {map} {{ {} }}", chunk.join(", "));
    }
}

/// The key of a map element (`key : verdict`), which is what deleting it takes.
fn element_key(element: &str) -> &str {
    element.split_once(" : ").map_or(element, |(key, _)| key)
}

/// The chain holding the generation marker: one rule whose comment names the sync that wrote the
/// table last, so a flushed, deleted or replaced table is noticed by listing one small chain.
pub const GENERATION_CHAIN: &str = "generation";

/// The commands (appended to a sync's script, in the same transaction) that set the generation
/// marker to `generation`.
pub fn generation_script(generation: u64) -> String {
    let (t, c) = (TABLE, GENERATION_CHAIN);
    format!(
        "add chain ip {t} {c}\nflush chain ip {t} {c}\nadd rule ip {t} {c} return comment \"generation {generation}\"\n"
    )
}

/// The rules choosing one of `targets` uniformly at random: a cascade where the rule for the
/// `i`th of `n` targets is taken with probability `1/(n-i)` (each draws its own number), the last
/// one unconditionally. One `numgen … vmap { … }` rule would do the same, but every such rule
/// carries an anonymous map, and the kernel's cost of adding an anonymous map grows with the
/// number of sets in the table and the length of the transaction: with 10,000 Services a first
/// sync took minutes instead of seconds.
fn random_choice(targets: &[String]) -> Vec<String> {
    let n = targets.len();
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| if i + 1 == n { format!("goto {t}") } else { format!("numgen random mod {} 0 goto {t}", n - i) })
        .collect()
}

/// The affinity set of an endpoint; the timeout is part of its identity (a set's timeout cannot
/// change in place).
fn affinity_set(port: &ServicePort, ep: &Endpoint, timeout: u32) -> String {
    name("affinity", &format!("{}/{timeout}", endpoint_id(port, ep)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::model::Protocol;
    use super::*;

    fn ep(ip: &str, local: bool) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), port: 8080, ready: true, serving: true, terminating: false, local }
    }

    fn port() -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Some("10.43.0.20".parse().unwrap()),
            port: 80,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: vec![ep("10.42.0.5", true), ep("10.42.1.5", false)],
        }
    }

    fn cfg() -> RenderConfig {
        RenderConfig { cluster_cidr: Some("10.42.0.0/16".parse().unwrap()) }
    }

    fn rules_of<'a>(rs: &'a Ruleset, prefix: &str) -> &'a [String] {
        &rs.chains.iter().find(|c| c.name.starts_with(prefix)).unwrap().rules
    }

    fn elements(rs: &Ruleset, map: &str) -> Vec<String> {
        rs.elements.iter().filter(|(m, _)| *m == map).map(|(_, e)| e.clone()).collect()
    }

    #[test]
    fn cluster_ip_chooses_randomly_among_endpoints() {
        let rs = Ruleset::render(&[port()], &cfg());
        let svc = name("service", "default/web/tcp/http");
        assert_eq!(elements(&rs, "service-ips"), [format!("10.43.0.20 . tcp . 80 : goto {svc}")]);
        let e1 = name("endpoint", "default/web/tcp/http__10.42.0.5/8080");
        let e2 = name("endpoint", "default/web/tcp/http__10.42.1.5/8080");
        assert_eq!(
            rules_of(&rs, "service-"),
            [
                "ip daddr 10.43.0.20 ip saddr != 10.42.0.0/16 jump mark-for-masquerade".to_string(),
                format!("numgen random mod 2 0 goto {e1}"),
                format!("goto {e2}"),
            ]
        );
        assert_eq!(
            rs.chains.iter().find(|c| c.name == e1).unwrap().rules,
            ["ip saddr 10.42.0.5 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.42.0.5:8080"]
        );
        assert!(elements(&rs, "no-endpoint-services").is_empty());
        assert!(!rs.chain_names().iter().any(|c| c.starts_with("external-") || c.starts_with("local-")));
    }

    #[test]
    fn the_random_cascade_is_uniform_and_uses_no_anonymous_map() {
        let targets: Vec<String> = (0..4).map(|i| format!("endpoint-{i}")).collect();
        let rules = random_choice(&targets);
        assert_eq!(
            rules,
            [
                "numgen random mod 4 0 goto endpoint-0",
                "numgen random mod 3 0 goto endpoint-1",
                "numgen random mod 2 0 goto endpoint-2",
                "goto endpoint-3",
            ]
        );
        // Each target is reached with probability 1/4: the ith rule is taken with 1/(n-i) of
        // what the rules before it let through.
        let mut left = 1.0_f64;
        for (i, _) in targets.iter().enumerate() {
            let taken = left / (targets.len() - i) as f64;
            assert!((taken - 0.25).abs() < 1e-12, "target {i}: {taken}");
            left -= taken;
        }
        let mut p = port();
        p.endpoints = (0..10).map(|i| ep(&format!("10.42.0.{i}"), false)).collect();
        let script = Ruleset::render(&[p], &cfg()).script(None);
        assert!(!script.contains("vmap {"), "{script}");
        assert_eq!(random_choice(&targets[..1]), ["goto endpoint-0"]);
    }

    #[test]
    fn affinity_remembers_clients_per_endpoint() {
        let mut p = port();
        p.affinity_timeout = Some(60);
        let rs = Ruleset::render(&[p], &cfg());
        assert_eq!(rs.sets.len(), 2);
        assert!(rs.sets.iter().all(|(_, t)| *t == 60));
        let set = &rs.sets[0].0;
        let rules = rules_of(&rs, "service-");
        assert!(rules[1].starts_with(&format!("ip saddr @{set} goto endpoint-")), "{rules:?}");
        let ep = rs.chains.iter().find(|c| c.name.starts_with("endpoint-")).unwrap();
        assert_eq!(ep.rules[1], format!("update @{set} {{ ip saddr }}"));
        assert!(rs.script(None).contains(&format!(
            "add set ip skiff-proxy {set} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}"
        )));
    }

    #[test]
    fn no_endpoints_rejects_and_no_local_endpoints_drops() {
        let mut p = port();
        p.endpoints.clear();
        p.node_port = Some(30080);
        p.load_balancer_ips = vec!["192.0.2.1".parse().unwrap()];
        let rs = Ruleset::render(&[p], &cfg());
        assert_eq!(
            elements(&rs, "no-endpoint-services"),
            ["10.43.0.20 . tcp . 80 : goto reject-chain", "192.0.2.1 . tcp . 80 : goto reject-chain"]
        );
        assert_eq!(elements(&rs, "no-endpoint-nodeports"), ["tcp . 30080 : goto reject-chain"]);
        assert!(elements(&rs, "service-ips").is_empty());

        let mut p = port();
        p.internal_local = true;
        p.endpoints = vec![ep("10.42.1.5", false)];
        let rs = Ruleset::render(&[p], &cfg());
        assert_eq!(elements(&rs, "no-endpoint-services"), ["10.43.0.20 . tcp . 80 : drop"]);
    }

    #[test]
    fn node_ports_and_load_balancers_masquerade_under_cluster_policy() {
        let mut p = port();
        p.node_port = Some(30080);
        p.load_balancer_ips = vec!["192.0.2.1".parse().unwrap()];
        p.external_ips = vec!["198.51.100.7".parse().unwrap()];
        let rs = Ruleset::render(&[p], &cfg());
        let ext = name("external", "default/web/tcp/http");
        let svc = name("service", "default/web/tcp/http");
        assert_eq!(rules_of(&rs, "external-"), ["jump mark-for-masquerade".to_string(), format!("goto {svc}")]);
        assert_eq!(elements(&rs, "service-nodeports"), [format!("tcp . 30080 : goto {ext}")]);
        assert_eq!(
            elements(&rs, "service-ips"),
            [
                format!("10.43.0.20 . tcp . 80 : goto {svc}"),
                format!("192.0.2.1 . tcp . 80 : goto {ext}"),
                format!("198.51.100.7 . tcp . 80 : goto {ext}"),
            ]
        );
    }

    #[test]
    fn local_external_policy_keeps_the_source_and_uses_local_endpoints() {
        let mut p = port();
        p.node_port = Some(30080);
        p.external_local = true;
        let rs = Ruleset::render(&[p.clone()], &cfg());
        let svc = name("service", "default/web/tcp/http");
        let local = name("local", "default/web/tcp/http");
        assert_eq!(
            rules_of(&rs, "external-"),
            [
                format!("ip saddr 10.42.0.0/16 goto {svc}"),
                "fib saddr type local jump mark-for-masquerade".to_string(),
                format!("fib saddr type local goto {svc}"),
                format!("goto {local}"),
            ]
        );
        let local_rules = rules_of(&rs, "local-");
        assert_eq!(local_rules.len(), 2, "{local_rules:?}");
        assert!(local_rules[1].starts_with("goto endpoint-"), "{local_rules:?}");
        // Without a local endpoint, outside traffic is dropped.
        p.endpoints = vec![ep("10.42.1.5", false)];
        let rs = Ruleset::render(&[p], &cfg());
        assert_eq!(rules_of(&rs, "external-").last().unwrap(), "drop");
    }

    #[test]
    fn internal_local_policy_targets_the_local_chain() {
        let mut p = port();
        p.internal_local = true;
        let rs = Ruleset::render(&[p], &cfg());
        let local = name("local", "default/web/tcp/http");
        assert_eq!(elements(&rs, "service-ips"), [format!("10.43.0.20 . tcp . 80 : goto {local}")]);
    }

    #[test]
    fn scripts_replace_whole_or_update_and_delete_what_went_away() {
        let two = Ruleset::render(&[port()], &cfg());
        let full = two.script(None);
        assert!(full.starts_with("add table ip skiff-proxy\ndelete table ip skiff-proxy\nadd table ip skiff-proxy\n"));
        assert!(full.contains(
            "add chain ip skiff-proxy nat-prerouting { type nat hook prerouting priority -100; policy accept; }"
        ));
        let mut p = port();
        p.endpoints.truncate(1);
        let one = Ruleset::render(&[p], &cfg());
        let update = one.script(Some(&two));
        assert!(!update.contains("delete table"));
        let gone = name("endpoint", "default/web/tcp/http__10.42.1.5/8080");
        assert!(update.ends_with(&format!("delete chain ip skiff-proxy {gone}\n")), "{update}");
        // The endpoint chain's two rules and one rule of the choice cascade.
        assert_eq!(one.rule_count() + 3, two.rule_count());
        assert_eq!(one.element_count(), 1);
        // Only the port's choice chain changed; the base chains and the kept endpoint's chain
        // are left alone, the map element (same key, same verdict) too.
        let kept = name("endpoint", "default/web/tcp/http__10.42.0.5/8080");
        let service = name("service", "default/web/tcp/http");
        assert!(update.contains(&format!("flush chain ip skiff-proxy {service}\n")), "{update}");
        assert!(!update.contains("flush chain ip skiff-proxy services\n"), "{update}");
        assert!(!update.contains(&format!("chain ip skiff-proxy {kept}")), "{update}");
        assert!(!update.contains("element"), "{update}");
    }

    #[test]
    fn an_unchanged_ruleset_updates_nothing_and_a_gone_service_loses_its_elements() {
        let rs = Ruleset::render(&[port()], &cfg());
        let same = rs.script(Some(&rs));
        assert!(!same.contains("flush") && !same.contains("rule") && !same.contains("element"), "{same}");
        let empty = Ruleset::render(&[], &cfg());
        let update = empty.script(Some(&rs));
        assert!(update.contains("delete element ip skiff-proxy service-ips { 10.43.0.20 . tcp . 80 }\n"), "{update}");
        let service = name("service", "default/web/tcp/http");
        assert!(update.contains(&format!("delete chain ip skiff-proxy {service}\n")), "{update}");
        let back = rs.script(Some(&empty));
        assert!(
            back.contains(&format!(
                "add element ip skiff-proxy service-ips {{ 10.43.0.20 . tcp . 80 : goto {service} }}"
            ))
        );
        assert!(back.find(&format!("add chain ip skiff-proxy {service}")) < back.find("add element"), "{back}");
    }
}
