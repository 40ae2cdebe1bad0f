//! The rotation loop: sleep until the current certificate's rotation deadline, then request,
//! store and switch to a new one; on failure log, keep the old certificate and retry with
//! exponential back-off (2 s doubling up to 5 minutes).
//!
//! What does not live here: the deadline arithmetic ([`super::deadline`]), the request
//! ([`super::request`]), the file ([`super::store`]).

use std::sync::Arc;
use std::time::Duration;

use super::identity::{ClientIdentity, RotatingIdentity};
use super::store::CertificateStore;
use super::{CertificateError, deadline, request};

/// The first retry delay after a failed rotation.
const INITIAL_BACKOFF: Duration = Duration::from_secs(2);
/// The longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a request may stay undecided before it is given up (the kubelet's 15 minutes).
const WAIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The longest single sleep, so a wall-clock jump (suspend, NTP) is noticed within the hour.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// What the rotation loop works with.
pub struct Rotation {
    /// The agent's API client (presenting `identity`).
    pub client: kube::Client,
    /// The identity the client presents; replaced on rotation.
    pub identity: Arc<RotatingIdentity>,
    /// Where new pairs are saved.
    pub store: CertificateStore,
    /// The node's name.
    pub node_name: String,
}

/// Rotates the client certificate until the task is dropped.
pub async fn run(rotation: Rotation) {
    loop {
        let current = rotation.identity.current();
        let due = deadline::rotation_deadline(current.not_before, current.not_after, deadline::random_fraction());
        tracing::info!(
            expires = current.not_after,
            rotation_deadline = due,
            "waiting for the client certificate's rotation deadline"
        );
        sleep_until(due).await;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match rotate(&rotation).await {
                Ok(new) => {
                    tracing::info!(expires = new.not_after, "rotated the client certificate");
                    rotation.identity.replace(new);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "client certificate rotation failed; keeping the current certificate");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// One rotation: request, wait, check, store.
async fn rotate(rotation: &Rotation) -> Result<ClientIdentity, CertificateError> {
    let req = request::build(&rotation.node_name)?;
    let cert_pem = request::submit_and_wait(&rotation.client, &req.csr, WAIT_TIMEOUT).await?;
    let identity = ClientIdentity::from_pem(&cert_pem, &req.key_pem)?;
    let store = rotation.store.clone();
    let saved = identity.clone();
    tokio::task::spawn_blocking(move || store.save(&saved))
        .await
        .map_err(|e| CertificateError::Invalid(format!("saving the certificate: {e}")))??;
    Ok(identity)
}

/// Sleeps until the wall clock reaches `at` (seconds since the epoch).
async fn sleep_until(at: i64) {
    loop {
        let now = jiff::Timestamp::now().as_second();
        let Some(left) = u64::try_from(at.saturating_sub(now)).ok().filter(|s| *s > 0) else { return };
        tokio::time::sleep(Duration::from_secs(left).min(MAX_SLEEP)).await;
    }
}
