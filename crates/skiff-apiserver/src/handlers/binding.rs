//! Pod binding: `POST .../pods/{name}/binding` and the legacy `POST .../bindings`, as upstream's
//! `BindingREST`: the Binding is checked against the URL and validated, then the pod's
//! `spec.nodeName` is set by one compare-and-swap on the stored pod (no strategy, no validation,
//! no `managedFields`, exactly like upstream's storage-level update), its annotations get the
//! Binding's, and the `PodScheduled` condition becomes `True`. A pod that is bound already,
//! being deleted or still gated is a 409 worded as upstream; success is a `Status` with code 201.
//!
//! Choosing the node is the scheduler's business (`skiff-scheduler`), not this module's.

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::status::{GroupResource, Reason};
use skiff_store::{StoreError, StoreExt};

use super::Ctx;
use super::meta::{decode_request, now_rfc3339};
use super::read::store_err;
use crate::objects::meta_str;
use crate::state::ApiState;

/// Whether `info` is the legacy `bindings` collection of the core group.
pub fn is_legacy_collection(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "bindings"
}

/// `POST /api/v1/namespaces/{ns}/bindings`: binds the pod the Binding names.
pub async fn create_legacy(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let binding = decode_binding(ctx, &body)?;
    let name = meta_str(&binding, "name").unwrap_or("").to_string();
    bind(state, ctx, &name, &binding).await
}

/// `POST /api/v1/namespaces/{ns}/pods/{name}/binding`.
pub async fn create_subresource(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let bindings = catalogue::find("", "v1", "bindings")
        .ok_or_else(|| StatusError::internal("the bindings resource is not in the catalogue"))?;
    let mut bctx = Ctx::internal(bindings, ctx.namespace.as_deref(), ctx.verb);
    bctx.content_type = ctx.content_type.clone();
    bctx.query = ctx.query.clone();
    let binding = decode_binding(&bctx, &body)?;
    bind(state, &bctx, &name, &binding).await
}

/// Decodes a Binding body (format, apiVersion/kind, namespace, field types).
fn decode_binding(ctx: &Ctx, body: &[u8]) -> Result<Value, StatusError> {
    let obj = decode_request(ctx, body)?;
    let ops = crate::typed::ops_for_resource(ctx.info, ctx.storage)
        .ok_or_else(|| StatusError::internal("no typed pipeline for Binding"))?;
    ops.canonical(obj)
}

/// Upstream `ValidatePodBinding`; its errors reach the client as an aggregate, which the
/// apiserver answers as a 500 without a reason (it is not an API status).
fn validate(binding: &Value) -> Result<(), StatusError> {
    let target = binding.get("target");
    let field = |f: &str| target.and_then(|t| t.get(f)).and_then(Value::as_str).unwrap_or("");
    let mut errors = Vec::new();
    let kind = field("kind");
    if !kind.is_empty() && kind != "Node" {
        errors.push(format!("target.kind: Unsupported value: \"{kind}\": supported values: \"Node\", \"<empty>\""));
    }
    if field("name").is_empty() {
        errors.push("target.name: Required value".to_string());
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(unknown_error(errors.remove(0))),
        _ => Err(unknown_error(format!("[{}]", errors.join(", ")))),
    }
}

fn unknown_error(message: String) -> StatusError {
    StatusError { code: 500, reason: Reason::Unknown, message, details: None }
}

/// The 409 upstream's binding answers when the pod cannot take the node.
fn binding_conflict(name: &str, why: &str) -> StatusError {
    StatusError::conflict(&GroupResource::new("", "pods/binding"), name, why)
}

/// A failed storage precondition, worded as upstream's storage error inside a pods conflict.
fn precondition_failed(ctx: &Ctx, name: &str, what: &str, wanted: &str, actual: &str) -> StatusError {
    let ns = ctx.namespace.as_deref().unwrap_or("");
    StatusError::conflict(
        &GroupResource::new("", "pods"),
        name,
        &format!(
            "StorageError: invalid object, Code: 4, Key: /registry/pods/{ns}/{name}, ResourceVersion: 0, \
             AdditionalErrorMsg: Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
        ),
    )
}

async fn bind(state: &ApiState, ctx: &Ctx, url_name: &str, binding: &Value) -> Result<Response<Body>, StatusError> {
    let name = meta_str(binding, "name").unwrap_or("");
    if name != url_name {
        return Err(StatusError::bad_request("name in URL does not match name in Binding object"));
    }
    validate(binding)?;
    let dry_run = ctx.query.dry_run()?;
    let node = binding.get("target").and_then(|t| t.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let annotations = binding.get("metadata").and_then(|m| m.get("annotations")).and_then(Value::as_object).cloned();
    let uid = meta_str(binding, "uid").filter(|u| !u.is_empty()).map(str::to_string);
    let rv = meta_str(binding, "resourceVersion").filter(|r| !r.is_empty()).map(str::to_string);
    let pods = catalogue::find("", "v1", "pods").ok_or_else(|| StatusError::internal("pods are not served"))?;
    let key = pods.key(ctx.namespace.as_deref(), name);
    let gr = GroupResource::new("", "pods");
    loop {
        let kv = state.store.get(&key).await.map_err(store_err)?;
        let kv = kv.ok_or_else(|| StatusError::not_found(&gr, name))?;
        let pod = RawPod::parse(&kv.value)?;
        if let Some(want) = &uid {
            let have = pod.uid();
            if *want != have {
                return Err(precondition_failed(ctx, name, "UID", want, &have));
            }
        }
        if let Some(want) = &rv {
            let have = kv.mod_revision.to_string();
            if *want != have {
                return Err(precondition_failed(ctx, name, "ResourceVersion", want, &have));
            }
        }
        let bytes = pod.assign(name, &node, annotations.as_ref(), &now_rfc3339())?;
        if dry_run {
            break;
        }
        match state.store.update(&key, Bytes::from(bytes), Some(kv.mod_revision)).await {
            Ok(_) => break,
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(StatusError::not_found(&gr, name)),
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(crate::response::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// A JSON object whose members stay unparsed until one is needed.
type RawObject = BTreeMap<String, Box<RawValue>>;

/// A stored pod parsed one level deep: binding reads and rewrites `metadata`, `spec` and
/// `status` only at the members it touches, and copies everything else (containers, volumes,
/// managedFields) as the stored bytes, so a bind costs a scan of the pod rather than building
/// and dropping its whole document. Members come out in key order, as a [`Value`] writes them.
struct RawPod {
    top: RawObject,
    metadata: RawObject,
    spec: RawObject,
}

impl RawPod {
    fn parse(stored: &[u8]) -> Result<Self, StatusError> {
        let mut top: RawObject = serde_json::from_slice(stored).map_err(StatusError::internal)?;
        let metadata = top.remove("metadata").ok_or_else(|| StatusError::internal("stored pod without metadata"))?;
        let metadata = serde_json::from_str(metadata.get()).map_err(StatusError::internal)?;
        let spec = match top.remove("spec") {
            Some(spec) => serde_json::from_str(spec.get()).map_err(StatusError::internal)?,
            None => RawObject::new(),
        };
        Ok(Self { top, metadata, spec })
    }

    /// A member of `object` parsed as `T`; `None` when absent or not a `T`.
    fn member<T: serde::de::DeserializeOwned>(object: &RawObject, key: &str) -> Option<T> {
        object.get(key).and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    fn uid(&self) -> String {
        Self::member::<String>(&self.metadata, "uid").unwrap_or_default()
    }

    /// Sets the node, merges the Binding's annotations and marks the pod scheduled, returning the
    /// pod to store; or says (as upstream) why the pod cannot be bound.
    fn assign(
        mut self,
        name: &str,
        node: &str,
        annotations: Option<&Map<String, Value>>,
        now: &str,
    ) -> Result<Vec<u8>, StatusError> {
        if self.metadata.contains_key("deletionTimestamp") {
            return Err(binding_conflict(name, &format!("pod {name} is being deleted, cannot be assigned to a host")));
        }
        let current = Self::member::<String>(&self.spec, "nodeName").unwrap_or_default();
        if !current.is_empty() {
            return Err(binding_conflict(name, &format!("pod {name} is already assigned to node \"{current}\"")));
        }
        let gates = Self::member::<Vec<Value>>(&self.spec, "schedulingGates").unwrap_or_default();
        if !gates.is_empty() {
            return Err(binding_conflict(name, &format!("pod {name} has non-empty .spec.schedulingGates")));
        }
        if let Some(extra) = annotations.filter(|a| !a.is_empty()) {
            let mut merged = Self::member::<Map<String, Value>>(&self.metadata, "annotations").unwrap_or_default();
            merged.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.metadata.insert("annotations".into(), raw(&merged)?);
        }
        self.spec.insert("nodeName".into(), raw(node)?);
        let mut status =
            Self::member::<Value>(&self.top, "status").filter(Value::is_object).unwrap_or_else(|| json!({}));
        set_scheduled(&mut status, now);
        self.top.insert("status".into(), raw(&status)?);
        self.top.insert("metadata".into(), raw(&self.metadata)?);
        self.top.insert("spec".into(), raw(&self.spec)?);
        serde_json::to_vec(&self.top).map_err(StatusError::internal)
    }
}

fn raw<T: serde::Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, StatusError> {
    serde_json::value::to_raw_value(value).map_err(StatusError::internal)
}

/// Upstream `UpdatePodCondition` with `PodScheduled=True`: the condition is replaced (reason and
/// message cleared), keeping its transition time when the status does not change.
fn set_scheduled(status: &mut Value, now: &str) {
    let Some(status) = status.as_object_mut() else { return };
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    let Some(list) = conditions.as_array_mut() else { return };
    let existing = list.iter().position(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"));
    let mut cond = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now});
    match existing {
        Some(i) => {
            if list[i].get("status").and_then(Value::as_str) == Some("True")
                && let Some(t) = list[i].get("lastTransitionTime")
            {
                cond["lastTransitionTime"] = t.clone();
            }
            list[i] = cond;
        }
        None => list.push(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binds `pod` as the handler would, through its stored bytes.
    fn assign(
        pod: &mut Value,
        name: &str,
        node: &str,
        annotations: Option<&Map<String, Value>>,
        now: &str,
    ) -> Result<(), StatusError> {
        let stored = serde_json::to_vec(pod).expect("encodes");
        let bound = RawPod::parse(&stored)?.assign(name, node, annotations, now)?;
        *pod = serde_json::from_slice(&bound).expect("bound pod is JSON");
        Ok(())
    }

    #[test]
    fn bound_pod_keeps_every_other_member_byte_for_byte() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "uid": "u1", "labels": {"app": "x"}, "managedFields": [{"manager": "m"}]},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "\u{e9}\\ \"q\""}]}]},
            "status": {"phase": "Pending"}});
        let stored = serde_json::to_vec(&pod).expect("encodes");
        let raw = RawPod::parse(&stored).expect("parses");
        assert_eq!(raw.uid(), "u1");
        let bound = raw.assign("p", "n1", None, "t1").expect("binds");
        let mut want = pod.clone();
        want["spec"]["nodeName"] = json!("n1");
        want["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t1"}]);
        assert_eq!(bound, serde_json::to_vec(&want).expect("encodes"), "same bytes as a whole-document rewrite");
    }

    #[test]
    fn assign_sets_node_condition_and_annotations() {
        let mut pod = json!({"metadata": {"name": "p", "annotations": {"a": "1"}}, "spec": {"containers": []},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m", "lastTransitionTime": "t0"}]}});
        let extra = json!({"b": "2"});
        assign(&mut pod, "p", "n1", extra.as_object(), "t1").expect("binds");
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "1", "b": "2"}));
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t1"}])
        );
    }

    #[test]
    fn assign_refuses_bound_deleting_and_gated_pods() {
        let mut bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n0"}});
        let e = assign(&mut bound, "p", "n1", None, "t").expect_err("bound");
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n0\""
        );
        let mut deleting = json!({"metadata": {"name": "p", "deletionTimestamp": "x"}, "spec": {}});
        let e = assign(&mut deleting, "p", "n1", None, "t").expect_err("deleting");
        assert!(e.message.ends_with("pod p is being deleted, cannot be assigned to a host"), "{}", e.message);
        let mut gated = json!({"metadata": {"name": "p"}, "spec": {"schedulingGates": [{"name": "g"}]}});
        let e = assign(&mut gated, "p", "n1", None, "t").expect_err("gated");
        assert!(e.message.ends_with("pod p has non-empty .spec.schedulingGates"), "{}", e.message);
    }

    #[test]
    fn scheduled_condition_keeps_transition_time_when_already_true() {
        let mut status =
            json!({"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}]});
        set_scheduled(&mut status, "t1");
        assert_eq!(status["conditions"][0]["lastTransitionTime"], "t0");
    }

    #[test]
    fn binding_validation_matches_upstream() {
        assert!(validate(&json!({"target": {"name": "n"}})).is_ok());
        let e = validate(&json!({"target": {"kind": "Pod"}})).expect_err("invalid");
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "[target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\", target.name: Required value]"
        );
    }
}
