//! Mirror pods: the API server's copies of this node's static pods, as the kubelet keeps them.
//!
//! A running static pod has one mirror pod: same name, namespace and spec, plus the
//! `kubernetes.io/config.mirror` annotation (the static pod's hash) and a controller
//! ownerReference to the Node. [`plan`] decides what to do from what the API server holds: create
//! a missing mirror, delete and recreate one that is being deleted or whose hash is stale, and
//! delete orphans (mirrors whose static pod is gone and no longer terminating). [`MirrorClient`]
//! does it through the API (deletes with no grace period, preconditioned on the mirror's UID).
//!
//! What does not live here: reading static pods (`static_pods`), running them (`worker`), and
//! reporting their status (the worker patches the mirror's status by name).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::static_pods::{self, CONFIG_MIRROR};

/// What to do about one mirror pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the mirror of the static pod with this UID.
    Create(String),
    /// Delete the mirror `namespace/name` with this UID (it is then recreated if its static
    /// pod still runs).
    Delete {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The mirror's UID (the delete's precondition).
        uid: String,
    },
}

/// Whether `mirror` is the mirror of `pod`: same name and namespace, and the hash it carries is
/// the static pod's (upstream `IsMirrorPodOf`).
pub fn is_mirror_of(mirror: &Pod, pod: &Pod) -> bool {
    mirror.metadata.name == pod.metadata.name
        && mirror.metadata.namespace == pod.metadata.namespace
        && static_pods::mirror_hash(mirror).is_some_and(|h| Some(h) == pod.metadata.uid.as_deref())
}

/// The mirror actions for the static pods that run (`running`, by UID), the mirrors the API
/// server holds (by full name), and the full names of every static pod the node has or is still
/// stopping (`known`): mirrors of those are never orphans.
pub fn plan(running: &BTreeMap<String, Pod>, mirrors: &HashMap<String, Pod>, known: &[String]) -> Vec<Action> {
    let mut actions = Vec::new();
    let delete = |m: &Pod| Action::Delete {
        namespace: m.metadata.namespace.clone().unwrap_or_default(),
        name: m.metadata.name.clone().unwrap_or_default(),
        uid: m.metadata.uid.clone().unwrap_or_default(),
    };
    for (uid, pod) in running {
        match mirrors.get(&static_pods::full_name(pod)) {
            Some(m) if m.metadata.deletion_timestamp.is_some() || !is_mirror_of(m, pod) => {
                actions.push(delete(m));
                actions.push(Action::Create(uid.clone()));
            }
            Some(_) => {}
            None => actions.push(Action::Create(uid.clone())),
        }
    }
    let mut orphans: Vec<&Pod> = mirrors.iter().filter(|(name, _)| !known.contains(name)).map(|(_, m)| m).collect();
    orphans.sort_by_key(|m| static_pods::full_name(m));
    actions.extend(orphans.into_iter().map(delete));
    actions
}

/// The mirror of static pod `pod` on node `node` (with UID `node_uid`), as it is created.
pub fn mirror_of(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = pod.clone();
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.metadata.annotations.get_or_insert_default().insert(CONFIG_MIRROR.into(), hash);
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: node_uid.to_string(),
        controller: Some(true),
        ..Default::default()
    }]);
    mirror.status = None;
    mirror
}

/// Why a mirror could not be created or deleted.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The Node is not registered (yet), or is being deleted: no mirror is created.
    #[error("no need to create a mirror pod: node {0} is not registered or is being deleted")]
    NoNode(String),
    /// The API server refused or failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Creates and deletes mirror pods through the API server.
pub struct MirrorClient {
    client: kube::Client,
    node: String,
}

impl MirrorClient {
    /// A client for the mirrors of node `node`.
    pub fn new(client: kube::Client, node: String) -> Self {
        Self { client, node }
    }

    /// Creates the mirror of `pod`; an existing mirror of the same hash counts as created.
    pub async fn create(&self, pod: &Pod) -> Result<Option<Pod>, MirrorError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get_opt(&self.node).await?.filter(|n| n.metadata.deletion_timestamp.is_none());
        let node_uid = node.and_then(|n| n.metadata.uid).ok_or_else(|| MirrorError::NoNode(self.node.clone()))?;
        let mirror = mirror_of(pod, &self.node, &node_uid);
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => Ok(Some(created)),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let name = pod.metadata.name.as_deref().unwrap_or("");
                match api.get_opt(name).await? {
                    Some(existing) if is_mirror_of(&existing, pod) => Ok(Some(existing)),
                    _ => Err(MirrorError::Api(kube::Error::Api(e))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes mirror `namespace/name` at once if its UID is still `uid`; a mirror already gone
    /// or replaced counts as deleted.
    pub async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<(), MirrorError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn static_pod(name: &str, uid: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "annotations": {"kubernetes.io/config.hash": uid, "kubernetes.io/config.source": "file"}},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending"},
        }))
        .expect("pod")
    }

    fn mirror(name: &str, hash: &str, uid: &str) -> Pod {
        let mut m = mirror_of(&static_pod(name, hash), "n", "node-uid");
        m.metadata.uid = Some(uid.into());
        m
    }

    #[test]
    fn a_mirror_copies_the_static_pod_and_is_owned_by_the_node() {
        let m = mirror_of(&static_pod("web-n", "h1"), "n", "node-uid");
        assert_eq!(m.metadata.uid, None);
        assert_eq!(m.status, None);
        let annotations = m.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get(CONFIG_MIRROR).map(String::as_str), Some("h1"));
        assert_eq!(annotations.get("kubernetes.io/config.hash").map(String::as_str), Some("h1"));
        let owner = &m.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!((owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str()), ("v1", "Node", "n"));
        assert_eq!((owner.uid.as_str(), owner.controller), ("node-uid", Some(true)));
        assert!(is_mirror_of(&m, &static_pod("web-n", "h1")));
        assert!(!is_mirror_of(&m, &static_pod("web-n", "h2")));
        assert!(!is_mirror_of(&m, &static_pod("other-n", "h1")));
    }

    #[test]
    fn plan_creates_missing_replaces_stale_or_deleted_and_removes_orphans() {
        let running: BTreeMap<String, Pod> = [("h1", "a-n"), ("h2", "b-n"), ("h3", "c-n")]
            .iter()
            .map(|(h, n)| (h.to_string(), static_pod(n, h)))
            .collect();
        let mut deleted = mirror("c-n", "h3", "m3");
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().expect("time")));
        let mirrors: HashMap<String, Pod> = [
            ("b-n_default", mirror("b-n", "old", "m2")),
            ("c-n_default", deleted),
            ("gone-n_default", mirror("gone-n", "h9", "m9")),
            ("stopping-n_default", mirror("stopping-n", "h8", "m8")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let known: Vec<String> =
            ["a-n_default", "b-n_default", "c-n_default", "stopping-n_default"].iter().map(|s| s.to_string()).collect();
        let del =
            |name: &str, uid: &str| Action::Delete { namespace: "default".into(), name: name.into(), uid: uid.into() };
        assert_eq!(
            plan(&running, &mirrors, &known),
            vec![
                Action::Create("h1".into()),
                del("b-n", "m2"),
                Action::Create("h2".into()),
                del("c-n", "m3"),
                Action::Create("h3".into()),
                del("gone-n", "m9"),
            ]
        );
        // Nothing to do once every mirror matches.
        let mirrors: HashMap<String, Pod> = running
            .values()
            .map(|p| {
                (
                    static_pods::full_name(p),
                    mirror(p.metadata.name.as_deref().unwrap_or(""), p.metadata.uid.as_deref().unwrap_or(""), "m"),
                )
            })
            .collect();
        assert_eq!(plan(&running, &mirrors, &known), vec![]);
    }
}
