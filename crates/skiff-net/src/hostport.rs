//! `hostPort` mappings: traffic to a port of the node is forwarded (DNAT) to a pod, as the CNI
//! `portmap` plugin does, in the nftables table `ip skiff-hostport`.
//!
//! Every pod's mappings are recorded as a file (`<data-dir>/agent/hostports/<hash of the pod
//! key>`), and the whole table is rewritten from the records by one `nft -f` script whenever they
//! change (and when the agent starts): the table always says exactly what the records say, so
//! adding is idempotent, a restart repairs a flushed table, and the table is deleted with the last
//! mapping. The table:
//!
//! - `prerouting` and `output` (NAT, `dstnat` priority) send packets for a local address to `hostports`,
//!   which holds per mapping a DNAT rule to `<pod IP>:<containerPort>` (only for `hostIP` if set)
//!   and a rule marking packets from the node's loopback or from pods for masquerade;
//! - `postrouting` (NAT, `srcnat`) masquerades marked packets, so a pod answers connections made
//!   from `127.0.0.1` (allowed out of the bridge by `route_localnet`) or hairpinned by a pod
//!   through the node's address;
//! - `guard` (filter, `raw`) drops packets arriving on the bridge for `127.0.0.0/8`, which
//!   `route_localnet` would otherwise let pods send to the node's loopback services.
//!
//! What does not live here: which ports a pod asks for (the agent reads `ports[].hostPort`), and
//! running `nft` (the [`crate::Dataplane`]).

use std::fs;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use sha2::{Digest as _, Sha256};

/// The nftables table of hostPort mappings.
pub const TABLE: &str = "skiff-hostport";
/// The packet mark of connections to masquerade (the `portmap` plugin's).
pub const MASQUERADE_MARK: u32 = 0x2000;

/// hostPort failures.
#[derive(Debug, thiserror::Error)]
pub enum HostPortError {
    /// A record file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A record file that cannot be read back.
    #[error("{0}: not a hostPort record")]
    Corrupt(PathBuf),
    /// Another pod already maps the port.
    #[error("host port {port} is already allocated to pod {owner}")]
    Conflict {
        /// `<hostIP>:<hostPort>/<protocol>`.
        port: String,
        /// The key of the pod holding it.
        owner: String,
    },
    /// A key that cannot be recorded.
    #[error("invalid pod key {0:?}: it must be non-empty and single-line")]
    InvalidKey(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HostPortError + '_ {
    move |source| HostPortError::Io { path: path.to_path_buf(), source }
}

/// A transport protocol of a mapping.
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
    /// From a Kubernetes `protocol` (`TCP`, `UDP`, `SCTP`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            "sctp" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The nftables name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One mapping of a pod: `hostIP:hostPort/protocol` → `<pod IP>:containerPort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// The transport protocol.
    pub protocol: Protocol,
    /// Only traffic for this local address (every local address if none).
    pub host_ip: Option<Ipv4Addr>,
    /// The node's port.
    pub host_port: u16,
    /// The pod's port.
    pub container_port: u16,
}

impl HostPort {
    fn describe(&self) -> String {
        let ip = self.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string());
        format!("{ip}:{}/{}", self.host_port, self.protocol.as_str().to_ascii_uppercase())
    }

    fn overlaps(&self, other: &HostPort) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// The recorded mappings of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPorts {
    /// The pod key.
    pub key: String,
    /// The pod's address.
    pub pod_ip: Ipv4Addr,
    /// Its mappings.
    pub ports: Vec<HostPort>,
}

impl PodPorts {
    fn encode(&self) -> String {
        let mut out = format!("{}\n{}\n", self.key, self.pod_ip);
        for p in &self.ports {
            let ip = p.host_ip.map_or("-".to_string(), |ip| ip.to_string());
            out.push_str(&format!("{} {ip} {} {}\n", p.protocol.as_str(), p.host_port, p.container_port));
        }
        out
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let key = lines.next()?.to_string();
        let pod_ip = lines.next()?.parse().ok()?;
        let mut ports = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [protocol, ip, host_port, container_port] = fields.as_slice() else { return None };
            ports.push(HostPort {
                protocol: Protocol::parse(protocol)?,
                host_ip: if *ip == "-" { None } else { Some(ip.parse().ok()?) },
                host_port: host_port.parse().ok()?,
                container_port: container_port.parse().ok()?,
            });
        }
        Some(Self { key, pod_ip, ports })
    }
}

/// The records of every pod's mappings (`<data-dir>/agent/hostports/`).
///
/// Calls for one pod must not overlap with calls for another (the caller serialises them: the
/// table is rewritten from all records).
#[derive(Debug, Clone)]
pub struct HostPorts {
    dir: PathBuf,
}

impl HostPorts {
    /// Opens (creating) the record directory.
    pub fn open(dir: &Path) -> Result<Self, HostPortError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn path(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        self.dir.join(digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
    }

    /// Every pod's record, ordered by key.
    pub fn all(&self) -> Result<Vec<PodPorts>, HostPortError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            out.push(PodPorts::decode(&text).ok_or(HostPortError::Corrupt(path))?);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Records `ports` (none removes the record) for pod `key` at `pod_ip`; whether anything
    /// changed. Refuses ports another pod holds.
    pub fn set(&self, key: &str, pod_ip: Ipv4Addr, ports: &[HostPort]) -> Result<bool, HostPortError> {
        if key.is_empty() || key.contains('\n') {
            return Err(HostPortError::InvalidKey(key.to_string()));
        }
        if ports.is_empty() {
            return self.remove(key);
        }
        let mut ports = ports.to_vec();
        ports.sort();
        ports.dedup();
        for other in self.all()?.iter().filter(|o| o.key != key) {
            if let Some(p) = ports.iter().find(|p| other.ports.iter().any(|o| o.overlaps(p))) {
                return Err(HostPortError::Conflict { port: p.describe(), owner: other.key.clone() });
            }
        }
        let record = PodPorts { key: key.to_string(), pod_ip, ports };
        let path = self.path(key);
        if fs::read_to_string(&path).ok().as_deref() == Some(record.encode().as_str()) {
            return Ok(false);
        }
        let mut tmp = tempfile::Builder::new().prefix(".tmp").tempfile_in(&self.dir).map_err(io_err(&self.dir))?;
        tmp.write_all(record.encode().as_bytes()).map_err(io_err(&path))?;
        tmp.as_file().sync_all().map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        Ok(true)
    }

    /// Forgets pod `key`'s mappings; whether it had any.
    pub fn remove(&self, key: &str) -> Result<bool, HostPortError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

fn quote(comment: &str) -> String {
    // nft comments are double-quoted strings without escapes.
    comment.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).take(128).collect()
}

/// The `nft -f` script that makes the table hold exactly `pods`' mappings (or removes it when
/// there are none), for the pod network on `bridge` with `pod_cidr`. One transaction.
pub fn script(bridge: &str, pod_cidr: Ipv4Net, pods: &[PodPorts]) -> String {
    let t = format!("ip {TABLE}");
    let mut s = format!("add table {t}\ndelete table {t}\n");
    if pods.iter().all(|p| p.ports.is_empty()) {
        return s;
    }
    let cidr = pod_cidr.trunc();
    s.push_str(&format!(
        "add table {t}\n\
         add chain {t} hostports\n\
         add chain {t} guard {{ type filter hook prerouting priority raw; policy accept; }}\n\
         add rule {t} guard iifname \"{bridge}\" ip daddr 127.0.0.0/8 drop\n\
         add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add rule {t} prerouting fib daddr type local jump hostports\n\
         add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n\
         add rule {t} output fib daddr type local jump hostports\n\
         add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add rule {t} postrouting meta mark and {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade\n"
    ));
    for pod in pods {
        let comment = quote(&pod.key);
        for p in &pod.ports {
            let daddr = p.host_ip.map_or(String::new(), |ip| format!("ip daddr {ip} "));
            let ports = format!("{daddr}meta l4proto {} th dport {}", p.protocol.as_str(), p.host_port);
            s.push_str(&format!(
                "add rule {t} hostports {ports} ip saddr {{ 127.0.0.0/8, {cidr} }} meta mark set meta mark or {MASQUERADE_MARK:#x} comment \"{comment}\"\n\
                 add rule {t} hostports {ports} dnat to {}:{} comment \"{comment}\"\n",
                pod.pod_ip, p.container_port
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host_port: u16, container_port: u16) -> HostPort {
        HostPort { protocol: Protocol::Tcp, host_ip: None, host_port, container_port }
    }

    #[test]
    fn records_round_trip_and_refuse_taken_ports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hp = HostPorts::open(dir.path()).expect("open");
        let ip: Ipv4Addr = "10.42.0.5".parse().expect("ip");
        let udp = HostPort {
            protocol: Protocol::Udp,
            host_ip: Some("10.0.0.1".parse().expect("ip")),
            host_port: 53,
            container_port: 5353,
        };
        assert!(hp.set("pod-a", ip, &[tcp(8080, 80), udp, tcp(8080, 80)]).expect("set"));
        assert!(!hp.set("pod-a", ip, &[udp, tcp(8080, 80)]).expect("same again"), "idempotent");
        let all = hp.all().expect("all");
        assert_eq!(all, [PodPorts { key: "pod-a".into(), pod_ip: ip, ports: vec![tcp(8080, 80), udp] }]);

        let err = hp.set("pod-b", "10.42.0.6".parse().expect("ip"), &[tcp(8080, 8080)]).expect_err("taken");
        assert_eq!(err.to_string(), "host port 0.0.0.0:8080/TCP is already allocated to pod pod-a");
        // Another protocol, or another address for a port bound to one address, is free.
        let other_ip = HostPort { host_ip: Some("10.0.0.2".parse().expect("ip")), ..udp };
        assert!(
            hp.set(
                "pod-b",
                "10.42.0.6".parse().expect("ip"),
                &[HostPort { protocol: Protocol::Udp, ..tcp(8080, 1) }, other_ip]
            )
            .expect("free")
        );

        assert!(hp.remove("pod-a").expect("remove"));
        assert!(!hp.remove("pod-a").expect("again"));
        assert!(!hp.set("pod-c", ip, &[]).expect("nothing to record"));
        assert_eq!(hp.all().expect("all").len(), 1);
        assert!(matches!(hp.set("a\nb", ip, &[tcp(1, 1)]), Err(HostPortError::InvalidKey(_))));
    }

    #[test]
    fn the_script_rebuilds_the_table_in_one_transaction() {
        let pods = [
            PodPorts { key: "uid-1".into(), pod_ip: "10.42.0.5".parse().expect("ip"), ports: vec![tcp(8080, 80)] },
            PodPorts {
                key: "uid-\"2\"".into(),
                pod_ip: "10.42.0.6".parse().expect("ip"),
                ports: vec![HostPort {
                    protocol: Protocol::Udp,
                    host_ip: Some("192.168.1.10".parse().expect("ip")),
                    host_port: 5353,
                    container_port: 53,
                }],
            },
        ];
        let s = script("skiff0", "10.42.0.1/24".parse().expect("cidr"), &pods);
        assert_eq!(
            s,
            "add table ip skiff-hostport\n\
             delete table ip skiff-hostport\n\
             add table ip skiff-hostport\n\
             add chain ip skiff-hostport hostports\n\
             add chain ip skiff-hostport guard { type filter hook prerouting priority raw; policy accept; }\n\
             add rule ip skiff-hostport guard iifname \"skiff0\" ip daddr 127.0.0.0/8 drop\n\
             add chain ip skiff-hostport prerouting { type nat hook prerouting priority dstnat; policy accept; }\n\
             add rule ip skiff-hostport prerouting fib daddr type local jump hostports\n\
             add chain ip skiff-hostport output { type nat hook output priority -100; policy accept; }\n\
             add rule ip skiff-hostport output fib daddr type local jump hostports\n\
             add chain ip skiff-hostport postrouting { type nat hook postrouting priority srcnat; policy accept; }\n\
             add rule ip skiff-hostport postrouting meta mark and 0x2000 == 0x2000 masquerade\n\
             add rule ip skiff-hostport hostports meta l4proto tcp th dport 8080 ip saddr { 127.0.0.0/8, 10.42.0.0/24 } meta mark set meta mark or 0x2000 comment \"uid-1\"\n\
             add rule ip skiff-hostport hostports meta l4proto tcp th dport 8080 dnat to 10.42.0.5:80 comment \"uid-1\"\n\
             add rule ip skiff-hostport hostports ip daddr 192.168.1.10 meta l4proto udp th dport 5353 ip saddr { 127.0.0.0/8, 10.42.0.0/24 } meta mark set meta mark or 0x2000 comment \"uid-2\"\n\
             add rule ip skiff-hostport hostports ip daddr 192.168.1.10 meta l4proto udp th dport 5353 dnat to 10.42.0.6:53 comment \"uid-2\"\n"
        );
        assert_eq!(
            script("skiff0", "10.42.0.0/24".parse().expect("cidr"), &[]),
            "add table ip skiff-hostport\ndelete table ip skiff-hostport\n"
        );
    }

    #[test]
    fn protocols_parse_like_kubernetes_spells_them() {
        assert_eq!(Protocol::parse("TCP"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("UDP"), Some(Protocol::Udp));
        assert_eq!(Protocol::parse("SCTP"), Some(Protocol::Sctp));
        assert_eq!(Protocol::parse("ICMP"), None);
    }
}
