//! A kube client that speaks HTTP/2 to the API server, as client-go does: every request and
//! watch of the client shares one TLS connection instead of one HTTP/1.1 connection per request
//! in flight. The control-plane components (controllers, scheduler) issue hundreds of requests
//! at once; over HTTP/1.1 each one that finds no idle connection opens a new one, and the TLS
//! handshakes (an ECDSA signature and two certificate verifications each) cost more CPU than the
//! requests themselves.
//!
//! Liveness of the shared connection is checked with HTTP/2 pings (client-go's `ReadIdleTimeout`
//! and `PingTimeout`), not with kube's per-connection read timeout, which would cut a connection
//! whose only traffic is a quiet watch. Flow-control windows are Go's, for the reason
//! [`CONNECTION_WINDOW`] gives. What does not live here: the agent's client, which
//! rotates its certificate per connection (`skiff-agent::certificate`).

use std::time::Duration;

use kube::client::ConfigExt as _;
use kube::client::retry::RetryPolicy;
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// How long a connection may be silent before it is pinged (client-go's `ReadIdleTimeout`).
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed (client-go's `PingTimeout`).
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// Flow-control window of each stream (Go's HTTP/2 transport, hence client-go's: 4 MiB).
const STREAM_WINDOW: u32 = 4 << 20;
/// Flow-control window of the connection (Go's: 1 GiB). It must exceed what the streams can
/// hold unread together: a watch whose consumer is busy stops only its own stream at
/// [`STREAM_WINDOW`], while a smaller connection window would stop every stream of the client,
/// including the requests that consumer waits for.
const CONNECTION_WINDOW: u32 = 1 << 30;
/// How long connecting may take (kube's default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a client for `config` whose requests share one HTTP/2 connection (TLS with ALPN `h2`).
/// Authentication is `config`'s: client certificates through TLS, tokens through kube's auth
/// layer.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let tls = config.rustls_client_config()?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout.unwrap_or(CONNECT_TIMEOUT)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .wrap_connector(http);
    let hyper_client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        // kube's default client retries 429, 503 and 504 with back-off; so does this one.
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        // Impersonation (`as`, `as-uid`, `as-groups`) and the kubeconfig's extra headers.
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A TLS server on loopback answering every request with its HTTP version and bearer token;
    /// returns its address, its certificate and the count of accepted connections.
    async fn server() -> (std::net::SocketAddr, Vec<u8>, Arc<AtomicUsize>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let flaky = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let flaky = flaky.clone();
                tokio::spawn(async move {
                    let tls = acceptor.accept(tcp).await.unwrap();
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let flaky = flaky.clone();
                        async move {
                            let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                            let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(format!(
                                "{:?} {auth}",
                                req.version()
                            ))));
                            // `/flaky` is unavailable the first time it is asked for.
                            if req.uri().path() == "/flaky" && flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, der, connections)
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_http2_connection_with_the_token() {
        let (addr, ca, connections) = server().await;
        let mut config = kube::Config::new(format!("https://{addr}").parse().unwrap());
        config.root_cert = Some(vec![ca]);
        config.auth_info.token = Some("secret-token".to_string().into());
        let client = client(config).unwrap();
        let requests = (0..20).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.request_text(http::Request::get("/x").body(Vec::new()).unwrap()).await })
        });
        for answer in futures::future::join_all(requests).await {
            assert_eq!(answer.unwrap().unwrap(), "HTTP/2.0 Bearer secret-token");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_503_is_retried_as_by_kubes_default_client() {
        let (addr, ca, _) = server().await;
        let mut config = kube::Config::new(format!("https://{addr}").parse().unwrap());
        config.root_cert = Some(vec![ca]);
        let client = client(config).unwrap();
        let answer = client.request_text(http::Request::get("/flaky").body(Vec::new()).unwrap()).await;
        assert_eq!(answer.unwrap(), "HTTP/2.0 ");
    }
}
