//! One probe check, as the kubelet's probers run it: `exec` (in the container, through the
//! runtime), `httpGet` (HTTP/1.1 or HTTPS without verification, `kube-probe` user agent,
//! success for 200–399), `tcpSocket` (a connect) and `grpc` (the standard health-checking
//! protocol over HTTP/2 without TLS). Each returns [`Outcome`] with the upstream wording of the
//! failure, which becomes the `Unhealthy` event.
//!
//! What does not live here: when probes run and what their results do to the container
//! ([`super::prober`]); lifecycle hooks use [`http_get`] and the runtime's exec directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_runtime::container::Runtime;
use skiff_runtime::exec::ExecError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Success,
    /// The check failed; why, in the kubelet's words.
    Failure(String),
}

/// What a probe runs against.
#[derive(Clone)]
pub struct Target {
    /// The runtime (for exec).
    pub runtime: Arc<Runtime>,
    /// Runtime id of the container instance.
    pub instance: String,
    /// The container's spec (named ports).
    pub container: Container,
    /// The pod's address (the default host of network checks).
    pub pod_ip: String,
}

/// The kubelet's `User-Agent` for probes (`kube-probe/<major>.<minor>`).
fn user_agent() -> String {
    let mut parts = crate::KUBE_VERSION.split('.');
    format!("kube-probe/{}.{}", parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
}

/// Runs `probe`'s handler once against `target`, within its `timeoutSeconds` (default 1).
pub async fn check(probe: &Probe, target: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        return exec_check(exec, target, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        return http_get(http, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_check(tcp, target, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        return grpc_check(grpc, target, timeout).await;
    }
    Outcome::Failure("missing probe handler".into())
}

async fn exec_check(exec: &ExecAction, target: &Target, timeout: Duration) -> Outcome {
    let command = exec.command.clone().unwrap_or_default();
    let (runtime, instance, argv) = (Arc::clone(&target.runtime), target.instance.clone(), command.clone());
    let result = tokio::task::spawn_blocking(move || runtime.exec_sync(&instance, &argv, timeout)).await;
    match result {
        Ok(Ok(out)) => {
            if out.exit_code == 0 {
                Outcome::Success
            } else {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Outcome::Failure(text)
            }
        }
        Ok(Err(ExecError::Timeout(_))) => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
        Ok(Err(e)) => Outcome::Failure(e.to_string()),
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

/// Resolves a probe or hook port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

async fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", connect_error(&e))),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Go's wording of common connect errors.
fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::HostUnreachable => "no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        _ => e.to_string(),
    }
}

async fn tcp_check(tcp: &TCPSocketAction, target: &Target, timeout: Duration) -> Outcome {
    let port = match resolve_port(&tcp.port, &target.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = tcp.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
    match dial(&host, port, timeout).await {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(e),
    }
}

/// An `httpGet` probe or hook: success for a status in 200–399.
pub async fn http_get(http: &HTTPGetAction, target: &Target, timeout: Duration) -> Outcome {
    let port = match resolve_port(&http.port, &target.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = http.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
    let scheme = http.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
    let mut path = http.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let url = format!("{scheme}://{}{path}", host_port(&host, port));
    let request = async {
        let stream = dial(&host, port, timeout).await?;
        let mut builder = hyper::Request::get(&path);
        let mut has = (false, false, false);
        for h in http.http_headers.iter().flatten() {
            match h.name.to_ascii_lowercase().as_str() {
                "host" => has.0 = true,
                "user-agent" => has.1 = true,
                "accept" => has.2 = true,
                _ => {}
            }
            builder = builder.header(h.name.as_str(), h.value.as_str());
        }
        if !has.0 {
            builder = builder.header("Host", host_port(&host, port));
        }
        if !has.1 {
            builder = builder.header("User-Agent", user_agent());
        }
        if !has.2 {
            builder = builder.header("Accept", "*/*");
        }
        let request = builder.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        if scheme == "https" {
            let tls = insecure_tls(&host, stream).await?;
            send_http1(tls, request).await
        } else {
            send_http1(stream, request).await
        }
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(e)) => Outcome::Failure(format!("Get \"{url}\": {e}")),
        Err(_) => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn send_http1<S>(io: S, request: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(|e| e.to_string());
    let status = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read (and discard) the body so the server is not cut off mid-write.
            let _ = response.into_body().collect().await;
            Ok(status)
        }
        Err(e) => Err(e),
    };
    conn.abort();
    status
}

/// HTTPS as the kubelet probes it: no certificate verification.
async fn insecure_tls(host: &str, stream: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await.map_err(|e| e.to_string())
}

/// Accepts any server certificate (probes do not verify, as upstream), but still checks that
/// the handshake signatures are valid.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `grpc.health.v1.HealthCheckRequest{service}` as a gRPC message (length-prefixed protobuf).
fn grpc_health_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                message.push(byte);
                break;
            }
            message.push(byte | 0x80);
        }
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The `status` of a gRPC-framed `HealthCheckResponse` (0 when absent, as protobuf defaults).
fn grpc_health_status(body: &[u8]) -> Option<u64> {
    let message = body.get(5..)?;
    let mut i = 0;
    let mut status = 0;
    while i < message.len() {
        let key = message[i];
        i += 1;
        let mut value = 0u64;
        let mut shift = 0;
        match key & 7 {
            0 => loop {
                let b = *message.get(i)?;
                i += 1;
                value |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            },
            2 => {
                let len = *message.get(i)? as usize;
                i += 1 + len;
                continue;
            }
            _ => return None,
        }
        if key >> 3 == 1 {
            status = value;
        }
    }
    Some(status)
}

const GRPC_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

async fn grpc_check(grpc: &GRPCAction, target: &Target, timeout: Duration) -> Outcome {
    let port = match u16::try_from(grpc.port) {
        Ok(p) if p > 0 => p,
        _ => return Outcome::Failure(format!("invalid port number: {}", grpc.port)),
    };
    let service = grpc.service.clone().unwrap_or_default();
    let addr = host_port(&target.pod_ip, port);
    let call = async {
        let stream = dial(&target.pod_ip, port, timeout).await?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", user_agent())
            .body(Full::new(Bytes::from(grpc_health_request(&service))))
            .map_err(|e| e.to_string())?;
        let result = async {
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let collected = response.into_body().collect().await.map_err(|e| e.to_string())?;
            let trailers = collected.trailers().cloned();
            let body = collected.to_bytes();
            let code = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            if code != 0 {
                let message = trailers
                    .as_ref()
                    .and_then(|t| t.get("grpc-message"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                return Err(format!("rpc error: code = {code} desc = {message}"));
            }
            grpc_health_status(&body).ok_or_else(|| "malformed health check response".to_string())
        }
        .await;
        conn.abort();
        result
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(1)) => Outcome::Success,
        Ok(Ok(status)) => {
            let name = GRPC_STATUSES.get(status as usize).copied().unwrap_or("UNKNOWN");
            Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
        }
        Ok(Err(e)) => {
            Outcome::Failure(format!("failed to connect service {addr:?} within {}s: {e}", timeout.as_secs()))
        }
        Err(_) => {
            Outcome::Failure(format!("timeout: failed to connect service {addr:?} within {}s", timeout.as_secs()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn ports_resolve_by_number_and_name() {
        let container = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &container), Ok(80));
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &container), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &container), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("grpc".into()), &container),
            Err("couldn't find port: grpc in c".into())
        );
        assert!(resolve_port(&IntOrString::Int(0), &container).is_err());
    }

    #[test]
    fn grpc_messages_round_trip() {
        assert_eq!(grpc_health_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(grpc_health_request("ab"), vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']);
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_health_status(&[0, 0]), None);
    }

    async fn serve_once(response: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.expect("read");
            s.write_all(response.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, handle)
    }

    fn target() -> Target {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Runtime::open(dir.path(), std::path::Path::new("/bin/false")).expect("runtime");
        Target {
            runtime: Arc::new(runtime),
            instance: "x".into(),
            container: Container { name: "c".into(), ..Default::default() },
            pod_ip: "127.0.0.1".into(),
        }
    }

    #[tokio::test]
    async fn http_checks_status_and_sends_headers() {
        let (port, request) = serve_once("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").await;
        let action = HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(i32::from(port)),
            http_headers: Some(vec![k8s_openapi::api::core::v1::HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        };
        assert_eq!(http_get(&action, &target(), Duration::from_secs(2)).await, Outcome::Success);
        let request = request.await.expect("server");
        assert!(request.starts_with("GET /healthz HTTP/1.1\r\n"), "{request}");
        assert!(request.to_ascii_lowercase().contains("user-agent: kube-probe/1.33"), "{request}");
        assert!(request.to_ascii_lowercase().contains("x-probe: yes"), "{request}");

        let (port, _) = serve_once("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await;
        let action = HTTPGetAction { port: IntOrString::Int(i32::from(port)), ..Default::default() };
        assert_eq!(
            http_get(&action, &target(), Duration::from_secs(2)).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }

    #[tokio::test]
    async fn refused_connections_read_like_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let action = TCPSocketAction { port: IntOrString::Int(i32::from(port)), ..Default::default() };
        assert_eq!(
            tcp_check(&action, &target(), Duration::from_secs(1)).await,
            Outcome::Failure(format!("dial tcp 127.0.0.1:{port}: connect: connection refused"))
        );
    }
}
