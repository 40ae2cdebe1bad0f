//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! with upstream's timings (15 s lease, 10 s renew deadline, 2 s retry): only the holder runs the
//! guarded work, and it stops the work when it cannot renew within the deadline.
//!
//! Reusable by any component (the controller manager uses `kube-system/kube-controller-manager`,
//! the scheduler `kube-system/kube-scheduler`). What does not live here: the guarded work.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// Where and how to elect.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate's identity (`holderIdentity`).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Upstream's timings for the lease `namespace/name`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a try at the lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Another candidate holds a live lease.
    Taken,
}

/// Decides whether `identity` may take or renew a lease in state `spec` at `now`.
pub fn may_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp, default_duration: Duration) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::ZERO));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    renewed.is_none_or(|r| r + duration <= now)
}

/// One try to acquire or renew the lease.
pub async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    let duration_secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    let existing = match api.get_opt(&cfg.name).await? {
        Some(l) => l,
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Taken),
                Err(e) => Err(e),
            };
        }
    };
    if !may_acquire(existing.spec.as_ref(), &cfg.identity, now, cfg.lease_duration) {
        return Ok(Attempt::Taken);
    }
    let mut lease = existing;
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(duration_secs);
    spec.renew_time = Some(MicroTime(now));
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Taken),
        Err(e) => Err(e),
    }
}

/// Runs `work` whenever this candidate leads: waits for the lease, runs the work while renewing,
/// and drops the work (stopping it) when renewal fails for longer than the renew deadline, then
/// campaigns again. Returns only if the task is dropped.
pub async fn run<F, Fut>(client: kube::Client, cfg: LeaderConfig, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        loop {
            match try_acquire_or_renew(&api, &cfg).await {
                Ok(Attempt::Held) => break,
                Ok(Attempt::Taken) => {}
                Err(e) => tracing::debug!(lease = %cfg.name, error = %e, "cannot acquire the lease yet"),
            }
            tokio::time::sleep(cfg.retry_period).await;
        }
        tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "became leader");
        let renew = async {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(cfg.retry_period).await;
                match try_acquire_or_renew(&api, &cfg).await {
                    Ok(Attempt::Held) => last_renewal = tokio::time::Instant::now(),
                    Ok(Attempt::Taken) => return,
                    Err(e) => tracing::debug!(lease = %cfg.name, error = %e, "lease renewal failed"),
                }
                if last_renewal.elapsed() > cfg.renew_deadline {
                    return;
                }
            }
        };
        tokio::select! {
            _ = renew => tracing::warn!(lease = %cfg.name, "leader election lost"),
            _ = work() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }
    }

    #[test]
    fn live_leases_of_others_are_respected() {
        let now = Timestamp::now();
        let d = Duration::from_secs(15);
        assert!(may_acquire(None, "me", now, d));
        assert!(may_acquire(Some(&spec("me", now)), "me", now, d));
        assert!(!may_acquire(Some(&spec("other", now - SignedDuration::from_secs(14))), "me", now, d));
        assert!(may_acquire(Some(&spec("other", now - SignedDuration::from_secs(15))), "me", now, d));
        assert!(may_acquire(Some(&spec("", now)), "me", now, d));
    }
}
