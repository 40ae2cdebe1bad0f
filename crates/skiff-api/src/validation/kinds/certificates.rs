//! Validation of CertificateSigningRequest (upstream `pkg/apis/certificates/validation`): the
//! request parses and its signature verifies, usages are known and unique, the signer name is a
//! well-formed `domain/path`, `expirationSeconds` is at least 600, and the condition rules; on
//! updates, which conditions and whether `status.certificate` may change depends on the path
//! (main resource, `/status`, `/approval`).
//!
//! The parsing of the PEM request is in [`crate::certificates`]; who may approve or sign is an
//! admission question for the API server.

use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::certificates::{self as certs, ALL_USAGES, APPROVED, DENIED, FAILED, LEGACY_UNKNOWN};
use crate::kinds::Validation;
use crate::validation::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::validation::{ErrorList, FieldError, child, index};

const CONDITIONS: &str = "status.conditions";

/// Which changes an update path allows, and which old defects it tolerates (upstream's
/// `certificateValidationOptions`).
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    allow_setting_approval_conditions: bool,
    allow_setting_certificate: bool,
    allow_both_approved_and_denied: bool,
    allow_legacy_signer_name: bool,
    allow_duplicate_condition_types: bool,
    allow_empty_condition_type: bool,
    allow_arbitrary_certificate: bool,
    allow_unknown_usages: bool,
    allow_duplicate_usages: bool,
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[])
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status.as_ref().and_then(|s| s.certificate.as_ref()).map(|b| b.0.as_slice()).unwrap_or(&[])
}

fn has_type(csr: &CertificateSigningRequest, t: &str) -> bool {
    conditions(csr).iter().any(|c| c.type_ == t)
}

fn options(new: &CertificateSigningRequest, old: Option<&CertificateSigningRequest>) -> Options {
    let Some(old) = old else { return Options::default() };
    let mut seen = std::collections::HashSet::new();
    let dup_conditions = conditions(old).iter().any(|c| !seen.insert(c.type_.as_str()));
    let mut seen_usages = std::collections::HashSet::new();
    let usages = old.spec.usages.as_deref().unwrap_or(&[]);
    Options {
        allow_both_approved_and_denied: has_type(old, APPROVED) && has_type(old, DENIED),
        allow_legacy_signer_name: old.spec.signer_name == LEGACY_UNKNOWN,
        allow_duplicate_condition_types: dup_conditions,
        allow_empty_condition_type: conditions(old).iter().any(|c| c.type_.is_empty()),
        allow_arbitrary_certificate: certificate(new) == certificate(old)
            || check_certificate(certificate(old)).is_err(),
        allow_unknown_usages: usages.iter().any(|u| !ALL_USAGES.contains(&u.as_str())),
        allow_duplicate_usages: usages.iter().any(|u| !seen_usages.insert(u.as_str())),
        ..Options::default()
    }
}

/// Go's `%#v` of a byte slice, as upstream renders the request in its error.
fn go_bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(|x| format!("{x:#x}")).collect();
    format!("[]byte{{{}}}", items.join(", "))
}

/// Checks `status.certificate`: empty, or only `CERTIFICATE` PEM blocks without headers, each
/// holding a parsable certificate.
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut rest = pem;
    let mut blocks = 0;
    while let Ok((remaining, block)) = x509_parser::pem::parse_x509_pem(rest) {
        if block.label != "CERTIFICATE" {
            return Err(format!("only CERTIFICATE PEM blocks are allowed, found {:?}", block.label));
        }
        block.parse_x509().map_err(|e| format!("x509: malformed certificate: {e}"))?;
        blocks += 1;
        rest = remaining;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// Upstream's `ValidateSignerName`: `<domain>/<path>`, the domain made of at least two DNS
/// labels, the path of DNS subdomains separated by dots.
pub fn validate_signer_name(errs: &mut ErrorList, path: &str, signer: &str) {
    if signer.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let segments: Vec<&str> = signer.split('/').collect();
    if segments.len() != 2 {
        errs.push(FieldError::invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    }
    if segments[0].len() > 253 {
        errs.push(FieldError::too_long(path, 253));
    }
    let domain: Vec<&str> = segments[0].split('.').collect();
    for label in &domain {
        let problems = is_dns1123_label(label);
        if !problems.is_empty() {
            for p in problems {
                errs.push(FieldError::invalid(path, segments[0], format!("validating label {label:?}: {p}")));
            }
            break;
        }
    }
    if domain.len() < 2 {
        errs.push(FieldError::invalid(
            path,
            segments[0],
            "should be a domain with at least two segments separated by dots",
        ));
    }
    for label in segments[1].split('.') {
        let problems = is_dns1123_subdomain(label);
        if !problems.is_empty() {
            for p in problems {
                errs.push(FieldError::invalid(path, segments[1], format!("validating label {label:?}: {p}")));
            }
            break;
        }
    }
    let max = 253 + (253 + 63 + 1) + 1;
    if signer.len() > max {
        errs.push(FieldError::too_long(path, max));
    }
}

fn validate_conditions(errs: &mut ErrorList, csr: &CertificateSigningRequest, o: Options) {
    let mut seen = std::collections::HashSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(csr).iter().enumerate() {
        let p = index(CONDITIONS, i);
        if !o.allow_empty_condition_type && c.type_.is_empty() {
            errs.push(FieldError::required(child(&p, "type"), ""));
        }
        let true_only = [APPROVED, DENIED, FAILED].contains(&c.type_.as_str());
        let allowed: &[&str] = if true_only { &["True"] } else { &["False", "True", "Unknown"] };
        if c.status.is_empty() {
            errs.push(FieldError::required(child(&p, "status"), ""));
        } else if !allowed.contains(&c.status.as_str()) {
            errs.push(FieldError::not_supported(child(&p, "status"), c.status.as_str(), allowed));
        }
        if !o.allow_both_approved_and_denied {
            let exclusive = "Approved and Denied conditions are mutually exclusive";
            if c.type_ == APPROVED {
                approved = true;
                if denied {
                    errs.push(FieldError::invalid(child(&p, "type"), c.type_.as_str(), exclusive));
                }
            } else if c.type_ == DENIED {
                denied = true;
                if approved {
                    errs.push(FieldError::invalid(child(&p, "type"), c.type_.as_str(), exclusive));
                }
            }
        }
        if !o.allow_duplicate_condition_types && !seen.insert(c.type_.as_str()) {
            errs.push(FieldError::duplicate(child(&p, "type"), c.type_.as_str()));
        }
    }
}

fn validate(csr: &CertificateSigningRequest, o: Options) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = &csr.spec;
    if let Err(e) = certs::parse_request(&spec.request.0) {
        errs.push(FieldError::invalid_go("spec.request", &go_bytes(&spec.request.0), &e.to_string()));
    }
    let usages = spec.usages.as_deref().unwrap_or(&[]);
    if usages.is_empty() {
        errs.push(FieldError::required("spec.usages", ""));
    }
    if !o.allow_unknown_usages {
        for (i, u) in usages.iter().enumerate() {
            if !ALL_USAGES.contains(&u.as_str()) {
                errs.push(FieldError::not_supported(index("spec.usages", i), u.as_str(), ALL_USAGES));
            }
        }
    }
    if !o.allow_duplicate_usages {
        let mut seen = std::collections::HashSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !seen.insert(u.as_str()) {
                errs.push(FieldError::duplicate(index("spec.usages", i), u.as_str()));
            }
        }
    }
    if !o.allow_legacy_signer_name && spec.signer_name == LEGACY_UNKNOWN {
        errs.push(FieldError::invalid(
            "spec.signerName",
            spec.signer_name.as_str(),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        validate_signer_name(&mut errs, "spec.signerName", &spec.signer_name);
    }
    if let Some(secs) = spec.expiration_seconds
        && secs < 600
    {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            secs,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    validate_conditions(&mut errs, csr, o);
    if !o.allow_arbitrary_certificate
        && let Err(e) = check_certificate(certificate(csr))
    {
        errs.push(FieldError::invalid("status.certificate", "<certificate data>", e));
    }
    errs
}

fn of_type<'a>(csr: &'a CertificateSigningRequest, t: &str) -> Vec<&'a CertificateSigningRequestCondition> {
    conditions(csr).iter().filter(|c| c.type_ == t).collect()
}

fn validate_update(new: &CertificateSigningRequest, old: &CertificateSigningRequest, o: Options) -> ErrorList {
    let mut errs = validate(new, o);
    for t in [APPROVED, DENIED, FAILED] {
        if of_type(new, t).len() < of_type(old, t).len() {
            errs.push(FieldError::forbidden(CONDITIONS, format!("updates may not remove a condition of type {t:?}")));
        }
    }
    if !o.allow_setting_approval_conditions {
        for t in [APPROVED, DENIED] {
            let (old_c, new_c) = (of_type(old, t), of_type(new, t));
            if new_c.len() > old_c.len() {
                errs.push(FieldError::forbidden(CONDITIONS, format!("updates may not add a condition of type {t:?}")));
            } else if new_c.len() == old_c.len() && new_c != old_c {
                errs.push(FieldError::forbidden(
                    CONDITIONS,
                    format!("updates may not modify a condition of type {t:?}"),
                ));
            }
        }
    }
    if certificate(new) != certificate(old) {
        if !o.allow_setting_certificate {
            errs.push(FieldError::forbidden("status.certificate", "updates may not set certificate content"));
        } else if !certificate(old).is_empty() {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }
    errs
}

/// Fills `lastUpdateTime` and `lastTransitionTime` of conditions that lack them (upstream's
/// `populateConditionTimestamps`): the transition time is kept from an old condition of the same
/// type and status.
pub fn populate_condition_timestamps(new: &mut CertificateSigningRequest, old: &CertificateSigningRequest, now: Time) {
    let old_conditions = conditions(old).to_vec();
    let Some(list) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else { return };
    for c in list {
        if c.last_update_time.is_none() {
            c.last_update_time = Some(now.clone());
        }
        if c.last_transition_time.is_none() {
            let kept = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status && o.last_transition_time.is_some())
                .and_then(|o| o.last_transition_time.clone());
            c.last_transition_time = Some(kept.unwrap_or_else(|| now.clone()));
        }
    }
}

impl Validation for CertificateSigningRequest {
    fn validate_create(&self) -> ErrorList {
        validate(self, options(self, None))
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        validate_update(self, old, options(self, Some(old)))
    }

    fn validate_status_update(&self, old: &Self) -> ErrorList {
        let o = Options { allow_setting_certificate: true, ..options(self, Some(old)) };
        validate_update(self, old, o)
    }

    fn validate_approval_update(&self, old: &Self) -> ErrorList {
        let o = Options { allow_setting_approval_conditions: true, ..options(self, Some(old)) };
        validate_update(self, old, o)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestSpec, CertificateSigningRequestStatus};

    fn request_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(usages: &[&str], signer: &str) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(request_pem().into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn cond(t: &str) -> CertificateSigningRequestCondition {
        CertificateSigningRequestCondition { type_: t.into(), status: "True".into(), ..Default::default() }
    }

    fn with_conditions(
        mut c: CertificateSigningRequest,
        conds: Vec<CertificateSigningRequestCondition>,
    ) -> CertificateSigningRequest {
        c.status = Some(CertificateSigningRequestStatus { conditions: Some(conds), ..Default::default() });
        c
    }

    fn fields(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.field, e.body())).collect()
    }

    #[test]
    fn a_good_request_is_valid() {
        let c = csr(&["client auth", "digital signature"], certs::KUBE_APISERVER_CLIENT);
        assert!(c.validate_create().is_empty(), "{:?}", fields(&c.validate_create()));
    }

    #[test]
    fn bad_requests_usages_and_durations_are_refused() {
        let mut c = csr(&["client auth", "client auth", "flying"], certs::KUBE_APISERVER_CLIENT);
        c.spec.request = ByteString(b"not pem".to_vec());
        c.spec.expiration_seconds = Some(599);
        let errs = fields(&c.validate_create());
        assert!(errs[0].starts_with("spec.request: Invalid value: []byte{0x6e, 0x6f"), "{errs:?}");
        assert!(errs[0].ends_with("PEM block type must be CERTIFICATE REQUEST"), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("spec.usages[2]: Unsupported value: \"flying\"")), "{errs:?}");
        assert!(errs.iter().any(|e| e == "spec.usages[1]: Duplicate value: \"client auth\""), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("may not specify a duration less than 600 seconds")), "{errs:?}");
        let mut none = csr(&[], certs::KUBE_APISERVER_CLIENT);
        none.spec.usages = None;
        assert_eq!(fields(&none.validate_create()), vec!["spec.usages: Required value"]);
    }

    #[test]
    fn signer_names_must_be_domain_and_path() {
        let check = |s: &str| {
            let mut errs = ErrorList::new();
            validate_signer_name(&mut errs, "spec.signerName", s);
            fields(&errs)
        };
        assert_eq!(check(""), vec!["spec.signerName: Required value"]);
        assert!(check("example.com/signer").is_empty());
        assert!(check("nodomain")[0].contains("must be a fully qualified domain and path"));
        assert!(check("a/b/c")[0].contains("must be a fully qualified domain and path"));
        assert!(check("example/x")[0].contains("should be a domain with at least two segments separated by dots"));
        assert!(check("Example.com/x")[0].contains("validating label \"Example\""));
        let legacy = csr(&["client auth"], LEGACY_UNKNOWN);
        assert!(
            fields(&legacy.validate_create())[0].contains("the legacy signerName is not allowed via this API version")
        );
    }

    #[test]
    fn condition_rules() {
        let base = csr(&["client auth"], certs::KUBE_APISERVER_CLIENT);
        let both = with_conditions(base.clone(), vec![cond(APPROVED), cond(DENIED)]);
        assert!(fields(&both.validate_create()).iter().any(|e| e.contains("mutually exclusive")));
        let dup = with_conditions(base.clone(), vec![cond(FAILED), cond(FAILED)]);
        assert!(fields(&dup.validate_create()).iter().any(|e| e.contains("Duplicate value: \"Failed\"")));
        let mut false_approved = cond(APPROVED);
        false_approved.status = "False".into();
        let bad = with_conditions(base.clone(), vec![false_approved]);
        assert!(fields(&bad.validate_create())[0].contains("supported values: \"True\""));
    }

    #[test]
    fn update_paths_allow_only_their_part() {
        let old = csr(&["client auth"], certs::KUBE_APISERVER_CLIENT);
        let approved = with_conditions(old.clone(), vec![cond(APPROVED)]);
        // The main resource and /status may not approve; /approval may.
        assert!(
            fields(&approved.validate_update(&old))[0].contains("updates may not add a condition of type \"Approved\"")
        );
        assert!(
            fields(&approved.validate_status_update(&old))[0].contains("may not add a condition of type \"Approved\"")
        );
        assert!(approved.validate_approval_update(&old).is_empty());
        // Nobody may remove it.
        assert!(
            fields(&old.validate_approval_update(&approved))[0]
                .contains("may not remove a condition of type \"Approved\"")
        );
        // /status may add Failed.
        let failed = with_conditions(old.clone(), vec![cond(APPROVED), cond(FAILED)]);
        assert!(failed.validate_status_update(&approved).is_empty());
        // A certificate only through /status, and never changed once set.
        let mut signed = approved.clone();
        signed.status.as_mut().unwrap().certificate = Some(ByteString(b"junk".to_vec()));
        assert!(
            fields(&signed.validate_update(&approved))
                .iter()
                .any(|e| e.contains("updates may not set certificate content"))
        );
        assert!(
            fields(&signed.validate_status_update(&approved))
                .iter()
                .any(|e| e.contains("must contain at least one CERTIFICATE PEM block"))
        );
        assert!(
            fields(&signed.validate_approval_update(&approved))
                .iter()
                .any(|e| e.contains("may not set certificate content"))
        );
    }

    #[test]
    fn timestamps_are_filled_and_transitions_kept() {
        let now = Time(jiff::Timestamp::from_second(1_000).unwrap());
        let earlier = Time(jiff::Timestamp::from_second(10).unwrap());
        let mut old_c = cond(APPROVED);
        old_c.last_transition_time = Some(earlier.clone());
        let old = with_conditions(csr(&["client auth"], certs::KUBE_APISERVER_CLIENT), vec![old_c]);
        let mut new = with_conditions(old.clone(), vec![cond(APPROVED), cond(FAILED)]);
        populate_condition_timestamps(&mut new, &old, now.clone());
        let c = conditions(&new);
        assert_eq!(c[0].last_transition_time, Some(earlier));
        assert_eq!(c[1].last_transition_time, Some(now.clone()));
        assert_eq!(c[0].last_update_time, Some(now));
    }
}
