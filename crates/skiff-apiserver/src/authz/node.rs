//! The Node authorizer (upstream `plugin/pkg/auth/authorizer/node`): what the agent of a node
//! (`system:node:<name>` in `system:nodes`) may do. Reads of Secrets, ConfigMaps,
//! PersistentVolumeClaims, PersistentVolumes, ResourceClaims, Pods, VolumeAttachments and
//! ServiceAccount tokens are decided by the [`graph`] of the pods bound to the node (and of the
//! VolumeAttachments naming it); lists and watches of pods by their `spec.nodeName=<node>` field
//! selector (upstream's `AuthorizeNodeWithSelectors`); its own Node, Lease and CSINode by name;
//! everything else by upstream's static node rules (`NodeRules` of the bootstrap policy). What a
//! node may write is narrowed further by the NodeRestriction admission plugin
//! (`crate::admission::noderestriction`).
//!
//! Where upstream answers "no opinion" for a node (and the default RBAC policy, which binds no
//! role to `system:nodes`, then denies), this authorizer answers `Deny` with upstream's reason
//! for the resources it subdivides, so a node is refused what is not its own whatever follows
//! in the chain. Two skiff exceptions stay "no opinion" (RBAC decides): reading and updating
//! PersistentVolumes beyond `get` (the agent cleans up local-path volumes) and reading
//! ServiceAccounts.

pub mod feed;
pub mod graph;

use std::sync::{Arc, RwLock};

use graph::{Graph, Kind, ObjectRef};

use super::{Attributes, Authorizer, Decision, ResourceAttributes};
use crate::authn::UserInfo;
use crate::cache::WatchCaches;

/// The group every node agent is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of node user names.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Whether `user` is a node, and which one (`Some("")` when the name does not say).
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.in_group(NODES_GROUP).then_some(name)
}

/// The Node authorizer.
pub struct NodeAuthorizer {
    graph: Arc<RwLock<Graph>>,
    caches: Option<Arc<WatchCaches>>,
}

impl std::fmt::Debug for NodeAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeAuthorizer")
    }
}

impl NodeAuthorizer {
    /// An authorizer whose graph follows `caches` (loaded now, then kept current).
    pub fn start(caches: &Arc<WatchCaches>) -> Self {
        let graph = Arc::new(RwLock::new(Graph::default()));
        feed::spawn(caches, &graph);
        Self { graph, caches: Some(caches.clone()) }
    }

    /// An authorizer over a fixed graph (tests).
    pub fn with_graph(graph: Graph) -> Self {
        Self { graph: Arc::new(RwLock::new(graph)), caches: None }
    }

    fn graph(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a pod bound to `node` references `object`: the graph, then (for a change the
    /// graph has not applied yet) the pods cache of the object's namespace.
    fn related(&self, node: &str, object: &ObjectRef) -> bool {
        if self.graph().references(node, object) {
            return true;
        }
        let Some(cache) = self.caches.as_ref().and_then(|c| feed::core_cache(c, "pods")) else { return false };
        let prefix = format!("{}{}/", cache.prefix(), object.namespace);
        let snapshot = cache.snapshot();
        snapshot
            .objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, e)| e.field("spec.nodeName").is_none_or(|n| n == node))
            .filter_map(|(_, e)| graph::pod_refs_json(&e.json))
            .any(|p| p.node == node && p.refs.contains(object))
    }

    /// Whether pod `namespace/name` is bound to `node`: the graph, then the pods cache (a pod
    /// bound a moment ago).
    fn pod_bound(&self, node: &str, namespace: &str, name: &str) -> bool {
        if self.graph().has_pod(node, namespace, name) {
            return true;
        }
        let Some(cache) = self.caches.as_ref().and_then(|c| feed::core_cache(c, "pods")) else { return false };
        cached_node(&cache, &format!("{}{namespace}/{name}", cache.prefix())).is_some_and(|n| n == node)
    }

    /// Whether VolumeAttachment `name` names `node`: the graph, then the cache.
    fn attached(&self, node: &str, name: &str) -> bool {
        if self.graph().attaches_to(node, name) {
            return true;
        }
        let cache = self.caches.as_ref().and_then(|c| feed::cache_of(c, "storage.k8s.io", "v1", "volumeattachments"));
        cache.is_some_and(|cache| cached_node(&cache, &format!("{}{name}", cache.prefix())).is_some_and(|n| n == node))
    }

    /// Pods: a get of one bound to the node; a list or watch with the `spec.nodeName=<node>`
    /// field selector (or of one bound pod named by `metadata.name`); creating and deleting
    /// (mirror pods), their status and evictions (NodeRestriction narrows those to the node's
    /// own pods).
    fn pod(&self, node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        let bound = || {
            if self.pod_bound(node, &r.namespace, &r.name) {
                Decision::Allow
            } else {
                Decision::Deny(no_relationship(node))
            }
        };
        match (r.subresource.as_str(), attrs.verb.as_str()) {
            ("", "get") if r.name.is_empty() => Decision::Deny("No Object name found".into()),
            ("", "get") => bound(),
            ("", "list" | "watch") if r.field_selector.requires("spec.nodeName", node) => Decision::Allow,
            ("", "list" | "watch") if !r.name.is_empty() => bound(),
            ("", "list" | "watch") => {
                Decision::Deny("can only list/watch pods with spec.nodeName field selector".into())
            }
            ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => Decision::Allow,
            _ => Decision::NoOpinion(String::new()),
        }
    }

    /// get of a VolumeAttachment naming the node.
    fn volume_attachment(&self, node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        if let Some(refused) = only_get(attrs, r) {
            return Decision::Deny(refused.into());
        }
        if self.attached(node, &r.name) { Decision::Allow } else { Decision::Deny(no_relationship(node)) }
    }

    fn path_check(&self, node: &str, object: ObjectRef) -> Decision {
        if self.related(node, &object) { Decision::Allow } else { Decision::Deny(no_relationship(node)) }
    }

    /// get/list/watch of one Secret or ConfigMap (list and watch only of a single object,
    /// named by a `metadata.name` field selector).
    fn read_namespaced(&self, node: &str, kind: Kind, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        let deny = |why: &str| Decision::Deny(why.to_string());
        match attrs.verb.as_str() {
            "get" | "list" | "watch" => {}
            _ => return deny("can only read resources of this type"),
        }
        if r.name.is_empty() {
            return deny("can only get individual resources of this type");
        }
        if !r.subresource.is_empty() {
            return deny("cannot read subresource");
        }
        if r.namespace.is_empty() {
            return deny("can only read namespaced object of this type");
        }
        self.path_check(node, ObjectRef { kind, namespace: r.namespace.clone(), name: r.name.clone() })
    }

    /// get of one namespaced object reached through the node's pods.
    fn get_namespaced(&self, node: &str, kind: Kind, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        if let Some(refused) = only_get(attrs, r) {
            return Decision::Deny(refused.into());
        }
        self.path_check(node, ObjectRef { kind, namespace: r.namespace.clone(), name: r.name.clone() })
    }

    /// get of a PersistentVolume bound to a claim a pod of the node uses; other verbs are left
    /// to RBAC (skiff's agent lists, watches and updates volumes to clean up local paths).
    fn persistent_volume(&self, node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        if let Some(refused) = only_get(attrs, r) {
            return Decision::NoOpinion(refused.into());
        }
        if self.graph().reaches_volume(node, &r.name) {
            Decision::Allow
        } else {
            Decision::NoOpinion(no_relationship(node))
        }
    }

    /// update/patch of a claim's status.
    fn claim_status(&self, node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        if !matches!(attrs.verb.as_str(), "update" | "patch") {
            return Decision::Deny("can only get/update/patch this type".into());
        }
        let claim = ObjectRef { kind: Kind::Claim, namespace: r.namespace.clone(), name: r.name.clone() };
        self.path_check(node, claim)
    }

    /// create of `serviceaccounts/token` for the ServiceAccount of a pod of the node.
    fn token(&self, node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
        if attrs.verb != "create" || r.name.is_empty() || r.subresource != "token" {
            return Decision::NoOpinion("can only create tokens for individual service accounts".into());
        }
        self.path_check(
            node,
            ObjectRef { kind: Kind::ServiceAccount, namespace: r.namespace.clone(), name: r.name.clone() },
        )
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        let Some(node) = node_identity(&attrs.user) else { return Decision::NoOpinion(String::new()) };
        if node.is_empty() {
            return Decision::NoOpinion(format!("unknown node for user {:?}", attrs.user.name));
        }
        let Some(r) = &attrs.resource else { return Decision::NoOpinion(String::new()) };
        match (r.group.as_str(), r.resource.as_str()) {
            ("", "secrets") => self.read_namespaced(node, Kind::Secret, attrs, r),
            ("", "configmaps") => self.read_namespaced(node, Kind::ConfigMap, attrs, r),
            ("", "persistentvolumeclaims") if r.subresource == "status" => self.claim_status(node, attrs, r),
            ("", "persistentvolumeclaims") => self.get_namespaced(node, Kind::Claim, attrs, r),
            ("resource.k8s.io", "resourceclaims") => self.get_namespaced(node, Kind::ResourceClaim, attrs, r),
            ("", "persistentvolumes") => self.persistent_volume(node, attrs, r),
            ("", "pods") => self.pod(node, attrs, r),
            ("storage.k8s.io", "volumeattachments") => self.volume_attachment(node, attrs, r),
            ("", "serviceaccounts") => self.token(node, attrs, r),
            ("coordination.k8s.io", "leases") => lease(node, attrs, r),
            ("storage.k8s.io", "csinodes") => csi_node(node, attrs, r),
            ("", "nodes") if r.subresource.is_empty() && matches!(attrs.verb.as_str(), "get" | "list" | "watch") => {
                read_node(node, r)
            }
            _ if static_rules_allow(&attrs.verb, r) => Decision::Allow,
            _ => Decision::NoOpinion(String::new()),
        }
    }
}

/// The `spec.nodeName` of the object cached under `key`.
fn cached_node(cache: &crate::cache::ResourceCache, key: &str) -> Option<String> {
    let entry = cache.get(key)?;
    entry.field("spec.nodeName").or_else(|| entry.value()["spec"]["nodeName"].as_str().map(str::to_string))
}

fn no_relationship(node: &str) -> String {
    format!("no relationship found between node '{node}' and this object")
}

/// Why a request is not a plain `get` of one object, if it is not.
fn only_get(attrs: &Attributes, r: &ResourceAttributes) -> Option<&'static str> {
    if attrs.verb != "get" || r.name.is_empty() {
        return Some("can only get individual resources of this type");
    }
    if !r.subresource.is_empty() {
        return Some("cannot get subresource");
    }
    None
}

/// The node's own Lease in `kube-node-lease` (the name of a created Lease is checked by
/// NodeRestriction).
fn lease(node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
    if !matches!(attrs.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
        return Decision::Deny("can only get, create, update, patch, or delete a node lease".into());
    }
    if r.namespace != NODE_LEASE_NAMESPACE {
        return Decision::Deny(format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"));
    }
    if attrs.verb != "create" && r.name != node {
        return Decision::Deny("can only access node lease with the same name as the requesting node".into());
    }
    Decision::Allow
}

/// The node's own CSINode.
fn csi_node(node: &str, attrs: &Attributes, r: &ResourceAttributes) -> Decision {
    if !matches!(attrs.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
        return Decision::Deny("can only get, create, update, patch, or delete a CSINode".into());
    }
    if !r.subresource.is_empty() {
        return Decision::Deny("cannot authorize CSINode subresources".into());
    }
    if attrs.verb != "create" && r.name != node {
        return Decision::Deny("can only access CSINode with the same name as the requesting node".into());
    }
    Decision::Allow
}

/// Reads of Node objects: only its own (by name, so a node can look for itself before it
/// registers).
fn read_node(node: &str, r: &ResourceAttributes) -> Decision {
    if r.name == node {
        Decision::Allow
    } else if r.name.is_empty() {
        Decision::Deny(format!("node '{node}' cannot read all nodes, only its own Node object"))
    } else {
        Decision::Deny(format!("node '{node}' cannot read '{}', only its own Node object", r.name))
    }
}

/// Upstream's static node rules: `(verbs, API groups, resources)`, without those of pods and
/// VolumeAttachments, which [`NodeAuthorizer::pod`] and [`NodeAuthorizer::volume_attachment`]
/// decide.
const NODE_RULES: &[(&[&str], &[&str], &[&str])] = &[
    (&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
    (&["create"], &["authorization.k8s.io"], &["subjectaccessreviews", "localsubjectaccessreviews"]),
    (&["get", "list", "watch"], &[""], &["services"]),
    (&["create", "get", "list", "watch"], &[""], &["nodes"]),
    (&["update", "patch"], &[""], &["nodes/status", "nodes"]),
    (&["create", "update", "patch"], &["", "events.k8s.io"], &["events"]),
    (&["get"], &[""], &["endpoints"]),
    (&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
    (&["get", "list", "watch"], &["node.k8s.io"], &["runtimeclasses"]),
    (&["get", "list", "watch"], &["storage.k8s.io"], &["csidrivers"]),
    (&["get", "list", "watch"], &["resource.k8s.io"], &["resourceslices"]),
];

/// Whether the static node rules allow `verb` on `r`.
fn static_rules_allow(verb: &str, r: &ResourceAttributes) -> bool {
    let resource =
        if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
    NODE_RULES.iter().any(|(verbs, groups, resources)| {
        verbs.contains(&verb) && groups.contains(&r.group.as_str()) && resources.contains(&resource.as_str())
    })
}

#[cfg(test)]
mod tests;
