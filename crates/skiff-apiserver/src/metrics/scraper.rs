//! The in-process scraper (metrics-server's): every resolution it fetches `/metrics/resource`
//! from every Node's agent at once, through the same TLS client and endpoint as the streaming
//! subresources (`crate::nodeproxy`), decodes the documents and stores the union. A node that
//! cannot be reached or answers an error contributes nothing to that round (its pods then lose
//! their usage until two rounds succeed again), as with metrics-server.
//!
//! What does not live here: decoding ([`super::decode`]) and storing ([`super::storage`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_api::catalogue;

use super::Metrics;
use super::decode::{self, Batch};
use crate::nodeproxy::{KubeletDialer, node_endpoint};
use crate::state::ApiState;

/// The agent path scraped.
pub const PATH: &str = "/metrics/resource";
/// The longest one node's scrape may take (metrics-server's `--kubelet-request-timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes forever at `metrics`'s resolution.
pub async fn run(metrics: Arc<Metrics>, state: Arc<ApiState>, dialer: KubeletDialer) {
    let mut ticker = tokio::time::interval(metrics.resolution);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let batch = scrape_once(&state, &dialer, metrics.resolution).await;
        let (nodes, pods) = (batch.nodes.len(), batch.pods.len());
        metrics.store(batch);
        let elapsed = started.elapsed();
        metrics.record_scrape(elapsed);
        tracing::debug!(nodes, pods, elapsed_ms = elapsed.as_secs_f64() * 1e3, "metrics: scrape finished");
    }
}

/// One round over every Node.
pub async fn scrape_once(state: &ApiState, dialer: &KubeletDialer, resolution: Duration) -> Batch {
    let Some(info) = catalogue::find("", "v1", "nodes") else { return Batch::default() };
    let Some(cache) = state.caches.cache(&info.key_prefix()) else { return Batch::default() };
    let nodes: Vec<(String, Option<std::net::SocketAddr>)> =
        cache.snapshot().objects.values().map(|e| (e.name.clone(), node_endpoint(&e.value()))).collect();
    let timeout = REQUEST_TIMEOUT.min(resolution.max(Duration::from_secs(1)));
    let fetches = nodes.into_iter().map(|(name, addr)| {
        let dialer = dialer.clone();
        async move {
            let Some(addr) = addr else {
                tracing::debug!(node = %name, "metrics: node has no address to scrape");
                return None;
            };
            let scraped_ms = jiff::Timestamp::now().as_millisecond();
            match tokio::time::timeout(timeout, dialer.get(addr, PATH)).await {
                Ok(Ok(body)) => Some(decode::decode(&String::from_utf8_lossy(&body), &name, scraped_ms)),
                Ok(Err(e)) => {
                    tracing::info!(node = %name, error = %e, "metrics: failed to scrape node");
                    None
                }
                Err(_) => {
                    tracing::info!(node = %name, "metrics: scraping node timed out");
                    None
                }
            }
        }
    });
    let mut batch = Batch::default();
    for one in futures::future::join_all(fetches).await.into_iter().flatten() {
        batch.nodes.extend(one.nodes);
        batch.pods.extend(one.pods);
    }
    batch
}
