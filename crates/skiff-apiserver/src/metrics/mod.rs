//! The resource metrics API (`metrics.k8s.io/v1beta1`), served by the API server itself instead
//! of an aggregated metrics-server: [`scraper`] polls every node agent's `/metrics/resource`
//! every `--metric-resolution`, [`decode`] reads the Prometheus text, [`storage`] keeps two
//! points per node and container and turns them into rates, and [`api`] answers `get`/`list` of
//! NodeMetrics and PodMetrics; [`format`] prints quantities, windows and timestamps.
//!
//! What does not live here: measuring usage (the agent's `stats`), authorization
//! (RBAC on `metrics.k8s.io` as on any resource, before [`api`] is reached).

pub mod api;
pub mod decode;
pub mod format;
pub mod scraper;
pub mod storage;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use http::Response;

use crate::nodeproxy::KubeletDialer;
use crate::reqinfo::ResourceRequest;
use crate::state::ApiState;

/// metrics-server's default `--metric-resolution`.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);

/// The scraped usage and how it is refreshed.
#[derive(Debug)]
pub struct Metrics {
    resolution: Duration,
    storage: RwLock<storage::Storage>,
    last_scrape: Mutex<Option<Duration>>,
}

impl Metrics {
    /// Empty metrics refreshed every `resolution`.
    pub fn new(resolution: Duration) -> Arc<Self> {
        Arc::new(Self { resolution, storage: RwLock::default(), last_scrape: Mutex::new(None) })
    }

    /// Starts the scraper.
    pub fn spawn(self: &Arc<Self>, state: Arc<ApiState>, dialer: KubeletDialer) -> tokio::task::JoinHandle<()> {
        tokio::spawn(scraper::run(Arc::clone(self), state, dialer))
    }

    /// Stores one round's points.
    pub fn store(&self, batch: decode::Batch) {
        self.storage.write().unwrap_or_else(|p| p.into_inner()).store(batch, self.resolution);
    }

    fn record_scrape(&self, took: Duration) {
        *self.last_scrape.lock().unwrap_or_else(|p| p.into_inner()) = Some(took);
    }

    /// How long the last scrape round took.
    pub fn last_scrape(&self) -> Option<Duration> {
        *self.last_scrape.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves a `metrics.k8s.io` request.
    pub fn handle(&self, state: &ApiState, req: &ResourceRequest, query: &str, accept: Option<&str>) -> Response<Body> {
        let storage = self.storage.read().unwrap_or_else(|p| p.into_inner());
        api::handle(state, &storage, req, query, accept)
    }
}
