//! The nftables table `ip skiff-netpol`, rendered from resolved [`Policy`]s.
//!
//! Two base chains on the `forward` hook, which sees pod-to-pod traffic on the bridge too (with
//! `bridge-nf-call-iptables`, see ARCHITECTURE.md) and runs after the service proxy's DNAT, so a
//! Service's traffic is checked against the endpoint pod:
//! - `egress` (priority 0): replies (`ct state established,related`), sources that no egress
//!   policy isolates and a pod reaching itself are accepted; otherwise each egress policy
//!   selecting the source is tried in turn (`accept` when a rule allows), and the rest dropped;
//! - `ingress` (priority 10): the same for destinations. An `accept` in `egress` only ends that
//!   chain, so a connection must pass both.
//!
//! Traffic from and to the node itself never takes the forward hook, so it is always allowed as
//! upstream requires (kubelet probes, the node's DNS server).
//!
//! Addresses live in sets, so Pod and Namespace changes are element changes: per policy its
//! target pods (`<p>-targets`), per rule its peers (`<p>-in<i>`, an interval set of merged pod
//! addresses and ipBlock ranges with their exceptions cut out) and its resolved named ports
//! (`<p>-in<i>-named`, address . protocol . port); `ingress-isolated`, `egress-isolated` and
//! `self` (a pod reaching itself through a Service) over all policies. [`Ruleset::script`] turns
//! the previous ruleset into this one in one transaction; what does not live here is running
//! `nft` ([`super::sync`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use sha2::{Digest as _, Sha256};

use super::model::{Policy, Rule, merge};

/// The table (family `ip`).
pub const TABLE: &str = "skiff-netpol";

/// A set of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Set {
    /// `type …; flags …;`
    spec: &'static str,
    elements: BTreeSet<String>,
}

/// A chain of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    hook: Option<&'static str>,
    rules: Vec<String>,
}

/// A rendered ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    sets: BTreeMap<String, Set>,
    chains: BTreeMap<String, Chain>,
}

const ADDRS: &str = "type ipv4_addr;";
const RANGES: &str = "type ipv4_addr; flags interval;";
const NAMED: &str = "type ipv4_addr . inet_proto . inet_service;";
const PAIRS: &str = "type ipv4_addr . ipv4_addr;";

/// The name prefix of a policy's chains and sets: a hash of `namespace/name`, short enough for
/// any name length.
fn prefix(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("p{hash}")
}

fn range(lo: Ipv4Addr, hi: Ipv4Addr) -> String {
    if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }
}

impl Ruleset {
    /// Renders the table for `policies`.
    pub fn render(policies: &[Policy]) -> Self {
        let mut rs = Ruleset::default();
        let mut isolated = [BTreeSet::new(), BTreeSet::new()];
        let mut jumps: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for policy in policies {
            let p = prefix(&policy.key);
            let targets: BTreeSet<String> = policy.targets.iter().map(Ipv4Addr::to_string).collect();
            rs.set(format!("{p}-targets"), ADDRS, targets.clone());
            for (dir, rules) in [(0, &policy.ingress), (1, &policy.egress)] {
                let Some(rules) = rules else { continue };
                let (tag, own, other) = if dir == 0 { ("in", "daddr", "saddr") } else { ("eg", "saddr", "daddr") };
                isolated[dir].extend(targets.iter().cloned());
                let chain = format!("{p}-{tag}");
                let mut body = Vec::new();
                for (i, rule) in rules.iter().enumerate() {
                    body.extend(rs.rule(&format!("{p}-{tag}{i}"), other, rule));
                }
                rs.chain(chain.clone(), None, body);
                let key = policy.key.replace('"', "");
                jumps[dir].push(format!("ip {own} @{p}-targets jump {chain} comment \"{key}\""));
            }
        }
        let pairs: BTreeSet<String> = isolated[0].union(&isolated[1]).map(|ip| format!("{ip} . {ip}")).collect();
        rs.set("self".into(), PAIRS, pairs);
        for (dir, name, own, priority) in [(0, "ingress", "daddr", 10), (1, "egress", "saddr", 0)] {
            let set = format!("{name}-isolated");
            rs.set(set.clone(), ADDRS, std::mem::take(&mut isolated[dir]));
            let mut rules = vec![
                "ct state established,related accept".to_string(),
                format!("ip {own} != @{set} accept"),
                "ip saddr . ip daddr @self accept".to_string(),
            ];
            rules.append(&mut jumps[dir]);
            rules.push("counter drop".into());
            let hook = if priority == 0 {
                "type filter hook forward priority 0; policy accept;"
            } else {
                "type filter hook forward priority 10; policy accept;"
            };
            rs.chain(name.into(), Some(hook), rules);
        }
        rs
    }

    fn set(&mut self, name: String, spec: &'static str, elements: BTreeSet<String>) {
        self.sets.insert(name, Set { spec, elements });
    }

    fn chain(&mut self, name: String, hook: Option<&'static str>, rules: Vec<String>) {
        self.chains.insert(name, Chain { hook, rules });
    }

    /// The rules of one policy rule (named `name`), matching the peer on `other` (`saddr` for
    /// ingress, `daddr` for egress).
    fn rule(&mut self, name: &str, other: &str, rule: &Rule) -> Vec<String> {
        let peer = match &rule.peers {
            None => String::new(),
            Some(ranges) => {
                let elements = ranges.iter().map(|&(lo, hi)| range(lo, hi)).collect();
                self.set(name.to_string(), RANGES, elements);
                format!("ip {other} @{name} ")
            }
        };
        let Some(ports) = &rule.ports else {
            return vec![format!("{peer}accept")];
        };
        let mut out = Vec::new();
        // Per protocol: `None` is every port, else merged ranges.
        let mut by_protocol: BTreeMap<&str, Option<Vec<(u32, u32)>>> = BTreeMap::new();
        for p in ports {
            let entry = by_protocol.entry(p.protocol.nft()).or_insert_with(|| Some(Vec::new()));
            match (p.range, entry.as_mut()) {
                (None, _) => *entry = None,
                (Some((lo, hi)), Some(list)) => list.push((u32::from(lo), u32::from(hi))),
                (Some(_), None) => {}
            }
        }
        for (proto, ports) in by_protocol {
            match ports {
                None => out.push(format!("{peer}meta l4proto {proto} accept")),
                Some(ranges) => {
                    let ports: Vec<String> = merge(ranges)
                        .into_iter()
                        .map(|(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
                        .collect();
                    out.push(format!("{peer}meta l4proto {proto} th dport {{ {} }} accept", ports.join(", ")));
                }
            }
        }
        if !rule.named.is_empty() {
            let set = format!("{name}-named");
            let elements =
                rule.named.iter().map(|(ip, proto, port)| format!("{ip} . {} . {port}", proto.nft())).collect();
            self.set(set.clone(), NAMED, elements);
            // Ingress: the target is the destination; egress: the destination is among the peers
            // already (only their named ports were resolved).
            let peer = if other == "saddr" { peer } else { String::new() };
            out.push(format!("{peer}ip daddr . meta l4proto . th dport @{set} accept"));
        }
        out
    }

    /// How many chains, rules and set elements the table holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.chains.len(),
            self.chains.values().map(|c| c.rules.len()).sum(),
            self.sets.values().map(|s| s.elements.len()).sum(),
        )
    }

    /// The `nft -f` script making the kernel's table this ruleset, in one transaction: with
    /// `previous` (what the kernel is believed to hold) only the difference (set elements added
    /// and deleted, changed chains flushed and refilled, what went away deleted), else the whole
    /// table replaced.
    pub fn script(&self, previous: Option<&Ruleset>) -> String {
        let t = TABLE;
        let mut s = String::new();
        let empty = Ruleset::default();
        let previous = match previous {
            Some(p) => {
                let _ = writeln!(s, "add table ip {t}");
                p
            }
            None => {
                let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}\nadd table ip {t}");
                &empty
            }
        };
        // Chains that changed or went away lose their rules first, so sets and chains they
        // referenced can go.
        for (name, old) in &previous.chains {
            if self.chains.get(name) != Some(old) {
                let _ = writeln!(s, "flush chain ip {t} {name}");
            }
        }
        for name in previous.chains.keys().filter(|n| !self.chains.contains_key(*n)) {
            let _ = writeln!(s, "delete chain ip {t} {name}");
        }
        for (name, old) in &previous.sets {
            match self.sets.get(name) {
                Some(new) if new.spec == old.spec => {
                    let gone: Vec<&str> = old.elements.difference(&new.elements).map(String::as_str).collect();
                    write_elements(&mut s, "delete", name, &gone);
                }
                _ => {
                    let _ = writeln!(s, "delete set ip {t} {name}");
                }
            }
        }
        for (name, set) in &self.sets {
            let old = previous.sets.get(name).filter(|o| o.spec == set.spec);
            if old.is_none() {
                let _ = writeln!(s, "add set ip {t} {name} {{ {} }}", set.spec);
            }
            let new: Vec<&str> = match old {
                Some(old) => set.elements.difference(&old.elements).map(String::as_str).collect(),
                None => set.elements.iter().map(String::as_str).collect(),
            };
            write_elements(&mut s, "add", name, &new);
        }
        let changed: Vec<(&String, &Chain)> =
            self.chains.iter().filter(|(name, c)| previous.chains.get(*name) != Some(*c)).collect();
        for (name, chain) in &changed {
            match chain.hook {
                Some(hook) => _ = writeln!(s, "add chain ip {t} {name} {{ {hook} }}"),
                None => _ = writeln!(s, "add chain ip {t} {name}"),
            }
        }
        for (name, chain) in changed {
            for rule in &chain.rules {
                let _ = writeln!(s, "add rule ip {t} {name} {rule}");
            }
        }
        s
    }
}

fn write_elements(s: &mut String, verb: &str, set: &str, elements: &[&str]) {
    for chunk in elements.chunks(1000) {
        let _ = writeln!(s, "{verb} element ip {TABLE} {set} {{ {} }}", chunk.join(", "));
    }
}

/// Counts chains, rules and set elements in `nft -j list table` output.
pub fn kernel_counts(json: &str) -> Option<(usize, usize, usize)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let (mut chains, mut rules, mut elements) = (0, 0, 0);
    for item in value.get("nftables")?.as_array()? {
        if item.get("chain").is_some() {
            chains += 1;
        } else if item.get("rule").is_some() {
            rules += 1;
        } else if let Some(set) = item.get("set") {
            elements += set.get("elem").and_then(|e| e.as_array()).map_or(0, Vec::len);
        }
    }
    Some((chains, rules, elements))
}

#[cfg(test)]
mod tests {
    use super::super::model::{PortRange, Protocol};
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy { key: "a/p".into(), targets: [ip("10.42.0.2")].into(), ingress: Some(rules), egress: None }
    }

    #[test]
    fn default_deny_renders_isolation_and_a_drop() {
        let rs = Ruleset::render(&[policy(vec![])]);
        let script = rs.script(None);
        let p = prefix("a/p");
        assert!(script.starts_with("add table ip skiff-netpol\ndelete table ip skiff-netpol\n"), "{script}");
        assert!(script.contains("add element ip skiff-netpol ingress-isolated { 10.42.0.2 }"), "{script}");
        assert!(script.contains("add element ip skiff-netpol self { 10.42.0.2 . 10.42.0.2 }"), "{script}");
        assert!(
            script.contains(&format!(
                "add rule ip skiff-netpol ingress ip daddr @{p}-targets jump {p}-in comment \"a/p\""
            ))
        );
        assert!(script.contains("add rule ip skiff-netpol ingress ct state established,related accept\n"));
        assert!(script.contains("add rule ip skiff-netpol ingress counter drop\n"));
        assert!(
            script.contains("add chain ip skiff-netpol egress { type filter hook forward priority 0; policy accept; }")
        );
        assert!(!script.contains("add element ip skiff-netpol egress-isolated"), "no egress isolation: {script}");
        assert!(!script.contains(&format!("add rule ip skiff-netpol {p}-in ")), "nothing allowed: {script}");
    }

    #[test]
    fn peers_ports_and_named_ports_render_as_sets_and_rules() {
        let rule = Rule {
            peers: Some(vec![(ip("10.42.0.3"), ip("10.42.0.3")), (ip("192.168.0.0"), ip("192.168.0.127"))]),
            ports: Some(vec![
                PortRange { protocol: Protocol::Tcp, range: Some((80, 80)) },
                PortRange { protocol: Protocol::Tcp, range: Some((8000, 8010)) },
                PortRange { protocol: Protocol::Udp, range: None },
            ]),
            named: [(ip("10.42.0.2"), Protocol::Tcp, 8080)].into(),
        };
        let script = Ruleset::render(&[policy(vec![rule, Rule::default()])]).script(None);
        let p = prefix("a/p");
        for line in [
            format!("add set ip skiff-netpol {p}-in0 {{ type ipv4_addr; flags interval; }}"),
            format!("add element ip skiff-netpol {p}-in0 {{ 10.42.0.3, 192.168.0.0-192.168.0.127 }}"),
            format!(
                "add rule ip skiff-netpol {p}-in ip saddr @{p}-in0 meta l4proto tcp th dport {{ 80, 8000-8010 }} accept"
            ),
            format!("add rule ip skiff-netpol {p}-in ip saddr @{p}-in0 meta l4proto udp accept"),
            format!("add element ip skiff-netpol {p}-in0-named {{ 10.42.0.2 . tcp . 8080 }}"),
            format!(
                "add rule ip skiff-netpol {p}-in ip saddr @{p}-in0 ip daddr . meta l4proto . th dport @{p}-in0-named accept"
            ),
            format!("add rule ip skiff-netpol {p}-in accept"),
        ] {
            assert!(script.contains(&format!("{line}\n")), "missing {line:?} in\n{script}");
        }
    }

    #[test]
    fn egress_rules_match_destinations() {
        let rule = Rule {
            peers: Some(vec![(ip("10.42.0.9"), ip("10.42.0.9"))]),
            ports: Some(vec![PortRange { protocol: Protocol::Udp, range: Some((53, 53)) }]),
            named: [(ip("10.42.0.9"), Protocol::Tcp, 8080)].into(),
        };
        let policy =
            Policy { key: "a/e".into(), targets: [ip("10.42.0.2")].into(), ingress: None, egress: Some(vec![rule]) };
        let script = Ruleset::render(&[policy]).script(None);
        let p = prefix("a/e");
        assert!(script.contains(&format!("add rule ip skiff-netpol egress ip saddr @{p}-targets jump {p}-eg")));
        assert!(script.contains(&format!(
            "add rule ip skiff-netpol {p}-eg ip daddr @{p}-eg0 meta l4proto udp th dport {{ 53 }} accept"
        )));
        assert!(script.contains(&format!(
            "add rule ip skiff-netpol {p}-eg ip daddr . meta l4proto . th dport @{p}-eg0-named accept"
        )));
    }

    #[test]
    fn a_pod_change_is_an_element_change() {
        let before = Ruleset::render(&[policy(vec![Rule {
            peers: Some(vec![(ip("10.42.0.3"), ip("10.42.0.3"))]),
            ..Rule::default()
        }])]);
        let after = Ruleset::render(&[policy(vec![Rule {
            peers: Some(vec![(ip("10.42.0.4"), ip("10.42.0.4"))]),
            ..Rule::default()
        }])]);
        let p = prefix("a/p");
        assert_eq!(
            after.script(Some(&before)),
            format!(
                "add table ip skiff-netpol\n\
                 delete element ip skiff-netpol {p}-in0 {{ 10.42.0.3 }}\n\
                 add element ip skiff-netpol {p}-in0 {{ 10.42.0.4 }}\n"
            )
        );
        assert_eq!(after.script(Some(&after)), "add table ip skiff-netpol\n", "no change, no-op");
        // The policy goes away: its chain and sets are removed, the base chain refilled.
        let gone = Ruleset::render(&[]).script(Some(&after));
        assert!(gone.contains(&format!("flush chain ip skiff-netpol {p}-in\n")), "{gone}");
        assert!(gone.contains(&format!("delete chain ip skiff-netpol {p}-in\n")), "{gone}");
        assert!(gone.contains(&format!("delete set ip skiff-netpol {p}-in0\n")), "{gone}");
        assert!(gone.contains("flush chain ip skiff-netpol ingress\n"), "{gone}");
        let flush = gone.find("flush chain ip skiff-netpol ingress").expect("flush");
        assert!(flush < gone.find(&format!("delete chain ip skiff-netpol {p}-in")).expect("delete"));
    }

    /// With `SKIFF_NETPOL_DUMP=dir`, writes a full and an incremental script there (for trying
    /// them with `nft -c -f`).
    #[test]
    fn dump_scripts() {
        let Some(dir) = std::env::var_os("SKIFF_NETPOL_DUMP") else { return };
        let dir = std::path::PathBuf::from(dir);
        let rule = |peer: &str| Rule {
            peers: Some(vec![(ip(peer), ip(peer)), (ip("192.168.0.0"), ip("192.168.0.127"))]),
            ports: Some(vec![
                PortRange { protocol: Protocol::Tcp, range: Some((80, 80)) },
                PortRange { protocol: Protocol::Udp, range: None },
            ]),
            named: [(ip("10.42.0.2"), Protocol::Tcp, 8080)].into(),
        };
        let egress = Policy {
            key: "a/e".into(),
            targets: [ip("10.42.0.2")].into(),
            ingress: None,
            egress: Some(vec![rule("10.42.0.5")]),
        };
        let before = Ruleset::render(&[policy(vec![rule("10.42.0.3")]), egress.clone()]);
        let after = Ruleset::render(&[policy(vec![rule("10.42.0.4"), Rule::default()])]);
        std::fs::write(dir.join("full.nft"), before.script(None)).expect("write");
        std::fs::write(dir.join("update.nft"), after.script(Some(&before))).expect("write");
        std::fs::write(dir.join("counts"), format!("{:?} {:?}", before.counts(), after.counts())).expect("write");
    }

    #[test]
    fn counts_agree_with_the_kernel_listing() {
        let rs = Ruleset::render(&[policy(vec![Rule::default()])]);
        let (chains, rules, elements) = rs.counts();
        assert_eq!((chains, elements), (3, 3), "ingress, egress, policy chain; targets, isolated, self");
        assert_eq!(rules, 5 + 4 + 1, "ingress: 3 + jump + drop, egress: 3 + drop, the policy's accept");
        let json = r#"{"nftables": [{"metainfo": {}}, {"table": {}}, {"set": {"name": "a", "elem": ["1", "2"]}},
            {"set": {"name": "b"}}, {"chain": {"name": "c"}}, {"rule": {"chain": "c"}}]}"#;
        assert_eq!(kernel_counts(json), Some((1, 1, 2)));
        assert_eq!(kernel_counts("Error"), None);
    }
}
