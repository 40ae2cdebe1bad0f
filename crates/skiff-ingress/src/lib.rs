//! skiff's built-in Ingress controller (issue 7), run on every node with an agent: the
//! IngressClass `skiff` (controller `skiff.io/ingress`, default unless another class is), a
//! reverse proxy on the node's HTTP and HTTPS ports routing Ingresses of that class by host and
//! path to ready endpoints, TLS certificates from Secrets chosen by SNI, and the Ingresses'
//! `status.loadBalancer`.
//!
//! [`model`] turns the watched objects into a routing [`table::Table`] (swapped whole on every
//! change, so listeners never restart), [`table`] matches requests, [`tls`] picks certificates,
//! [`proxy`] forwards over a pooled client whose [`connect`]or retries another endpoint when a
//! connect fails, [`listen`] accepts connections, [`sync`] watches and reports.
//!
//! What does not live here: the service proxy (`skiff-net`), LoadBalancer Services
//! (`skiff-controllers::servicelb`).

pub mod connect;
pub mod listen;
pub mod model;
pub mod proxy;
pub mod sync;
pub mod table;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

/// Where the controller listens.
#[derive(Debug, Clone, Copy)]
pub struct IngressConfig {
    /// The address to bind (every address of the node by default).
    pub bind: IpAddr,
    /// The HTTP port (80).
    pub http_port: u16,
    /// The HTTPS port (443).
    pub https_port: u16,
}

/// Why the controller cannot run.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The default certificate could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Binds both ports, then serves and syncs until the task is aborted.
pub async fn run(client: kube::Client, cfg: IngressConfig) -> Result<(), IngressError> {
    let bind = |port| async move {
        let addr = SocketAddr::new(cfg.bind, port);
        TcpListener::bind(addr).await.map_err(|source| IngressError::Bind { addr, source })
    };
    let http = bind(cfg.http_port).await?;
    let https = bind(cfg.https_port).await?;
    let handle = table::TableHandle::default();
    let resolver = tls::SniResolver::new(handle.clone(), tls::default_certificate()?);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(resolver));
    let proxy = Arc::new(proxy::Proxy::new(handle.clone()));
    tracing::info!(http = cfg.http_port, https = cfg.https_port, "ingress controller listening");
    let listeners = [
        tokio::spawn(listen::serve_http(http, proxy.clone(), cfg.http_port)),
        tokio::spawn(listen::serve_https(https, acceptor, proxy, cfg.https_port)),
    ];
    // Aborting this task must stop the listeners too.
    struct AbortOnDrop([tokio::task::JoinHandle<()>; 2]);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.iter().for_each(|t| t.abort());
        }
    }
    let _guard = AbortOnDrop(listeners);
    sync::run(client, handle).await;
    Ok(())
}
