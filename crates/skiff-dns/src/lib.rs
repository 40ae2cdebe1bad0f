//! skiff's cluster DNS (DESIGN.md §7): authoritative for the cluster domain and the reverse
//! zones of the service and cluster CIDRs, answering from reflectors of Services,
//! EndpointSlices and Pods as the Kubernetes DNS specification says, and forwarding every other
//! name to the host's resolvers with a cache.
//!
//! [`zone`] computes every answer when the objects change (an immutable snapshot swapped
//! whole), [`wire`] reads queries and writes responses without allocating, [`server`] serves
//! UDP and TCP, [`forward`] talks to upstream resolvers, [`publish`] writes the `kube-dns`
//! Service and its EndpointSlice, [`endpoints`] keeps its Endpoints equal to the slices. The server listens on the node's address (host network); the
//! service proxy routes the cluster DNS address there. hickory-proto supplies name validation
//! and the message model of forwarded answers and tests; hickory-server's request pipeline is not
//! used because a precomputed answer per name is cheaper than its per-request handler.
//!
//! What does not live here: pods' `/etc/resolv.conf` (the agent).

pub mod endpoints;
pub mod forward;
pub mod publish;
pub mod server;
pub mod wire;
pub mod zone;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::forward::Forwarder;
use crate::server::ZoneHandle;
use crate::zone::{Zone, ZoneConfig};

/// How the DNS server runs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The cluster domain.
    pub domain: String,
    /// Where to listen (the node's address) and the port (53).
    pub listen: SocketAddr,
    /// The cluster DNS Service's cluster IP.
    pub service_ip: Ipv4Addr,
    /// This node's name (names its EndpointSlice).
    pub node_name: String,
    /// The service CIDR and the cluster (pod) CIDR: their reverse zones are served.
    pub reverse_ranges: Vec<Ipv4Net>,
    /// The host's resolver configuration.
    pub resolv_conf: PathBuf,
    /// UDP worker tasks.
    pub workers: usize,
}

/// DNS server failures.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Keeps the returned store filled from a watch of `api` narrowed by `cfg`, notifying `changed`
/// on every event; a failed watch is retried after a second.
pub(crate) fn reflect<K>(api: Api<K>, cfg: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "cluster DNS watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                changed.notify_one();
            }
        }
    });
    reader
}

/// Binds the listeners, then serves until the task is aborted. Returns early only when the
/// address cannot be bound.
pub async fn run(client: kube::Client, cfg: DnsConfig) -> Result<(), DnsError> {
    let (udp, tcp) = server::bind(cfg.listen).await.map_err(|source| DnsError::Bind { addr: cfg.listen, source })?;
    let handle = Arc::new(ZoneHandle::default());
    let upstreams = forward::host_upstreams(&cfg.resolv_conf);
    if upstreams.is_empty() {
        tracing::warn!(resolv_conf = %cfg.resolv_conf.display(), "no upstream resolvers; names outside the cluster will fail");
    }
    let forwarder = Arc::new(Forwarder::new(upstreams));
    let zone_cfg =
        ZoneConfig { domain: cfg.domain.clone(), dns_ip: cfg.service_ip, reverse_ranges: cfg.reverse_ranges.clone() };
    handle.swap(Zone::build(&zone_cfg, [], [], [], 1));
    server::serve_udp(udp, handle.clone(), forwarder.clone(), cfg.workers);
    server::serve_tcp(tcp, handle.clone(), forwarder);
    tracing::info!(listen = %cfg.listen, domain = %cfg.domain, "cluster DNS serving");

    // Published once per start (a deleted kube-dns comes back at the next start).
    {
        let (client, node, listen, ip) = (client.clone(), cfg.node_name.clone(), cfg.listen, cfg.service_ip);
        tokio::spawn(async move {
            loop {
                match publish::publish(&client, IpAddr::V4(ip), &node, listen.ip(), listen.port()).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot publish kube-system/kube-dns yet");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
    tokio::spawn(endpoints::run(client.clone(), cfg.node_name.clone(), cfg.listen.ip(), cfg.listen.port()));
    let changed = Arc::new(Notify::new());
    let all = watcher::Config::default;
    let services = reflect(Api::<Service>::all(client.clone()), all(), changed.clone());
    let slices = reflect(Api::<EndpointSlice>::all(client.clone()), all(), changed.clone());
    let pods = reflect(Api::<Pod>::all(client), all(), changed.clone());
    let _ = tokio::join!(services.wait_until_ready(), slices.wait_until_ready(), pods.wait_until_ready());
    let started = Instant::now();
    loop {
        let (s, e, p) = (services.state(), slices.state(), pods.state());
        let serial = started.elapsed().as_secs() as u32 + 1;
        let t = Instant::now();
        let zone = Zone::build(
            &zone_cfg,
            s.iter().map(|x| x.as_ref()),
            e.iter().map(|x| x.as_ref()),
            p.iter().map(|x| x.as_ref()),
            serial,
        );
        tracing::debug!(names = zone.len(), elapsed_ms = t.elapsed().as_millis() as u64, "cluster DNS zone rebuilt");
        handle.swap(zone);
        changed.notified().await;
        // Coalesce bursts of changes.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
