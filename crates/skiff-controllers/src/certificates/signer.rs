//! The signers of upstream's `csrsigning` controller: approved, not failed, not yet issued
//! requests to `kubernetes.io/kube-apiserver-client`, `kubernetes.io/kube-apiserver-client-kubelet`
//! or `kubernetes.io/kubelet-serving` are checked against their signer's rules ([`check`]) and
//! either get `Failed` (reason `SignerValidationFailure`) or a certificate from the cluster CA
//! ([`Authority::sign`]): the requested subject and SANs, the requested usages, valid from five
//! minutes ago for `expirationSeconds` (at least 10 minutes, at most the signing duration; see
//! [`validity`] for short-lived ones) and never past the CA's own expiry.
//!
//! What does not live here: approval (the approver, or users with `approve`), the CA's creation.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use skiff_api::certificates::{
    self as certs, APPROVED, FAILED, KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING,
    ParsedRequest,
};

use super::{CertificatesConfig, CsrInformer, conditions};
use crate::informer::{get, key_of};
use crate::queue::{WorkQueue, run_workers};

const NAME: &str = "csrsigning";
/// How far back certificates are dated (clock skew).
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// The shortest lifetime issued.
const MIN_DURATION: Duration = Duration::from_secs(10 * 60);
/// Lifetimes below this are "short": their end is not moved back by [`BACKDATE`] (upstream's
/// 8 hours, of which five minutes are about 1 %).
const SHORT: Duration = Duration::from_secs(8 * 3600);

/// The validity (`notBefore`, `notAfter`, seconds since the epoch) of a certificate with
/// lifetime `ttl` issued at `now`: from five minutes before `now`; a short-lived certificate
/// (under 8 hours) ends `ttl` after `now`, a longer one `ttl` after its start; never past
/// `ca_not_after`. The server's first node certificate follows the same rule.
pub fn validity(now: i64, ttl: Duration, ca_not_after: i64) -> (i64, i64) {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let not_before = now - BACKDATE.as_secs() as i64;
    let end_from = if ttl < SHORT.as_secs() as i64 { now } else { not_before };
    (not_before, end_from.saturating_add(ttl).min(ca_not_after))
}

/// Why a signer could not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The CA certificate or key does not load.
    #[error("cannot load the CA: {0}")]
    Ca(String),
    /// The CA has expired.
    #[error("the signer has expired: NotAfter={0}")]
    Expired(String),
    /// Building the certificate failed.
    #[error("error auto signing csr: {0}")]
    Sign(String),
}

fn usages_set(usages: &[String]) -> std::collections::BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

fn exactly(usages: &[String], with_rsa: &[&str], without_rsa: &[&str]) -> bool {
    let set = usages_set(usages);
    set == with_rsa.iter().copied().collect() || set == without_rsa.iter().copied().collect()
}

fn only_system_nodes(req: &ParsedRequest) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    Ok(())
}

fn node_common_name(req: &ParsedRequest) -> Result<(), String> {
    if !req.common_names.first().is_some_and(|cn| cn.starts_with("system:node:")) {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// Upstream's `ValidateKubeletClientCSR`.
pub fn check_kubelet_client(req: &ParsedRequest, usages: &[String]) -> Result<(), String> {
    only_system_nodes(req)?;
    if !req.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    node_common_name(req)?;
    if !exactly(
        usages,
        &["digital signature", "key encipherment", "client auth"],
        &["digital signature", "client auth"],
    ) {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

/// Upstream's `ValidateKubeletServingCSR`.
pub fn check_kubelet_serving(req: &ParsedRequest, usages: &[String]) -> Result<(), String> {
    only_system_nodes(req)?;
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !exactly(
        usages,
        &["digital signature", "key encipherment", "server auth"],
        &["digital signature", "server auth"],
    ) {
        return Err("usages did not match [digital signature key encipherment server auth]".into());
    }
    node_common_name(req)
}

/// Upstream's `validAPIServerClientUsages`.
pub fn check_apiserver_client(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// The rules of `signer` for a request: `None` when skiff does not sign for it, else whether
/// the request may be signed (`Err` is the `Failed` condition's message).
pub fn check(signer: &str, req: &ParsedRequest, usages: &[String]) -> Option<Result<(), String>> {
    match signer {
        KUBE_APISERVER_CLIENT => Some(check_apiserver_client(usages)),
        KUBE_APISERVER_CLIENT_KUBELET => Some(check_kubelet_client(req, usages)),
        KUBELET_SERVING => Some(check_kubelet_serving(req, usages)),
        _ => None,
    }
}

/// The lifetime of a certificate: the requested one between 10 minutes and `max`.
pub fn duration(expiration_seconds: Option<i32>, max: Duration) -> Duration {
    match expiration_seconds.and_then(|s| u64::try_from(s).ok()) {
        None => max,
        Some(s) => Duration::from_secs(s).clamp(MIN_DURATION, max.max(MIN_DURATION)).min(max),
    }
}

/// The cluster CA, loaded once.
pub struct Authority {
    cert_pem: String,
    key: KeyPair,
    not_after: i64,
    max_duration: Duration,
}

impl Authority {
    /// Loads the CA of `cfg`.
    pub fn new(cfg: &CertificatesConfig) -> Result<Self, SignError> {
        let key = KeyPair::from_pem(&cfg.ca_key_pem).map_err(|e| SignError::Ca(e.to_string()))?;
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(cfg.ca_cert_pem.as_bytes()).map_err(|e| SignError::Ca(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| SignError::Ca(e.to_string()))?;
        let not_after = cert.validity().not_after.timestamp();
        Ok(Self { cert_pem: cfg.ca_cert_pem.clone(), key, not_after, max_duration: cfg.signing_duration })
    }

    /// Issues a certificate (PEM) for `req` with `usages`, valid for `expiration_seconds` (see
    /// [`duration`]) from `now` minus five minutes, and not past the CA's expiry.
    pub fn sign(
        &self,
        req: &ParsedRequest,
        usages: &[String],
        expiration_seconds: Option<i32>,
        now: Timestamp,
    ) -> Result<String, SignError> {
        let now_s = now.as_second();
        if now_s >= self.not_after {
            let at = Timestamp::from_second(self.not_after).map(|t| t.to_string()).unwrap_or_default();
            return Err(SignError::Expired(at));
        }
        let ttl = duration(expiration_seconds, self.max_duration);
        let (not_before, not_after) = validity(now_s, ttl, self.not_after);
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(req);
        params.is_ca = IsCa::ExplicitNoCa;
        let sign_err = |e: rcgen::Error| SignError::Sign(e.to_string());
        for d in &req.dns_names {
            params.subject_alt_names.push(SanType::DnsName(d.clone().try_into().map_err(sign_err)?));
        }
        for ip in &req.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for e in &req.emails {
            params.subject_alt_names.push(SanType::Rfc822Name(e.clone().try_into().map_err(sign_err)?));
        }
        for u in &req.uris {
            params.subject_alt_names.push(SanType::URI(u.clone().try_into().map_err(sign_err)?));
        }
        let (key_usages, extended) = key_usages(usages);
        params.key_usages = key_usages;
        params.extended_key_usages = extended;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial());
        params.not_before = offset(not_before)?;
        params.not_after = offset(not_after)?;
        let spki = SubjectPublicKeyInfo::from_der(&req.spki_der).map_err(sign_err)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(sign_err)?;
        let cert = params.signed_by(&spki, &issuer).map_err(sign_err)?;
        Ok(cert.pem())
    }
}

/// The subject of the issued certificate: the request's organizations, then its common name.
/// rcgen keeps one value per attribute type; a second organization is written under the same
/// OID as a custom type, further ones are dropped (logged).
fn subject(req: &ParsedRequest) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    let mut orgs = req.organizations.iter();
    if let Some(o) = orgs.next() {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(o) = orgs.next() {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), o.as_str());
    }
    let dropped: Vec<&String> = orgs.collect();
    if !dropped.is_empty() {
        tracing::warn!(?dropped, "only two subject organizations are copied into an issued certificate");
    }
    if let Some(cn) = req.common_names.first() {
        dn.push(DnType::CommonName, cn.as_str());
    }
    dn
}

fn offset(secs: i64) -> Result<time::OffsetDateTime, SignError> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| SignError::Sign(e.to_string()))
}

/// A random positive 128-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Upstream's mapping of usage names to key usages and extended key usages.
pub fn key_usages(usages: &[String]) -> (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    let (mut ku, mut eku) = (Vec::new(), Vec::new());
    for u in usages {
        match u.as_str() {
            "signing" | "digital signature" => ku.push(KeyUsagePurpose::DigitalSignature),
            "content commitment" => ku.push(KeyUsagePurpose::ContentCommitment),
            "key encipherment" => ku.push(KeyUsagePurpose::KeyEncipherment),
            "key agreement" => ku.push(KeyUsagePurpose::KeyAgreement),
            "data encipherment" => ku.push(KeyUsagePurpose::DataEncipherment),
            "cert sign" => ku.push(KeyUsagePurpose::KeyCertSign),
            "crl sign" => ku.push(KeyUsagePurpose::CrlSign),
            "encipher only" => ku.push(KeyUsagePurpose::EncipherOnly),
            "decipher only" => ku.push(KeyUsagePurpose::DecipherOnly),
            "any" => eku.push(ExtendedKeyUsagePurpose::Any),
            "server auth" => eku.push(ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => eku.push(ExtendedKeyUsagePurpose::ClientAuth),
            "code signing" => eku.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" | "s/mime" => eku.push(ExtendedKeyUsagePurpose::EmailProtection),
            "ipsec end system" => eku.push(ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5])),
            "ipsec tunnel" => eku.push(ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
            "ipsec user" => eku.push(ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
            "timestamping" => eku.push(ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => eku.push(ExtendedKeyUsagePurpose::OcspSigning),
            "microsoft sgc" => eku.push(ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
            "netscape sgc" => eku.push(ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113730, 4, 1])),
            _ => {}
        }
    }
    ku.dedup();
    eku.dedup();
    (ku, eku)
}

/// Whether the signer has work on `csr`: approved, not failed, not issued, one of its signers.
pub fn wants(csr: &CertificateSigningRequest) -> bool {
    conditions::is_true(csr, APPROVED)
        && !conditions::is_true(csr, FAILED)
        && !conditions::issued(csr)
        && [KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING]
            .contains(&csr.spec.signer_name.as_str())
}

/// What one sync decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Skip,
    /// The request breaks its signer's rules.
    Failed(String),
    /// The certificate (PEM).
    Issued(String),
}

/// Decides about `csr` at `now`.
pub fn decide(ca: &Authority, csr: &CertificateSigningRequest, now: Timestamp) -> Result<Outcome, SignError> {
    if !wants(csr) {
        return Ok(Outcome::Skip);
    }
    let req = certs::parse_request(&csr.spec.request.0).map_err(|e| {
        SignError::Sign(format!("unable to parse csr {:?}: {e}", csr.metadata.name.as_deref().unwrap_or("")))
    })?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    match check(&csr.spec.signer_name, &req, &usages) {
        None => Ok(Outcome::Skip),
        Some(Err(why)) => Ok(Outcome::Failed(why)),
        Some(Ok(())) => ca.sign(&req, &usages, csr.spec.expiration_seconds, now).map(Outcome::Issued),
    }
}

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("cannot update the status: {0}")]
    Api(#[from] kube::Error),
}

/// Runs the signer until the task is dropped.
pub async fn controller(client: kube::Client, informer: CsrInformer, ca: Arc<Authority>) {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informer.on_change(move |_, new| {
        if let Some(csr) = new.filter(|c| wants(c)) {
            q.add(key_of(csr));
        }
    });
    informer.ready().await;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    run_workers(NAME, queue, 2, move |key| {
        let (api, informer, ca) = (api.clone(), informer.clone(), ca.clone());
        async move {
            let Some(csr) = get(&informer.store(), &key) else { return Ok::<(), SyncError>(()) };
            let mut csr = (*csr).clone();
            let name = csr.metadata.name.clone().unwrap_or_default();
            match decide(&ca, &csr, Timestamp::now())? {
                Outcome::Skip => return Ok(()),
                Outcome::Failed(why) => {
                    tracing::info!(csr = %name, reason = %why, "CertificateSigningRequest failed its signer's rules");
                    conditions::add(&mut csr, FAILED, "SignerValidationFailure", &why, Timestamp::now());
                }
                Outcome::Issued(pem) => {
                    tracing::info!(csr = %name, signer = %csr.spec.signer_name, "certificate issued");
                    csr.status.get_or_insert_with(Default::default).certificate = Some(ByteString(pem.into_bytes()));
                }
            }
            api.replace_status(&name, &PostParams::default(), &csr).await?;
            Ok(())
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::certificates::DEFAULT_SIGNING_DURATION;

    fn request(cn: &str, orgs: &[&str], dns: &[&str]) -> (String, ParsedRequest) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        // rcgen keeps one value per type: a second organization goes under a custom type.
        for (i, o) in orgs.iter().enumerate() {
            let ty = if i == 0 { DnType::OrganizationName } else { DnType::CustomDnType(vec![2, 5, 4, 10]) };
            params.distinguished_name.push(ty, *o);
        }
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let parsed = certs::parse_request(pem.as_bytes()).unwrap();
        (pem, parsed)
    }

    fn u(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn ca(days: i64) -> CertificatesConfig {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let now = Timestamp::now().as_second();
        params.not_before = offset(now - 3600).unwrap();
        params.not_after = offset(now + days * 86400).unwrap();
        let cert = params.self_signed(&key).unwrap();
        CertificatesConfig {
            ca_cert_pem: cert.pem(),
            ca_key_pem: key.serialize_pem(),
            signing_duration: DEFAULT_SIGNING_DURATION,
        }
    }

    #[test]
    fn apiserver_client_rules() {
        assert!(check_apiserver_client(&u(&["client auth"])).is_ok());
        assert!(check_apiserver_client(&u(&["client auth", "digital signature", "key encipherment"])).is_ok());
        assert_eq!(
            check_apiserver_client(&u(&["client auth", "server auth"])),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            check_apiserver_client(&u(&["digital signature"])),
            Err("missing required usage for client certificate: client auth".into())
        );
    }

    #[test]
    fn kubelet_client_rules() {
        let usages = u(&["digital signature", "client auth"]);
        let (_, good) = request("system:node:n1", &["system:nodes"], &[]);
        assert!(check_kubelet_client(&good, &usages).is_ok());
        let (_, wrong_org) = request("system:node:n1", &["x"], &[]);
        assert_eq!(check_kubelet_client(&wrong_org, &usages), Err("subject organization is not system:nodes".into()));
        let (_, wrong_cn) = request("alice", &["system:nodes"], &[]);
        assert_eq!(
            check_kubelet_client(&wrong_cn, &usages),
            Err("subject common name does not begin with system:node:".into())
        );
        let (_, with_san) = request("system:node:n1", &["system:nodes"], &["n1.example"]);
        assert_eq!(check_kubelet_client(&with_san, &usages), Err("DNS subjectAltNames are not allowed".into()));
        assert_eq!(
            check_kubelet_client(&good, &u(&["client auth"])),
            Err("usages did not match [client auth digital signature key encipherment]".into())
        );
    }

    #[test]
    fn kubelet_serving_rules() {
        let usages = u(&["digital signature", "key encipherment", "server auth"]);
        let (_, good) = request("system:node:n1", &["system:nodes"], &["n1.example", "10.0.0.1"]);
        assert_eq!(good.ip_addresses.len(), 1);
        assert!(check_kubelet_serving(&good, &usages).is_ok());
        let (_, no_san) = request("system:node:n1", &["system:nodes"], &[]);
        assert_eq!(check_kubelet_serving(&no_san, &usages), Err("DNS or IP subjectAltName is required".into()));
        assert_eq!(
            check_kubelet_serving(&good, &u(&["server auth"])),
            Err("usages did not match [digital signature key encipherment server auth]".into())
        );
    }

    #[test]
    fn durations_are_clamped() {
        let max = Duration::from_secs(3600 * 24);
        assert_eq!(duration(None, max), max);
        assert_eq!(duration(Some(600), max), Duration::from_secs(600));
        assert_eq!(duration(Some(7200), max), Duration::from_secs(7200));
        assert_eq!(duration(Some(10 * 86400), max), max);
    }

    #[test]
    fn signs_with_the_requested_subject_usages_and_lifetime() {
        let cfg = ca(365);
        let authority = Authority::new(&cfg).unwrap();
        let (_, req) = request("alice", &["devs", "ops"], &[]);
        let now = Timestamp::now();
        let pem = authority.sign(&req, &u(&["client auth", "digital signature"]), Some(3600), now).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let cn: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().unwrap().to_string()).collect();
        let orgs: Vec<_> = cert.subject().iter_organization().map(|a| a.as_str().unwrap().to_string()).collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(orgs, ["devs", "ops"]);
        // Short-lived: an hour from now, dated five minutes back.
        assert_eq!(cert.validity().not_after.timestamp(), now.as_second() + 3600);
        assert_eq!(cert.validity().not_before.timestamp(), now.as_second() - 300);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // Issued by the CA.
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(cfg.ca_cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_block.parse_x509().unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    }

    #[test]
    fn short_lived_certificates_keep_their_whole_lifetime_after_signing() {
        let day = Duration::from_secs(86_400);
        assert_eq!(validity(1_000_000, Duration::from_secs(120), i64::MAX), (999_700, 1_000_120));
        assert_eq!(validity(1_000_000, day, i64::MAX), (999_700, 999_700 + 86_400));
        assert_eq!(validity(1_000_000, day, 1_000_050), (999_700, 1_000_050));
    }

    #[test]
    fn never_outlives_the_ca() {
        let cfg = ca(1);
        let authority = Authority::new(&cfg).unwrap();
        let (_, req) = request("alice", &[], &[]);
        let pem = authority.sign(&req, &u(&["client auth"]), None, Timestamp::now()).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        assert_eq!(cert.validity().not_after.timestamp(), authority.not_after);
    }

    #[test]
    fn decide_fails_forbidden_usages_and_skips_unapproved() {
        let authority = Authority::new(&ca(365)).unwrap();
        let (pem, _) = request("alice", &[], &[]);
        let mut csr = CertificateSigningRequest::default();
        csr.spec.request = ByteString(pem.into_bytes());
        csr.spec.signer_name = KUBE_APISERVER_CLIENT.into();
        csr.spec.usages = Some(u(&["client auth", "server auth"]));
        assert_eq!(decide(&authority, &csr, Timestamp::now()).unwrap(), Outcome::Skip);
        conditions::add(&mut csr, APPROVED, "r", "m", Timestamp::now());
        assert_eq!(
            decide(&authority, &csr, Timestamp::now()).unwrap(),
            Outcome::Failed("invalid usage for client certificate: server auth".into())
        );
        csr.spec.usages = Some(u(&["client auth"]));
        assert!(matches!(decide(&authority, &csr, Timestamp::now()).unwrap(), Outcome::Issued(_)));
        csr.spec.signer_name = "example.com/other".into();
        assert_eq!(decide(&authority, &csr, Timestamp::now()).unwrap(), Outcome::Skip);
    }
}
