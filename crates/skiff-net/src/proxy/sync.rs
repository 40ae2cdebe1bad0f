//! The proxy's loop: reflectors of Services and EndpointSlices, a rate-limited sync that renders
//! the whole ruleset and applies the difference from the last one in one `nft -f` transaction,
//! and checks that the kernel's table is still what was applied (a firewall reload, `nft flush
//! ruleset`, a deleted table are repaired by a full replacement, with a warning and [`repairs`]
//! counting it).
//!
//! Every sync also writes a generation marker (see [`GENERATION_CHAIN`]); the marker is read back
//! before every incremental sync and every check interval (cheap: one small chain), and the
//! whole table is compared by counts (chains, rules, map elements) every
//! [`FULL_CHECK_EVERY`]th check. A failed transaction leaves the previous table in place
//! (nftables applies a batch entirely or not at all); the next attempt replaces the table whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use tokio::sync::Notify;

use super::model::service_ports;
use super::render::{GENERATION_CHAIN, RenderConfig, Ruleset, TABLE, generation_script};
use crate::nat::{NatError, nft};
use crate::watch::reflect;

static REPAIRS: AtomicU64 = AtomicU64::new(0);

/// Every how many checks the whole table is compared (the checks in between read the marker).
pub const FULL_CHECK_EVERY: u64 = 12;
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many times the periodic check found the table changed and reprogrammed it.
pub fn repairs() -> u64 {
    REPAIRS.load(Ordering::Relaxed)
}

/// How many syncs were applied.
pub fn syncs() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This node's name (for the `Local` traffic policies).
    pub node_name: String,
    /// The cluster's pod CIDR.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Least time between two syncs (bursts of changes are coalesced), as upstream's
    /// `minSyncPeriod`.
    pub min_sync_interval: Duration,
    /// How often the kernel's table is checked.
    pub check_interval: Duration,
}

impl ProxyConfig {
    /// The defaults: 1 s between syncs, a check every 5 s.
    pub fn new(node_name: String, cluster_cidr: Option<Ipv4Net>) -> Self {
        Self {
            node_name,
            cluster_cidr,
            min_sync_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(5),
        }
    }
}

/// Runs the proxy until the task is aborted.
pub async fn run(client: kube::Client, cfg: ProxyConfig) {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
        tracing::warn!(error = %e, "node ports will not answer on 127.0.0.1 (route_localnet)");
    }
    let changed = Arc::new(Notify::new());
    let services = reflect(Api::<Service>::all(client.clone()), changed.clone(), "service proxy");
    let slices = reflect(Api::<EndpointSlice>::all(client), changed.clone(), "service proxy");
    let (Ok(()), Ok(())) = (services.wait_until_ready().await, slices.wait_until_ready().await) else {
        tracing::error!("service proxy reflectors stopped before their first list");
        return;
    };
    let render_cfg = RenderConfig { cluster_cidr: cfg.cluster_cidr };
    let mut applied: Option<Ruleset> = None;
    let mut generation: u64 = 0;
    let mut checks: u64 = 0;
    let mut last_sync: Option<Instant> = None;
    let mut dirty = true;
    let mut check = tokio::time::interval(cfg.check_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if dirty {
            if let Some(wait) = last_sync.and_then(|t| cfg.min_sync_interval.checked_sub(t.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            dirty = false;
            let started = Instant::now();
            let svc_list = services.state();
            let slice_list = slices.state();
            let ports = service_ports(
                svc_list.iter().map(|s| s.as_ref()),
                slice_list.iter().map(|s| s.as_ref()),
                &cfg.node_name,
            );
            let rendered = Ruleset::render(&ports, &render_cfg);
            let mut previous = applied.take();
            if previous.is_some() {
                let found = tokio::task::spawn_blocking(kernel_generation).await.ok().flatten();
                if found != Some(generation) {
                    repairing(format!("generation marker {found:?}, expected {generation}"));
                    previous = None;
                }
            }
            generation += 1;
            match apply(&rendered, previous.as_ref(), generation).await {
                Ok(()) => {
                    SYNCS.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        ports = ports.len(),
                        rules = rendered.rule_count(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "service proxy rules synced"
                    );
                    applied = Some(rendered);
                }
                Err(e) => {
                    tracing::error!(error = %e, "service proxy rules not applied; the previous ones stay");
                    dirty = true;
                }
            }
            last_sync = Some(Instant::now());
        }
        tokio::select! {
            _ = changed.notified() => dirty = true,
            _ = check.tick() => {
                if let Some(rs) = &applied {
                    checks += 1;
                    if let Some(difference) = check_table(rs, generation, checks.is_multiple_of(FULL_CHECK_EVERY)).await {
                        repairing(difference);
                        applied = None;
                        dirty = true;
                    }
                }
            }
        }
    }
}

/// Counts a repair and says why.
fn repairing(difference: String) {
    REPAIRS.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        %difference, repairs = repairs(),
        "the service proxy table was changed or removed behind skiff's back; reprogramming it"
    );
}

/// What differs between the kernel's table and `applied` (written with marker `generation`), if
/// anything: the marker always, the counts when `full`.
async fn check_table(applied: &Ruleset, generation: u64, full: bool) -> Option<String> {
    let found = tokio::task::spawn_blocking(kernel_generation).await.ok().flatten();
    if found != Some(generation) {
        return Some(format!("generation marker {found:?}, expected {generation}"));
    }
    if !full {
        return None;
    }
    let expected = (applied.chain_names().len(), applied.rule_count(), applied.element_count());
    let found = tokio::task::spawn_blocking(kernel_counts).await.ok().flatten();
    (found != Some(expected)).then(|| format!("(chains, rules, map elements) {found:?}, expected {expected:?}"))
}

/// Applies `rendered` over `previous` with marker `generation`; when the update is refused (the
/// table was changed under us), replaces the table whole.
async fn apply(rendered: &Ruleset, previous: Option<&Ruleset>, generation: u64) -> Result<(), NatError> {
    let script = rendered.script(previous) + &generation_script(generation);
    let first = tokio::task::spawn_blocking(move || nft(&script)).await.unwrap_or_else(|e| Err(join_error(e)));
    match (first, previous) {
        (Ok(()), _) => Ok(()),
        (Err(e), Some(_)) => {
            tracing::warn!(error = %e, "incremental proxy update refused; replacing the table");
            let script = rendered.script(None) + &generation_script(generation);
            tokio::task::spawn_blocking(move || nft(&script)).await.unwrap_or_else(|e| Err(join_error(e)))
        }
        (Err(e), None) => Err(e),
    }
}

fn join_error(e: tokio::task::JoinError) -> NatError {
    NatError::Spawn(std::io::Error::other(e.to_string()))
}

/// (chains, rules, map elements) of the kernel's table, `None` if it is absent or unreadable.
fn kernel_counts() -> Option<(usize, usize, usize)> {
    let output = crate::nat::nft_output(&["-j", "list", "table", "ip", TABLE]).ok()?;
    counts(&output)
}

/// The generation marker in the kernel's table, `None` if the table, the chain or its rule is
/// missing.
fn kernel_generation() -> Option<u64> {
    let output = crate::nat::nft_output(&["-j", "list", "chain", "ip", TABLE, GENERATION_CHAIN]).ok()?;
    generation(&output)
}

/// The generation named by the marker rule's comment in `nft -j` output.
pub fn generation(json: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get("nftables")?.as_array()?.iter().find_map(|item| {
        let rule = item.get("rule")?;
        (rule.get("chain")?.as_str()? == GENERATION_CHAIN)
            .then(|| rule.get("comment")?.as_str()?.strip_prefix("generation ")?.parse().ok())
            .flatten()
    })
}

/// Counts chains, rules and map elements in `nft -j` output, leaving out the generation marker.
pub fn counts(json: &str) -> Option<(usize, usize, usize)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let items = value.get("nftables")?.as_array()?;
    let (mut chains, mut rules, mut elements) = (0, 0, 0);
    let marker = |o: &serde_json::Value, key: &str| o.get(key).and_then(|n| n.as_str()) == Some(GENERATION_CHAIN);
    for item in items {
        if let Some(chain) = item.get("chain") {
            chains += usize::from(!marker(chain, "name"));
        } else if let Some(rule) = item.get("rule") {
            rules += usize::from(!marker(rule, "chain"));
        } else if let Some(map) = item.get("map") {
            elements += map.get("elem").and_then(|e| e.as_array()).map_or(0, Vec::len);
        }
    }
    Some((chains, rules, elements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"table": {"name": "skiff-proxy"}},
            {"map": {"name": "service-ips", "elem": [[1, 2], [3, 4]]}}, {"map": {"name": "service-nodeports"}},
            {"set": {"name": "affinity-x", "elem": [1]}},
            {"chain": {"name": "a"}}, {"chain": {"name": "b"}}, {"rule": {"chain": "a"}}]}"#;
        assert_eq!(counts(json), Some((2, 1, 2)));
        assert_eq!(counts("not json"), None);
        let with_marker = r#"{"nftables": [{"chain": {"name": "a"}}, {"chain": {"name": "generation"}},
            {"rule": {"chain": "generation", "comment": "generation 7"}}, {"rule": {"chain": "a"}}]}"#;
        assert_eq!(counts(with_marker), Some((1, 1, 0)));
    }

    #[test]
    fn generation_reads_the_marker_comment() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"chain": {"name": "generation"}},
            {"rule": {"chain": "generation", "expr": [{"return": null}], "comment": "generation 42"}}]}"#;
        assert_eq!(generation(json), Some(42));
        assert_eq!(generation(r#"{"nftables": [{"chain": {"name": "generation"}}]}"#), None);
        assert_eq!(generation("Error: No such file or directory"), None);
    }
}
