//! The NetworkPolicy controller's loop: reflectors of NetworkPolicies, Pods and Namespaces (all
//! namespaces: peers can be anywhere), a sync shortly after every change that resolves the
//! policies for this node's pods, renders the table and applies the difference from the last
//! applied one in one `nft -f` transaction, and a periodic check that the kernel's table still
//! holds what was applied (a flushed ruleset or deleted table is replaced whole, with a warning
//! and [`repairs`] counting it).
//!
//! A refused transaction leaves the previous table in place (nftables applies a batch entirely
//! or not at all); an incremental update that is refused is retried as a whole replacement, and
//! if that fails too the sync is retried after [`NetpolConfig::retry_interval`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use tokio::sync::Notify;

use super::model::policies;
use super::render::{Ruleset, TABLE, kernel_counts};
use crate::nat::{NatError, nft, nft_output};
use crate::watch::reflect;

static REPAIRS: AtomicU64 = AtomicU64::new(0);
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many times the periodic check found the table changed and reprogrammed it.
pub fn repairs() -> u64 {
    REPAIRS.load(Ordering::Relaxed)
}

/// How many syncs changed the kernel's table.
pub fn syncs() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct NetpolConfig {
    /// This node's name: only its pods are enforced here.
    pub node_name: String,
    /// How long a burst of changes is coalesced before a sync.
    pub debounce: Duration,
    /// How often the kernel's table is checked.
    pub check_interval: Duration,
    /// How long after a failed sync it is retried.
    pub retry_interval: Duration,
}

impl NetpolConfig {
    /// The defaults: syncs 50 ms after a change, a check every 5 s, a retry after 1 s.
    pub fn new(node_name: String) -> Self {
        Self {
            node_name,
            debounce: Duration::from_millis(50),
            check_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// Lets bridged (same-node pod-to-pod) IPv4 traffic through the `ip` family's hooks, where the
/// table filters it.
fn enable_bridge_hooks() {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "1" => {}
        _ => {
            if let Err(e) = std::fs::write(path, "1") {
                tracing::error!(%path, error = %e, "network policies cannot filter traffic between pods of this node");
            }
        }
    }
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client, cfg: NetpolConfig) {
    enable_bridge_hooks();
    let changed = Arc::new(Notify::new());
    let netpols = reflect(Api::<NetworkPolicy>::all(client.clone()), changed.clone(), "network policy");
    let pods = reflect(Api::<Pod>::all(client.clone()), changed.clone(), "network policy");
    let namespaces = reflect(Api::<Namespace>::all(client), changed.clone(), "network policy");
    let ready =
        futures::future::join3(netpols.wait_until_ready(), pods.wait_until_ready(), namespaces.wait_until_ready());
    let (Ok(()), Ok(()), Ok(())) = ready.await else {
        tracing::error!("network policy reflectors stopped before their first list");
        return;
    };
    let mut applied: Option<Ruleset> = None;
    let mut dirty = true;
    let mut check = tokio::time::interval(cfg.check_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if dirty {
            tokio::time::sleep(cfg.debounce).await;
            dirty = false;
            let started = Instant::now();
            let (policy_list, pod_list, ns_list) = (netpols.state(), pods.state(), namespaces.state());
            let resolved = policies(
                policy_list.iter().map(|p| p.as_ref()),
                pod_list.iter().map(|p| p.as_ref()),
                ns_list.iter().map(|n| n.as_ref()),
                &cfg.node_name,
            );
            let rendered = Ruleset::render(&resolved);
            if applied.as_ref() != Some(&rendered) {
                match apply(&rendered, applied.as_ref()).await {
                    Ok(()) => {
                        SYNCS.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            policies = resolved.len(),
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "network policy rules synced"
                        );
                        applied = Some(rendered);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "network policy rules not applied; the previous ones stay");
                        applied = None;
                        tokio::time::sleep(cfg.retry_interval).await;
                        dirty = true;
                        continue;
                    }
                }
            }
        }
        tokio::select! {
            _ = changed.notified() => dirty = true,
            _ = check.tick() => {
                if let Some(rs) = &applied {
                    let expected = rs.counts();
                    let found = tokio::task::spawn_blocking(|| {
                        kernel_counts(&nft_output(&["-j", "list", "table", "ip", TABLE]).ok()?)
                    }).await.ok().flatten();
                    if found != Some(expected) {
                        REPAIRS.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            difference = format!("(chains, rules, set elements) {found:?}, expected {expected:?}"),
                            repairs = repairs(),
                            "the network policy table was changed or removed behind skiff's back; reprogramming it"
                        );
                        applied = None;
                        dirty = true;
                    }
                }
            }
        }
    }
}

/// Applies `rendered` over `previous`; when the update is refused (the table was changed under
/// us), replaces the table whole.
async fn apply(rendered: &Ruleset, previous: Option<&Ruleset>) -> Result<(), NatError> {
    let script = rendered.script(previous);
    let first = run_nft(script).await;
    match (first, previous) {
        (Ok(()), _) => Ok(()),
        (Err(e), Some(_)) => {
            tracing::warn!(error = %e, "incremental network policy update refused; replacing the table");
            run_nft(rendered.script(None)).await
        }
        (Err(e), None) => Err(e),
    }
}

async fn run_nft(script: String) -> Result<(), NatError> {
    tokio::task::spawn_blocking(move || nft(&script))
        .await
        .unwrap_or_else(|e| Err(NatError::Spawn(std::io::Error::other(e.to_string()))))
}
