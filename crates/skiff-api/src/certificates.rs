//! What the `certificates.k8s.io` API shares between the API server and the signers: the
//! well-known signer names, key usages and condition types, and the parsing of a
//! CertificateSigningRequest's PEM `CERTIFICATE REQUEST` (signature checked) into the names it
//! asks for.
//!
//! Validation of the object lives in `validation::kinds::certificates`; signing lives in the
//! controllers; nothing here does I/O.

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The signer of client certificates the API server accepts (any user but `system:masters`).
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelets' client certificates.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The v1beta1-only signer (refused by the v1 API on create).
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The `Approved` condition type.
pub const APPROVED: &str = "Approved";
/// The `Denied` condition type.
pub const DENIED: &str = "Denied";
/// The `Failed` condition type.
pub const FAILED: &str = "Failed";

/// Every key usage the API accepts, sorted as upstream lists them in errors.
pub const ALL_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The names a certificate request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The subject's common names (normally one).
    pub common_names: Vec<String>,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// Whether the subject has attributes other than CN and O.
    pub other_subject_attributes: bool,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// E-mail subject alternative names.
    pub emails: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The DER bytes of the request.
    pub der: Vec<u8>,
    /// The DER `SubjectPublicKeyInfo` of the requested key (for signing).
    pub spki_der: Vec<u8>,
}

/// Why a request does not parse (messages as upstream's `ParseCSR` and Go's x509 package).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No PEM block, or one of another type.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    /// The DER does not parse.
    #[error("x509: malformed certificate request: {0}")]
    Malformed(String),
    /// The signature does not verify with the request's own key.
    #[error("x509: signature verification failure: {0}")]
    Signature(String),
}

/// Parses the first PEM block of `pem` as a `CERTIFICATE REQUEST` and checks its signature.
pub fn parse_request(pem: &[u8]) -> Result<ParsedRequest, RequestError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| RequestError::NotPem)?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(RequestError::NotPem);
    }
    let (_, csr) =
        X509CertificationRequest::from_der(&block.contents).map_err(|e| RequestError::Malformed(e.to_string()))?;
    csr.verify_signature().map_err(|e| RequestError::Signature(e.to_string()))?;
    let subject = &csr.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().map(str::to_string).unwrap_or_default();
    let mut out = ParsedRequest {
        common_names: subject.iter_common_name().map(text).collect(),
        organizations: subject.iter_organization().map(text).collect(),
        der: block.contents.clone(),
        spki_der: csr.certification_request_info.subject_pki.raw.to_vec(),
        ..Default::default()
    };
    let attributes = subject.iter_attributes().count();
    out.other_subject_attributes = attributes > out.common_names.len() + out.organizations.len();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                        GeneralName::RFC822Name(e) => out.emails.push(e.to_string()),
                        GeneralName::URI(u) => out.uris.push(u.to_string()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                                out.ip_addresses.push(IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                                out.ip_addresses.push(IpAddr::from(v6));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Whether `signer` is one reserved by the Kubernetes project (`kubernetes.io` or a subdomain).
pub fn is_kubernetes_signer(signer: &str) -> bool {
    let host = signer.split('/').next().unwrap_or("");
    host == "kubernetes.io" || host.ends_with(".kubernetes.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_request_pem_is_refused() {
        assert_eq!(parse_request(b"hello"), Err(RequestError::NotPem));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_request(cert.as_bytes()), Err(RequestError::NotPem));
        let junk = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert!(matches!(parse_request(junk.as_bytes()), Err(RequestError::Malformed(_))));
    }

    #[test]
    fn kubernetes_signers() {
        assert!(is_kubernetes_signer("kubernetes.io/kube-apiserver-client"));
        assert!(is_kubernetes_signer("foo.kubernetes.io/x"));
        assert!(!is_kubernetes_signer("example.com/x"));
        assert!(!is_kubernetes_signer("notkubernetes.io/x"));
    }
}
