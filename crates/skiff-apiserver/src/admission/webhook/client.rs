//! Calling one webhook: finding its address (`clientConfig.url`, or `clientConfig.service`
//! resolved through the Service's ready endpoints, else its ClusterIP), POSTing the
//! AdmissionReview over HTTPS verified against `caBundle` (SNI `<svc>.<ns>.svc` for services),
//! within `timeoutSeconds`. Errors read like Go's HTTP client's (`Post "<url>": …`), since
//! upstream's messages embed them. What is absent: what the answer means ([`super::review`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{Endpoint, Hook};
use crate::state::ApiState;

/// Largest webhook answer read.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// Where one call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL as shown in messages (with the `timeout` parameter).
    pub url: String,
    /// Host name for SNI and certificate verification.
    pub server_name: String,
    /// `host:port` to dial (a name is resolved at dial time).
    pub dial: String,
    /// Path and query of the request.
    pub path: String,
}

/// Go's `time.Duration` string of whole seconds (`10s`, `1m0s`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}

/// Splits `https://host[:port]/path` into host, port and path.
pub fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?.unwrap_or(443);
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 443),
        }
    };
    (!host.is_empty()).then_some((host, port, path.to_string()))
}

fn with_timeout(path: &str, timeout: Duration) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}timeout={}", go_duration(timeout))
}

fn join_host(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The address of a Service port: a ready endpoint of its EndpointSlices (the API server need
/// not reach ClusterIPs), else the ClusterIP.
fn resolve_service(state: &ApiState, namespace: &str, name: &str, port: i32) -> Result<String, String> {
    let svc = state
        .caches
        .cache("/registry/core/services/")
        .and_then(|c| c.get(&format!("/registry/core/services/{namespace}/{name}")))
        .map(|e| e.value())
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let svc_port = ports
        .iter()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(i64::from(port)))
        .ok_or_else(|| format!("unable to find service port {port} for service {name}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or_default();
    if let Some(slices) = state.caches.cache("/registry/discovery.k8s.io/endpointslices/") {
        let prefix = format!("/registry/discovery.k8s.io/endpointslices/{namespace}/");
        for entry in slices.snapshot().objects.values() {
            if !entry.key.starts_with(&prefix)
                || entry.labels.get("kubernetes.io/service-name").map(String::as_str) != Some(name)
            {
                continue;
            }
            let slice = entry.value();
            let target = slice.get("ports").and_then(Value::as_array).and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str).unwrap_or_default() == port_name)
                    .and_then(|p| p.get("port").and_then(Value::as_u64))
            });
            let Some(target) = target.and_then(|p| u16::try_from(p).ok()) else { continue };
            for ep in slice.get("endpoints").and_then(Value::as_array).into_iter().flatten() {
                let ready = ep.pointer("/conditions/ready").and_then(Value::as_bool).unwrap_or(true);
                let addr = ep.pointer("/addresses/0").and_then(Value::as_str);
                if let (true, Some(addr)) = (ready, addr) {
                    return Ok(join_host(addr, target));
                }
            }
        }
    }
    let ip = svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty() && *ip != "None");
    let port = u16::try_from(port).map_err(|e| e.to_string())?;
    ip.map(|ip| join_host(ip, port)).ok_or_else(|| format!("no endpoints available for service \"{name}\""))
}

/// Where `hook` is called. The error is the reason the address is unknown.
pub fn destination(state: &ApiState, hook: &Hook) -> Result<Destination, String> {
    match &hook.endpoint {
        Endpoint::Url(url) => {
            let (host, port, path) = split_url(url).ok_or_else(|| format!("invalid webhook URL \"{url}\""))?;
            let path = with_timeout(&path, hook.timeout);
            let base = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let authority = base.split('/').next().unwrap_or(base);
            Ok(Destination {
                url: format!("https://{authority}{path}"),
                server_name: host.clone(),
                dial: join_host(&host, port),
                path,
            })
        }
        Endpoint::Service { namespace, name, path, port } => {
            let server_name = format!("{name}.{namespace}.svc");
            let path = with_timeout(path, hook.timeout);
            let url = format!("https://{server_name}:{port}{path}");
            let dial = resolve_service(state, namespace, name, *port).map_err(|e| format!("Post \"{url}\": {e}"))?;
            Ok(Destination { url, server_name, dial, path })
        }
    }
}

/// Go's rendering of a dial error.
fn dial_error(dial: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {dial}: {what}")
}

async fn exchange(dest: &Destination, tls: Arc<rustls::ClientConfig>, body: Bytes) -> Result<Value, String> {
    let tcp = TcpStream::connect(&dest.dial).await.map_err(|e| dial_error(&dest.dial, &e))?;
    let name = match dest.server_name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(dest.server_name.clone()).map_err(|e| e.to_string())?,
    };
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended with an error");
        }
    });
    let request = Request::post(&dest.path)
        .header(header::HOST, dest.url.split('/').nth(2).unwrap_or_default())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, */*")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes =
        Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| e.to_string())?.to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!("an error on the server (\"{}\") has prevented the request from succeeding", text.trim()));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("couldn't decode the response: {e}"))
}

/// POSTs `review` to `dest` within the hook's timeout; the error reads like Go's
/// (`Post "<url>": <cause>`).
pub async fn call(hook: &Hook, dest: &Destination, review: &Value) -> Result<Value, String> {
    let tls = hook.tls.clone().map_err(|e| format!("Post \"{}\": {e}", dest.url))?;
    let body = Bytes::from(serde_json::to_vec(review).map_err(|e| e.to_string())?);
    match tokio::time::timeout(hook.timeout, exchange(dest, tls, body)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("Post \"{}\": {e}", dest.url)),
        Err(_) => Err(format!("Post \"{}\": context deadline exceeded", dest.url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(split_url("https://127.0.0.1:8443/mutate"), Some(("127.0.0.1".into(), 8443, "/mutate".into())));
        assert_eq!(split_url("https://hook.example.com"), Some(("hook.example.com".into(), 443, "/".into())));
        assert_eq!(split_url("https://[::1]:9/x"), Some(("::1".into(), 9, "/x".into())));
        assert_eq!(split_url("http://x/"), None);
        assert_eq!(with_timeout("/v", Duration::from_secs(10)), "/v?timeout=10s");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(join_host("::1", 443), "[::1]:443");
    }
}
