//! The streaming subresources of pods (`pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward`): the API server checks the request against the pod (container name,
//! node), finds the node agent's streaming endpoint (the Node's address and
//! `daemonEndpoints.kubeletEndpoint.port`), and proxies the request there over TLS with its
//! kubelet-client certificate, as upstream's apiserver does. Log bodies stream through;
//! upgrades (SPDY/3.1, WebSocket) are passed through byte for byte once the agent answers 101.
//! Also the nodes' `proxy` subresource (`/api/v1/nodes/{name}/proxy/{path}`, authorized as
//! `nodes/proxy`): any request to the agent's own paths, such as `/stats/summary`.
//!
//! The options of the CONNECTs (exec, attach, port-forward) live in [`options`]; admission may
//! rewrite them before the connection is made.
//!
//! What does not live here: the protocols themselves (the agent's streaming server).

pub mod options;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_api::status::{GroupKind, GroupResource};
use skiff_api::validation::FieldError;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use options::ConnectOptions;

use crate::authn::UserInfo;
use crate::handlers::Ctx;
use crate::reqinfo::{ResourceRequest, Verb};
use crate::response;
use crate::state::ApiState;

/// How long connecting to an agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent port when a Node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The API server's credentials towards node agents.
#[derive(Clone)]
pub struct KubeletClientTls {
    /// Client certificate (PEM) of the kubelet-client identity, signed by the cluster CA.
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
    /// The CA (PEM) that signed the agents' serving certificates.
    pub ca_pem: String,
}

impl std::fmt::Debug for KubeletClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeletClientTls { .. }")
    }
}

/// Opens TLS connections to node agents.
#[derive(Clone)]
pub struct KubeletDialer {
    connector: TlsConnector,
}

impl std::fmt::Debug for KubeletDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeletDialer")
    }
}

impl KubeletDialer {
    /// A dialer presenting `tls`'s certificate and trusting its CA.
    pub fn new(tls: &KubeletClientTls) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| format!("kubelet CA: {e}"))?).map_err(|e| format!("kubelet CA: {e}"))?;
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("kubelet client certificate: {e}"))?;
        let key =
            PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| format!("kubelet client key: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("kubelet client certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { connector: TlsConnector::from(Arc::new(config)) })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(addr.ip().into());
        self.connector.connect(name, tcp).await.map_err(|e| format!("TLS handshake with {addr}: {e}"))
    }
}

impl KubeletDialer {
    /// GETs `path` from the agent at `addr` and returns the body; a status other than 200 is an
    /// error (the resource metrics scraper).
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<bytes::Bytes, String> {
        use http_body_util::BodyExt;
        let tls = self.connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("connecting to the node agent: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| format!("GET {path} from {addr}: {e}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| format!("reading {path} from {addr}: {e}"))?;
        conn.abort();
        if status != StatusCode::OK {
            return Err(format!("GET {path} from {addr}: {status}: {}", String::from_utf8_lossy(&body.to_bytes())));
        }
        Ok(body.to_bytes())
    }
}

/// Whether `req` addresses a streaming subresource of a pod.
pub fn is_streaming(req: &ResourceRequest) -> bool {
    req.group.is_empty()
        && req.resource == "pods"
        && req.name.is_some()
        && matches!(req.subresource.as_deref(), Some("log" | "exec" | "attach" | "portforward"))
}

/// Serves a streaming subresource request.
pub async fn handle(
    state: &ApiState,
    dialer: Option<&KubeletDialer>,
    user: Arc<UserInfo>,
    req: ResourceRequest,
    parts: Parts,
    body: Body,
) -> Response<Body> {
    match serve(state, dialer, user, req, parts, body).await {
        Ok(resp) => resp,
        Err(e) => response::status(&e),
    }
}

async fn get_object(state: &ApiState, plural: &str, ns: Option<&str>, name: &str) -> Result<Value, StatusError> {
    let info = catalogue::find("", "v1", plural)
        .ok_or_else(|| StatusError::internal(format!("the {plural} resource is not served")))?;
    let kv = state.store.get(&info.key(ns, name)).await.map_err(StatusError::internal)?;
    let kv = kv.ok_or_else(|| StatusError::not_found(&GroupResource::new("", plural), name))?;
    serde_json::from_slice(&kv.value).map_err(StatusError::internal)
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The container a request is about: the one named, or the pod's only container (upstream's
/// messages otherwise).
pub fn validate_container(pod: &Value, name: &str, container: Option<&str>) -> Result<String, StatusError> {
    let (init, app, ephemeral) = (
        container_names(pod, "initContainers"),
        container_names(pod, "containers"),
        container_names(pod, "ephemeralContainers"),
    );
    match container.filter(|c| !c.is_empty()) {
        Some(c) if init.iter().chain(&app).chain(&ephemeral).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(StatusError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None => match app.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(StatusError::bad_request(format!("pod {name} does not have a container"))),
            _ => {
                let all: Vec<String> = init.into_iter().chain(app).chain(ephemeral).collect();
                Err(StatusError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )))
            }
        },
    }
}

/// The agent's address from the Node object: its InternalIP (else any address that is an IP)
/// and its kubelet endpoint port.
pub fn node_endpoint(node: &Value) -> Option<SocketAddr> {
    let addresses = node["status"]["addresses"].as_array()?;
    let ip = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|kind| {
        addresses
            .iter()
            .filter(|a| a["type"].as_str() == Some(kind))
            .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
    })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some(SocketAddr::new(ip, port))
}

/// Upstream's `ValidatePodLogOptions`: 422 `PodLogOptions "<pod>" is invalid: …`.
pub fn validate_log_options(name: &str, query: &str) -> Result<(), StatusError> {
    let pairs = pairs(query);
    let int = |key: &str| pairs.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<i64>().ok());
    let mut errors = Vec::new();
    if let Some(tail) = int("tailLines").filter(|t| *t < 0) {
        errors.push(FieldError::invalid("tailLines", tail, "must be greater than or equal to 0"));
    }
    if let Some(limit) = int("limitBytes").filter(|l| *l < 1) {
        errors.push(FieldError::invalid("limitBytes", limit, "must be greater than 0"));
    }
    match (int("sinceSeconds"), pairs.iter().any(|(k, _)| k == "sinceTime")) {
        (Some(_), true) => {
            errors.push(FieldError::forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
        }
        (Some(since), false) if since < 1 => {
            errors.push(FieldError::invalid("sinceSeconds", since, "must be greater than 0"));
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::invalid(&GroupKind::new("", "PodLogOptions"), name, &errors))
    }
}

/// Admission of a CONNECT to a pod (exec, attach, port-forward): the admission webhooks and
/// policies whose rules name the `CONNECT` operation see the options object, as upstream;
/// returns the options as the mutating webhooks left them.
async fn admit_connect(
    state: &ApiState,
    user: Arc<UserInfo>,
    parts: &Parts,
    (ns, name): (&str, &str),
    sub: &str,
    options: ConnectOptions,
) -> Result<ConnectOptions, StatusError> {
    let info =
        catalogue::find("", "v1", "pods").ok_or_else(|| StatusError::internal("the pods resource is not served"))?;
    let mut ctx = Ctx::internal(info, Some(ns), Verb::Create);
    ctx.user = user;
    ctx.name = Some(name.to_string());
    ctx.subresource = Some(sub.to_string());
    ctx.audit = parts.extensions.get::<crate::audit::Slot>().cloned();
    let mut obj = options.to_value();
    crate::admission::webhook::admit_connect(state, &ctx, &mut obj, &|patched| options.reread(patched)).await?;
    options.decode_same_kind(obj).map_err(StatusError::internal)
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// The agent's path and query for a log request (upstream's `LogLocation`).
pub fn log_path(ns: &str, pod: &str, container: &str, query: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs(query) {
        if matches!(
            k.as_str(),
            "follow" | "previous" | "timestamps" | "sinceSeconds" | "sinceTime" | "tailLines" | "limitBytes"
        ) {
            out.append_pair(&k, &v);
        }
    }
    let path = format!("/containerLogs/{}/{}/{}", enc(ns), enc(pod), enc(container));
    let query = out.finish();
    if query.is_empty() { path } else { format!("{path}?{query}") }
}

async fn serve(
    state: &ApiState,
    dialer: Option<&KubeletDialer>,
    user: Arc<UserInfo>,
    req: ResourceRequest,
    parts: Parts,
    body: Body,
) -> Result<Response<Body>, StatusError> {
    let sub = req.subresource.clone().unwrap_or_default();
    let pods = GroupResource::new("", "pods");
    let allowed =
        if sub == "log" { parts.method == Method::GET } else { matches!(parts.method, Method::GET | Method::POST) };
    if !allowed {
        return Err(StatusError::method_not_supported(&pods, parts.method.as_str()));
    }
    drop(body);
    let (Some(ns), Some(name)) = (req.namespace.as_deref(), req.name.as_deref()) else {
        return Err(StatusError::not_found_message("the server could not find the requested resource"));
    };
    let pod = get_object(state, "pods", Some(ns), name).await?;
    let query = parts.uri.query().unwrap_or("").to_string();
    // Logs are a GET with options; the others are CONNECTs whose options pass admission (and
    // may be rewritten by it) before the container is resolved, as upstream.
    let path = if sub == "log" {
        validate_log_options(name, &query)?;
        let asked = pairs(&query).into_iter().find(|(k, _)| k == "container").map(|(_, v)| v);
        log_path(ns, name, &validate_container(&pod, name, asked.as_deref())?, &query)
    } else {
        let options = ConnectOptions::from_query(&sub, &query)?;
        let options = admit_connect(state, user, &parts, (ns, name), &sub, options).await?;
        let container = match options {
            ConnectOptions::PortForward(_) => String::new(),
            _ => validate_container(&pod, name, options.container())?,
        };
        options.agent_path(ns, name, &container)
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node_name.is_empty() {
        if sub == "log" {
            // Upstream streams nothing for a pod that has no node yet.
            return Ok(response::text(200, String::new()));
        }
        return Err(StatusError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    forward(state, dialer, node_name, &path, parts, Body::empty()).await
}

/// Whether `req` addresses a node's `proxy` subresource (`/api/v1/nodes/{name}/proxy/…`).
pub fn is_node_proxy(req: &ResourceRequest) -> bool {
    req.group.is_empty() && req.resource == "nodes" && req.name.is_some() && req.subresource.as_deref() == Some("proxy")
}

/// Serves `nodes/{name}/proxy/{path}`: the request goes to the node agent's `/{path}` (with its
/// query and body), as upstream's node proxy does; the agent answers for the paths it serves
/// (`/stats/summary`, `/metrics/…`, `/healthz`, …).
pub async fn handle_node_proxy(
    state: &ApiState,
    dialer: Option<&KubeletDialer>,
    req: &ResourceRequest,
    parts: Parts,
    body: Body,
) -> Response<Body> {
    let name = req.name.as_deref().unwrap_or_default();
    let path = node_proxy_path(parts.uri.path(), name, parts.uri.query());
    match forward(state, dialer, name, &path, parts, body).await {
        Ok(resp) => resp,
        Err(e) => response::status(&e),
    }
}

/// The agent path of a node proxy request path: what follows `/nodes/{name}/proxy` (at least
/// `/`), with the query.
fn node_proxy_path(request_path: &str, name: &str, query: Option<&str>) -> String {
    let marker = format!("/nodes/{name}/proxy");
    let rest = request_path.find(&marker).map(|at| &request_path[at + marker.len()..]).unwrap_or("");
    let rest = if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
    match query {
        Some(q) if !q.is_empty() => format!("{rest}?{q}"),
        _ => rest,
    }
}

/// Sends `parts` with `body` to `path` on the agent of node `node_name` over TLS with the
/// kubelet-client certificate, and hands its answer back (upgrades spliced through).
async fn forward(
    state: &ApiState,
    dialer: Option<&KubeletDialer>,
    node_name: &str,
    path: &str,
    mut parts: Parts,
    body: Body,
) -> Result<Response<Body>, StatusError> {
    let node = get_object(state, "nodes", None, node_name).await?;
    let addr = node_endpoint(&node)
        .ok_or_else(|| StatusError::bad_request(format!("node {node_name} has no address to reach its agent")))?;
    let dialer =
        dialer.ok_or_else(|| StatusError::service_unavailable("this API server has no credentials for node agents"))?;
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let tls = dialer.connect(addr).await.map_err(|e| StatusError::internal(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| StatusError::internal(format!("connecting to the node agent: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "node agent connection ended with an error");
        }
    });
    let mut forwarded = Request::builder().method(parts.method.clone()).uri(path);
    for (k, v) in &parts.headers {
        let hop =
            matches!(k.as_str(), "host" | "authorization" | "content-length" | "transfer-encoding" | "keep-alive")
                || (!upgrade && matches!(k.as_str(), "connection" | "upgrade"));
        if !hop {
            forwarded = forwarded.header(k, v);
        }
    }
    let host = HeaderValue::from_str(&addr.to_string()).map_err(StatusError::internal)?;
    let forwarded = forwarded.header(header::HOST, host).body(body).map_err(StatusError::internal)?;
    let mut backend = sender
        .send_request(forwarded)
        .await
        .map_err(|e| StatusError::internal(format!("proxying to the node agent: {e}")))?;
    if backend.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(StatusError::bad_request("the connection cannot be upgraded"));
        };
        let backend_upgrade = hyper::upgrade::on(&mut backend);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, backend_upgrade) {
                Ok((client, agent)) => {
                    let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                        tracing::debug!(error = %e, "streaming proxy ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrading the streaming proxy"),
            }
        });
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *resp.headers_mut() = backend.headers().clone();
        return Ok(resp);
    }
    let (backend_parts, backend_body) = backend.into_parts();
    let mut resp = Response::new(Body::new(backend_body));
    *resp.status_mut() = backend_parts.status;
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = backend_parts.headers.get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_names_are_checked_as_upstream() {
        let pod = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(validate_container(&pod, "p", Some("b")).expect("valid"), "b");
        assert_eq!(validate_container(&pod, "p", Some("init")).expect("valid"), "init");
        let e = validate_container(&pod, "p", Some("x")).expect_err("invalid");
        assert_eq!(e.to_status()["message"], "container x is not valid for pod p");
        assert_eq!(e.to_status()["code"], 400);
        let e = validate_container(&pod, "p", None).expect_err("ambiguous");
        assert_eq!(e.to_status()["message"], "a container name must be specified for pod p, choose one of: [init a b]");
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(validate_container(&one, "p", None).expect("only"), "only");
    }

    #[test]
    fn log_options_are_validated_as_upstream() {
        assert!(validate_log_options("p", "tailLines=0&limitBytes=1&sinceSeconds=1").is_ok());
        let e = validate_log_options("p", "tailLines=-1").expect_err("negative tail");
        assert_eq!(e.to_status()["code"], 422);
        assert_eq!(
            e.to_status()["message"],
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(validate_log_options("p", "limitBytes=0").is_err());
        assert!(validate_log_options("p", "sinceSeconds=0").is_err());
        let both = validate_log_options("p", "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z").expect_err("both");
        assert!(both.to_status()["message"].as_str().is_some_and(|m| m.contains("at most one of")));
    }

    #[test]
    fn log_paths_keep_the_kubelet_parameters() {
        assert_eq!(
            log_path("ns", "p", "c", "container=c&follow=true&tailLines=3&pretty=1"),
            "/containerLogs/ns/p/c?follow=true&tailLines=3"
        );
    }

    #[test]
    fn node_proxy_paths_keep_the_rest_and_the_query() {
        assert_eq!(
            node_proxy_path("/api/v1/nodes/n1/proxy/stats/summary", "n1", Some("only_cpu_and_memory=true")),
            "/stats/summary?only_cpu_and_memory=true"
        );
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxy", "n1", None), "/");
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxy/", "n1", Some("")), "/");
    }

    #[test]
    fn node_endpoint_prefers_the_internal_ip_and_the_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10260}},
        }});
        assert_eq!(node_endpoint(&node), Some("10.0.0.5:10260".parse().expect("addr")));
        let bare = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]}});
        assert_eq!(node_endpoint(&bare), Some("10.0.0.6:10250".parse().expect("addr")));
    }
}
