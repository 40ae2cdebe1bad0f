//! The cluster domain's records, computed from Services, EndpointSlices and Pods as the
//! Kubernetes DNS specification (and CoreDNS's `kubernetes` plugin, where the specification
//! leaves a choice) says:
//!
//! - `<svc>.<ns>.svc.<zone>`: A with the cluster IP; for headless Services one A per ready
//!   endpoint; for ExternalName Services a CNAME to the external name;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV per named port (targets: the Service, or each
//!   ready endpoint of a headless Service, with their A records as additional records);
//! - `<hostname>.<svc>.<ns>.svc.<zone>`: A for a headless Service's endpoint (its `hostname`,
//!   else its address with dashes, as CoreDNS);
//! - `<a-b-c-d>.<ns>.pod.<zone>`: A for pods with that address (CoreDNS's `pods verified`);
//! - PTR for cluster IPs, headless endpoints and pod addresses in the reverse zones of the
//!   service and cluster CIDRs;
//! - the apex: SOA and NS; empty non-terminals exist (NODATA, not NXDOMAIN).
//!
//! Everything is rendered to wire bytes when the objects change ([`Zone::build`]); a query is
//! one hash lookup ([`Zone::lookup`]). What does not live here: the wire format helpers
//! ([`crate::wire`]), serving and forwarding.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use hickory_proto::rr::Name;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::wire::{self, Answer, QNAME_POINTER, rtype};

/// TTL of every record, as CoreDNS's `kubernetes` plugin is configured in clusters (`ttl 30`).
pub const TTL: u32 = 30;

/// What the zone needs besides the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// The cluster DNS Service's address (the apex's `ns.dns.<zone>` A record).
    pub dns_ip: Ipv4Addr,
    /// Reverse zones are served for these ranges (service and cluster CIDRs).
    pub reverse_ranges: Vec<Ipv4Net>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Records of the asked type (or a CNAME).
    Answer(&'a Answer),
    /// The name exists without records of that type: NODATA with the zone's SOA.
    NoData(&'a [u8]),
    /// The name does not exist in a zone served here: NXDOMAIN with the zone's SOA.
    NxDomain(&'a [u8]),
    /// Not ours: forward.
    NotOurs,
}

/// (apex wire name, its SOA record).
type Apex = (Box<[u8]>, Box<[u8]>);

#[derive(Debug, Clone, Default)]
struct Entry {
    /// (type, answer); a CNAME answers every type but its target's own.
    answers: Vec<(u16, Answer)>,
}

/// An immutable snapshot of every record served.
#[derive(Debug, Default)]
pub struct Zone {
    names: HashMap<Box<[u8]>, Entry>,
    /// (apex, SOA record with the apex as owner), the cluster domain first.
    apexes: Vec<Apex>,
}

/// One record being collected: its RDATA and the names (wire) its additional records are for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rr {
    rtype: u16,
    rdata: Vec<u8>,
    additional_for: Option<Vec<u8>>,
}

#[derive(Default)]
struct Builder {
    records: BTreeMap<Vec<u8>, BTreeSet<Rr>>,
    /// Names that exist without records of their own.
    exists: BTreeSet<Vec<u8>>,
}

impl Builder {
    fn add(&mut self, owner: &str, rtype: u16, rdata: Vec<u8>, additional_for: Option<Vec<u8>>) {
        self.records.entry(wire::name(owner)).or_default().insert(Rr { rtype, rdata, additional_for });
    }

    fn a(&mut self, owner: &str, ip: Ipv4Addr) {
        self.add(owner, rtype::A, ip.octets().to_vec(), None);
    }

    fn name_rdata(&mut self, owner: &str, rtype: u16, target: &str) {
        self.add(owner, rtype, wire::name(target), None);
    }

    fn srv(&mut self, owner: &str, weight: u16, port: u16, target: &str) {
        let mut rdata = Vec::with_capacity(6 + target.len() + 2);
        rdata.extend_from_slice(&0u16.to_be_bytes());
        rdata.extend_from_slice(&weight.to_be_bytes());
        rdata.extend_from_slice(&port.to_be_bytes());
        rdata.extend_from_slice(&wire::name(target));
        self.add(owner, rtype::SRV, rdata, Some(wire::name(target)));
    }
}

fn reverse_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

/// The reverse zone holding `net` (its prefix rounded down to whole octets).
fn reverse_apex(net: Ipv4Net) -> String {
    let o = net.network().octets();
    let whole = usize::from(net.prefix_len() / 8);
    let mut labels: Vec<String> = o[..whole].iter().rev().map(u8::to_string).collect();
    labels.push("in-addr".into());
    labels.push("arpa".into());
    labels.join(".")
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// The SOA record of `apex` (owner written out), as CoreDNS writes it.
fn soa(apex: &str, domain: &str, serial: u32) -> Vec<u8> {
    let mut rdata = wire::name(&format!("ns.dns.{domain}"));
    rdata.extend_from_slice(&wire::name(&format!("hostmaster.{domain}")));
    for n in [serial, 7200, 1800, 86400, TTL] {
        rdata.extend_from_slice(&n.to_be_bytes());
    }
    let mut out = Vec::new();
    wire::record(&mut out, &wire::name(apex), rtype::SOA, TTL, &rdata);
    out
}

impl Zone {
    /// Computes the records of `services`, `slices` and `pods`.
    pub fn build<'a>(
        cfg: &ZoneConfig,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        pods: impl IntoIterator<Item = &'a Pod>,
        serial: u32,
    ) -> Zone {
        let d = cfg.domain.trim_end_matches('.').to_ascii_lowercase();
        let mut b = Builder::default();
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                continue;
            }
            let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) else {
                continue;
            };
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            by_service.entry((ns, svc.clone())).or_default().push(slice);
        }
        // Apex.
        b.name_rdata(&d, rtype::NS, &format!("ns.dns.{d}"));
        b.a(&format!("ns.dns.{d}"), cfg.dns_ip);
        let mut ptrs: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for svc in services {
            let (Some(spec), Some(name)) = (svc.spec.as_ref(), svc.metadata.name.as_deref()) else { continue };
            let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            let fqdn = format!("{name}.{ns}.svc.{d}");
            b.exists.insert(wire::name(&format!("{ns}.svc.{d}")));
            if spec.type_.as_deref() == Some("ExternalName") {
                let target = spec.external_name.as_deref().unwrap_or("");
                if Name::from_ascii(target).is_ok() && !target.is_empty() {
                    b.name_rdata(&fqdn, rtype::CNAME, target);
                } else {
                    b.exists.insert(wire::name(&fqdn));
                }
                continue;
            }
            b.exists.insert(wire::name(&fqdn));
            let cluster_ip = spec.cluster_ip.as_deref().filter(|ip| *ip != "None" && !ip.is_empty());
            if let Some(ip) = cluster_ip {
                let Ok(ip) = ip.parse::<Ipv4Addr>() else { continue };
                b.a(&fqdn, ip);
                ptrs.insert(ip, fqdn.clone());
                for port in spec.ports.iter().flatten() {
                    let (Some(pname), Ok(number)) = (port.name.as_deref(), u16::try_from(port.port)) else { continue };
                    let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    b.srv(&format!("_{pname}._{proto}.{fqdn}"), 100, number, &fqdn);
                }
                continue;
            }
            // Headless: the ready endpoints.
            let slices = by_service.get(&(ns.to_string(), name.to_string())).cloned().unwrap_or_default();
            let mut endpoints: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
            let mut ports: BTreeSet<(String, String, u16)> = BTreeSet::new();
            for slice in &slices {
                for port in slice.ports.iter().flatten() {
                    if let (Some(pname), Some(number)) =
                        (port.name.as_deref(), port.port.and_then(|p| u16::try_from(p).ok()))
                        && !pname.is_empty()
                    {
                        let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                        ports.insert((pname.to_string(), proto, number));
                    }
                }
                for ep in &slice.endpoints {
                    if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                        continue;
                    }
                    for addr in &ep.addresses {
                        let Ok(ip) = addr.parse::<Ipv4Addr>() else { continue };
                        let host = ep.hostname.clone().unwrap_or_else(|| dashed(ip));
                        endpoints.entry(ip).or_insert(host);
                    }
                }
            }
            let weight = if endpoints.is_empty() { 100 } else { (100 / endpoints.len()).max(1) as u16 };
            for (ip, host) in &endpoints {
                let ep_name = format!("{host}.{fqdn}");
                b.a(&fqdn, *ip);
                b.a(&ep_name, *ip);
                ptrs.insert(*ip, ep_name.clone());
                for (pname, proto, number) in &ports {
                    b.srv(&format!("_{pname}._{proto}.{fqdn}"), weight, *number, &ep_name);
                }
            }
        }
        for pod in pods {
            let Some(status) = pod.status.as_ref() else { continue };
            let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else { continue };
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
            let name = format!("{}.{ns}.pod.{d}", dashed(ip));
            b.a(&name, ip);
            if !host_network {
                ptrs.entry(ip).or_insert(name);
            }
        }
        let mut apexes: Vec<Apex> = vec![(wire::name(&d).into(), soa(&d, &d, serial).into())];
        b.add(&d, rtype::SOA, soa(&d, &d, serial)[wire::name(&d).len() + 10..].to_vec(), None);
        let mut reverse: Vec<String> = cfg.reverse_ranges.iter().map(|n| reverse_apex(*n)).collect();
        reverse.sort();
        reverse.dedup();
        for apex in &reverse {
            apexes.push((wire::name(apex).into(), soa(apex, &d, serial).into()));
            b.exists.insert(wire::name(apex));
        }
        for (ip, target) in ptrs {
            if cfg.reverse_ranges.iter().any(|n| n.contains(&ip)) {
                b.name_rdata(&reverse_name(ip), rtype::PTR, &target);
            }
        }
        Zone::finish(b, apexes)
    }

    fn finish(b: Builder, apexes: Vec<Apex>) -> Zone {
        let mut names: HashMap<Box<[u8]>, Entry> = HashMap::new();
        // Empty non-terminals: every ancestor of a name, up to its apex.
        let mut all: BTreeSet<Vec<u8>> = b.exists.clone();
        all.extend(b.records.keys().cloned());
        for n in all.clone() {
            let Some((apex, _)) = apexes.iter().find(|(a, _)| wire::within(&n, a)) else { continue };
            let mut at = 0;
            while n[at..] != **apex {
                at += 1 + n[at] as usize;
                all.insert(n[at..].to_vec());
            }
        }
        for n in all {
            names.entry(n.into()).or_default();
        }
        for (owner, rrs) in &b.records {
            let entry = names.entry(owner.clone().into()).or_default();
            let types: BTreeSet<u16> = rrs.iter().map(|r| r.rtype).collect();
            for t in types {
                let mut answer = Answer::default();
                let mut bytes = Vec::new();
                let mut extra = Vec::new();
                for rr in rrs.iter().filter(|r| r.rtype == t) {
                    wire::record(&mut bytes, &QNAME_POINTER, t, TTL, &rr.rdata);
                    answer.an += 1;
                    if let Some(target) = &rr.additional_for {
                        for a in b.records.get(target).into_iter().flatten().filter(|r| r.rtype == rtype::A) {
                            wire::record(&mut extra, target, rtype::A, TTL, &a.rdata);
                            answer.ar += 1;
                        }
                    }
                }
                bytes.extend_from_slice(&extra);
                answer.bytes = bytes.into();
                entry.answers.push((t, answer));
            }
        }
        Zone { names, apexes }
    }

    /// Looks up lowercase wire name `name` for `qtype`.
    pub fn lookup(&self, name: &[u8], qtype: u16) -> Lookup<'_> {
        match self.names.get(name) {
            Some(entry) => {
                if let Some((_, a)) = entry.answers.iter().find(|(t, _)| *t == qtype) {
                    return Lookup::Answer(a);
                }
                if let Some((_, a)) = entry.answers.iter().find(|(t, _)| *t == rtype::CNAME) {
                    return Lookup::Answer(a);
                }
                Lookup::NoData(self.soa_for(name))
            }
            None => match self.apexes.iter().find(|(apex, _)| wire::within(name, apex)) {
                Some((_, soa)) => Lookup::NxDomain(soa),
                None => Lookup::NotOurs,
            },
        }
    }

    fn soa_for(&self, name: &[u8]) -> &[u8] {
        self.apexes.iter().find(|(apex, _)| wire::within(name, apex)).map_or(&[][..], |(_, soa)| soa)
    }

    /// How many names the zone holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the zone holds no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, RecordType};

    use super::*;
    use crate::wire::{Sections, parse, respond};

    fn cfg() -> ZoneConfig {
        ZoneConfig {
            domain: "cluster.local".into(),
            dns_ip: "10.43.0.10".parse().unwrap(),
            reverse_ranges: vec!["10.43.0.0/16".parse().unwrap(), "10.42.0.0/16".parse().unwrap()],
        }
    }

    fn zone() -> Zone {
        let svc = |v: serde_json::Value| -> Service { serde_json::from_value(v).unwrap() };
        let services = [
            svc(serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}})),
            svc(serde_json::json!({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
            svc(serde_json::json!({"metadata": {"name": "ext", "namespace": "other"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        ];
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "hostname": "db-0"},
                {"addresses": ["10.42.0.8"]},
                {"addresses": ["10.42.0.9"], "conditions": {"ready": false}}
            ]
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"}, "status": {"podIP": "10.42.0.30"}}))
        .unwrap();
        Zone::build(&cfg(), &services, [&slice], [&pod], 1)
    }

    /// Asks the zone as the server does and decodes the response with hickory.
    fn ask(zone: &Zone, name: &str, qtype: RecordType) -> Message {
        let mut q = Message::query();
        q.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).unwrap(), qtype));
        let packet = q.to_vec().unwrap();
        let mut lower = [0; 256];
        let parsed = parse(&packet, &mut lower).unwrap();
        let sections = match zone.lookup(&lower[..parsed.name_len], parsed.qtype) {
            Lookup::Answer(a) => Sections { aa: true, answer: Some(a), ..Default::default() },
            Lookup::NoData(soa) => Sections { aa: true, authority: Some(soa), ..Default::default() },
            Lookup::NxDomain(soa) => Sections { aa: true, rcode: 3, authority: Some(soa), ..Default::default() },
            Lookup::NotOurs => panic!("{name} is not ours"),
        };
        let mut out = Vec::new();
        respond(&mut out, &parsed, sections, false);
        Message::from_vec(&out).unwrap()
    }

    fn rdata(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn cluster_ip_services_and_their_srv_records() {
        let z = zone();
        let m = ask(&z, "Web.Default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&m), ["10.43.0.20"]);
        assert_eq!(m.answers[0].ttl, 30);
        assert_eq!(m.answers[0].name.to_ascii(), "Web.Default.svc.cluster.local.");
        assert!(m.metadata.authoritative);
        let m = ask(&z, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(rdata(&m), ["0 100 80 web.default.svc.cluster.local."]);
        assert_eq!(m.additionals.len(), 1);
        let m = ask(&z, "20.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&m), ["web.default.svc.cluster.local."]);
    }

    #[test]
    fn headless_services_answer_their_ready_endpoints() {
        let z = zone();
        let m = ask(&z, "db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&m), ["10.42.0.7", "10.42.0.8"]);
        let m = ask(&z, "db-0.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&m), ["10.42.0.7"]);
        let m = ask(&z, "10-42-0-8.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&m), ["10.42.0.8"]);
        let m = ask(&z, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            rdata(&m),
            ["0 50 5432 db-0.db.default.svc.cluster.local.", "0 50 5432 10-42-0-8.db.default.svc.cluster.local."]
        );
        assert_eq!(m.additionals.len(), 2);
        let m = ask(&z, "7.0.42.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&m), ["db-0.db.default.svc.cluster.local."]);
    }

    #[test]
    fn external_names_pods_and_the_apex() {
        let z = zone();
        let m = ask(&z, "ext.other.svc.cluster.local.", RecordType::A);
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(rdata(&m), ["example.com."]);
        let m = ask(&z, "10-42-0-30.default.pod.cluster.local.", RecordType::A);
        assert_eq!(rdata(&m), ["10.42.0.30"]);
        let m = ask(&z, "30.0.42.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&m), ["10-42-0-30.default.pod.cluster.local."]);
        let m = ask(&z, "cluster.local.", RecordType::SOA);
        assert!(matches!(m.answers[0].data, RData::SOA(_)));
        let m = ask(&z, "cluster.local.", RecordType::NS);
        assert_eq!(rdata(&m), ["ns.dns.cluster.local."]);
    }

    #[test]
    fn nxdomain_and_nodata_carry_the_soa() {
        let z = zone();
        let m = ask(&z, "nope.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");
        assert_eq!(m.authorities[0].ttl, 30);
        // The name exists, the type does not: NODATA.
        let m = ask(&z, "web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, hickory_proto::op::ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        // Empty non-terminals exist.
        for name in ["default.svc.cluster.local.", "svc.cluster.local.", "_tcp.web.default.svc.cluster.local."] {
            let m = ask(&z, name, RecordType::A);
            assert_eq!(m.metadata.response_code, hickory_proto::op::ResponseCode::NoError, "{name}");
        }
        let m = ask(&z, "99.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(m.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        assert_eq!(m.authorities[0].name.to_ascii(), "43.10.in-addr.arpa.");
        // Unready endpoints are not served; another domain is not ours.
        let m = ask(&z, "10-42-0-9.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        let mut lower = [0; 256];
        let packet = {
            let mut q = Message::query();
            q.add_query(hickory_proto::op::Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::A));
            q.to_vec().unwrap()
        };
        let parsed = parse(&packet, &mut lower).unwrap();
        assert_eq!(z.lookup(&lower[..parsed.name_len], 1), Lookup::NotOurs);
    }
}
