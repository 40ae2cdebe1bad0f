//! The shared state of the API server and its configuration.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use skiff_store::Store;

use crate::alloc::{Allocator, Ipv4Cidr};
use crate::cache::WatchCaches;

/// Settings of the API server that are not about transport.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Service CIDR (ClusterIPs).
    pub service_cidr: Ipv4Cidr,
    /// NodePort range, inclusive.
    pub node_port_range: (u16, u16),
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// Address other components and the `kubernetes` Endpoints use to reach the API.
    pub advertise_address: IpAddr,
    /// Port of the API.
    pub port: u16,
    /// The PodSecurity admission plugin's defaults and exemptions.
    pub pod_security: crate::admission::podsecurity::Config,
}

/// State shared by every request.
pub struct ApiState {
    /// The store (only the API server touches it).
    pub store: Arc<dyn Store>,
    /// Watch caches.
    pub caches: Arc<WatchCaches>,
    /// Service address allocator.
    pub alloc: Allocator,
    /// Configuration.
    pub config: ApiConfig,
    /// Admission webhook configurations in effect.
    pub webhooks: crate::admission::webhook::Registry,
    /// ValidatingAdmissionPolicies in effect.
    pub policies: crate::admission::policy::Registry,
    /// The RBAC authorizer's view of roles and bindings (also used by reviews and escalation checks).
    pub rbac: Arc<crate::authz::rbac::Rbac>,
    /// The authorization chain, set once when the server starts (reviews and escalation checks ask it).
    pub authorizers: std::sync::OnceLock<Arc<crate::authz::Authorizers>>,
    /// ServiceAccount token issuer and authenticator (set once by [`crate::start`]).
    pub service_accounts: std::sync::OnceLock<Arc<crate::authn::serviceaccount::ServiceAccountTokens>>,
    /// Whether the ServiceAccount admission plugin runs (set by [`crate::start`]).
    pub service_account_admission: AtomicBool,
    bootstrapped: AtomicBool,
    shutting_down: AtomicBool,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl ApiState {
    /// Opens the caches over `store`.
    pub async fn new(store: Arc<dyn Store>, config: ApiConfig) -> Result<Arc<Self>, skiff_store::StoreError> {
        let mut prefixes: Vec<(String, Vec<&'static str>)> = Vec::new();
        for info in skiff_api::catalogue::builtin() {
            let prefix = info.key_prefix();
            if !prefixes.iter().any(|(p, _)| *p == prefix) {
                prefixes.push((prefix, info.field_selectors.iter().map(|(_, p)| *p).collect()));
            }
        }
        let caches = WatchCaches::start(store.clone(), prefixes).await?;
        let alloc = Allocator::new(store.clone(), config.service_cidr, config.node_port_range);
        let rbac = Arc::new(crate::authz::rbac::Rbac::new(&caches));
        Ok(Arc::new(Self {
            store,
            caches,
            alloc,
            config,
            webhooks: Default::default(),
            policies: Default::default(),
            rbac,
            authorizers: std::sync::OnceLock::new(),
            service_accounts: std::sync::OnceLock::new(),
            service_account_admission: AtomicBool::new(false),
            bootstrapped: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
        }))
    }

    /// Marks the bootstrap objects as present.
    pub fn set_bootstrapped(&self) {
        self.bootstrapped.store(true, Ordering::Release);
    }

    /// Marks the server as draining (readyz fails).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has begun (long-running requests end then).
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Readiness checks by name, each `Ok` or the reason it fails.
    pub fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let flag = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
        vec![
            ("ping", Ok(())),
            ("store", flag(!self.shutting_down.load(Ordering::Acquire), "the store is closing")),
            ("informer-sync", flag(self.caches.is_ready(), "watch caches are not synced")),
            (
                "poststarthook/bootstrap-controller",
                flag(self.bootstrapped.load(Ordering::Acquire), "default namespaces and services are not created yet"),
            ),
            ("shutdown", flag(!self.shutting_down.load(Ordering::Acquire), "the server is shutting down")),
        ]
    }
}
