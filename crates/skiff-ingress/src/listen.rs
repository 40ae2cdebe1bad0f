//! The accept loops: HTTP/1.1 on the HTTP port; TLS on the HTTPS port, then HTTP/2 or HTTP/1.1
//! by ALPN. Every connection is its own task; a failing connection never stops a listener.
//!
//! What does not live here: what a request does ([`crate::proxy`]), certificates ([`crate::tls`]).

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::proxy::{Conn, Proxy};

/// Serves plain HTTP/1.1 (with upgrades) on `listener` until the task is aborted.
pub async fn serve_http(listener: TcpListener, proxy: Arc<Proxy>, port: u16) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "ingress HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let conn = Conn { peer, tls: false, port };
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { proxy.handle(req, conn).await }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, %peer, "ingress HTTP connection ended with an error");
            }
        });
    }
}

/// Serves HTTPS on `listener` until the task is aborted.
pub async fn serve_https(listener: TcpListener, acceptor: TlsAcceptor, proxy: Arc<Proxy>, port: u16) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "ingress HTTPS accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "ingress TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let conn = Conn { peer, tls: true, port };
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { proxy.handle(req, conn).await }
            });
            let io = TokioIo::new(tls);
            let served = if h2 {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await
            } else {
                hyper::server::conn::http1::Builder::new().serve_connection(io, svc).with_upgrades().await
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, %peer, "ingress HTTPS connection ended with an error");
            }
        });
    }
}
