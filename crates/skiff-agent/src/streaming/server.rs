//! The streaming server's listener: TLS with client certificates verified against the cluster
//! CA, authentication of the caller (only the API server's kubelet-client identity), HTTP/1.1
//! with upgrades, and routing of the kubelet's streaming paths to their handlers.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use skiff_runtime::container::Runtime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{KUBELET_CLIENT_CN, StreamingTls};

/// The body of every response.
pub type Body = BoxBody<Bytes, Infallible>;

/// Streaming server failures at start.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// Bad certificate or key material.
    #[error("invalid TLS material for the streaming server: {0}")]
    Tls(String),
    /// The port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the handlers share.
pub struct Streaming {
    /// The container runtime.
    pub runtime: Arc<Runtime>,
    /// API client (pods are looked up by namespace and name).
    pub client: kube::Client,
    /// Where container logs are (`/var/log/pods`).
    pub log_dir: PathBuf,
    /// Measures the node and its pods for the stats endpoints.
    pub stats: Arc<crate::stats::collect::Collector>,
}

/// The rustls configuration: the serving certificate, and client certificates verified against
/// the cluster CA (a connection without one is accepted, then refused with 401).
pub fn tls_config(tls: &StreamingTls) -> Result<rustls::ServerConfig, StreamingError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| StreamingError::Tls(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| StreamingError::Tls(format!("serving key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| StreamingError::Tls(format!("client CA: {e}")))?;
        roots.add(ca).map_err(|e| StreamingError::Tls(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| StreamingError::Tls(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StreamingError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| StreamingError::Tls(format!("serving certificate/key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `addr`.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StreamingError> {
    TcpListener::bind(addr).await.map_err(|source| StreamingError::Bind { addr, source })
}

/// Serves connections until the task is aborted.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, ctx: Arc<Streaming>) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "streaming server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, ctx) = (acceptor.clone(), Arc::clone(&ctx));
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "streaming server: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| common_name(c));
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (ctx, user) = (Arc::clone(&ctx), user.clone());
                async move { Ok::<_, Infallible>(route(ctx, user.as_deref(), req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "streaming connection ended with an error");
            }
        });
    }
}

fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    cert.subject().iter_common_name().next()?.as_str().ok().map(str::to_string)
}

/// A complete response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A plain-text response.
pub fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(full(message.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A `Status` response (what the API server hands on to the client).
pub fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

async fn route(ctx: Arc<Streaming>, user: Option<&str>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let Some(user) = user else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (verb, subresource) = match segments.first().copied() {
        Some("containerLogs") => ("get", "log"),
        Some("exec" | "attach" | "portForward") => ("create", "proxy"),
        Some("metrics") => ("get", "metrics"),
        Some("stats") => ("get", "stats"),
        _ => ("get", "proxy"),
    };
    if user != KUBELET_CLIENT_CN {
        return text(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource={subresource})"),
        );
    }
    let get_or_post = matches!(*req.method(), Method::GET | Method::POST);
    match segments.as_slice() {
        ["containerLogs", ns, pod, container] if *req.method() == Method::GET => {
            super::logs::serve(ctx, ns, pod, container, req.uri().query().unwrap_or("")).await
        }
        ["exec", ns, pod, container] if get_or_post => {
            super::remotecommand::serve(ctx, super::remotecommand::Kind::Exec, ns, pod, container, req).await
        }
        ["attach", ns, pod, container] if get_or_post => {
            super::remotecommand::serve(ctx, super::remotecommand::Kind::Attach, ns, pod, container, req).await
        }
        ["portForward", ns, pod] if get_or_post => super::portforward::serve(ctx, ns, pod, req).await,
        ["metrics"] if *req.method() == Method::GET => {
            let body = crate::stats::kubelet::render(&ctx.stats.kubelet_metrics().await);
            let mut resp = Response::new(full(body));
            let content_type = http::HeaderValue::from_static(crate::stats::prometheus::CONTENT_TYPE);
            resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
            resp
        }
        ["metrics", "resource" | "cadvisor"] | ["stats", "summary"] if *req.method() == Method::GET => {
            stats(&ctx, &segments, req.uri().query().unwrap_or("")).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// The stats endpoints: `/metrics/resource` (CPU and memory), `/metrics/cadvisor` (Prometheus
/// text) and `/stats/summary` (JSON; `only_cpu_and_memory=true` leaves storage and network out).
async fn stats(ctx: &Streaming, segments: &[&str], query: &str) -> Response<Body> {
    use crate::stats::{cadvisor, collect::Scope, prometheus, summary};
    let scope = match segments {
        ["stats", ..] => Scope { everything: !flag(&query_pairs(query), "only_cpu_and_memory"), cpu_rates: true },
        ["metrics", "resource"] => Scope { everything: false, cpu_rates: false },
        _ => Scope { everything: true, cpu_rates: false },
    };
    let snapshot = ctx.stats.snapshot(scope).await;
    let (body, content_type) = match segments {
        ["stats", ..] => match serde_json::to_string_pretty(&summary::build(&snapshot)) {
            Ok(json) => (json, "application/json"),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the summary: {e}")),
        },
        ["metrics", "resource"] => (prometheus::render(&snapshot), prometheus::CONTENT_TYPE),
        _ => (cadvisor::render(&snapshot), prometheus::CONTENT_TYPE),
    };
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    resp
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of a request, decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let plus = |s: &str| percent_decode(&s.replace('+', " "));
            (plus(k), plus(v))
        })
        .collect()
}

/// Whether a boolean query parameter is set (`1` or `true`, as the kubelet reads them).
pub fn flag(pairs: &[(String, String)], name: &str) -> bool {
    pairs.iter().any(|(k, v)| k == name && (v == "1" || v.eq_ignore_ascii_case("true")))
}

/// The first value of query parameter `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A container of a pod, as the handlers need it.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    /// The pod.
    pub pod: Pod,
    /// Its uid.
    pub uid: String,
    /// The container's name.
    pub container: String,
    /// The attempt of its newest instance, if one was created.
    pub attempt: Option<u32>,
}

impl ContainerRef {
    /// The runtime id of instance `attempt`.
    pub fn instance(&self, attempt: u32) -> String {
        crate::pods::worker::instance_id(&self.uid, &self.container, attempt)
    }
}

/// Looks up pod `ns/name` and its container `container` (404 when either is unknown).
pub async fn find_container(
    ctx: &Streaming,
    ns: &str,
    name: &str,
    container: &str,
) -> Result<ContainerRef, Box<Response<Body>>> {
    let pod = find_pod(ctx, ns, name).await?;
    let spec = pod.spec.as_ref();
    let known = spec.is_some_and(|s| {
        s.containers.iter().chain(s.init_containers.iter().flatten()).any(|c| c.name == container)
            || s.ephemeral_containers.iter().flatten().any(|c| c.name == container)
    });
    if !known {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container:?} not found in pod {name:?}"),
        )));
    }
    // A mirror pod's containers run under its static pod's UID.
    let uid = crate::static_pods::runtime_uid(&pod);
    let runtime = Arc::clone(&ctx.runtime);
    let prefix = format!("{uid}-{container}-");
    let attempt = tokio::task::spawn_blocking(move || {
        runtime.list().unwrap_or_default().iter().filter_map(|id| id.strip_prefix(&prefix)?.parse::<u32>().ok()).max()
    })
    .await
    .ok()
    .flatten();
    Ok(ContainerRef { pod, uid, container: container.to_string(), attempt })
}

/// Looks up pod `ns/name` (404 when unknown). The Node authorizer refuses a node the pods not
/// bound to it (403), which for this node's server means the same: no such pod here.
pub async fn find_pod(ctx: &Streaming, ns: &str, name: &str) -> Result<Pod, Box<Response<Body>>> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => Err(not_here(name)),
        Err(kube::Error::Api(e)) if e.code == 403 => Err(not_here(name)),
        Err(e) => Err(Box::new(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("cannot look up pod {ns}/{name}: {e}"),
        ))),
    }
}

fn not_here(name: &str) -> Box<Response<Body>> {
    Box::new(status(StatusCode::NOT_FOUND, "NotFound", format!("pod {name:?} does not exist")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_decode_like_the_kubelet_reads_them() {
        let pairs = query_pairs("command=sh&command=-c&command=echo+a%20b&input=1&tty=true&output=0");
        let commands: Vec<&str> = pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.as_str()).collect();
        assert_eq!(commands, ["sh", "-c", "echo a b"]);
        assert!(flag(&pairs, "input") && flag(&pairs, "tty"));
        assert!(!flag(&pairs, "output") && !flag(&pairs, "error"));
        assert_eq!(param(&pairs, "command"), Some("sh"));
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
