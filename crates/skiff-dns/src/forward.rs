//! Names outside the cluster's zones go to the host's resolvers (`/etc/resolv.conf`, loopback
//! stubs skipped, as the kubelet and k3s do; systemd-resolved's own upstream list is tried
//! before giving up), over UDP with a retry over TCP when the answer was truncated, and the
//! answers are cached for their smallest TTL (negative answers at most [`NEGATIVE_TTL_MAX`]).
//!
//! What does not live here: the cluster's own records ([`crate::zone`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// Longest time a negative answer is cached.
pub const NEGATIVE_TTL_MAX: u32 = 30;
/// Longest time any answer is cached.
pub const TTL_MAX: u32 = 3600;
/// Most cached answers.
const CACHE_MAX: usize = 10_000;
/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers of a resolv.conf text that are not loopback addresses.
pub fn upstreams_from(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.split(['#', ';']).next())
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The host's upstream resolvers.
pub fn host_upstreams(resolv_conf: &Path) -> Vec<SocketAddr> {
    let mut out = std::fs::read_to_string(resolv_conf).map(|t| upstreams_from(&t)).unwrap_or_default();
    if out.is_empty() {
        out =
            std::fs::read_to_string("/run/systemd/resolve/resolv.conf").map(|t| upstreams_from(&t)).unwrap_or_default();
    }
    out
}

/// Cache key: lowercase wire name, type, class.
type CacheKey = (Vec<u8>, u16, u16);

struct Cached {
    response: Vec<u8>,
    stored: Instant,
    ttl: u32,
}

/// The forwarder and its cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<CacheKey, Cached>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("upstreams", &self.upstreams).finish()
    }
}

impl Forwarder {
    /// A forwarder to `upstreams`.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self { upstreams, cache: Mutex::new(HashMap::new()) }
    }

    /// The answer to `packet` (a query with `id`, lowercase name `lname`, `qtype`, `qclass`),
    /// or `None` when no upstream answered.
    pub async fn resolve(&self, packet: &[u8], id: u16, lname: &[u8], qtype: u16, qclass: u16) -> Option<Vec<u8>> {
        let key = (lname.to_vec(), qtype, qclass);
        if let Some(hit) = self.cached(&key, id) {
            return Some(hit);
        }
        let upstream_id: u16 = rand::random();
        let mut query = packet.to_vec();
        query[..2].copy_from_slice(&upstream_id.to_be_bytes());
        for upstream in &self.upstreams {
            let response = match ask_udp(*upstream, &query, upstream_id).await {
                Some(r) if r.get(2).is_some_and(|f| f & 0x02 != 0) => ask_tcp(*upstream, &query, upstream_id).await,
                other => other,
            };
            let Some(mut response) = response else { continue };
            let Ok(message) = Message::from_vec(&response) else { continue };
            if message.metadata.response_code == ResponseCode::ServFail {
                continue;
            }
            self.store(key, &message, &response);
            response[..2].copy_from_slice(&id.to_be_bytes());
            return Some(response);
        }
        None
    }

    fn cached(&self, key: &CacheKey, id: u16) -> Option<Vec<u8>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(key)?;
        let age = entry.stored.elapsed().as_secs();
        if age >= u64::from(entry.ttl) {
            cache.remove(key);
            return None;
        }
        let age = age as u32;
        let mut message = Message::from_vec(&entry.response).ok()?;
        drop(cache);
        message.metadata.id = id;
        for r in message.answers.iter_mut().chain(message.authorities.iter_mut()).chain(message.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        message.to_vec().ok()
    }

    fn store(&self, key: CacheKey, message: &Message, response: &[u8]) {
        let negative = message.metadata.response_code == ResponseCode::NXDomain || message.answers.is_empty();
        let min = message.answers.iter().chain(message.authorities.iter()).map(|r| r.ttl).min();
        let ttl = match (min, negative) {
            (Some(t), true) => t.min(NEGATIVE_TTL_MAX),
            (Some(t), false) => t.min(TTL_MAX),
            (None, _) => 5,
        };
        if ttl == 0 || message.metadata.truncation {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, c| c.stored.elapsed().as_secs() < u64::from(c.ttl));
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Cached { response: response.to_vec(), stored: Instant::now(), ttl });
    }
}

async fn ask_udp(upstream: SocketAddr, query: &[u8], id: u16) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await.ok()?.ok()?;
        if n >= 12 && buf[..2] == id.to_be_bytes() {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn ask_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> Option<Vec<u8>> {
    let work = async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.ok()?;
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        (buf.len() >= 12 && buf[..2] == id.to_be_bytes()).then_some(buf)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, work).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_stubs_are_skipped() {
        let text =
            "# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1 # a\nnameserver ::1\nnameserver fe80::1%eth0\nsearch a\n";
        assert_eq!(upstreams_from(text), ["192.0.2.1:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
    }
}
