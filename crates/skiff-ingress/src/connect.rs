//! Connections to endpoints for the pooled client, with retry on another endpoint when a
//! connect fails (before any byte of the request is sent, so streaming bodies need no replay).
//!
//! The proxy addresses a request to `http://<ip with dashes>.b<backend id>.ingress.invalid:<port>`:
//! the pool keeps connections per endpoint and backend, and the connector learns which endpoint
//! was chosen (round-robin, in the proxy) and which others of the same backend it may fall back
//! to (from the current table).
//!
//! What does not live here: choosing the endpoint, HTTP itself ([`crate::proxy`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::table::TableHandle;

/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why no endpoint could be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI was not made by [`endpoint_uri`].
    #[error("not an endpoint address: {0}")]
    BadAddress(String),
    /// Every endpoint tried failed; the last error.
    #[error("cannot connect to any endpoint (tried {tried}): {last}")]
    Failed {
        /// How many endpoints were tried.
        tried: usize,
        /// The last failure.
        last: std::io::Error,
    },
}

/// The URI authority addressing `endpoint` of backend `backend_id`.
pub fn endpoint_authority(endpoint: SocketAddr, backend_id: u64) -> String {
    let ip = match endpoint.ip() {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    };
    format!("{ip}.b{backend_id:x}.ingress.invalid:{}", endpoint.port())
}

/// The endpoint and backend id an authority of [`endpoint_authority`] names.
pub fn parse_authority(host: &str, port: u16) -> Option<(SocketAddr, u64)> {
    let mut labels = host.split('.');
    let ip = labels.next()?;
    let id = u64::from_str_radix(labels.next()?.strip_prefix('b')?, 16).ok()?;
    let ip: IpAddr = if ip.matches('-').count() == 3 && !ip.contains("--") {
        ip.replace('-', ".").parse().ok()?
    } else {
        ip.replace('-', ":").parse().ok()?
    };
    Some((SocketAddr::new(ip, port), id))
}

/// The connector of the proxy's pooled client.
#[derive(Debug, Clone)]
pub struct RetryConnector {
    table: TableHandle,
}

impl RetryConnector {
    /// A connector falling back along the endpoints of `table`'s backends.
    pub fn new(table: TableHandle) -> Self {
        Self { table }
    }
}

async fn connect_one(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect to {addr} timed out")))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl tower::Service<Uri> for RetryConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let table = self.table.load();
        Box::pin(async move {
            let parsed = uri.host().zip(uri.port_u16()).and_then(|(h, p)| parse_authority(h, p));
            let Some((first, id)) = parsed else { return Err(ConnectError::BadAddress(uri.to_string())) };
            let mut order = vec![first];
            if let Some(backend) = table.backends.get(&id) {
                let start = backend.endpoints.iter().position(|e| *e == first).map_or(0, |i| i + 1);
                let n = backend.endpoints.len();
                order.extend((0..n).map(|k| backend.endpoints[(start + k) % n]).filter(|e| *e != first));
            }
            let mut last = None;
            for (tried, addr) in order.iter().enumerate() {
                match connect_one(*addr).await {
                    Ok(stream) => {
                        if tried > 0 {
                            tracing::debug!(endpoint = %addr, failed = %first, "connected to another endpoint");
                        }
                        return Ok(TokioIo::new(stream));
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %addr, error = %e, "cannot connect to an ingress endpoint");
                        last = Some(e);
                    }
                }
            }
            let last = last.unwrap_or_else(|| std::io::Error::other("no endpoint"));
            Err(ConnectError::Failed { tried: order.len(), last })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn authorities_round_trip() {
        for ep in ["10.42.0.5:8080", "[fd00::1]:80", "[::1]:443"] {
            let ep: SocketAddr = ep.parse().unwrap();
            let auth = endpoint_authority(ep, 0xabc);
            let uri: Uri = format!("http://{auth}/x").parse().unwrap();
            assert_eq!(parse_authority(uri.host().unwrap(), uri.port_u16().unwrap()), Some((ep, 0xabc)), "{auth}");
        }
        assert_eq!(parse_authority("example.com", 80), None);
    }
}
