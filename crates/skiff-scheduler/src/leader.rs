//! Leader election through a `coordination.k8s.io/v1` Lease (`kube-system/kube-scheduler` by
//! default), as client-go's `leaderelection` does it for kube-scheduler: try to acquire every
//! retry period (2 s); a lease whose holder has not renewed within the lease duration (15 s) is
//! taken over; the leader renews every retry period and steps down when it could not renew for
//! the renew deadline (10 s); on shutdown the leader releases the lease so a standby takes over
//! at once. Only the leader schedules; every instance keeps its informers and cache warm.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Leader election settings (upstream defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// Whether to elect a leader at all (else this instance always schedules).
    pub enabled: bool,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before stepping down.
    pub renew_deadline: Duration,
    /// How often to try.
    pub retry_period: Duration,
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
}

impl Default for LeaderElection {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            name: "kube-scheduler".into(),
            namespace: "kube-system".into(),
        }
    }
}

fn micro_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Whether a lease is held by someone else and still valid at `now`.
pub fn held_by_other(lease: &Lease, me: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = lease.spec.as_ref() else { return false };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return false;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec.renew_time.as_ref().map(|t| t.0).or(spec.acquire_time.as_ref().map(|t| t.0));
    match renewed {
        Some(t) => t.as_second() + duration > now.as_second(),
        None => false,
    }
}

/// One acquire-or-renew attempt (client-go `tryAcquireOrRenew`); returns whether this instance
/// holds the lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaderElection, me: &str) -> Result<bool, kube::Error> {
    let now = micro_now();
    let secs = cfg.lease_duration.as_secs() as i32;
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {"holderIdentity": me, "leaseDurationSeconds": secs, "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }))
        .map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    if held_by_other(&lease, me, jiff::Timestamp::now()) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    let was_mine = spec.holder_identity.as_deref() == Some(me);
    let mut new_spec = json!({"holderIdentity": me, "leaseDurationSeconds": secs, "renewTime": now});
    if was_mine {
        new_spec["acquireTime"] = json!(
            spec.acquire_time
                .as_ref()
                .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                .unwrap_or(now.clone())
        );
        new_spec["leaseTransitions"] = json!(spec.lease_transitions.unwrap_or(0));
    } else {
        new_spec["acquireTime"] = json!(now);
        new_spec["leaseTransitions"] = json!(spec.lease_transitions.unwrap_or(0) + 1);
    }
    lease.spec = Some(serde_json::from_value(new_spec).map_err(kube::Error::SerdeError)?);
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if this instance holds it (client-go `release`).
pub async fn release(api: &Api<Lease>, cfg: &LeaderElection, me: &str) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    let now = micro_now();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let released =
        json!({"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now, "leaseTransitions": transitions});
    let Ok(spec) = serde_json::from_value(released) else { return };
    lease.spec = Some(spec);
    if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        tracing::debug!(error = %e, "cannot release the scheduler lease");
    }
}

/// Runs the election loop forever, flipping `leader` as leadership is won and lost.
pub async fn run(client: kube::Client, cfg: LeaderElection, me: String, leader: Arc<AtomicBool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renew: Option<Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &cfg, &me).await {
            Ok(true) => {
                if !leader.swap(true, Ordering::SeqCst) {
                    tracing::info!(identity = %me, lease = %format!("{}/{}", cfg.namespace, cfg.name), "became the scheduler leader");
                }
                last_renew = Some(Instant::now());
            }
            Ok(false) => {
                if leader.swap(false, Ordering::SeqCst) {
                    tracing::warn!(identity = %me, "lost the scheduler lease to another instance");
                }
                last_renew = None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot acquire or renew the scheduler lease");
                if last_renew.is_some_and(|t| t.elapsed() > cfg.renew_deadline) && leader.swap(false, Ordering::SeqCst)
                {
                    tracing::warn!(identity = %me, "could not renew the scheduler lease in time; stepping down");
                    last_renew = None;
                }
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64, duration: i32) -> Lease {
        let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
        serde_json::from_value(
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "renewTime": t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}),
        )
        .expect("lease")
    }

    #[test]
    fn a_lease_is_taken_over_only_once_expired() {
        let now = jiff::Timestamp::now();
        assert!(held_by_other(&lease("other", 5, 15), "me", now));
        assert!(!held_by_other(&lease("other", 16, 15), "me", now));
        assert!(!held_by_other(&lease("me", 5, 15), "me", now));
        assert!(!held_by_other(&lease("", 5, 15), "me", now));
    }
}
