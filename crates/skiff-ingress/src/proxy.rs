//! The reverse proxy: one request in, routed by the current table, forwarded over the pooled
//! HTTP/1.1 client to a ready endpoint (round-robin), response streamed back. Hop-by-hop headers
//! are dropped both ways, `X-Forwarded-For` is appended to, `X-Forwarded-Proto`, `-Host`,
//! `-Port` and `X-Real-IP` are set; `Upgrade` requests (WebSocket) are passed through and the
//! two upgraded connections spliced. Bodies stream in both directions.
//!
//! Answers of its own: 404 when nothing matches, 503 when the backend has no ready endpoint or
//! cannot be served, 502 when no endpoint can be reached or the endpoint fails.
//!
//! What does not live here: listeners and TLS ([`crate::listen`], [`crate::tls`]), connects
//! ([`crate::connect`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::connect::{RetryConnector, endpoint_authority};
use crate::table::{TableHandle, Target, strip_port};

/// The body of the proxy's responses.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How a request reached the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The listener's port (for `X-Forwarded-Port`).
    pub port: u16,
}

/// The proxy shared by every connection.
#[derive(Debug, Clone)]
pub struct Proxy {
    table: TableHandle,
    client: Client<RetryConnector, Incoming>,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes hop-by-hop headers (and those `Connection` names); `Upgrade` too unless `keep_upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets the forwarding headers for a request from `conn` for `host` (as the client sent it).
pub fn set_forwarded(headers: &mut HeaderMap, conn: &Conn, host: &str) {
    let ip = conn.peer.ip().to_canonical().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip.clone(),
    };
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(name, v);
        }
    };
    set("x-forwarded-for", xff);
    set("x-real-ip", ip);
    set("x-forwarded-proto", if conn.tls { "https" } else { "http" }.to_string());
    set("x-forwarded-host", host.to_string());
    set("x-forwarded-port", conn.port.to_string());
}

fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{text}\n"))).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

impl Proxy {
    /// A proxy routing by `table`.
    pub fn new(table: TableHandle) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .set_host(false)
            .build(RetryConnector::new(table.clone()));
        Self { table, client }
    }

    /// Serves one request.
    pub async fn handle(&self, mut req: Request<Incoming>, conn: Conn) -> Result<Response<ProxyBody>, Infallible> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let table = self.table.load();
        let backend = match table.route(strip_port(&host), req.uri().path()) {
            None => return Ok(plain(StatusCode::NOT_FOUND, "404 page not found")),
            Some(Target::Unavailable(_)) => {
                return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"));
            }
            Some(Target::Backend(b)) => b.clone(),
        };
        drop(table);
        let Some(i) = backend.pick() else {
            return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"));
        };
        let upgrade = wants_upgrade(&req);
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("http://{}{path}", endpoint_authority(backend.endpoints[i], backend.id)).parse::<Uri>()
        else {
            return Ok(plain(StatusCode::BAD_REQUEST, "400 Bad Request"));
        };
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers, upgrade);
        set_forwarded(headers, &conn, &host);
        if let Ok(h) = HeaderValue::try_from(host.as_str()) {
            headers.insert(header::HOST, h);
        }
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let mut resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(backend = %backend.name, error = %e, "ingress upstream request failed");
                return Ok(plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway"));
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let backend_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    match (client_upgrade.await, backend_upgrade.await) {
                        (Ok(a), Ok(b)) => {
                            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
                        }
                        (a, b) => tracing::debug!(client = a.is_ok(), backend = b.is_ok(), "upgrade failed"),
                    }
                });
            }
        } else {
            strip_hop_by_hop(resp.headers_mut(), false);
        }
        Ok(resp.map(|b| b.boxed()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        let names: Vec<_> = plain.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("x-secret").is_none());
    }

    #[test]
    fn forwarding_headers_append_and_set() {
        let conn = Conn { peer: "192.0.2.7:5555".parse().unwrap(), tls: true, port: 443 };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        set_forwarded(&mut h, &conn, "a.example:443");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 192.0.2.7");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "a.example:443");
        assert_eq!(h["x-forwarded-port"], "443");
        let mut fresh = HeaderMap::new();
        let v4mapped = Conn { peer: "[::ffff:192.0.2.8]:1".parse().unwrap(), tls: false, port: 80 };
        set_forwarded(&mut fresh, &v4mapped, "b");
        assert_eq!(fresh["x-forwarded-for"], "192.0.2.8");
        assert_eq!(fresh["x-forwarded-proto"], "http");
    }
}
