//! The proxy over real sockets: a backend on loopback, the listeners of `listen`, a table set by
//! hand. Covers retry on a dead endpoint, round-robin, 404/503, body streaming both ways,
//! Upgrade passthrough and TLS by SNI with ALPN h2.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use skiff_ingress::listen;
use skiff_ingress::proxy::Proxy;
use skiff_ingress::table::{Backend, PathKind, PathRule, Table, TableHandle, Target};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering `<name> <path> <x-forwarded-for>` plus the request body, or switching
/// protocols and echoing bytes when asked to upgrade.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| async move {
                    if req.headers().contains_key("upgrade") {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let mut io = TokioIo::new(on.await.unwrap());
                            let mut buf = [0u8; 4];
                            io.read_exact(&mut buf).await.unwrap();
                            io.write_all(&buf).await.unwrap();
                        });
                        let resp = Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", "echo")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        return Ok::<_, hyper::Error>(resp);
                    }
                    let xff = req.headers().get("x-forwarded-for").map(|v| v.to_str().unwrap().to_string());
                    let head = format!("{name} {} {}", req.uri().path(), xff.unwrap_or_default());
                    let body = req.into_body().collect().await?.to_bytes();
                    let mut out = head.into_bytes();
                    out.extend_from_slice(&body);
                    Ok(Response::new(Full::new(Bytes::from(out))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn dead_address() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn rule(path: &str, target: Target) -> PathRule {
    PathRule { path: path.into(), kind: PathKind::Prefix, target }
}

async fn start(table: Table) -> (SocketAddr, TableHandle) {
    let handle = TableHandle::default();
    handle.store(table);
    let proxy = Arc::new(Proxy::new(handle.clone()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(listen::serve_http(l, proxy, 80));
    (addr, handle)
}

async fn get(proxy: SocketAddr, host: &str, path: &str, body: &'static str) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{proxy}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn routes_retries_and_round_robins() {
    let (a, b, dead) = (backend("a").await, backend("b").await, dead_address().await);
    let mut table = Table::default();
    let spread = Arc::new(Backend::new("ns/ab:80".into(), vec![a, b]));
    let with_dead = Arc::new(Backend::new("ns/dead:80".into(), vec![dead, a]));
    let empty = Arc::new(Backend::new("ns/empty:80".into(), vec![]));
    table.host_rules("ab.example").push(rule("/", Target::Backend(spread.clone())));
    table.host_rules("dead.example").push(rule("/", Target::Backend(with_dead.clone())));
    table.host_rules("empty.example").push(rule("/", Target::Backend(empty)));
    table.host_rules("gone.example").push(rule("/", Target::Unavailable("no service".into())));
    table.backends = [(spread.id, spread), (with_dead.id, with_dead)].into();
    let (proxy, _) = start(table).await;

    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, body) = get(proxy, "ab.example", "/x", "").await;
        assert_eq!(status, StatusCode::OK);
        seen.push(body.split(' ').next().unwrap().to_string());
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);
    for _ in 0..3 {
        let (status, body) = get(proxy, "dead.example", "/p", "payload").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "a /p 127.0.0.1payload");
    }
    assert_eq!(get(proxy, "nothing.example", "/", "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(proxy, "empty.example", "/", "").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(proxy, "gone.example", "/", "").await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn upgrades_are_spliced() {
    let a = backend("a").await;
    let mut table = Table::default();
    let b = Arc::new(Backend::new("ns/a:80".into(), vec![a]));
    table.host_rules("").push(rule("/", Target::Backend(b.clone())));
    table.backends = [(b.id, b)].into();
    let (proxy, _) = start(table).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: echo"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn tls_by_sni_over_h2() {
    let a = backend("a").await;
    let pair = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
    let cert =
        skiff_ingress::tls::certified_key(pair.cert.pem().as_bytes(), pair.signing_key.serialize_pem().as_bytes())
            .unwrap();
    let mut table = Table::default();
    let b = Arc::new(Backend::new("ns/a:80".into(), vec![a]));
    table.host_rules("a.example").push(rule("/", Target::Backend(b.clone())));
    table.backends = [(b.id, b)].into();
    table.tls.insert("a.example", Arc::new(cert));
    let handle = TableHandle::default();
    handle.store(table);
    let resolver =
        skiff_ingress::tls::SniResolver::new(handle.clone(), skiff_ingress::tls::default_certificate().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(skiff_ingress::tls::server_config(resolver));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(listen::serve_https(l, acceptor, Arc::new(Proxy::new(handle)), 443));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pair.cert.der().clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.example").unwrap();
    // Verification succeeds only if the SNI-selected certificate is served.
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://a.example/h2").body(Full::new(Bytes::new())).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "a /h2 127.0.0.1");
}
