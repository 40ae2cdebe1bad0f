//! Reading and adding the conditions of a CertificateSigningRequest, shared by the signer,
//! approver and cleaner.

use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The condition of type `t`, if present.
pub fn find<'a>(csr: &'a CertificateSigningRequest, t: &str) -> Option<&'a CertificateSigningRequestCondition> {
    csr.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == t)
}

/// Whether the condition `t` is present with status `True`.
pub fn is_true(csr: &CertificateSigningRequest, t: &str) -> bool {
    find(csr, t).is_some_and(|c| c.status == "True")
}

/// Whether a certificate has been issued.
pub fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty())
}

/// Appends a `True` condition of type `t`.
pub fn add(csr: &mut CertificateSigningRequest, t: &str, reason: &str, message: &str, now: Timestamp) {
    let status = csr.status.get_or_insert_with(Default::default);
    status.conditions.get_or_insert_with(Vec::new).push(CertificateSigningRequestCondition {
        type_: t.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: None,
    });
}
