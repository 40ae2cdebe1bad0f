//! `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (upstream TokenRequest REST in
//! `pkg/registry/core/serviceaccount/storage/token.go`): defaulting and validation of the
//! `TokenRequest`, binding to a Pod, Secret or Node (uid checked), the expiration extension of
//! kubelet's 3607-second requests, and the signed token in `status`. Signing and the claims are in
//! [`crate::authn::serviceaccount`].

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::{GroupKind, GroupResource};
use skiff_api::validation::FieldError;

use super::Ctx;
use super::read::store_err;
use crate::authn::serviceaccount::{
    EXTENDED_EXPIRATION_SECONDS, ObjectRef, ServiceAccountTokens, TokenSpec, WARN_ONLY_EXPIRATION_SECONDS,
};
use crate::state::ApiState;

/// Default `spec.expirationSeconds`.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest lifetime a TokenRequest may ask for (2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

async fn get_core(state: &ApiState, resource: &str, ns: Option<&str>, name: &str) -> Result<Value, StatusError> {
    let key = match ns {
        Some(ns) => format!("/registry/core/{resource}/{ns}/{name}"),
        None => format!("/registry/core/{resource}/{name}"),
    };
    let kv = state.store.get(&key).await.map_err(store_err)?;
    let kv = kv.ok_or_else(|| StatusError::not_found(&GroupResource::new("", resource), name))?;
    serde_json::from_slice(&kv.value).map_err(StatusError::internal)
}

fn meta<'a>(obj: &'a Value, k: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("")
}

/// Validates `spec.expirationSeconds` (after defaulting) as upstream's `ValidateTokenRequest`.
pub fn validate_expiration(seconds: i64) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if seconds < MIN_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    errs
}

/// Serves the `token` subresource.
pub async fn create(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let namespace = ctx.namespace.clone().unwrap_or_default();
    let tokens = state
        .service_accounts
        .get()
        .ok_or_else(|| StatusError::service_unavailable("the token issuer is not configured"))?;
    let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
    let mut req = crate::negotiate::decode_body(&body, format)?;
    match req.get("kind").and_then(Value::as_str) {
        None | Some("TokenRequest") => {}
        Some(other) => return Err(StatusError::bad_request(format!("the body must be a TokenRequest, not {other}"))),
    }
    crate::admission::noderestriction::admit_token_request(state, ctx, &name, &req).await?;
    let sa = get_core(state, "serviceaccounts", Some(&namespace), &name).await?;
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut expiration = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(0);
    if expiration == 0 {
        expiration = DEFAULT_EXPIRATION_SECONDS;
    }
    let errs = validate_expiration(expiration);
    if !errs.is_empty() {
        return Err(StatusError::invalid(&GroupKind::new("authentication.k8s.io", "TokenRequest"), &name, &errs));
    }
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = tokens.api_audiences().to_vec();
    }
    let mut token_spec = TokenSpec {
        namespace: namespace.clone(),
        service_account: ObjectRef { name: name.clone(), uid: meta(&sa, "uid").to_string() },
        audiences: audiences.clone(),
        expiration_seconds: expiration,
        ..Default::default()
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        bind(state, &namespace, &name, bound, &mut token_spec).await?;
    }
    let now = jiff::Timestamp::now().as_second();
    if token_spec.pod.is_some() && expiration == WARN_ONLY_EXPIRATION_SECONDS && is_api_audiences(tokens, &audiences) {
        token_spec.warn_after = Some(now + expiration);
        token_spec.expiration_seconds = EXTENDED_EXPIRATION_SECONDS;
    }
    let (token, _) = tokens.issue(&token_spec, now).map_err(StatusError::internal)?;
    let expires = jiff::Timestamp::from_second(now + expiration).map_err(StatusError::internal)?;
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    if !req.get("metadata").is_some_and(Value::is_object) {
        req["metadata"] = json!({});
    }
    req["metadata"]["name"] = json!(name);
    req["metadata"]["namespace"] = json!(namespace);
    req["metadata"]["creationTimestamp"] = Value::Null;
    req["spec"] = spec;
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(expiration);
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(crate::response::json(201, &req))
}

fn is_api_audiences(tokens: &ServiceAccountTokens, audiences: &[String]) -> bool {
    let api = tokens.api_audiences();
    audiences.len() == api.len() && audiences.iter().all(|a| api.contains(a))
}

/// Fills the bound object (and a pod's node) into `spec` after checking it exists with the
/// referenced uid.
async fn bind(
    state: &ApiState,
    namespace: &str,
    sa: &str,
    bound: &Value,
    spec: &mut TokenSpec,
) -> Result<(), StatusError> {
    let s = |k: &str| bound.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind, name, want_uid) = (s("apiVersion"), s("kind"), s("name"), s("uid"));
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let uid = match (group, kind.as_str()) {
        ("", "Pod") => {
            let pod = get_core(state, "pods", Some(namespace), &name).await?;
            let pod_sa =
                pod.get("spec").and_then(|s| s.get("serviceAccountName")).and_then(Value::as_str).unwrap_or("");
            if pod_sa != sa {
                return Err(StatusError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa:?} to pod running with different serviceaccount name."
                )));
            }
            let uid = meta(&pod, "uid").to_string();
            let node = pod.get("spec").and_then(|s| s.get("nodeName")).and_then(Value::as_str).unwrap_or("");
            if !node.is_empty() {
                let node_uid = match get_core(state, "nodes", None, node).await {
                    Ok(n) => meta(&n, "uid").to_string(),
                    Err(_) => String::new(),
                };
                spec.node = Some(ObjectRef { name: node.to_string(), uid: node_uid });
            }
            spec.pod = Some(ObjectRef { name: name.clone(), uid: uid.clone() });
            uid
        }
        ("", "Secret") => {
            let secret = get_core(state, "secrets", Some(namespace), &name).await?;
            let uid = meta(&secret, "uid").to_string();
            spec.secret = Some(ObjectRef { name: name.clone(), uid: uid.clone() });
            uid
        }
        ("", "Node") => {
            let node = get_core(state, "nodes", None, &name).await?;
            let uid = meta(&node, "uid").to_string();
            spec.node = Some(ObjectRef { name: name.clone(), uid: uid.clone() });
            uid
        }
        _ => {
            let version = api_version.rsplit('/').next().unwrap_or("");
            let gvk = if group.is_empty() {
                format!("/{version}, Kind={kind}")
            } else {
                format!("{group}/{version}, Kind={kind}")
            };
            return Err(StatusError::bad_request(format!("cannot bind token to object of type {gvk}")));
        }
    };
    if !want_uid.is_empty() && want_uid != uid {
        return Err(StatusError::conflict(
            &GroupResource::new(group, kind.as_str()),
            &name,
            &format!(
                "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_bounds() {
        assert!(validate_expiration(600).is_empty());
        assert!(validate_expiration(MAX_EXPIRATION_SECONDS).is_empty());
        let e = validate_expiration(599);
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().contains("may not specify a duration less than 10 minutes"), "{}", e[0]);
        assert!(validate_expiration(MAX_EXPIRATION_SECONDS + 1)[0].to_string().contains("2^32"));
    }
}
