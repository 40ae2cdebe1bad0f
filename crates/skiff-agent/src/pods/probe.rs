//! One probe check, as the kubelet's probers run it: `exec` (in the container, through the
//! runtime), `httpGet` (through [`super::http_get`]: success for 200–299, a warning for a
//! redirect it did not follow, failure otherwise), `tcpSocket` (a connect) and `grpc` (the
//! standard health-checking protocol over HTTP/2 without TLS). Each returns [`Outcome`] with
//! the upstream wording of a failure or warning, which becomes the `Unhealthy` or
//! `ProbeWarning` event.
//!
//! What does not live here: when probes run and what their results do to the container
//! ([`super::prober`]); lifecycle hooks use [`super::http_get`] and the runtime's exec directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_runtime::container::Runtime;
use skiff_runtime::exec::ExecError;
use tokio::net::TcpStream;

use super::http_get::{self, Purpose};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Success,
    /// The check passed with a warning (an `httpGet` redirect not followed), in the kubelet's
    /// words: a `ProbeWarning` event.
    Warning(String),
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

pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

pub(super) async fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
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

/// An `httpGet` probe: success for a status in 200–299, a warning (still a success) for a
/// 3xx that ended the redirects, a failure otherwise.
pub async fn http_get(http: &HTTPGetAction, target: &Target, timeout: Duration) -> Outcome {
    match http_get::get(http, target, timeout, Purpose::Probe).await {
        Ok(response) if (200..300).contains(&response.status) => Outcome::Success,
        Ok(response) if (300..400).contains(&response.status) => Outcome::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            String::from_utf8_lossy(&response.body)
        )),
        Ok(response) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", response.status)),
        Err(e) => Outcome::Failure(e),
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
            .header("user-agent", Purpose::Probe.user_agent())
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

        let (port, _) =
            serve_once("HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 5\r\n\r\nmoved")
                .await;
        let action = HTTPGetAction { port: IntOrString::Int(i32::from(port)), ..Default::default() };
        assert_eq!(
            http_get(&action, &target(), Duration::from_secs(2)).await,
            Outcome::Warning("Probe terminated redirects, Response body: moved".into())
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
