//! Upstream's `csrapproving` controller: pending `kubernetes.io/kube-apiserver-client-kubelet`
//! requests that are valid kubelet client requests are approved (reason `AutoApproved`) when a
//! SubjectAccessReview says their requester may `create` `certificatesigningrequests/selfnodeclient`
//! (a node renewing its own certificate: the requester is the subject's common name) or
//! `certificatesigningrequests/nodeclient` (a bootstrapper asking for a node's first one).
//!
//! What does not live here: the signing itself ([`super::signer`]), other signers' approval
//! (left to users holding `approve`).

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use skiff_api::certificates::{self as certs, APPROVED, DENIED, KUBE_APISERVER_CLIENT_KUBELET};

use super::{CsrInformer, conditions, signer};
use crate::informer::{get, key_of};
use crate::queue::{WorkQueue, run_workers};

const NAME: &str = "csrapproving";

/// One way a request may be auto-approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recognizer {
    /// The subresource the requester must be allowed to `create`.
    pub subresource: &'static str,
    /// The `AutoApproved` condition's message.
    pub message: &'static str,
    /// Whether the requester must be the subject (a node renewing its own certificate).
    pub self_only: bool,
}

/// The recognizers, in upstream's order.
pub const RECOGNIZERS: [Recognizer; 2] = [
    Recognizer {
        subresource: "selfnodeclient",
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
        self_only: true,
    },
    Recognizer {
        subresource: "nodeclient",
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
        self_only: false,
    },
];

/// The recognizers that apply to `csr` (none unless it is a pending, valid kubelet client request).
pub fn candidates(csr: &CertificateSigningRequest) -> Vec<Recognizer> {
    if csr.spec.signer_name != KUBE_APISERVER_CLIENT_KUBELET
        || conditions::find(csr, APPROVED).is_some()
        || conditions::find(csr, DENIED).is_some()
    {
        return Vec::new();
    }
    let Ok(req) = certs::parse_request(&csr.spec.request.0) else { return Vec::new() };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if signer::check_kubelet_client(&req, &usages).is_err() {
        return Vec::new();
    }
    let requester = csr.spec.username.as_deref().unwrap_or("");
    RECOGNIZERS
        .into_iter()
        .filter(|r| !r.self_only || req.common_names.first().is_some_and(|cn| cn == requester))
        .collect()
}

fn review(csr: &CertificateSigningRequest, subresource: &str) -> SubjectAccessReview {
    let extra = csr.spec.extra.clone().map(|e| e.into_iter().collect::<BTreeMap<_, _>>());
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra,
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("API error: {0}")]
    Api(#[from] kube::Error),
    #[error("recognized csr {0:?} as {1:?} but subject access review was not approved")]
    NotApproved(String, Vec<&'static str>),
}

/// Runs the approver until the task is dropped.
pub async fn controller(client: kube::Client, informer: CsrInformer) {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informer.on_change(move |_, new| {
        if let Some(csr) = new.filter(|c| c.spec.signer_name == KUBE_APISERVER_CLIENT_KUBELET) {
            q.add(key_of(csr));
        }
    });
    informer.ready().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let reviews: Api<SubjectAccessReview> = Api::all(client);
    run_workers(NAME, queue, 1, move |key| {
        let (csrs, reviews, informer) = (csrs.clone(), reviews.clone(), informer.clone());
        async move {
            let Some(csr) = get(&informer.store(), &key) else { return Ok::<(), SyncError>(()) };
            let tried = candidates(&csr);
            if tried.is_empty() {
                return Ok(());
            }
            for r in &tried {
                let answer = reviews.create(&PostParams::default(), &review(&csr, r.subresource)).await?;
                if answer.status.is_some_and(|s| s.allowed) {
                    let mut csr = (*csr).clone();
                    let name = csr.metadata.name.clone().unwrap_or_default();
                    conditions::add(&mut csr, APPROVED, "AutoApproved", r.message, Timestamp::now());
                    csrs.replace_subresource("approval", &name, &PostParams::default(), &csr).await?;
                    tracing::info!(csr = %name, "kubelet client certificate request auto-approved");
                    return Ok(());
                }
            }
            let name = csr.metadata.name.clone().unwrap_or_default();
            Err(SyncError::NotApproved(name, tried.iter().map(|r| r.subresource).collect()))
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::ByteString;

    fn csr(cn: &str, user: &str, usages: &[&str]) -> CertificateSigningRequest {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let mut c = CertificateSigningRequest::default();
        c.spec.request = ByteString(pem.into_bytes());
        c.spec.signer_name = KUBE_APISERVER_CLIENT_KUBELET.into();
        c.spec.usages = Some(usages.iter().map(|s| s.to_string()).collect());
        c.spec.username = Some(user.into());
        c
    }

    #[test]
    fn nodes_renewing_their_own_and_bootstrappers_are_candidates() {
        let usages = ["digital signature", "client auth"];
        let own = csr("system:node:n1", "system:node:n1", &usages);
        assert_eq!(candidates(&own), RECOGNIZERS.to_vec());
        let bootstrap = csr("system:node:n1", "system:bootstrap:abc", &usages);
        assert_eq!(candidates(&bootstrap).iter().map(|r| r.subresource).collect::<Vec<_>>(), ["nodeclient"]);
        let bad_usages = csr("system:node:n1", "system:node:n1", &["client auth"]);
        assert!(candidates(&bad_usages).is_empty());
        let mut decided = own.clone();
        conditions::add(&mut decided, DENIED, "r", "m", Timestamp::now());
        assert!(candidates(&decided).is_empty());
        let mut other = own;
        other.spec.signer_name = certs::KUBE_APISERVER_CLIENT.into();
        assert!(candidates(&other).is_empty());
    }

    #[test]
    fn a_node_asking_for_another_nodes_name_is_not_a_self_renewal() {
        let usages = ["digital signature", "client auth"];
        let other = csr("system:node:n2", "system:node:n1", &usages);
        // Only `nodeclient` is tried, which the default policy does not grant to nodes.
        assert_eq!(candidates(&other).iter().map(|r| r.subresource).collect::<Vec<_>>(), ["nodeclient"]);
    }

    #[test]
    fn the_review_asks_about_the_requester() {
        let mut c = csr("system:node:n1", "system:node:n1", &[]);
        c.spec.groups = Some(vec!["system:nodes".into()]);
        let r = review(&c, "selfnodeclient");
        assert_eq!(r.spec.user.as_deref(), Some("system:node:n1"));
        let attrs = r.spec.resource_attributes.unwrap();
        assert_eq!(attrs.subresource.as_deref(), Some("selfnodeclient"));
        assert_eq!(attrs.verb.as_deref(), Some("create"));
    }
}
