//! Admission of CertificateSigningRequests: the parts of upstream's registry strategy that need
//! the request (the requester written into `spec.username/uid/groups/extra` on create; the
//! `/status` and `/approval` preparations of conditions), and the plugins CertificateApproval
//! (`/approval` needs `approve` on the request's signer), CertificateSigning (changing
//! `status.certificate` needs `sign` on it) and CertificateSubjectRestriction (no
//! `system:masters` client certificates from `kubernetes.io/kube-apiserver-client`).
//!
//! Validation of the object is in `skiff_api::validation::kinds::certificates`; signing is done by
//! the controllers.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::certificates::{self as certs, APPROVED, DENIED};
use skiff_api::validation::kinds::certificates::populate_condition_timestamps;

use crate::authn::UserInfo;
use crate::authz::{Attributes, Decision, ResourceAttributes};
use crate::handlers::{Ctx, Part};
use crate::objects::meta_str;
use crate::state::ApiState;

const GROUP: &str = "certificates.k8s.io";

fn is_csr(ctx: &Ctx) -> bool {
    ctx.storage.group == GROUP && ctx.storage.plural == "certificatesigningrequests"
}

fn signer(obj: &Value) -> &str {
    obj.get("spec").and_then(|s| s.get("signerName")).and_then(Value::as_str).unwrap_or("")
}

/// The requester (`ctx.user`) replaces whatever identity the client put in the spec; then the
/// CertificateSubjectRestriction plugin refuses `system:masters` requests to the API-server
/// client signer.
pub fn admit_create(ctx: &Ctx, obj: &mut Value) -> Result<(), StatusError> {
    let user = &ctx.user;
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        for k in ["username", "uid", "groups", "extra"] {
            spec.remove(k);
        }
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
    if signer(obj) == certs::KUBE_APISERVER_CLIENT
        && let Some(request) = request_bytes(obj)
        && let Ok(parsed) = certs::parse_request(&request)
        && parsed.organizations.iter().any(|o| o == "system:masters")
    {
        return Err(StatusError::forbidden(
            &ctx.group_resource(),
            meta_str(obj, "name").unwrap_or(""),
            &format!("use of {} signer with system:masters group is not allowed", certs::KUBE_APISERVER_CLIENT),
        ));
    }
    Ok(())
}

fn request_bytes(obj: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64 = obj.get("spec")?.get("request")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The object an `/approval` write produces: the stored one with the conditions the client sent.
pub fn merge_approval(old: &Value, new: &Value) -> Value {
    let mut merged = old.clone();
    let conditions = new.get("status").and_then(|s| s.get("conditions")).cloned();
    if let Some(map) = merged.as_object_mut() {
        let status = map.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = status.as_object_mut() {
            match conditions {
                Some(c) => status.insert("conditions".into(), c),
                None => status.remove("conditions"),
            };
        }
    }
    merged
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Upstream's status and approval strategies: `/status` keeps the stored Approved and Denied
/// condition instances (adding or removing them fails validation), and both fill the
/// timestamps of conditions that lack them.
pub fn prepare_update(ctx: &Ctx, part: Part, old: &Value, new: &mut Value) {
    if !is_csr(ctx) || !matches!(part, Part::Status | Part::Approval) {
        return;
    }
    let (Ok(old_csr), Ok(mut new_csr)) = (
        serde_json::from_value::<CertificateSigningRequest>(old.clone()),
        serde_json::from_value::<CertificateSigningRequest>(new.clone()),
    ) else {
        return;
    };
    if part == Part::Status {
        for t in [APPROVED, DENIED] {
            preserve_instances(&mut new_csr, &old_csr, t);
        }
    }
    populate_condition_timestamps(&mut new_csr, &old_csr, now());
    // Keep what the typed decoding dropped for the pipeline's unknown-field handling: only
    // the conditions change here.
    if let (Some(conds), Some(status)) = (
        serde_json::to_value(new_csr.status.and_then(|s| s.conditions)).ok().filter(|v| !v.is_null()),
        new.get_mut("status").and_then(Value::as_object_mut),
    ) {
        status.insert("conditions".into(), conds);
    }
}

fn preserve_instances(new: &mut CertificateSigningRequest, old: &CertificateSigningRequest, t: &str) {
    let old_conds: Vec<_> =
        old.status.iter().flat_map(|s| s.conditions.iter().flatten()).filter(|c| c.type_ == t).cloned().collect();
    let Some(list) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else { return };
    let idx: Vec<usize> = list.iter().enumerate().filter(|(_, c)| c.type_ == t).map(|(i, _)| i).collect();
    if idx.len() != old_conds.len() {
        return;
    }
    for (i, c) in idx.into_iter().zip(old_conds) {
        list[i] = c;
    }
}

fn certificate(obj: &Value) -> Option<&Value> {
    obj.get("status").and_then(|s| s.get("certificate"))
}

/// CertificateApproval and CertificateSigning: an `/approval` write needs `approve` on the
/// signer, a `/status` write that changes the certificate needs `sign` on it.
pub fn admit_update(state: &ApiState, ctx: &Ctx, part: Part, old: &Value, new: &Value) -> Result<(), StatusError> {
    if !is_csr(ctx) {
        return Ok(());
    }
    let signer_name = signer(new);
    let (verb, what) = match part {
        Part::Approval => ("approve", "approve"),
        Part::Status if certificate(old) != certificate(new) => ("sign", "sign"),
        _ => return Ok(()),
    };
    if authorized_for_signer(state, &ctx.user, verb, signer_name) {
        return Ok(());
    }
    Err(StatusError::forbidden(
        &ctx.group_resource(),
        meta_str(new, "name").unwrap_or(""),
        &format!("user not permitted to {what} requests with signerName {signer_name:?}"),
    ))
}

/// Upstream's `IsAuthorizedForSignerName`: `verb` on `signers` named `signer`, or `<domain>/*`.
pub fn authorized_for_signer(state: &ApiState, user: &Arc<UserInfo>, verb: &str, signer: &str) -> bool {
    let Some(chain) = state.authorizers.get() else { return false };
    let ask = |name: &str| {
        let attrs = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: GROUP.into(),
                version: "*".into(),
                resource: "signers".into(),
                name: name.into(),
                ..Default::default()
            }),
            path: String::new(),
        };
        chain.authorize(&attrs) == Decision::Allow
    };
    if ask(signer) {
        return true;
    }
    match signer.split_once('/') {
        Some((domain, _)) => ask(&format!("{domain}/*")),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_takes_only_the_conditions() {
        let old = json!({"spec": {"signerName": "a.b/c"}, "status": {"certificate": "eA=="}});
        let new = json!({"spec": {"signerName": "x.y/z"}, "status": {"certificate": "", "conditions": [{"type": "Approved"}]}});
        let merged = merge_approval(&old, &new);
        assert_eq!(merged["spec"]["signerName"], "a.b/c");
        assert_eq!(merged["status"]["certificate"], "eA==");
        assert_eq!(merged["status"]["conditions"][0]["type"], "Approved");
    }
}
