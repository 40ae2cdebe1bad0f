//! The legacy ServiceAccount token controller (upstream's `serviceaccount-token` controller in
//! kube-controller-manager), run inside the API server because the signing key stays there: a
//! Secret of type `kubernetes.io/service-account-token` annotated with
//! `kubernetes.io/service-account.name` gets `data.token` (a non-expiring legacy JWT),
//! `data["ca.crt"]`, `data.namespace` and the `kubernetes.io/service-account.uid` annotation once
//! its ServiceAccount exists. Such tokens authenticate while the Secret (with that token) and the
//! ServiceAccount exist ([`crate::authn::serviceaccount`]). When the ServiceAccount goes away,
//! the Secrets filled for it (same uid) are deleted, as upstream's controller does.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_store::EventKind;
use tokio::sync::broadcast;

use crate::authn::serviceaccount::{ObjectRef, ObjectSource};
use crate::cache::Message;
use crate::handlers::{self, Admission, Ctx, Part};
use crate::reqinfo::Verb;
use crate::state::ApiState;

/// The Secret type this controller fills.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation naming the ServiceAccount.
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// Annotation with the ServiceAccount's uid.
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
const SECRETS_PREFIX: &str = "/registry/core/secrets/";
const SA_PREFIX: &str = "/registry/core/serviceaccounts/";

/// Starts the controller; `ca_pem` is the bundle written to `ca.crt`. Ends with the server.
pub fn spawn(state: Arc<ApiState>, ca_pem: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = state.shutdown_signal();
        tokio::select! {
            _ = shutdown => {}
            _ = run(state.clone(), ca_pem) => {}
        }
    })
}

async fn run(state: Arc<ApiState>, ca_pem: String) {
    loop {
        let (Some(secrets), Some(sas)) = (state.caches.cache(SECRETS_PREFIX), state.caches.cache(SA_PREFIX)) else {
            return;
        };
        let (snapshot, mut rx) = secrets.snapshot_and_subscribe();
        let mut sa_rx = sas.snapshot_and_subscribe().1;
        for entry in snapshot.objects.values() {
            let secret = entry.value();
            if orphaned(&state, &secret) {
                delete_logged(&state, &secret).await;
            } else {
                sync_logged(&state, &ca_pem, secret).await;
            }
        }
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(Message::Event(ev)) if ev.kind != EventKind::Delete => {
                        sync_logged(&state, &ca_pem, ev.object.value()).await;
                    }
                    Ok(Message::Event(_)) => {}
                    Ok(Message::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                msg = sa_rx.recv() => match msg {
                    // A new ServiceAccount may complete Secrets created before it.
                    Ok(Message::Event(ev)) if ev.kind != EventKind::Delete => {
                        let ns = ev.object.namespace.clone();
                        let pending: Vec<Value> = secrets
                            .snapshot()
                            .objects
                            .values()
                            .filter(|e| e.namespace == ns)
                            .map(|e| e.value())
                            .collect();
                        for secret in pending {
                            sync_logged(&state, &ca_pem, secret).await;
                        }
                    }
                    Ok(Message::Event(ev)) => {
                        let sa = ev.object.value();
                        let ns = ev.object.namespace.clone();
                        let filled_for_it: Vec<Value> = secrets
                            .snapshot()
                            .objects
                            .values()
                            .filter(|e| e.namespace == ns)
                            .map(|e| e.value())
                            .filter(|secret| filled_for(secret, &sa))
                            .collect();
                        for secret in filled_for_it {
                            delete_logged(&state, &secret).await;
                        }
                    }
                    Ok(Message::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn sync_logged(state: &ApiState, ca_pem: &str, secret: Value) {
    if let Err(e) = sync(state, ca_pem, &secret).await {
        let name = crate::objects::meta_str(&secret, "name").unwrap_or("");
        tracing::warn!(secret = %name, error = %e.message, "filling a service account token secret failed");
    }
}

/// The ServiceAccount name and uid a token Secret was filled for (`None` for other Secrets and
/// for token Secrets not filled yet).
fn filled_ref(secret: &Value) -> Option<(&str, &str)> {
    if secret.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE) {
        return None;
    }
    let annotations = secret.get("metadata")?.get("annotations")?;
    let name = annotations.get(SA_NAME_ANNOTATION)?.as_str()?;
    let uid = annotations.get(SA_UID_ANNOTATION)?.as_str().filter(|u| !u.is_empty())?;
    Some((name, uid))
}

/// Whether `secret` was filled for the ServiceAccount `sa`.
fn filled_for(secret: &Value, sa: &Value) -> bool {
    let meta = |k: &str| sa.get("metadata").and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("");
    filled_ref(secret).is_some_and(|(name, uid)| name == meta("name") && uid == meta("uid"))
}

/// Whether `secret` was filled for a ServiceAccount that no longer exists (deleted, or
/// re-created with another uid, while the API server was down).
fn orphaned(state: &ApiState, secret: &Value) -> bool {
    let Some((name, uid)) = filled_ref(secret) else { return false };
    let ns = crate::objects::meta_str(secret, "namespace").unwrap_or("");
    match state.caches.core_object("serviceaccounts", Some(ns), name) {
        Some(sa) => sa.get("metadata").and_then(|m| m.get("uid")).and_then(Value::as_str) != Some(uid),
        None => true,
    }
}

/// Deletes a token Secret whose ServiceAccount is gone (uid precondition: only that Secret).
async fn delete_logged(state: &ApiState, secret: &Value) {
    let ns = crate::objects::meta_str(secret, "namespace").unwrap_or("").to_string();
    let name = crate::objects::meta_str(secret, "name").unwrap_or("").to_string();
    let Some(info) = catalogue::find("", "v1", "secrets") else { return };
    let ctx = Ctx::internal(info, Some(&ns), Verb::Delete);
    let opts = handlers::DeleteOptions::with_uid(crate::objects::meta_str(secret, "uid").unwrap_or(""));
    match handlers::delete_object(state, &ctx, &name, &opts).await {
        Ok(_) => {
            tracing::info!(namespace = %ns, secret = %name, "deleted the token secret of a deleted service account")
        }
        Err(e) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(namespace = %ns, secret = %name, error = %e.message, "deleting a token secret failed"),
    }
}

/// What a token Secret lacks, given its ServiceAccount: `None` when complete or not ours.
pub fn missing(secret: &Value) -> Option<(String, String)> {
    if secret.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE) {
        return None;
    }
    let meta = secret.get("metadata")?;
    if meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return None;
    }
    let sa = meta.get("annotations")?.get(SA_NAME_ANNOTATION)?.as_str()?.to_string();
    let data = secret.get("data");
    let has = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    if has("token") && has("ca.crt") && has("namespace") {
        return None;
    }
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("").to_string();
    Some((ns, sa))
}

async fn sync(state: &ApiState, ca_pem: &str, secret: &Value) -> Result<(), StatusError> {
    let Some((ns, sa_name)) = missing(secret) else { return Ok(()) };
    let Some(tokens) = state.service_accounts.get() else { return Ok(()) };
    let Some(sa) = state.caches.core_object("serviceaccounts", Some(&ns), &sa_name) else {
        return Ok(()); // filled once the ServiceAccount appears
    };
    let sa_uid = sa.get("metadata").and_then(|m| m.get("uid")).and_then(Value::as_str).unwrap_or("").to_string();
    let wanted_uid = secret
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(SA_UID_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !wanted_uid.is_empty() && wanted_uid != sa_uid {
        return Ok(()); // meant for an earlier ServiceAccount of that name
    }
    let name = crate::objects::meta_str(secret, "name").unwrap_or("").to_string();
    let token = tokens
        .issue_legacy(&ns, &ObjectRef { name: sa_name.clone(), uid: sa_uid.clone() }, &name)
        .map_err(StatusError::internal)?;
    let info = catalogue::find("", "v1", "secrets").ok_or_else(|| StatusError::internal("no secrets resource"))?;
    let ctx = Ctx::internal(info, Some(&ns), Verb::Update);
    let mut adm = Admission::internal();
    let (ca, ns_b64, token_b64) = (STANDARD.encode(ca_pem), STANDARD.encode(&ns), STANDARD.encode(&token));
    let f = move |current: &Value| -> Result<Value, StatusError> {
        let mut obj = current.clone();
        if missing(&obj).is_none() {
            return Ok(obj);
        }
        obj["metadata"]["annotations"][SA_UID_ANNOTATION] = json!(sa_uid);
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        let data = &mut obj["data"];
        let empty = |d: &Value, k: &str| d.get(k).and_then(Value::as_str).is_none_or(str::is_empty);
        if empty(data, "token") {
            data["token"] = json!(token_b64);
        }
        if empty(data, "ca.crt") {
            data["ca.crt"] = json!(ca);
        }
        if empty(data, "namespace") {
            data["namespace"] = json!(ns_b64);
        }
        Ok(obj)
    };
    match handlers::update_object(state, &ctx, &name, Part::Main, &mut adm, &f).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_secret_belongs_to_the_service_account_with_its_uid() {
        let secret = json!({"type": TOKEN_SECRET_TYPE, "metadata": {"name": "t", "annotations": {
            SA_NAME_ANNOTATION: "builder", SA_UID_ANNOTATION: "u1"}}});
        let sa = |name: &str, uid: &str| json!({"metadata": {"name": name, "uid": uid}});
        assert!(filled_for(&secret, &sa("builder", "u1")));
        assert!(!filled_for(&secret, &sa("builder", "u2")), "a re-created account is another account");
        assert!(!filled_for(&secret, &sa("other", "u1")));
        let unfilled = json!({"type": TOKEN_SECRET_TYPE, "metadata": {"name": "t", "annotations": {
            SA_NAME_ANNOTATION: "builder"}}});
        assert!(!filled_for(&unfilled, &sa("builder", "u1")), "not filled yet: waits for its account");
        let opaque = json!({"type": "Opaque", "metadata": {"name": "t", "annotations": {
            SA_NAME_ANNOTATION: "builder", SA_UID_ANNOTATION: "u1"}}});
        assert!(!filled_for(&opaque, &sa("builder", "u1")));
    }

    #[test]
    fn only_incomplete_annotated_token_secrets_are_filled() {
        let s = |ty: &str, ann: Value, data: Value| json!({"type": ty, "metadata": {"name": "s", "namespace": "ns", "annotations": ann}, "data": data});
        let ann = json!({SA_NAME_ANNOTATION: "robot"});
        assert_eq!(missing(&s(TOKEN_SECRET_TYPE, ann.clone(), json!({}))), Some(("ns".into(), "robot".into())));
        assert_eq!(missing(&s("Opaque", ann.clone(), json!({}))), None);
        assert_eq!(missing(&s(TOKEN_SECRET_TYPE, json!({}), json!({}))), None);
        let full = json!({"token": "dA==", "ca.crt": "Yw==", "namespace": "bg=="});
        assert_eq!(missing(&s(TOKEN_SECRET_TYPE, ann.clone(), full)), None);
        let partial = json!({"token": "dA==", "ca.crt": "", "namespace": "bg=="});
        assert!(missing(&s(TOKEN_SECRET_TYPE, ann, partial)).is_some());
    }
}
