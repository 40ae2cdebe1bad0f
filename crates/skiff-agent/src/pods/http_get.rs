//! The kubelet's HTTP client for `httpGet` probes and lifecycle hooks: the request as upstream
//! builds it (`kube-probe/<major>.<minor>` or `kube-lifecycle/…` user agent unless the action
//! sets one, `Accept: */*` unless set, an empty `Accept` removed, the `Host` header from
//! `httpHeaders`), HTTP/1.1 or HTTPS without certificate verification, and upstream's redirect
//! policy: redirects (301, 302, 303, 307, 308 with a `Location`) are followed only to the same
//! host name, at most 10 requests in all; a redirect elsewhere ends the exchange with that 3xx
//! response. At most 10 KiB of the final body is kept, never decoded. Probes add no
//! `Accept-Encoding` (upstream's prober disables compression); hooks ask for `gzip` unless the
//! action names an encoding or a range, as the kubelet's lifecycle client (Go's default transport)
//! does, whose bodies are thrown away. An HTTPS request answered in plain HTTP fails with Go's words ("server gave HTTP
//! response to HTTPS client", see [`is_http_response_error`]), which lifecycle hooks retry
//! over HTTP.
//!
//! What does not live here: what a status means (probes: [`super::probe`], hooks:
//! [`super::hooks`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use url::{Position, Url};

use super::probe::{Target, dial, host_port, resolve_port};

/// How much of a response body is kept (upstream's `maxRespBodyLength`).
pub const MAX_BODY: usize = 10 * 1024;

/// How an HTTPS request answered by a plain HTTP server fails (Go's wording).
const HTTP_RESPONSE_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";

/// Whether `error` (of [`get`]) says an HTTPS server answered in plain HTTP.
pub fn is_http_response_error(error: &str) -> bool {
    error.contains(HTTP_RESPONSE_TO_HTTPS)
}

/// Requests of one exchange at most (the original and nine redirects), as Go's client.
const MAX_REQUESTS: usize = 10;

/// Who sends the request; names the `User-Agent` (`kube-<purpose>/<major>.<minor>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A probe (`kube-probe`).
    Probe,
    /// A lifecycle hook (`kube-lifecycle`).
    Lifecycle,
}

impl Purpose {
    /// The default `User-Agent`.
    pub fn user_agent(self) -> String {
        let mut parts = crate::KUBE_VERSION.split('.');
        let purpose = match self {
            Purpose::Probe => "probe",
            Purpose::Lifecycle => "lifecycle",
        };
        format!("kube-{purpose}/{}.{}", parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
    }
}

/// The last response of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its status code (a 3xx when a redirect was not followed).
    pub status: u16,
    /// Its body, cut at [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

/// One request of an exchange: where it goes and how errors name it.
struct Hop {
    url: Url,
    /// As errors print it (`Get "<shown>": …`).
    shown: String,
    /// Dial address.
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
}

impl Hop {
    /// The hop a `Location` header points at, resolved against `self`.
    fn redirect(&self, location: &str) -> Result<Hop, String> {
        let url = self.url.join(location).map_err(|e| format!("failed to parse Location header {location:?}: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("unsupported protocol scheme {:?}", url.scheme()));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("http: no Host in request URL".into()),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = url[Position::BeforeHost..Position::AfterPort].to_string();
        Ok(Hop { shown: url.to_string(), url, host, port, authority })
    }

    /// The host name redirects are compared by.
    fn hostname(&self) -> Option<&str> {
        self.url.host_str()
    }
}

/// Runs the `GET` of `action` against `target` within `timeout`, following redirects as the
/// kubelet does. Errors are worded as Go's client (`Get "<url>": …`).
pub async fn get(
    action: &HTTPGetAction,
    target: &Target,
    timeout: Duration,
    purpose: Purpose,
) -> Result<Response, String> {
    let (host, port) = host_and_port(action, target)?;
    let scheme = action.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let authority = host_port(&host, port);
    let shown = format!("{scheme}://{authority}{path}");
    let url = Url::parse(&shown).map_err(|e| format!("parse {shown:?}: {e}"))?;
    let mut hop = Hop { url, shown, host, port, authority };
    let headers = base_headers(action, purpose);
    let custom_host = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.clone());
    let mut host_header = custom_host.clone().unwrap_or_else(|| hop.authority.clone());
    let (first_hostname, first_authority) = (hop.hostname().map(str::to_string), hop.authority.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut referer = None;
    let mut sent = 0;
    loop {
        sent += 1;
        let target = &hop.url[Position::BeforePath..Position::AfterQuery];
        let mut builder = hyper::Request::get(target).header("Host", host_header.as_str());
        for (name, value) in headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("host")) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(referer) = &referer {
            builder = builder.header("Referer", referer);
        }
        let request = builder.body(Full::new(Bytes::new())).map_err(|e| format!("Get {:?}: {e}", hop.shown))?;
        let secure = hop.url.scheme() == "https";
        let exchange = send(&hop.host, hop.port, secure, request, timeout);
        let (status, location, body) = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(format!("Get {:?}: {e}", hop.shown)),
            Err(_) => {
                return Err(format!(
                    "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    hop.shown
                ));
            }
        };
        let Some(location) = location.filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308)) else {
            return Ok(Response { status, body });
        };
        let next = hop.redirect(&location).map_err(|e| format!("Get {:?}: {e}", hop.shown))?;
        if next.hostname().map(str::to_string) != first_hostname {
            return Ok(Response { status, body });
        }
        if sent >= MAX_REQUESTS {
            return Err(format!("Get {:?}: stopped after {MAX_REQUESTS} redirects", hop.shown));
        }
        // Go keeps a custom Host only through relative redirects.
        let relative = Url::parse(&location).is_err();
        host_header = match &custom_host {
            Some(h) if relative && *h != first_authority => h.clone(),
            _ => next.authority.clone(),
        };
        let has_referer = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("referer"));
        let downgrade = hop.url.scheme() == "https" && next.url.scheme() == "http";
        referer = (!has_referer && !downgrade).then(|| without_credentials(&hop.url));
        hop = next;
    }
}

/// Where `action` goes: its host (the pod's IP unless set) and its port resolved.
fn host_and_port(action: &HTTPGetAction, target: &Target) -> Result<(String, u16), String> {
    let port = resolve_port(&action.port, &target.container)?;
    let host = action.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
    Ok((host, port))
}

/// `host:port` of the first request of `action` (as a URL's authority).
pub fn authority(action: &HTTPGetAction, target: &Target) -> Result<String, String> {
    let (host, port) = host_and_port(action, target)?;
    Ok(host_port(&host, port))
}

/// The headers of every request: the action's, then the defaults it does not override.
fn base_headers(action: &HTTPGetAction, purpose: Purpose) -> Vec<(String, String)> {
    let given = action.http_headers.clone().unwrap_or_default();
    let has = |name: &str| given.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let (has_agent, has_accept) = (has("user-agent"), has("accept"));
    let asks_gzip = purpose == Purpose::Lifecycle && !has("accept-encoding") && !has("range");
    // An empty Accept or User-Agent means "send none", as Go's client.
    let mut headers: Vec<(String, String)> = given
        .into_iter()
        .filter(|h| {
            !(h.value.is_empty()
                && (h.name.eq_ignore_ascii_case("accept") || h.name.eq_ignore_ascii_case("user-agent")))
        })
        .map(|h| (h.name, h.value))
        .collect();
    if !has_agent {
        headers.push(("User-Agent".into(), purpose.user_agent()));
    }
    if !has_accept {
        headers.push(("Accept".into(), "*/*".into()));
    }
    if asks_gzip {
        headers.push(("Accept-Encoding".into(), "gzip".into()));
    }
    headers
}

/// `url` without user name and password, as a `Referer`.
fn without_credentials(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// One request on a fresh connection: status, `Location` and the first [`MAX_BODY`] bytes.
async fn send(
    host: &str,
    port: u16,
    secure: bool,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let stream = dial(host, port, timeout).await?;
    if secure {
        let tls = insecure_tls(host, stream).await?;
        send_http1(tls, request).await
    } else {
        send_http1(stream, request).await
    }
}

async fn send_http1<S>(io: S, request: hyper::Request<Full<Bytes>>) -> Result<(u16, Option<String>, Vec<u8>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let mut body = response.into_body();
        let mut kept = Vec::new();
        while kept.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        kept.extend_from_slice(data);
                    }
                }
                // A body cut short still answers the check, as upstream's non-fatal truncation.
                Some(Err(_)) | None => break,
            }
        }
        kept.truncate(MAX_BODY);
        Ok((status, location, kept))
    }
    .await;
    conn.abort();
    result
}

/// A stream that keeps the first bytes the server sends, to tell a plain HTTP answer to a TLS
/// handshake from other handshake failures (as Go's TLS client does).
struct FirstBytes<S> {
    inner: S,
    seen: Vec<u8>,
}

/// How many first bytes [`FirstBytes`] keeps (a TLS record header; `HTTP/`).
const SNIFFED: usize = 5;

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let room = SNIFFED.saturating_sub(self.seen.len());
        if room > 0 {
            let new = &buf.filled()[before..];
            let take = new.len().min(room);
            let copied = new[..take].to_vec();
            self.seen.extend_from_slice(&copied);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// HTTPS as the kubelet probes it: no certificate verification.
async fn insecure_tls(
    host: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<FirstBytes<TcpStream>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let connecting = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, FirstBytes { inner: stream, seen: Vec::new() })
        .into_fallible();
    match connecting.await {
        Ok(tls) => Ok(tls),
        Err((_, io)) if io.seen.starts_with(b"HTTP/") => Err(HTTP_RESPONSE_TO_HTTPS.to_string()),
        Err((e, _)) => Err(e.to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, HTTPHeader};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use skiff_runtime::container::Runtime;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering each connection with the next of `responses` (`{port}` replaced by
    /// its own port); returns the port and the requests it read.
    async fn serve(responses: Vec<String>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = tokio::spawn(async move {
            let mut requests = Vec::new();
            for response in responses {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.expect("read");
                requests.push(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
                let response = response.replace("{port}", &port.to_string());
                let _ = s.write_all(response.as_bytes()).await;
            }
            requests
        });
        (port, handle)
    }

    fn target() -> Target {
        let dir = tempfile::tempdir().expect("tempdir");
        Target {
            runtime: Arc::new(Runtime::open(dir.path(), std::path::Path::new("/bin/false")).expect("runtime")),
            instance: "x".into(),
            container: Container { name: "c".into(), ..Default::default() },
            pod_ip: "127.0.0.1".into(),
        }
    }

    fn action(port: u16, path: &str, headers: &[(&str, &str)]) -> HTTPGetAction {
        HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(port)),
            http_headers: Some(
                headers.iter().map(|(n, v)| HTTPHeader { name: (*n).into(), value: (*v).into() }).collect(),
            ),
            ..Default::default()
        }
    }

    fn redirect(status: u16, location: &str) -> String {
        format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 5\r\n\r\nmoved")
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[tokio::test]
    async fn same_host_redirects_are_followed_with_the_headers() {
        let (port, requests) =
            serve(vec![redirect(302, "/next?x=1"), redirect(307, "http://127.0.0.1:{port}/last"), OK.into()]).await;
        let a = action(port, "/start", &[("X-Probe", "yes"), ("Host", "svc.example")]);
        let response = get(&a, &target(), Duration::from_secs(5), Purpose::Probe).await.expect("get");
        assert_eq!(response, Response { status: 200, body: b"ok".to_vec() });
        let requests = requests.await.expect("server");
        assert!(requests[0].starts_with("get /start http/1.1\r\n"), "{requests:?}");
        assert!(requests[0].contains("host: svc.example\r\n"), "{requests:?}");
        assert!(requests[0].contains("user-agent: kube-probe/1.33\r\n"), "{requests:?}");
        assert!(requests[0].contains("accept: */*\r\n"), "{requests:?}");
        // A relative redirect keeps the custom Host; an absolute one names its own.
        assert!(requests[1].starts_with("get /next?x=1 http/1.1\r\n"), "{requests:?}");
        assert!(requests[1].contains("host: svc.example\r\n"), "{requests:?}");
        assert!(requests[1].contains("x-probe: yes\r\n"), "{requests:?}");
        assert!(requests[1].contains(&format!("referer: http://127.0.0.1:{port}/start\r\n")), "{requests:?}");
        assert!(requests[2].contains(&format!("host: 127.0.0.1:{port}\r\n")), "{requests:?}");
    }

    #[tokio::test]
    async fn redirects_elsewhere_end_the_exchange() {
        let (port, requests) = serve(vec![redirect(301, "http://other.invalid/x")]).await;
        let response = get(&action(port, "/", &[]), &target(), Duration::from_secs(5), Purpose::Probe).await;
        assert_eq!(response, Ok(Response { status: 301, body: b"moved".to_vec() }));
        assert_eq!(requests.await.expect("server").len(), 1);
        // No Location, or a 3xx that is no redirect: the response as it is.
        let (port, _) = serve(vec!["HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".into()]).await;
        let response = get(&action(port, "/", &[]), &target(), Duration::from_secs(5), Purpose::Probe).await;
        assert_eq!(response.map(|r| r.status), Ok(302));
        let (port, _) = serve(vec![redirect(300, "/elsewhere")]).await;
        let response = get(&action(port, "/", &[]), &target(), Duration::from_secs(5), Purpose::Probe).await;
        assert_eq!(response.map(|r| r.status), Ok(300));
    }

    #[tokio::test]
    async fn ten_requests_at_most() {
        let (port, requests) = serve(vec![redirect(302, "/loop"); 10]).await;
        let a = action(port, "/loop", &[]);
        let error = get(&a, &target(), Duration::from_secs(5), Purpose::Probe).await.expect_err("loop");
        assert_eq!(error, format!("Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"));
        assert_eq!(requests.await.expect("server").len(), 10);
    }

    #[tokio::test]
    async fn bodies_are_cut_and_header_defaults_can_be_overridden() {
        let big = "x".repeat(3 * MAX_BODY);
        let (port, requests) =
            serve(vec![format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}", big.len())]).await;
        let a = action(port, "healthz", &[("Accept", ""), ("User-Agent", "mine")]);
        let response = get(&a, &target(), Duration::from_secs(5), Purpose::Lifecycle).await.expect("get");
        assert_eq!(response.body.len(), MAX_BODY);
        let request = &requests.await.expect("server")[0];
        assert!(request.starts_with("get /healthz http/1.1\r\n"), "{request}");
        assert!(request.contains("user-agent: mine\r\n"), "{request}");
        assert!(!request.contains("accept:"), "{request}");
        assert_eq!(Purpose::Lifecycle.user_agent(), "kube-lifecycle/1.33");
    }

    #[tokio::test]
    async fn https_answered_in_plain_http_fails_with_gos_words() {
        let (port, _) = serve(vec![OK.into()]).await;
        let mut a = action(port, "/", &[]);
        a.scheme = Some("HTTPS".into());
        let error = get(&a, &target(), Duration::from_secs(5), Purpose::Lifecycle).await.expect_err("not TLS");
        assert_eq!(
            error,
            format!("Get \"https://127.0.0.1:{port}/\": http: server gave HTTP response to HTTPS client")
        );
        assert!(is_http_response_error(&error));
        // Other handshake failures are not that.
        let (port, _) = serve(vec!["\x15\x03\x03\x00\x02\x02\x28".into()]).await;
        a.port = IntOrString::Int(i32::from(port));
        let error = get(&a, &target(), Duration::from_secs(5), Purpose::Lifecycle).await.expect_err("alert");
        assert!(!is_http_response_error(&error), "{error}");
    }

    #[tokio::test]
    async fn compressed_bodies_are_kept_as_sent_and_asked_for_by_hooks_or_the_action() {
        // Not valid gzip: a client that decoded it would fail.
        let gzipped = "\x1f\x08\x00zzzz\x00";
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\n\r\n{gzipped}");
        let (port, requests) = serve(vec![answer.clone(), answer.clone(), answer]).await;
        let plain = get(&action(port, "/", &[]), &target(), Duration::from_secs(5), Purpose::Probe).await;
        let asked = action(port, "/", &[("Accept-Encoding", "gzip")]);
        let compressed = get(&asked, &target(), Duration::from_secs(5), Purpose::Probe).await.expect("get");
        assert_eq!(plain.expect("get").body, gzipped.as_bytes());
        assert_eq!(compressed.body, gzipped.as_bytes(), "not decoded");
        get(&action(port, "/", &[]), &target(), Duration::from_secs(5), Purpose::Lifecycle).await.expect("hook");
        let requests = requests.await.expect("server");
        assert!(!requests[0].contains("accept-encoding"), "{requests:?}");
        assert!(requests[1].contains("accept-encoding: gzip\r\n"), "{requests:?}");
        assert!(requests[2].contains("accept-encoding: gzip\r\n"), "hooks ask for gzip: {requests:?}");
    }
}
