//! skiff's Kubernetes API server.
//!
//! Request flow: [`server`] (TLS, h2/HTTP/1.1) → [`routes`] (authentication, health, discovery,
//! OpenAPI) → [`handlers`] (one module per verb family) → [`typed`] (per-kind hooks from
//! `skiff-api`) → the store; reads and watches come from [`cache`]. Only this crate touches the
//! store.

pub mod admission;
pub mod alloc;
pub mod apply;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod cache;
pub mod crd_controller;
pub mod discovery;
pub mod encryption;
pub mod handlers;
pub mod legacy_tokens;
pub mod metrics;
pub mod negotiate;
pub mod nodeproxy;
pub mod objects;
pub mod openapi;
pub mod protobuf;
pub mod query;
pub mod reqinfo;
pub mod response;
pub mod routes;
pub mod server;
pub mod state;
pub mod strategic;
pub mod tables;
pub mod telemetry;
pub mod typed;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_store::Store;
use tokio::sync::oneshot;

pub use server::TlsMaterial;
pub use state::{ApiConfig, ApiState};

/// A bearer token and the identity it authenticates.
#[derive(Clone)]
pub struct StaticToken {
    /// The secret.
    pub token: String,
    /// User name.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticToken {{ user: {:?}, groups: {:?} }}", self.user, self.groups)
    }
}

/// Everything needed to start the API server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Listen address.
    pub bind: SocketAddr,
    /// TLS material.
    pub tls: TlsMaterial,
    /// API settings.
    pub api: ApiConfig,
    /// Bearer tokens.
    pub tokens: Vec<StaticToken>,
    /// Credentials towards node agents (`pods/log`, `exec`, `attach`, `portforward`); without
    /// them those subresources answer 503.
    pub kubelet_client: Option<nodeproxy::KubeletClientTls>,
    /// The audit log; `None` (no `--audit-log-path`) audits nothing.
    pub audit: Option<audit::AuditOptions>,
    /// The ServiceAccount token signing key (PKCS#8 PEM, P-256); `None` generates one that lives
    /// as long as the process.
    pub service_account_key_pem: Option<String>,
    /// Run the ServiceAccount admission plugin (needs the ServiceAccount controller to create
    /// each namespace's `default` ServiceAccount).
    pub service_account_admission: bool,
    /// Audiences a ServiceAccount token must carry to be accepted by the API (`--api-audiences`;
    /// empty: the issuer), also the default audiences of TokenRequests.
    pub api_audiences: Vec<String>,
    /// How often node agents are scraped for `metrics.k8s.io` (`--metric-resolution`); the
    /// resource metrics API is served only with `kubelet_client`.
    pub metric_resolution: Duration,
}

impl ServerOptions {
    /// The authorization chain for these options: the Node authorizer, then RBAC over `state`'s
    /// caches (upstream's `--authorization-mode=Node,RBAC`).
    fn authorizers(&self, state: &Arc<ApiState>) -> authz::Authorizers {
        let node = authz::node::NodeAuthorizer::start(&state.caches);
        authz::Authorizers::new(vec![Box::new(node), Box::new(state.rbac.clone())])
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed while loading the caches.
    #[error("cannot load the store: {0}")]
    Store(#[from] skiff_store::StoreError),
    /// Bootstrap objects could not be written.
    #[error("cannot create the default objects: {0}")]
    Bootstrap(skiff_api::StatusError),
    /// The ServiceAccount signing key is unusable.
    #[error(transparent)]
    ServiceAccountKey(#[from] authn::jwt::JwtError),
    /// The listener could not start.
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    /// The credentials towards node agents are unusable.
    #[error("invalid kubelet client credentials: {0}")]
    KubeletClient(String),
}

/// A running API server.
pub struct RunningServer {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// Shared state (for in-process components and tests).
    pub state: Arc<ApiState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, ends watches, waits for in-flight requests (at most 10 s), closes the store.
    pub async fn shutdown(mut self) {
        self.state.set_shutting_down();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.state.store.close().await;
    }
}

/// Starts the API server over `store`.
pub async fn start(store: Arc<dyn Store>, opts: ServerOptions) -> Result<RunningServer, StartError> {
    let tls = server::tls_config(&opts.tls)?;
    let state = ApiState::new(store, opts.api.clone()).await?;
    bootstrap::run(&state).await.map_err(StartError::Bootstrap)?;
    authz::bootstrap::reconcile(&state).await.map_err(StartError::Bootstrap)?;
    authz::aggregation::sync(&state).await;
    authz::aggregation::spawn(state.clone());
    crd_controller::sync_existing(&state).await;
    crd_controller::spawn(state.clone());
    let key = match &opts.service_account_key_pem {
        Some(pem) => authn::jwt::SigningKey::from_pem(pem)?,
        None => authn::jwt::SigningKey::generate()?,
    };
    let service_accounts = Arc::new(
        authn::serviceaccount::ServiceAccountTokens::new(key, &opts.api.cluster_domain, state.caches.clone())
            .with_api_audiences(opts.api_audiences.clone()),
    );
    let _ = state.service_accounts.set(service_accounts.clone());
    state.service_account_admission.store(opts.service_account_admission, std::sync::atomic::Ordering::Relaxed);
    let mut tokens = authn::TokenAuthenticator::default();
    tokens.set_service_accounts(service_accounts);
    legacy_tokens::spawn(state.clone(), opts.tls.client_ca_pem.clone());
    for t in &opts.tokens {
        let groups: Vec<&str> = t.groups.iter().map(String::as_str).collect();
        tokens.add(&t.token, &t.user, &groups);
    }
    let kubelet = opts
        .kubelet_client
        .as_ref()
        .map(nodeproxy::KubeletDialer::new)
        .transpose()
        .map_err(StartError::KubeletClient)?;
    let audit = opts.audit.as_ref().map(audit::Auditor::start).transpose().map_err(StartError::Audit)?;
    let metrics = kubelet.as_ref().map(|dialer| {
        let metrics = metrics::Metrics::new(opts.metric_resolution);
        metrics.spawn(state.clone(), dialer.clone());
        metrics
    });
    let router = routes::router(Arc::new(routes::Shared {
        state: state.clone(),
        tokens,
        authorizers: state.authorizers.get_or_init(|| Arc::new(opts.authorizers(&state))).clone(),
        kubelet,
        audit,
        metrics,
        telemetry: telemetry::Telemetry::new(),
    }));
    let listener = server::bind(opts.bind).await?;
    let local_addr = listener.local_addr().map_err(|source| server::ServeError::Bind { addr: opts.bind, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve(
            listener,
            tls,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(10),
        )
        .await;
    });
    Ok(RunningServer { local_addr, state, stop: Some(stop), task })
}
