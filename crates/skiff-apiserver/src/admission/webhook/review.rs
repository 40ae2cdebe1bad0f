//! The `admission.k8s.io` AdmissionReview exchanged with webhooks: building the request (v1 or
//! v1beta1), checking the response as upstream's `VerifyAdmissionResponse`, turning a denial
//! into the webhook's Status, and applying a JSONPatch answer. Pure data: no I/O here.

use base64::Engine;
use serde_json::{Map, Value, json};
use skiff_api::StatusError;
use skiff_api::status::{Reason, StatusCause, StatusDetails};

use crate::authn::UserInfo;

/// Everything the request of a review says about the write.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'static str,
    /// Group, version and kind of the object as the webhook receives it.
    pub kind: (&'a str, &'a str, &'a str),
    /// Group, version and resource as the webhook receives it.
    pub resource: (&'a str, &'a str, &'a str),
    /// Group, version and kind of the request.
    pub request_kind: (&'a str, &'a str, &'a str),
    /// Group, version and resource of the request.
    pub request_resource: (&'a str, &'a str, &'a str),
    /// Subresource (`""` for none).
    pub subresource: &'a str,
    /// Object name (may be empty for a create with `generateName`).
    pub name: &'a str,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: &'a str,
    /// Who makes the request.
    pub user: &'a UserInfo,
    /// The new object (none for deletes).
    pub object: Option<&'a Value>,
    /// The old object (updates and deletes).
    pub old_object: Option<&'a Value>,
    /// `dryRun`.
    pub dry_run: bool,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`).
    pub options: Option<Value>,
}

fn gvk((group, version, kind): (&str, &str, &str)) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn gvr((group, version, resource): (&str, &str, &str)) -> Value {
    json!({"group": group, "version": version, "resource": resource})
}

/// The AdmissionReview request body for `version` (`v1` or `v1beta1`) with `uid`.
pub fn request(version: &str, uid: &str, a: &Attributes<'_>) -> Value {
    let mut user = Map::new();
    user.insert("username".into(), json!(a.user.name));
    if !a.user.uid.is_empty() {
        user.insert("uid".into(), json!(a.user.uid));
    }
    if !a.user.groups.is_empty() {
        user.insert("groups".into(), json!(a.user.groups));
    }
    if !a.user.extra.is_empty() {
        user.insert("extra".into(), json!(a.user.extra));
    }
    let mut req = Map::new();
    req.insert("uid".into(), json!(uid));
    req.insert("kind".into(), gvk(a.kind));
    req.insert("resource".into(), gvr(a.resource));
    if !a.subresource.is_empty() {
        req.insert("subResource".into(), json!(a.subresource));
    }
    req.insert("requestKind".into(), gvk(a.request_kind));
    req.insert("requestResource".into(), gvr(a.request_resource));
    if !a.subresource.is_empty() {
        req.insert("requestSubResource".into(), json!(a.subresource));
    }
    if !a.name.is_empty() {
        req.insert("name".into(), json!(a.name));
    }
    if !a.namespace.is_empty() {
        req.insert("namespace".into(), json!(a.namespace));
    }
    req.insert("operation".into(), json!(a.operation));
    req.insert("userInfo".into(), Value::Object(user));
    req.insert("object".into(), a.object.cloned().unwrap_or(Value::Null));
    req.insert("oldObject".into(), a.old_object.cloned().unwrap_or(Value::Null));
    req.insert("dryRun".into(), json!(a.dry_run));
    req.insert("options".into(), a.options.clone().unwrap_or(Value::Null));
    json!({
        "kind": "AdmissionReview",
        "apiVersion": format!("admission.k8s.io/{version}"),
        "request": Value::Object(req),
    })
}

/// The checked content of a webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The decoded JSONPatch (mutating webhooks; empty when none).
    pub patch: Vec<u8>,
    /// `result`, the Status of a denial.
    pub result: Option<Value>,
    /// Warnings for the client.
    pub warnings: Vec<String>,
    /// `auditAnnotations` (key without the webhook-name prefix, value).
    pub audit_annotations: Vec<(String, String)>,
}

/// Checks a webhook's AdmissionReview answer as upstream does; the error is the reason.
pub fn verify(version: &str, uid: &str, mutating: bool, body: &Value) -> Result<Verdict, String> {
    let response = body.get("response").filter(|r| r.is_object()).ok_or("webhook response was absent")?;
    let patch_b64 = response.get("patch").and_then(Value::as_str).unwrap_or_default();
    let patch_type = response.get("patchType").and_then(Value::as_str);
    if version == "v1" {
        let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or_default();
        if got_uid != uid {
            return Err(format!("expected response.uid=\"{uid}\", got \"{got_uid}\""));
        }
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            let (group, ver) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(format!(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{ver}, Kind={kind}"
            ));
        }
        if mutating {
            if !patch_b64.is_empty() && patch_type.is_none() {
                return Err("webhook returned response.patch but not response.patchType".into());
            }
            if patch_b64.is_empty() && patch_type.is_some() {
                return Err("webhook returned response.patchType but not response.patch".into());
            }
            if patch_type == Some("") {
                return Err("webhook returned invalid response.patchType of \"\"".into());
            }
        } else {
            if !patch_b64.is_empty() {
                return Err("validating webhook may not return response.patch".into());
            }
            if patch_type.is_some() {
                return Err("validating webhook may not return response.patchType".into());
            }
        }
        if let Some(t) = patch_type.filter(|t| *t != "JSONPatch") {
            return Err(format!("unsupported patch type \"{t}\""));
        }
    }
    let patch = if mutating && !patch_b64.is_empty() {
        base64::engine::general_purpose::STANDARD.decode(patch_b64).map_err(|e| format!("illegal base64 data: {e}"))?
    } else {
        Vec::new()
    };
    Ok(Verdict {
        allowed: response.get("allowed").and_then(Value::as_bool).unwrap_or(false),
        patch,
        result: response.get("status").cloned(),
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| w.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        audit_annotations: response
            .get("auditAnnotations")
            .and_then(Value::as_object)
            .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default(),
    })
}

fn reason_from(s: &str) -> Reason {
    [
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::Gone,
        Reason::Invalid,
        Reason::ServerTimeout,
        Reason::Timeout,
        Reason::TooManyRequests,
        Reason::BadRequest,
        Reason::MethodNotAllowed,
        Reason::NotAcceptable,
        Reason::RequestEntityTooLarge,
        Reason::UnsupportedMediaType,
        Reason::InternalError,
        Reason::Expired,
        Reason::ServiceUnavailable,
    ]
    .into_iter()
    .find(|r| r.as_str() == s)
    .unwrap_or(Reason::Unknown)
}

fn details(v: &Value) -> Option<StatusDetails> {
    let v = v.as_object()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Some(StatusDetails {
        name: s("name"),
        group: s("group"),
        kind: s("kind"),
        uid: s("uid"),
        causes: v
            .get("causes")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                        StatusCause { reason: f("reason"), message: f("message"), field: f("field") }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        retry_after_seconds: v.get("retryAfterSeconds").and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()),
    })
}

/// The error a denial by webhook `name` answers: the webhook's Status with a code of at least
/// 400 and the message prefixed as upstream's `ToStatusErr`.
pub fn denial(name: &str, result: Option<&Value>) -> StatusError {
    let empty = Value::Null;
    let r = result.unwrap_or(&empty);
    let code = r.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
    let code = if code < 400 { 400 } else { code };
    let message = r.get("message").and_then(Value::as_str).unwrap_or_default();
    let reason = r.get("reason").and_then(Value::as_str).unwrap_or_default();
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    StatusError { code, reason: reason_from(reason), message, details: r.get("details").and_then(details) }
}

/// Applies a JSONPatch document to `obj`.
pub fn apply_patch(obj: &Value, patch: &[u8]) -> Result<Value, String> {
    let patch: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| e.to_string())?;
    let mut out = obj.clone();
    json_patch::patch(&mut out, &patch).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Whether a decoded patch has no operations.
pub fn patch_is_empty(patch: &[u8]) -> bool {
    patch.is_empty() || serde_json::from_slice::<Vec<Value>>(patch).is_ok_and(|ops| ops.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: Default::default(),
        }
    }

    #[test]
    fn requests_carry_the_attributes() {
        let u = user();
        let obj = json!({"metadata": {"name": "p"}});
        let a = Attributes {
            operation: "CREATE",
            kind: ("", "v1", "Pod"),
            resource: ("", "v1", "pods"),
            request_kind: ("", "v1", "Pod"),
            request_resource: ("", "v1", "pods"),
            subresource: "",
            name: "p",
            namespace: "default",
            user: &u,
            object: Some(&obj),
            old_object: None,
            dry_run: true,
            options: Some(json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})),
        };
        let r = request("v1", "u-1", &a);
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(r["request"]["uid"], "u-1");
        assert_eq!(r["request"]["kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert_eq!(r["request"]["resource"]["resource"], "pods");
        assert_eq!(r["request"]["operation"], "CREATE");
        assert_eq!(r["request"]["userInfo"]["username"], "alice");
        assert_eq!(r["request"]["object"], obj);
        assert_eq!(r["request"]["oldObject"], Value::Null);
        assert_eq!(r["request"]["dryRun"], true);
        assert_eq!(r["request"]["namespace"], "default");
        assert!(r["request"].get("subResource").is_none());
        assert_eq!(request("v1beta1", "u", &a)["apiVersion"], "admission.k8s.io/v1beta1");
    }

    #[test]
    fn responses_are_verified_as_upstream() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u", "allowed": true, "warnings": ["careful"]}});
        let v = verify("v1", "u", false, &ok).expect("valid");
        assert!(v.allowed);
        assert_eq!(v.warnings, vec!["careful".to_string()]);
        assert_eq!(
            verify("v1", "other", false, &ok).expect_err("rejected"),
            "expected response.uid=\"other\", got \"u\""
        );
        assert_eq!(verify("v1", "u", false, &json!({})).expect_err("rejected"), "webhook response was absent");
        let patched = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u", "allowed": true, "patch": "W10=", "patchType": "JSONPatch"}});
        assert_eq!(
            verify("v1", "u", false, &patched).expect_err("rejected"),
            "validating webhook may not return response.patch"
        );
        assert_eq!(verify("v1", "u", true, &patched).expect("mutating").patch, b"[]".to_vec());
        let no_type = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u", "allowed": true, "patch": "W10="}});
        assert_eq!(
            verify("v1", "u", true, &no_type).expect_err("rejected"),
            "webhook returned response.patch but not response.patchType"
        );
        let beta = json!({"response": {"allowed": true, "patch": "W10="}});
        assert_eq!(verify("v1beta1", "u", true, &beta).expect("v1beta1").patch, b"[]".to_vec());
    }

    #[test]
    fn denials_keep_the_webhook_status() {
        let e = denial("deny.example.com", Some(&json!({"code": 403, "message": "no pods named bad"})));
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "admission webhook \"deny.example.com\" denied the request: no pods named bad");
        let e = denial("d.e.f", Some(&json!({"reason": "Forbidden"})));
        assert_eq!((e.code, e.reason), (400, Reason::Forbidden));
        assert_eq!(e.message, "admission webhook \"d.e.f\" denied the request: Forbidden");
        assert_eq!(denial("d.e.f", None).message, "admission webhook \"d.e.f\" denied the request without explanation");
    }

    #[test]
    fn json_patches_apply() {
        let obj = json!({"metadata": {"name": "p"}});
        let patch = br#"[{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]"#;
        let out = apply_patch(&obj, patch).expect("patch");
        assert_eq!(out["metadata"]["labels"]["mutated"], "yes");
        assert!(apply_patch(&obj, br#"[{"op": "remove", "path": "/spec"}]"#).is_err());
        assert!(patch_is_empty(b"[]"));
        assert!(!patch_is_empty(patch));
    }
}
