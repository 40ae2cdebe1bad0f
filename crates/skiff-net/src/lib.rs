//! skiff's pod network (DESIGN.md §7): the node's bridge, one veth pair per pod, pod addresses
//! from the node's pod CIDR, and masquerade for traffic leaving it.
//!
//! What lives here: [`PodNetwork`] (setup, teardown and garbage collection of pod networking),
//! the persistent [`ipam`], pods' [`hostport`] mappings, the kernel side behind the [`Dataplane`]
//! trait ([`netlink`] for links, addresses and routes, [`nat`] for nftables), so the
//! orchestration is unit-tested with a fake. What does not (yet): routes to other nodes' pod
//! CIDRs. The service [`proxy`] and [`netpol`] (NetworkPolicy enforcement) live here too. The sandbox whose network namespace a pod lives in
//! is `skiff-runtime`'s.

pub mod hostport;
pub mod ipam;
pub mod nat;
pub mod netlink;
pub mod netpol;
pub mod proxy;
pub mod watch;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use ipnet::Ipv4Net;
use sha2::{Digest as _, Sha256};

use crate::hostport::{HostPort, HostPortError, HostPorts};
use crate::ipam::{Ipam, IpamError};
use crate::nat::{Masquerade, NatError};
use crate::netlink::{NetlinkError, PodLink};

/// The default bridge of a node.
pub const DEFAULT_BRIDGE: &str = "skiff0";

/// Pod network failures.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Address management.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// Links, addresses, routes.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// nftables.
    #[error(transparent)]
    Nat(#[from] NatError),
    /// hostPort records.
    #[error(transparent)]
    HostPort(#[from] HostPortError),
    /// The pod has no address (hostPorts need one).
    #[error("pod {0} has no address on the pod network")]
    NoAddress(String),
    /// A bridge name the kernel or nftables would not accept.
    #[error("invalid bridge name {0:?}: 1-15 letters, digits, '-', '_' or '.', starting with a letter")]
    InvalidBridge(String),
}

/// The kernel operations a pod network needs; [`Kernel`] is the real one.
pub trait Dataplane: Send + Sync {
    /// Makes sure the bridge exists with the gateway address and is up, forwarding is on, and the
    /// masquerade chain is programmed. Idempotent.
    fn ensure_host(&self, bridge: &str, gateway: Ipv4Addr, masquerade: &Masquerade) -> Result<(), NetError>;
    /// Removes what [`Dataplane::ensure_host`] made.
    fn remove_host(&self, bridge: &str, masquerade: &Masquerade) -> Result<(), NetError>;
    /// Creates and configures a pod's veth pair (see [`netlink::create_pod_link`]).
    fn create_pod_link(&self, link: &PodLink) -> Result<(), NetError>;
    /// Deletes a link of the host namespace; absent is fine.
    fn delete_link(&self, name: &str) -> Result<(), NetError>;
    /// Programs the hostPort table with `script` ([`hostport::script`]) and, when it maps ports,
    /// lets `bridge` carry traffic from the node's loopback (`route_localnet`).
    fn apply_host_ports(&self, bridge: &str, script: &str, maps_ports: bool) -> Result<(), NetError>;
}

/// The real kernel: rtnetlink and `nft`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Dataplane for Kernel {
    fn ensure_host(&self, bridge: &str, gateway: Ipv4Addr, masquerade: &Masquerade) -> Result<(), NetError> {
        netlink::ensure_bridge(bridge, gateway, masquerade.pod_cidr.prefix_len())?;
        nat::nft(&masquerade.apply_script())?;
        Ok(())
    }

    fn remove_host(&self, bridge: &str, masquerade: &Masquerade) -> Result<(), NetError> {
        netlink::delete_link(bridge)?;
        nat::nft(&masquerade.delete_script())?;
        nat::delete_table_if_empty()?;
        Ok(())
    }

    fn create_pod_link(&self, link: &PodLink) -> Result<(), NetError> {
        Ok(netlink::create_pod_link(link)?)
    }

    fn delete_link(&self, name: &str) -> Result<(), NetError> {
        Ok(netlink::delete_link(name)?)
    }

    fn apply_host_ports(&self, bridge: &str, script: &str, maps_ports: bool) -> Result<(), NetError> {
        if maps_ports {
            let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
            if let Err(e) = std::fs::write(&path, "1") {
                tracing::warn!(%path, error = %e, "hostPorts will not answer on 127.0.0.1");
            }
        }
        Ok(nat::nft(script)?)
    }
}

/// A pod's place on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIp {
    /// The pod's address (on its `eth0`).
    pub address: Ipv4Addr,
    /// Prefix length of the pod CIDR.
    pub prefix: u8,
    /// Its default gateway (the bridge).
    pub gateway: Ipv4Addr,
    /// The host end of its veth pair.
    pub host_interface: String,
}

/// The pod network of one node: a bridge holding the gateway of the node's pod CIDR, with the
/// pods' veth pairs as ports.
///
/// Every method blocks (netlink requests on their own thread, `nft`, file I/O): async callers
/// use their blocking pool. Calls for the same pod must not overlap.
#[derive(Debug)]
pub struct PodNetwork<D: Dataplane = Kernel> {
    ipam: Ipam,
    hostports: HostPorts,
    /// Serialises changes of the hostPort records with the table rewrite that follows them.
    hostports_lock: Mutex<()>,
    bridge: String,
    dataplane: D,
}

impl PodNetwork<Kernel> {
    /// Opens the pod network of `pod_cidr` on `bridge` (e.g. [`DEFAULT_BRIDGE`]), with IPAM
    /// state in `<data_dir>/agent/ipam/` and hostPort records in `<data_dir>/agent/hostports/`,
    /// and sets up the host side (bridge, forwarding, masquerade, hostPort table).
    pub fn open(data_dir: &Path, pod_cidr: Ipv4Net, bridge: &str) -> Result<Self, NetError> {
        Self::with_dataplane(&data_dir.join("agent"), pod_cidr, bridge, Kernel)
    }
}

/// Where the IPAM state of the node lives under the data directory.
pub fn ipam_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("ipam")
}

impl<D: Dataplane> PodNetwork<D> {
    /// Like [`PodNetwork::open`] with its state (`ipam/`, `hostports/`) in `state_dir` and a
    /// given dataplane.
    pub fn with_dataplane(state_dir: &Path, pod_cidr: Ipv4Net, bridge: &str, dataplane: D) -> Result<Self, NetError> {
        let valid = !bridge.is_empty()
            && bridge.len() <= 15
            && bridge.starts_with(|c: char| c.is_ascii_alphabetic())
            && bridge.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(NetError::InvalidBridge(bridge.to_string()));
        }
        let network = Self {
            ipam: Ipam::open(&state_dir.join("ipam"), pod_cidr)?,
            hostports: HostPorts::open(&state_dir.join("hostports"))?,
            hostports_lock: Mutex::new(()),
            bridge: bridge.to_string(),
            dataplane,
        };
        network.ensure_host()?;
        Ok(network)
    }

    fn masquerade(&self) -> Masquerade {
        Masquerade { bridge: self.bridge.clone(), pod_cidr: self.ipam.cidr() }
    }

    /// (Re)creates the host side: bridge, gateway address, forwarding, masquerade, and the
    /// hostPort table from its records. Idempotent; [`PodNetwork::open`] calls it, and a periodic
    /// repair may.
    pub fn ensure_host(&self) -> Result<(), NetError> {
        self.dataplane.ensure_host(&self.bridge, self.ipam.gateway(), &self.masquerade())?;
        let _guard = self.hostports_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_host_ports()
    }

    /// Rewrites the hostPort table from the records. The caller holds `hostports_lock`.
    fn sync_host_ports(&self) -> Result<(), NetError> {
        let pods = self.hostports.all()?;
        let script = hostport::script(&self.bridge, self.ipam.cidr(), &pods);
        self.dataplane.apply_host_ports(&self.bridge, &script, pods.iter().any(|p| !p.ports.is_empty()))
    }

    /// Maps `ports` of the node to pod `pod_key` (connected by [`PodNetwork::setup`]): records
    /// them and reprograms the hostPort table if they changed. Idempotent; ports another pod maps
    /// are refused. [`PodNetwork::teardown`] removes them.
    pub fn set_host_ports(&self, pod_key: &str, ports: &[HostPort]) -> Result<(), NetError> {
        if ports.is_empty() {
            // Most pods: nothing to look up, nothing to map.
            return self.remove_host_ports(pod_key);
        }
        let _guard = self.hostports_lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(address) = self.ipam.lookup(pod_key)? else {
            return Err(NetError::NoAddress(pod_key.to_string()));
        };
        if self.hostports.set(pod_key, address, ports)? {
            self.sync_host_ports()?;
            tracing::info!(pod = pod_key, ports = ports.len(), "hostPorts mapped");
        }
        Ok(())
    }

    fn remove_host_ports(&self, pod_key: &str) -> Result<(), NetError> {
        let _guard = self.hostports_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.hostports.remove(pod_key)? {
            self.sync_host_ports()?;
        }
        Ok(())
    }

    /// The pod CIDR.
    pub fn pod_cidr(&self) -> Ipv4Net {
        self.ipam.cidr()
    }

    /// The bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Connects pod `pod_key` (any stable single-line key, e.g. its UID) whose sandbox holds the
    /// network namespace `netns`: allocates its address (or reuses the one it holds) and builds
    /// its veth pair. Re-running it replaces the pod's link; on failure nothing new is left.
    pub fn setup(&self, pod_key: &str, netns: &Path) -> Result<PodIp, NetError> {
        let held = self.ipam.lookup(pod_key)?;
        let address = match held {
            Some(address) => address,
            None => self.ipam.allocate(pod_key)?,
        };
        let (host_name, peer_name) = self.link_names(pod_key);
        let link = PodLink {
            host_name,
            peer_name,
            bridge: self.bridge.clone(),
            netns: netns.to_path_buf(),
            address,
            prefix: self.ipam.cidr().prefix_len(),
            gateway: self.ipam.gateway(),
        };
        // Links of an earlier setup can only exist while the pod holds its address (teardown
        // deletes them before releasing it).
        let stale = if held.is_some() { self.remove_links(pod_key) } else { Ok(()) };
        let result = stale.and_then(|()| self.dataplane.create_pod_link(&link)).inspect_err(|_| {
            let _ = self.remove_links(pod_key);
            if held.is_none() {
                let _ = self.ipam.release(pod_key);
            }
        });
        if let Err(e) = result {
            tracing::warn!(pod = pod_key, error = %e, "pod network setup failed");
            return Err(e);
        }
        tracing::info!(pod = pod_key, %address, interface = %link.host_name, "pod network set up");
        Ok(self.pod_ip(address, link.host_name))
    }

    fn pod_ip(&self, address: Ipv4Addr, host_interface: String) -> PodIp {
        PodIp { address, prefix: self.ipam.cidr().prefix_len(), gateway: self.ipam.gateway(), host_interface }
    }

    /// The network of pod `pod_key`, if it has an address.
    pub fn get(&self, pod_key: &str) -> Result<Option<PodIp>, NetError> {
        Ok(self.ipam.lookup(pod_key)?.map(|address| self.pod_ip(address, self.link_names(pod_key).0)))
    }

    /// Disconnects pod `pod_key`: removes its hostPorts, deletes its veth pair and releases its
    /// address. Idempotent.
    pub fn teardown(&self, pod_key: &str) -> Result<(), NetError> {
        self.remove_host_ports(pod_key)?;
        self.remove_links(pod_key)?;
        let released = self.ipam.release(pod_key)?;
        tracing::info!(pod = pod_key, ?released, "pod network torn down");
        Ok(())
    }

    /// Tears down every pod holding an address whose key is not in `live_keys` (pods deleted
    /// while the agent was down); returns their keys.
    pub fn gc<'a>(&self, live_keys: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, NetError> {
        let live: std::collections::HashSet<&str> = live_keys.into_iter().collect();
        let mut removed: Vec<String> = Vec::new();
        for (_, owner) in self.ipam.allocations()? {
            if !live.contains(owner.as_str()) && !removed.contains(&owner) {
                self.teardown(&owner)?;
                removed.push(owner);
            }
        }
        // Mappings whose pod lost its address some other way.
        for pod in self.hostports.all()? {
            if !live.contains(pod.key.as_str()) {
                self.remove_host_ports(&pod.key)?;
            }
        }
        Ok(removed)
    }

    /// Removes the host side ([`PodNetwork::ensure_host`]): the bridge, the masquerade chain and
    /// the hostPort table. IPAM state and hostPort records are kept. For uninstalling and tests.
    pub fn remove_host(&self) -> Result<(), NetError> {
        self.dataplane.apply_host_ports(&self.bridge, &hostport::script(&self.bridge, self.ipam.cidr(), &[]), false)?;
        self.dataplane.remove_host(&self.bridge, &self.masquerade())
    }

    fn remove_links(&self, pod_key: &str) -> Result<(), NetError> {
        let (host, peer) = self.link_names(pod_key);
        self.dataplane.delete_link(&host)?;
        // Only present if an earlier setup stopped before moving it into the pod.
        self.dataplane.delete_link(&peer)
    }

    /// The host-side names of a pod's veth pair: `veth` and `vpod` (while not yet moved) plus a
    /// hash of the bridge and the key, 15 bytes as the kernel allows.
    fn link_names(&self, pod_key: &str) -> (String, String) {
        let digest = Sha256::new().chain_update(&self.bridge).chain_update([0]).chain_update(pod_key).finalize();
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()[..11].to_string();
        (format!("veth{hex}"), format!("vpod{hex}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records every call; fails `create_pod_link` while `fail` is set.
    #[derive(Debug, Default)]
    struct Fake {
        calls: Mutex<Vec<String>>,
        fail: Mutex<bool>,
    }

    impl Fake {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().expect("lock"))
        }
        fn record(&self, call: String) {
            self.calls.lock().expect("lock").push(call);
        }
    }

    impl Dataplane for &Fake {
        fn ensure_host(&self, bridge: &str, gateway: Ipv4Addr, m: &Masquerade) -> Result<(), NetError> {
            self.record(format!("ensure_host {bridge} {gateway} {}", m.pod_cidr));
            Ok(())
        }
        fn remove_host(&self, bridge: &str, _: &Masquerade) -> Result<(), NetError> {
            self.record(format!("remove_host {bridge}"));
            Ok(())
        }
        fn create_pod_link(&self, link: &PodLink) -> Result<(), NetError> {
            self.record(format!(
                "create {} {} {} {}/{} via {} in {}",
                link.host_name,
                link.peer_name,
                link.bridge,
                link.address,
                link.prefix,
                link.gateway,
                link.netns.display()
            ));
            if *self.fail.lock().expect("lock") {
                return Err(NetlinkError::NoLink("eth0".into()).into());
            }
            Ok(())
        }
        fn delete_link(&self, name: &str) -> Result<(), NetError> {
            self.record(format!("delete {name}"));
            Ok(())
        }
        fn apply_host_ports(&self, bridge: &str, script: &str, maps_ports: bool) -> Result<(), NetError> {
            let dnat: Vec<&str> = script.lines().filter_map(|l| l.split(" dnat to ").nth(1)).collect();
            self.record(format!("hostports {bridge} {maps_ports} [{}]", dnat.join(" ")));
            Ok(())
        }
    }

    fn network<'a>(fake: &'a Fake, dir: &Path) -> PodNetwork<&'a Fake> {
        PodNetwork::with_dataplane(dir, "10.88.0.0/24".parse().expect("cidr"), "br-test", fake).expect("open")
    }

    #[test]
    fn setup_allocates_and_builds_the_link_and_teardown_undoes_it() {
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        let net = network(&fake, dir.path());
        assert_eq!(fake.take(), ["ensure_host br-test 10.88.0.1 10.88.0.0/24", "hostports br-test false []"]);

        let ip = net.setup("pod-a", Path::new("/proc/1/ns/net")).expect("setup");
        assert_eq!(
            (ip.address, ip.prefix, ip.gateway),
            ("10.88.0.2".parse().expect("ip"), 24, "10.88.0.1".parse().expect("ip"))
        );
        let (host, peer) = net.link_names("pod-a");
        assert_eq!(ip.host_interface, host);
        let create = format!("create {host} {peer} br-test 10.88.0.2/24 via 10.88.0.1 in /proc/1/ns/net");
        assert_eq!(fake.take(), std::slice::from_ref(&create), "a new pod has no links to replace");
        assert_eq!(net.get("pod-a").expect("get"), Some(ip.clone()));
        // Re-running keeps the address and replaces the links.
        assert_eq!(net.setup("pod-a", Path::new("/proc/1/ns/net")).expect("again").address, ip.address);
        assert_eq!(fake.take(), [format!("delete {host}"), format!("delete {peer}"), create]);

        net.teardown("pod-a").expect("teardown");
        assert_eq!(fake.take(), [format!("delete {host}"), format!("delete {peer}")]);
        assert_eq!(net.get("pod-a").expect("get"), None);
        net.teardown("pod-a").expect("teardown is idempotent");
    }

    #[test]
    fn a_failed_setup_releases_a_new_address_but_keeps_a_held_one() {
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        let net = network(&fake, dir.path());
        *fake.fail.lock().expect("lock") = true;
        assert!(net.setup("new", Path::new("/ns")).is_err());
        assert_eq!(net.get("new").expect("get"), None, "the new address was released");
        let (host, peer) = net.link_names("new");
        assert!(fake.take().ends_with(&[format!("delete {host}"), format!("delete {peer}")]), "links rolled back");

        *fake.fail.lock().expect("lock") = false;
        let held = net.setup("held", Path::new("/ns")).expect("setup").address;
        *fake.fail.lock().expect("lock") = true;
        assert!(net.setup("held", Path::new("/ns")).is_err());
        assert_eq!(net.get("held").expect("get").map(|p| p.address), Some(held), "a held address stays");
    }

    #[test]
    fn gc_tears_down_only_pods_that_are_gone() {
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        let net = network(&fake, dir.path());
        for pod in ["a", "b", "c"] {
            net.setup(pod, Path::new("/ns")).expect("setup");
        }
        fake.take();
        assert_eq!(net.gc(["b"]).expect("gc"), ["a", "c"]);
        assert!(net.get("a").expect("get").is_none() && net.get("c").expect("get").is_none());
        assert!(net.get("b").expect("get").is_some());
        assert_eq!(fake.take().len(), 4, "two links deleted per removed pod");
        assert!(net.gc(["b"]).expect("gc again").is_empty());
    }

    #[test]
    fn host_ports_follow_the_pod_and_survive_a_restart() {
        use crate::hostport::{HostPort, Protocol};
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        let net = network(&fake, dir.path());
        let web = [HostPort { protocol: Protocol::Tcp, host_ip: None, host_port: 8080, container_port: 80 }];
        assert!(matches!(net.set_host_ports("web", &web), Err(NetError::NoAddress(_))), "needs an address first");
        let ip = net.setup("web", Path::new("/ns")).expect("setup").address;
        fake.take();
        net.set_host_ports("web", &web).expect("map");
        assert_eq!(fake.take(), [format!("hostports br-test true [{ip}:80 comment \"web\"]")]);
        net.set_host_ports("web", &web).expect("again");
        assert!(fake.take().is_empty(), "nothing changed, nothing reprogrammed");

        // An agent restart reprograms the table from the records.
        drop(net);
        let net = network(&fake, dir.path());
        assert_eq!(fake.take()[1], format!("hostports br-test true [{ip}:80 comment \"web\"]"));

        net.teardown("web").expect("teardown");
        assert_eq!(fake.take()[0], "hostports br-test false []", "the mapping goes with the pod");

        // Records of pods that are gone are collected.
        net.setup("old", Path::new("/ns")).expect("setup");
        net.set_host_ports("old", &web).expect("map");
        fake.take();
        assert_eq!(net.gc(["other"]).expect("gc"), ["old"]);
        assert!(fake.take().contains(&"hostports br-test false []".to_string()));
    }

    #[test]
    fn link_names_fit_the_kernel_and_differ_per_bridge_and_pod() {
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        let net = network(&fake, dir.path());
        let (host, peer) = net.link_names("default/web-0/8c1e");
        assert_eq!((host.len(), peer.len()), (15, 15));
        assert_ne!(net.link_names("default/web-1/8c1e").0, host);
        let other = PodNetwork::with_dataplane(dir.path(), "10.88.0.0/24".parse().expect("cidr"), "br-other", &fake)
            .expect("open");
        assert_ne!(other.link_names("default/web-0/8c1e").0, host);
    }

    #[test]
    fn bridge_names_are_checked() {
        let (fake, dir) = (Fake::default(), tempfile::tempdir().expect("tempdir"));
        for bad in ["", "0skiff", "a-very-long-bridge", "br;flush"] {
            let err = PodNetwork::with_dataplane(dir.path(), "10.88.0.0/24".parse().expect("cidr"), bad, &fake)
                .expect_err(bad);
            assert!(matches!(err, NetError::InvalidBridge(_)), "{bad}: {err}");
        }
    }
}
