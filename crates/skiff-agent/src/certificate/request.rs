//! The CertificateSigningRequest a node sends to renew its client certificate (the kubelet's):
//! a fresh ECDSA P-256 key, subject `CN=system:node:<node>, O=system:nodes`, signer
//! `kubernetes.io/kube-apiserver-client-kubelet`, usages digital signature and client auth, a
//! generated name `csr-…` as the kubelet's certificate manager uses; and the wait until the
//! request is issued, denied or failed.
//!
//! What does not live here: approval and signing (the controller manager's `csrapproving` and
//! signers), when to ask ([`super::deadline`]).

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use skiff_api::certificates::{DENIED, FAILED, KUBE_APISERVER_CLIENT_KUBELET};

use super::CertificateError;

/// The group every node's certificate names as organization.
pub const NODES_GROUP: &str = "system:nodes";
/// The usages a node asks for (its key is ECDSA, so no key encipherment).
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];

/// A request not yet sent, with the private key it was made with.
pub struct NodeCertificateRequest {
    /// The new private key (PEM); it never leaves the node.
    pub key_pem: String,
    /// The object to create.
    pub csr: CertificateSigningRequest,
}

/// A fresh key and the CertificateSigningRequest of node `node_name`'s client certificate.
pub fn build(node_name: &str) -> Result<NodeCertificateRequest, CertificateError> {
    let key = rcgen::KeyPair::generate().map_err(|e| CertificateError::Request(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, NODES_GROUP);
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("system:node:{node_name}"));
    let pem =
        params.serialize_request(&key).and_then(|r| r.pem()).map_err(|e| CertificateError::Request(e.to_string()))?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: KUBE_APISERVER_CLIENT_KUBELET.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    Ok(NodeCertificateRequest { key_pem: key.serialize_pem(), csr })
}

/// What a request came to, once decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The signer issued this certificate (PEM).
    Issued(String),
    /// Denied or failed: the condition's type, reason and message.
    Refused(String, String, String),
}

/// The outcome of `csr`, or `None` while it is pending (or approved but not yet signed).
pub fn outcome(csr: &CertificateSigningRequest) -> Option<Outcome> {
    let status = csr.status.as_ref()?;
    if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == DENIED || c.type_ == FAILED) {
        return Some(Outcome::Refused(
            c.type_.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ));
    }
    let cert = status.certificate.as_ref().filter(|c| !c.0.is_empty())?;
    Some(Outcome::Issued(String::from_utf8_lossy(&cert.0).into_owned()))
}

/// Creates `csr` and waits up to `timeout` for its certificate (PEM).
pub async fn submit_and_wait(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
    timeout: Duration,
) -> Result<String, CertificateError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api.create(&PostParams::default(), csr).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let uid = created.metadata.uid.clone();
    tracing::info!(csr = %name, "requested a new client certificate");
    let decided =
        |c: Option<&CertificateSigningRequest>| c.is_some_and(|c| c.metadata.uid != uid || outcome(c).is_some());
    let found = tokio::time::timeout(timeout, await_condition(api, &name, decided))
        .await
        .map_err(|_| CertificateError::Timeout(name.clone()))?
        .map_err(|e| CertificateError::Wait(name.clone(), e.to_string()))?;
    let found = found.ok_or_else(|| CertificateError::Wait(name.clone(), "the request was deleted".into()))?;
    if found.metadata.uid != uid {
        return Err(CertificateError::Wait(name, "the request was replaced".into()));
    }
    match outcome(&found) {
        Some(Outcome::Issued(pem)) => Ok(pem),
        Some(Outcome::Refused(kind, reason, message)) => Err(CertificateError::Refused { name, kind, reason, message }),
        None => Err(CertificateError::Wait(name, "no decision".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestStatus};

    #[test]
    fn the_request_names_the_node_and_asks_the_kubelet_client_signer() {
        let r = build("n1").unwrap();
        assert_eq!(r.csr.metadata.generate_name.as_deref(), Some("csr-"));
        assert_eq!(r.csr.spec.signer_name, KUBE_APISERVER_CLIENT_KUBELET);
        assert_eq!(r.csr.spec.usages.as_deref().unwrap(), ["digital signature", "client auth"]);
        assert!(r.csr.spec.expiration_seconds.is_none());
        let parsed = skiff_api::certificates::parse_request(&r.csr.spec.request.0).unwrap();
        assert_eq!(parsed.common_names, ["system:node:n1"]);
        assert_eq!(parsed.organizations, ["system:nodes"]);
        assert!(parsed.dns_names.is_empty() && parsed.ip_addresses.is_empty());
        assert!(!parsed.other_subject_attributes);
        assert!(r.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn every_request_has_a_fresh_key() {
        assert_ne!(build("n1").unwrap().key_pem, build("n1").unwrap().key_pem);
    }

    fn with_status(conditions: &[&str], cert: Option<&str>) -> CertificateSigningRequest {
        CertificateSigningRequest {
            status: Some(CertificateSigningRequestStatus {
                certificate: cert.map(|c| ByteString(c.as_bytes().to_vec())),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|t| CertificateSigningRequestCondition {
                            type_: t.to_string(),
                            reason: Some("R".into()),
                            message: Some("M".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_wait_for_the_certificate_and_report_refusals() {
        assert_eq!(outcome(&CertificateSigningRequest::default()), None);
        assert_eq!(outcome(&with_status(&["Approved"], None)), None);
        assert_eq!(outcome(&with_status(&["Approved"], Some(""))), None);
        assert_eq!(outcome(&with_status(&["Approved"], Some("PEM"))), Some(Outcome::Issued("PEM".into())));
        assert_eq!(
            outcome(&with_status(&["Denied"], None)),
            Some(Outcome::Refused("Denied".into(), "R".into(), "M".into()))
        );
        assert_eq!(
            outcome(&with_status(&["Approved", "Failed"], None)),
            Some(Outcome::Refused("Failed".into(), "R".into(), "M".into()))
        );
    }
}
