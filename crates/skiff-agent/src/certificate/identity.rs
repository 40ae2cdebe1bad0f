//! The agent's client identity as the API client presents it: a certificate and key pair
//! ([`ClientIdentity`]), parsed once, held by a [`RotatingIdentity`] that the TLS client asks at
//! every handshake, so swapping the pair changes the certificate of every new connection while
//! the `kube::Client` (and every pod worker holding a clone of it) stays the same. As the kubelet
//! does on rotation, the connections opened before a swap are then closed ([`ClosingStream`]):
//! requests in flight on them fail once and are retried by their callers (watches reconnect), on
//! new connections with the new certificate.
//!
//! What does not live here: when to rotate and how a new certificate is obtained
//! ([`super::manager`]), where the pair is kept on disk ([`super::store`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::FromDer as _;

use super::CertificateError;

/// A client certificate with its private key, checked to belong together.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    /// The certificate's subject common name.
    pub common_name: String,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("common_name", &self.common_name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Parses `cert_pem` (the leaf first) and `key_pem`; fails when either is malformed or the key
    /// is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertificateError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| CertificateError::Invalid(format!("{what}: {e}"));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad("certificate", &e))?;
        let leaf = chain.first().ok_or_else(|| CertificateError::Invalid("no certificate in the PEM".into()))?;
        let (_, parsed) =
            x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).map_err(|e| bad("certificate", &e))?;
        let common_name =
            parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
        let not_before = parsed.validity().not_before.timestamp();
        let not_after = parsed.validity().not_after.timestamp();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("private key", &e))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| bad("key pair", &e))?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            common_name,
            not_before,
            not_after,
            certified: Arc::new(certified),
        })
    }

    /// Whether the certificate is valid at `now` (seconds since the epoch).
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The identity every new TLS connection of the agent's API client presents; replaced on rotation.
#[derive(Debug)]
pub struct RotatingIdentity {
    current: RwLock<ClientIdentity>,
    /// Bumped at every replacement; connections watch it to close themselves.
    generation: tokio::sync::watch::Sender<u64>,
}

impl RotatingIdentity {
    /// Starts with `identity`.
    pub fn new(identity: ClientIdentity) -> Arc<Self> {
        Arc::new(Self { current: RwLock::new(identity), generation: tokio::sync::watch::Sender::new(0) })
    }

    /// A future that completes at the next replacement.
    fn replaced(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.generation.subscribe();
        Box::pin(async move {
            // An error means the identity is gone, and with it the client: close as well.
            let _ = rx.changed().await;
        })
    }

    /// The identity in use.
    pub fn current(&self) -> ClientIdentity {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `identity` the one new connections present, and closes the connections opened
    /// with the previous one.
    pub fn replace(&self, identity: ClientIdentity) {
        match self.current.write() {
            Ok(mut g) => *g = identity,
            Err(poisoned) => *poisoned.into_inner() = identity,
        }
        self.generation.send_modify(|g| *g += 1);
    }
}

/// A connector whose connections close themselves when the identity is replaced.
#[derive(Clone)]
struct ClosingConnector<C> {
    inner: C,
    identity: Arc<RotatingIdentity>,
}

impl<C> tower::Service<http::Uri> for ClosingConnector<C>
where
    C: tower::Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = ClosingStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // Taken before the handshake: a swap during it closes the connection too.
        let replaced = self.identity.replaced();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            Ok(ClosingStream {
                inner: connecting.await?,
                replaced: Some(replaced),
                read_timeout: READ_TIMEOUT,
                read_deadline: None,
            })
        })
    }
}

/// A connection that fails its reads and writes (so the client drops it) once the identity it
/// was opened with has been replaced, or when a read waits too long ([`READ_TIMEOUT`]).
pub struct ClosingStream<S> {
    inner: S,
    /// `None` once the replacement has happened.
    replaced: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// How long one read may stay pending.
    read_timeout: std::time::Duration,
    /// Armed while a read is pending; cleared by every read that completes.
    read_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> ClosingStream<S> {
    /// Whether the identity was replaced; registers the task to be woken when it is.
    fn closed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(replaced) = &mut self.replaced else { return true };
        if replaced.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.replaced = None;
        true
    }
}

fn rotated() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client certificate rotated")
}

impl<S: hyper::rt::Read + Unpin> hyper::rt::Read for ClosingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.closed(cx) {
            return Poll::Ready(Err(rotated()));
        }
        let this = &mut *self;
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            this.read_deadline = None;
            return Poll::Ready(read);
        }
        let deadline = this.read_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(this.read_timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.read_deadline = None;
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "read from the API server timed out",
            )));
        }
        Poll::Pending
    }
}

impl<S: hyper::rt::Write + Unpin> hyper::rt::Write for ClosingStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.closed(cx) {
            return Poll::Ready(Err(rotated()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: hyper_util::client::legacy::connect::Connection> hyper_util::client::legacy::connect::Connection
    for ClosingStream<S>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

impl ResolvesClientCert for RotatingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A kube client towards `server_url` trusting `ca_pem` and presenting `identity`'s current
/// certificate on each new connection.
pub fn client(
    server_url: &str,
    ca_pem: &str,
    identity: Arc<RotatingIdentity>,
) -> Result<kube::Client, CertificateError> {
    use tower::Layer as _;
    let bad = |what: &str, e: &dyn std::fmt::Display| CertificateError::Invalid(format!("{what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(|e| bad("cluster CA", &e))?).map_err(|e| bad("cluster CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(identity.clone());
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let https = ClosingConnector { inner: https, identity: Arc::clone(&identity) };
    let hyper_client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let url: http::Uri = server_url.parse().map_err(|e| bad("server URL", &e))?;
    let service = kube::client::middleware::BaseUriLayer::new(url).layer(hyper_client);
    Ok(kube::Client::new(service, "default"))
}

/// How long a new connection to the API server may take (kube's default).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a read may wait for the API server (kube's default: longer than the 290 s a watch
/// lasts, so only a dead connection trips it).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(295);

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A self-signed identity named `cn` (also used by the store's tests).
    pub(crate) fn identity(cn: &str) -> ClientIdentity {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        ClientIdentity::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let a = identity("a");
        let b = identity("b");
        assert!(ClientIdentity::from_pem(&a.cert_pem, &b.key_pem).is_err());
        assert!(ClientIdentity::from_pem("junk", &a.key_pem).is_err());
        assert_eq!(a.common_name, "a");
        assert!(a.valid_at(a.not_before) && !a.valid_at(a.not_after));
    }

    #[test]
    fn new_handshakes_present_the_replacement() {
        let rotating = RotatingIdentity::new(identity("old"));
        let first = rotating.resolve(&[], &[]).unwrap();
        rotating.replace(identity("new"));
        let second = rotating.resolve(&[], &[]).unwrap();
        assert_ne!(first.cert, second.cert);
        assert_eq!(rotating.current().common_name, "new");
    }

    #[tokio::test]
    async fn connections_opened_before_a_rotation_close_and_later_ones_work() {
        let rotating = RotatingIdentity::new(identity("old"));
        let stream = |io| ClosingStream {
            inner: hyper_util::rt::TokioIo::new(io),
            replaced: Some(rotating.replaced()),
            read_timeout: READ_TIMEOUT,
            read_deadline: None,
        };
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut old = hyper_util::rt::TokioIo::new(stream(ours));
        peer.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(old.read(&mut buf).await.unwrap(), 1);
        // A read waiting for data is woken by the rotation and fails.
        let pending = tokio::spawn(async move { old.read(&mut buf).await });
        rotating.replace(identity("new"));
        let err = pending.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        // A connection opened afterwards is unaffected.
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut new = hyper_util::rt::TokioIo::new(stream(ours));
        peer.write_all(b"y").await.unwrap();
        assert_eq!(new.read(&mut buf).await.unwrap(), 1);
        new.write_all(b"z").await.unwrap();
    }

    #[tokio::test]
    async fn a_read_the_server_never_answers_times_out_and_answered_ones_do_not() {
        let rotating = RotatingIdentity::new(identity("id"));
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut io = hyper_util::rt::TokioIo::new(ClosingStream {
            inner: hyper_util::rt::TokioIo::new(ours),
            replaced: Some(rotating.replaced()),
            read_timeout: std::time::Duration::from_millis(50),
            read_deadline: None,
        });
        let mut buf = [0u8; 1];
        peer.write_all(b"a").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
