//! Upstream's `csrcleaner`: CertificateSigningRequests are deleted once issued and approved for
//! an hour, denied or failed for an hour, pending for a day, or when their certificate has
//! expired. Instead of upstream's hourly poll, each request is requeued for the moment it
//! becomes due.
//!
//! What does not live here: anything that changes a request.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};
use skiff_api::certificates::{APPROVED, DENIED, FAILED};

use super::{CsrInformer, conditions};
use crate::informer::{get, key_of};
use crate::queue::{WorkQueue, run_workers};

const NAME: &str = "csrcleaner";
/// How long an issued (approved) or denied or failed request is kept.
pub const DECIDED_TTL: i64 = 3600;
/// How long a pending request is kept.
pub const PENDING_TTL: i64 = 24 * 3600;

fn updated(csr: &CertificateSigningRequest, t: &str) -> Option<i64> {
    conditions::find(csr, t)?.last_update_time.as_ref().map(|t| t.0.as_second())
}

fn certificate_expiry(csr: &CertificateSigningRequest) -> Option<i64> {
    let pem = csr.status.as_ref()?.certificate.as_ref()?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem.0).ok()?;
    let cert = block.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// When `csr` is due for deletion (seconds since the epoch), if ever.
pub fn deadline(csr: &CertificateSigningRequest) -> Option<i64> {
    let mut due: Vec<i64> = Vec::new();
    if conditions::issued(csr)
        && let Some(t) = updated(csr, APPROVED)
    {
        due.push(t + DECIDED_TTL);
    }
    for t in [DENIED, FAILED] {
        if let Some(at) = updated(csr, t) {
            due.push(at + DECIDED_TTL);
        }
    }
    let decided = [APPROVED, DENIED, FAILED].iter().any(|t| conditions::find(csr, t).is_some());
    if !decided && let Some(created) = csr.metadata.creation_timestamp.as_ref() {
        due.push(created.0.as_second() + PENDING_TTL);
    }
    if let Some(expiry) = certificate_expiry(csr) {
        due.push(expiry);
    }
    due.into_iter().min()
}

/// Runs the cleaner until the task is dropped.
pub async fn controller(client: kube::Client, informer: CsrInformer) {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informer.on_change(move |_, new| {
        if let Some(csr) = new.filter(|c| deadline(c).is_some()) {
            q.add(key_of(csr));
        }
    });
    informer.ready().await;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let q = queue.clone();
    run_workers(NAME, queue, 1, move |key| {
        let (api, informer, q) = (api.clone(), informer.clone(), q.clone());
        async move {
            let Some(csr) = get(&informer.store(), &key) else { return Ok::<(), kube::Error>(()) };
            let Some(due) = deadline(&csr) else { return Ok(()) };
            let now = Timestamp::now().as_second();
            if due > now {
                q.add_after(key, Duration::from_secs(u64::try_from(due - now).unwrap_or(0)));
                return Ok(());
            }
            let name = csr.metadata.name.clone().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: csr.metadata.uid.clone(), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {
                    tracing::info!(csr = %name, "cleaned up CertificateSigningRequest");
                    Ok(())
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or_default()
    }

    #[test]
    fn deadlines_follow_upstream() {
        let mut csr = CertificateSigningRequest::default();
        assert_eq!(deadline(&csr), None);
        csr.metadata.creation_timestamp = Some(Time(at(1_000)));
        assert_eq!(deadline(&csr), Some(1_000 + PENDING_TTL));
        // Approved but not issued: no longer pending, not yet due.
        conditions::add(&mut csr, APPROVED, "r", "m", at(2_000));
        assert_eq!(deadline(&csr), None);
        let mut denied = CertificateSigningRequest::default();
        conditions::add(&mut denied, DENIED, "r", "m", at(5_000));
        assert_eq!(deadline(&denied), Some(5_000 + DECIDED_TTL));
        conditions::add(&mut csr, FAILED, "r", "m", at(3_000));
        assert_eq!(deadline(&csr), Some(3_000 + DECIDED_TTL));
    }
}
