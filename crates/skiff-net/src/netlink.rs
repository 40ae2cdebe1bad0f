//! The kernel's links, addresses and routes through rtnetlink: the node's bridge, a pod's veth
//! pair, and the pod side of it inside the pod's network namespace.
//!
//! Every function here blocks. Each runs its netlink requests on a dedicated, short-lived std
//! thread with its own single-threaded tokio runtime; work inside a pod's network namespace
//! `setns`es that thread (and only that thread) into it, after its work in the host's, and the
//! thread ends there, so neither the caller's thread nor an async worker ever changes namespace,
//! and the calls are safe from any context.
//!
//! What does not live here: nftables ([`crate::nat`]) and deciding what to configure
//! ([`crate::PodNetwork`]).

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt as _;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The pod's end of its veth pair, inside its namespace.
pub const POD_INTERFACE: &str = "eth0";

/// Netlink failures, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What was being done (e.g. `adding address 10.42.0.1/24 to skiff0`).
        what: String,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// A link that must exist does not.
    #[error("no network interface named {0}")]
    NoLink(String),
    /// The network namespace could not be opened or entered.
    #[error("network namespace {path}: {source}")]
    Netns {
        /// The namespace file (e.g. `/proc/<pid>/ns/net`).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The netlink socket, its runtime or its thread could not be set up.
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    /// A sysctl could not be written.
    #[error("{path}: {source}")]
    Sysctl {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn request(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// The errno of a netlink error reply, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    }
}

/// What to build for one pod: a veth pair whose host end joins the bridge and whose other end
/// becomes `eth0` inside the pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    /// Name of the host end (at most 15 bytes).
    pub host_name: String,
    /// Name a pod end may have in the host namespace: earlier versions created it there before
    /// moving it into the pod; teardown still removes one left behind.
    pub peer_name: String,
    /// The bridge the host end joins.
    pub bridge: String,
    /// The pod's network namespace (`/proc/<pid>/ns/net` or a bind mount of it).
    pub netns: PathBuf,
    /// The pod's address.
    pub address: Ipv4Addr,
    /// Prefix length of the pod CIDR.
    pub prefix: u8,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
}

/// Runs `f` with a netlink handle on a new thread (in the network namespace the process is in;
/// `f` may move the thread into another one, which then ends with it), and waits for it.
fn run<T, F, Fut>(f: F) -> Result<T, NetlinkError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("skiff-netlink".into())
            .spawn_scoped(scope, move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(NetlinkError::Socket)?;
                runtime.block_on(async move {
                    let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
                    let connection = tokio::spawn(connection);
                    let result = f(handle).await;
                    connection.abort();
                    result
                })
            })
            .map_err(NetlinkError::Socket)?;
        worker.join().map_err(|_| NetlinkError::Socket(io::Error::other("the netlink thread panicked")))?
    })
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, NetlinkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) if errno(&e) == Some(nix::libc::ENODEV) => Ok(None),
        Err(e) => Err(request(format!("looking up {name}"))(e)),
    }
}

async fn require_link(handle: &Handle, name: &str) -> Result<u32, NetlinkError> {
    link_index(handle, name).await?.ok_or_else(|| NetlinkError::NoLink(name.to_string()))
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetlinkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(request(format!("setting {name} up")))
}

async fn add_address(handle: &Handle, index: u32, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
    match handle.address().add(index, IpAddr::V4(ip), prefix).execute().await {
        Err(e) if errno(&e) == Some(nix::libc::EEXIST) => Ok(()),
        other => other.map_err(request(format!("adding address {ip}/{prefix} to {name}"))),
    }
}

/// Creates bridge `name` if missing, gives it `gateway/prefix` and sets it up; turns on IPv4
/// forwarding. Idempotent.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
    run(|handle| async move {
        let index = match link_index(&handle, name).await? {
            Some(index) => index,
            None => {
                match handle.link().add(LinkBridge::new(name).build()).execute().await {
                    Err(e) if errno(&e) == Some(nix::libc::EEXIST) => {}
                    other => other.map_err(request(format!("creating bridge {name}")))?,
                }
                tracing::info!(bridge = name, "created the pod bridge");
                require_link(&handle, name).await?
            }
        };
        add_address(&handle, index, name, gateway, prefix).await?;
        set_up(&handle, index, name).await
    })?;
    let path = Path::new("/proc/sys/net/ipv4/ip_forward");
    std::fs::write(path, "1").map_err(|source| NetlinkError::Sysctl { path: path.into(), source })
}

/// Creates the veth pair of `link`: the host end on the bridge with hairpin mode, up; the pod
/// end born inside the pod's namespace as `eth0`, addressed, up, with a default route via the
/// gateway (the sandbox's holder brought `lo` up). Fails if the host end already exists.
///
/// One short-lived thread does it all: the host side first, then it enters the pod's namespace
/// for the pod side (and ends there). Each step that changes links takes the kernel's global
/// network lock, so there are as few as can be: create (with the peer's namespace, the bridge
/// and the state given at once), hairpin, then address, up and route inside the pod.
pub fn create_pod_link(link: &PodLink) -> Result<(), NetlinkError> {
    let netns_path = link.netns.as_path();
    let netns = File::open(netns_path).map_err(|source| NetlinkError::Netns { path: netns_path.into(), source })?;
    run(|handle| async move {
        create_host_side(&handle, link, &netns).await?;
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetlinkError::Netns { path: netns_path.into(), source: e.into() })?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        let connection = tokio::spawn(connection);
        let result = configure_pod_side(&handle, link).await;
        connection.abort();
        result
    })
}

/// The veth pair: its pod end created in `netns` as `eth0`, its host end on the bridge and up,
/// in hairpin mode.
async fn create_host_side(handle: &Handle, link: &PodLink, netns: &File) -> Result<(), NetlinkError> {
    let host = link.host_name.as_str();
    let bridge = require_link(handle, &link.bridge).await?;
    let peer = LinkUnspec::new_with_name(POD_INTERFACE).setns_by_fd(netns.as_raw_fd()).build();
    let pair = LinkVeth::new(host, POD_INTERFACE)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(bridge)
        .up()
        .build();
    handle.link().add(pair).execute().await.map_err(request(format!(
        "creating veth pair {host}/{POD_INTERFACE} in {} on {}",
        link.netns.display(),
        link.bridge
    )))?;
    let host_index = require_link(handle, host).await?;
    handle
        .link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(request(format!("turning hairpin mode on for {host}")))
}

/// Inside the pod's namespace: `eth0` with its address, up, and the default route.
async fn configure_pod_side(handle: &Handle, link: &PodLink) -> Result<(), NetlinkError> {
    let index = require_link(handle, POD_INTERFACE).await?;
    add_address(handle, index, POD_INTERFACE, link.address, link.prefix).await?;
    set_up(handle, index, POD_INTERFACE).await?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(link.gateway).output_interface(index).build();
    handle.route().add(route).execute().await.map_err(request(format!("adding the default route via {}", link.gateway)))
}

/// Deletes link `name` (a veth's peer goes with it); absent is fine.
pub fn delete_link(name: &str) -> Result<(), NetlinkError> {
    run(|handle| async move {
        let Some(index) = link_index(&handle, name).await? else { return Ok(()) };
        match handle.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(nix::libc::ENODEV) => Ok(()),
            other => other.map_err(request(format!("deleting {name}"))),
        }
    })
}

/// Sets `lo` up in the network namespace the calling thread is in: one request on a plain
/// netlink socket, with no thread and no runtime (the sandbox holder calls it while it must stay
/// single-threaded, and once per pod).
pub fn loopback_up() -> Result<(), NetlinkError> {
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

    let what = "setting lo up";
    let set = LinkUnspec::new_with_name("lo").up().build();
    let mut request =
        NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(set)));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.sequence_number = 1;
    request.finalize();
    let mut bytes = vec![0u8; request.buffer_len()];
    request.serialize(&mut bytes);

    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    socket.bind_auto().map_err(NetlinkError::Socket)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
    socket.send(&bytes, 0).map_err(NetlinkError::Socket)?;
    let mut reply = Vec::with_capacity(8192);
    socket.recv(&mut reply, 0).map_err(NetlinkError::Socket)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|e| NetlinkError::Socket(io::Error::other(format!("{what}: bad reply: {e}"))))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => {
            Err(NetlinkError::Socket(io::Error::other(format!("{what}: {}", e.to_io()))))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    fn lo_up() -> bool {
        nix::ifaddrs::getifaddrs()
            .expect("getifaddrs")
            .any(|a| a.interface_name == "lo" && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
    }

    #[test]
    fn loopback_comes_up_in_a_new_network_namespace() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespaces)");
            return;
        }
        // A thread of its own: the namespace is the thread's, and goes with it.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            assert!(!lo_up(), "a new namespace starts with lo down");
            loopback_up().expect("lo up");
            assert!(lo_up());
            loopback_up().expect("again: already up is fine");
        })
        .join()
        .expect("thread");
    }
}
