//! NodeRestriction (upstream `plugin/pkg/admission/noderestriction`): what a node agent
//! (`system:node:<name>` in `system:nodes`) may write, beyond what the Node authorizer let
//! through. A node may create only mirror pods bound to itself (owned by its Node, referencing
//! no ServiceAccount, Secret, ConfigMap, claim or ClusterTrustBundle), delete only pods bound to
//! itself, update the status of those only, evict only those, modify only its own Node (not its
//! taints after registration, nor `node-restriction.kubernetes.io/` or unknown `kubernetes.io`
//! labels), only its own Lease in `kube-node-lease` and its own CSINode, only the status
//! conditions, capacity and expansion state of claims, request only tokens bound to its own pods
//! and only kubelet certificates in its own name. Requests of other users pass.
//!
//! The checks are pure functions over the stored objects (`check_*`); the `admit_*` functions
//! look those objects up and turn a refusal into upstream's 403.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::status::GroupResource;

use crate::authn::UserInfo;
use crate::authz::node::{NODE_LEASE_NAMESPACE, NODE_USER_PREFIX, NODES_GROUP};
use crate::handlers::Ctx;
use crate::objects;
use crate::state::ApiState;

/// The annotation that marks a mirror pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The label domain reserved for labels only administrators set on nodes.
pub const NODE_RESTRICTION_LABEL_DOMAIN: &str = "node-restriction.kubernetes.io";

/// Labels in `kubernetes.io`/`k8s.io` domains a kubelet may set on its Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];
/// Label domains a kubelet may use freely.
const KUBELET_LABEL_DOMAINS: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403 with this reason.
    Forbidden(String),
    /// The object the check needs does not exist (404 of that kind and name).
    NotFound(GroupResource, String),
}

fn forbid<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Forbidden(why.into()))
}

/// The node a user acts for: `None` for users that are not nodes, `Some(Err)` for a node
/// credential that names no node.
pub fn acting_node(user: &UserInfo) -> Option<Result<&str, StatusError>> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    if name.is_empty() {
        return Some(Err(StatusError::forbidden_message(&format!(
            "could not determine node from user {:?}",
            user.name
        ))));
    }
    Some(Ok(name))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Whether a pod references a Secret anywhere (the kubelet would fetch it).
fn references_secrets(pod: &Value) -> bool {
    crate::authz::node::graph::pod_refs(&with_node(pod))
        .is_some_and(|r| r.refs.iter().any(|o| o.kind == crate::authz::node::graph::Kind::Secret))
}

fn references_configmaps(pod: &Value) -> bool {
    crate::authz::node::graph::pod_refs(&with_node(pod))
        .is_some_and(|r| r.refs.iter().any(|o| o.kind == crate::authz::node::graph::Kind::ConfigMap))
}

/// The pod with some node name, so the graph's reference walk applies to it.
fn with_node(pod: &Value) -> Value {
    let mut p = pod.clone();
    p["spec"]["nodeName"] = Value::from("-");
    p
}

/// Creating pod `pod` as node `node`, whose Node has UID `node_uid` (`None`: no such Node).
pub fn check_pod_create(node: &str, pod: &Value, node_uid: Option<&str>) -> Result<(), Refusal> {
    let has_mirror = pod["metadata"]["annotations"].get(MIRROR_ANNOTATION).is_some();
    if !has_mirror {
        return forbid(format!(
            "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if str_at(pod, &["spec", "nodeName"]) != node {
        return forbid(format!("node {node:?} can only create pods with spec.nodeName set to itself"));
    }
    let owners = array(&pod["metadata"]["ownerReferences"]);
    match owners {
        [] => return forbid(format!("node {node:?} can only create pods with an owner reference set to itself")),
        [owner] => {
            if str_at(owner, &["apiVersion"]) != "v1"
                || str_at(owner, &["kind"]) != "Node"
                || str_at(owner, &["name"]) != node
            {
                return forbid(format!("node {node:?} can only create pods with an owner reference set to itself"));
            }
            if owner["controller"].as_bool() != Some(true) {
                return forbid(format!(
                    "node {node:?} can only create pods with a controller owner reference set to itself"
                ));
            }
            if owner["blockOwnerDeletion"].as_bool() == Some(true) {
                return forbid(format!("node {node:?} must not set blockOwnerDeletion on an owner reference"));
            }
            let Some(uid) = node_uid else {
                return Err(Refusal::NotFound(GroupResource::new("", "node"), node.to_string()));
            };
            let got = str_at(owner, &["uid"]);
            if got != uid {
                return forbid(format!("node {node} UID mismatch: expected {uid} got {got}"));
            }
        }
        _ => {
            return forbid(format!("node {node:?} can only create pods with a single owner reference set to itself"));
        }
    }
    let spec = &pod["spec"];
    if !str_at(spec, &["serviceAccountName"]).is_empty() {
        return forbid(format!("node {node:?} can not create pods that reference a service account"));
    }
    if references_secrets(pod) {
        return forbid(format!("node {node:?} can not create pods that reference secrets"));
    }
    if references_configmaps(pod) {
        return forbid(format!("node {node:?} can not create pods that reference configmaps"));
    }
    let volumes = array(&spec["volumes"]);
    let trust_bundles =
        volumes.iter().flat_map(|v| array(&v["projected"]["sources"])).any(|s| s["clusterTrustBundle"].is_object());
    if trust_bundles {
        return forbid(format!("node {node:?} can not create pods that reference clustertrustbundles"));
    }
    // Upstream looks at `persistentVolumeClaim` volumes only; an ephemeral volume is a claim too.
    if volumes.iter().any(|v| v["persistentVolumeClaim"].is_object() || v["ephemeral"].is_object()) {
        return forbid(format!("node {node:?} can not create pods that reference persistentvolumeclaims"));
    }
    if !array(&spec["resourceClaims"]).is_empty() {
        return forbid(format!("node {node:?} can not create pods that reference resourceclaims"));
    }
    Ok(())
}

/// Deleting (or evicting) the stored pod `pod` as node `node`.
pub fn check_pod_bound(node: &str, pod: &Value, action: &str) -> Result<(), Refusal> {
    if str_at(pod, &["spec", "nodeName"]) != node {
        // Upstream quotes the node name for deletes, not for evictions.
        let who = if action == "evict" { node.to_string() } else { format!("{node:?}") };
        return forbid(format!("node {who} can only {action} pods with spec.nodeName set to itself"));
    }
    Ok(())
}

/// Updating the status of pod `old` to `new` as node `node`.
pub fn check_pod_status(node: &str, old: &Value, new: &Value) -> Result<(), Refusal> {
    if str_at(old, &["spec", "nodeName"]) != node {
        return forbid(format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"));
    }
    if objects::labels(old) != objects::labels(new) {
        return forbid(format!("node {node:?} cannot update labels through pod status"));
    }
    if old["status"]["resourceClaimStatuses"] != new["status"]["resourceClaimStatuses"] {
        return forbid(format!("node {node:?} cannot update resource claim statues"));
    }
    Ok(())
}

/// The labels that differ between `new` and `old` (added, removed or changed).
fn modified_labels(new: &BTreeMap<String, String>, old: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            keys.insert(k.clone());
        }
    }
    keys.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    keys
}

fn label_domain(label: &str) -> &str {
    label.split_once('/').map(|(d, _)| d).unwrap_or("")
}

fn in_domain(domain: &str, parent: &str) -> bool {
    domain == parent || domain.ends_with(&format!(".{parent}"))
}

/// The labels of `modified` a node may not set on itself.
fn forbidden_labels(modified: &BTreeSet<String>) -> Vec<String> {
    modified
        .iter()
        .filter(|label| {
            let domain = label_domain(label);
            let restricted = in_domain(domain, NODE_RESTRICTION_LABEL_DOMAIN);
            let kubernetes = in_domain(domain, "kubernetes.io") || in_domain(domain, "k8s.io");
            let kubelet =
                KUBELET_LABELS.contains(&label.as_str()) || KUBELET_LABEL_DOMAINS.iter().any(|d| in_domain(domain, d));
            restricted || (kubernetes && !kubelet)
        })
        .cloned()
        .collect()
}

/// Writing Node `name` as node `node`: `old` is the stored Node for updates, `None` on create.
pub fn check_node(node: &str, name: &str, old: Option<&Value>, new: Option<&Value>) -> Result<(), Refusal> {
    if name != node {
        return forbid(format!("node {node:?} is not allowed to modify node {name:?}"));
    }
    let Some(new) = new else { return Ok(()) };
    let config_source = &new["spec"]["configSource"];
    match old {
        None => {
            if !config_source.is_null() {
                return forbid(format!("node {node:?} is not allowed to create pods with a non-nil configSource"));
            }
            let labels = objects::labels(new);
            let bad = forbidden_labels(&modified_labels(&labels, &BTreeMap::new()));
            if !bad.is_empty() {
                return forbid(format!("node {node:?} is not allowed to set the following labels: {}", bad.join(", ")));
            }
        }
        Some(old) => {
            if !config_source.is_null() && *config_source != old["spec"]["configSource"] {
                return forbid(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                ));
            }
            let taints = |n: &Value| {
                let t = &n["spec"]["taints"];
                if t.as_array().is_some_and(Vec::is_empty) { Value::Null } else { t.clone() }
            };
            if taints(new) != taints(old) {
                return forbid(format!("node {node:?} is not allowed to modify taints"));
            }
            let bad = forbidden_labels(&modified_labels(&objects::labels(new), &objects::labels(old)));
            if !bad.is_empty() {
                return forbid(format!("is not allowed to modify labels: {}", bad.join(", ")));
            }
        }
    }
    Ok(())
}

/// Writing Lease `namespace/name` as node `node`.
pub fn check_lease(node: &str, namespace: &str, name: &str) -> Result<(), Refusal> {
    if namespace != NODE_LEASE_NAMESPACE {
        return forbid(format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"));
    }
    if name != node {
        return forbid("can only access node lease with the same name as the requesting node");
    }
    Ok(())
}

/// Writing CSINode `name` as node `node` (the name of the object on create, of the URL else).
pub fn check_csi_node(node: &str, name: &str) -> Result<(), Refusal> {
    if name != node {
        return forbid("can only access CSINode with the same name as the requesting node");
    }
    Ok(())
}

/// Updating claim `old` to `new` through `persistentvolumeclaims/status` as node `node`: only
/// `status.capacity` and `status.conditions` may change, and the `status.allocatedResources`
/// and `status.allocatedResourceStatuses` of a volume expansion (upstream's
/// `RecoverVolumeExpansionFailure`, on by default).
pub fn check_claim_status(node: &str, old: &Value, new: &Value) -> Result<(), Refusal> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        if let Some(s) = v["status"].as_object_mut() {
            for field in ["capacity", "conditions", "allocatedResources", "allocatedResourceStatuses"] {
                s.remove(field);
            }
        }
        v
    };
    if strip(old) != strip(new) {
        return forbid(format!(
            "node {node:?} is not allowed to update fields other than status.capacity and status.conditions"
        ));
    }
    Ok(())
}

/// A TokenRequest of node `node`, bound (per `request.spec.boundObjectRef`) to a pod; `pod` is
/// that pod as stored (`None`: it does not exist).
pub fn check_token_request(node: &str, request: &Value, pod: Option<&Value>) -> Result<(), Refusal> {
    let r = &request["spec"]["boundObjectRef"];
    let (api_version, kind, name, uid) =
        (str_at(r, &["apiVersion"]), str_at(r, &["kind"]), str_at(r, &["name"]), str_at(r, &["uid"]));
    if !r.is_object() || api_version != "v1" || kind != "Pod" || name.is_empty() {
        return forbid("node requested token not bound to a pod");
    }
    if uid.is_empty() {
        return forbid("node requested token with a pod binding without a uid");
    }
    let Some(pod) = pod else { return Err(Refusal::NotFound(GroupResource::new("", "pod"), name.to_string())) };
    if str_at(pod, &["metadata", "uid"]) != uid {
        return forbid(format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        ));
    }
    if str_at(pod, &["spec", "nodeName"]) != node {
        return forbid("node requested token bound to a pod scheduled on a different node");
    }
    Ok(())
}

/// Creating CertificateSigningRequest `csr` as node `node`: a request to a kubelet signer
/// (`kubelet-serving`, `kube-apiserver-client-kubelet`) must be for the node's own name.
pub fn check_csr(node: &str, csr: &Value) -> Result<(), Refusal> {
    use base64::Engine as _;
    use skiff_api::certificates::{KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, parse_request};
    let signer = str_at(csr, &["spec", "signerName"]);
    if signer != KUBELET_SERVING && signer != KUBE_APISERVER_CLIENT_KUBELET {
        return Ok(());
    }
    let parsed = base64::engine::general_purpose::STANDARD
        .decode(str_at(csr, &["spec", "request"]))
        .map_err(|e| e.to_string())
        .and_then(|pem| parse_request(&pem).map_err(|e| e.to_string()));
    let request = match parsed {
        Ok(r) => r,
        Err(e) => return forbid(format!("unable to parse csr: {e}")),
    };
    let want = format!("{NODE_USER_PREFIX}{node}");
    if request.common_names.first() != Some(&want) {
        return forbid(format!("can only create a node CSR with CN={want}"));
    }
    Ok(())
}

fn refused(ctx: &Ctx, name: &str, r: Refusal) -> StatusError {
    match r {
        Refusal::Forbidden(why) => StatusError::forbidden(&ctx.group_resource(), name, &why),
        Refusal::NotFound(gr, name) => StatusError::not_found(&gr, &name),
    }
}

fn is(ctx: &Ctx, group: &str, plural: &str) -> bool {
    ctx.storage.group == group && ctx.storage.plural == plural
}

async fn stored(
    state: &ApiState,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, StatusError> {
    let Some(info) = skiff_api::catalogue::find("", "v1", plural) else { return Ok(None) };
    let kv = state.store.get(&info.key(namespace, name)).await.map_err(StatusError::internal)?;
    kv.map(|kv| serde_json::from_slice(&kv.value).map_err(StatusError::internal)).transpose()
}

/// Admission of a create of `obj` of `ctx.storage` (the main resource).
pub async fn admit_create(state: &ApiState, ctx: &Ctx, obj: &Value) -> Result<(), StatusError> {
    let Some(node) = acting_node(&ctx.user) else { return Ok(()) };
    let node = node?;
    let name = objects::meta_str(obj, "name").unwrap_or("");
    let result = if is(ctx, "", "pods") {
        let stored_node = stored(state, "nodes", None, node).await?;
        let node_uid = stored_node.map(|n| objects::meta_str(&n, "uid").unwrap_or("").to_string());
        check_pod_create(node, obj, node_uid.as_deref())
    } else if is(ctx, "", "nodes") {
        check_node(node, name, None, Some(obj))
    } else if is(ctx, "coordination.k8s.io", "leases") {
        check_lease(node, ctx.namespace.as_deref().unwrap_or(""), name)
    } else if is(ctx, "storage.k8s.io", "csinodes") {
        check_csi_node(node, name)
    } else if is(ctx, "", "persistentvolumeclaims") {
        forbid("may only update PVC status")
    } else if is(ctx, "certificates.k8s.io", "certificatesigningrequests") {
        check_csr(node, obj)
    } else {
        Ok(())
    };
    result.map_err(|r| refused(ctx, name, r))
}

/// Admission of an update (of the main resource or a subresource) from `old` to `new`.
pub fn admit_update(ctx: &Ctx, old: &Value, new: &Value) -> Result<(), StatusError> {
    let Some(node) = acting_node(&ctx.user) else { return Ok(()) };
    let node = node?;
    let name = ctx.name.clone().unwrap_or_else(|| objects::meta_str(new, "name").unwrap_or("").to_string());
    let sub = ctx.subresource.as_deref().unwrap_or("");
    let result = if is(ctx, "", "pods") {
        match sub {
            "" => {
                forbid(format!("unexpected operation \"UPDATE\", node {node:?} can only create and delete mirror pods"))
            }
            "status" => check_pod_status(node, old, new),
            other => forbid(format!("unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed")),
        }
    } else if is(ctx, "", "nodes") {
        check_node(node, &name, Some(old), Some(new))
    } else if is(ctx, "coordination.k8s.io", "leases") {
        check_lease(node, ctx.namespace.as_deref().unwrap_or(""), &name)
    } else if is(ctx, "storage.k8s.io", "csinodes") {
        check_csi_node(node, &name)
    } else if is(ctx, "", "persistentvolumeclaims") {
        match sub {
            "status" => check_claim_status(node, old, new),
            _ => forbid("may only update PVC status"),
        }
    } else {
        Ok(())
    };
    result.map_err(|r| refused(ctx, &name, r))
}

/// Admission of a delete of the stored object `obj` named `name`.
pub fn admit_delete(ctx: &Ctx, name: &str, obj: &Value) -> Result<(), StatusError> {
    let Some(node) = acting_node(&ctx.user) else { return Ok(()) };
    let node = node?;
    let result = if is(ctx, "", "pods") {
        check_pod_bound(node, obj, "delete")
    } else if is(ctx, "", "nodes") {
        check_node(node, name, Some(obj), None)
    } else if is(ctx, "coordination.k8s.io", "leases") {
        check_lease(node, ctx.namespace.as_deref().unwrap_or(""), name)
    } else if is(ctx, "storage.k8s.io", "csinodes") {
        check_csi_node(node, name)
    } else if is(ctx, "", "persistentvolumeclaims") {
        forbid("may only update PVC status")
    } else {
        Ok(())
    };
    result.map_err(|r| refused(ctx, name, r))
}

/// Admission of an eviction of pod `name` (in `ctx.namespace`).
pub async fn admit_eviction(state: &ApiState, ctx: &Ctx, name: &str) -> Result<(), StatusError> {
    let Some(node) = acting_node(&ctx.user) else { return Ok(()) };
    let node = node?;
    let Some(pod) = stored(state, "pods", ctx.namespace.as_deref(), name).await? else {
        return Err(StatusError::not_found(&GroupResource::new("", "pod"), name));
    };
    check_pod_bound(node, &pod, "evict").map_err(|r| refused(ctx, name, r))
}

/// Admission of a TokenRequest `request` for ServiceAccount `name` (in `ctx.namespace`), for the
/// `serviceaccounts/token` handler to call.
pub async fn admit_token_request(state: &ApiState, ctx: &Ctx, name: &str, request: &Value) -> Result<(), StatusError> {
    let Some(node) = acting_node(&ctx.user) else { return Ok(()) };
    let node = node?;
    let pod_name = str_at(request, &["spec", "boundObjectRef", "name"]);
    let pod = match pod_name {
        "" => None,
        p => stored(state, "pods", ctx.namespace.as_deref(), p).await?,
    };
    check_token_request(node, request, pod.as_ref()).map_err(|r| refused(ctx, name, r))
}

#[cfg(test)]
mod tests;
