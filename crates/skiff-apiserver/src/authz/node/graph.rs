//! The Node authorizer's graph (upstream `plugin/pkg/auth/authorizer/node/graph.go`, simplified
//! to what skiff stores): for each node, the objects the pods bound to it reference — Secrets,
//! ConfigMaps, PersistentVolumeClaims (and through their `spec.volumeName` the
//! PersistentVolumes), ServiceAccounts and ResourceClaims — with a reference count, so a pod's
//! arrival, change or removal updates only its own edges; and the node each VolumeAttachment
//! names (`spec.nodeName`).
//!
//! What does not live here: how the graph is fed (`feed`) and the decisions (`super`). Secrets a
//! PersistentVolume itself names (CSI `nodePublishSecretRef`, …) are not tracked: skiff's agent
//! mounts only hostPath and local volumes.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

/// The kinds of objects a node may reach through its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `secrets`.
    Secret,
    /// `configmaps`.
    ConfigMap,
    /// `persistentvolumeclaims`.
    Claim,
    /// `serviceaccounts`.
    ServiceAccount,
    /// `resourceclaims` (resource.k8s.io).
    ResourceClaim,
}

/// A namespaced object a pod references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// What it is.
    pub kind: Kind,
    /// Its namespace (the pod's).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// What one pod contributes to the graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRefs {
    /// The node the pod is bound to.
    pub node: String,
    /// The pod's namespace and name.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The objects it references (each once).
    pub refs: BTreeSet<ObjectRef>,
}

/// The graph of nodes, their pods and what those reference.
#[derive(Debug, Default)]
pub struct Graph {
    /// Pods by store key (only pods bound to a node).
    pods: HashMap<String, PodRefs>,
    /// Per node, how many of its pods reference each object.
    edges: HashMap<String, HashMap<ObjectRef, usize>>,
    /// Per node, how many of its pods there are by namespace/name (pods bound to it).
    bound: HashMap<String, HashMap<(String, String), usize>>,
    /// PersistentVolumeClaims (namespace, name) by store key, with the volume they are bound to.
    claims: HashMap<String, (String, String, String)>,
    /// Per PersistentVolume, the claims (namespace, name) bound to it.
    volumes: HashMap<String, BTreeSet<(String, String)>>,
    /// VolumeAttachment names by store key.
    attachment_names: HashMap<String, String>,
    /// The node of each VolumeAttachment, by name.
    attachments: HashMap<String, String>,
}

impl Graph {
    /// Records the pod `pod` stored under `key` (tests; the feed passes [`pod_refs_json`]'s).
    #[cfg(test)]
    pub fn set_pod(&mut self, key: &str, pod: &Value) {
        self.set_pod_refs(key, pod_refs(pod));
    }

    /// Records what the pod stored under `key` references, replacing what it contributed
    /// before; `None` (a pod not bound to a node) contributes nothing.
    pub fn set_pod_refs(&mut self, key: &str, refs: Option<PodRefs>) {
        self.remove_pod(key);
        let Some(refs) = refs else { return };
        let edges = self.edges.entry(refs.node.clone()).or_default();
        for r in &refs.refs {
            *edges.entry(r.clone()).or_default() += 1;
        }
        let bound = self.bound.entry(refs.node.clone()).or_default();
        *bound.entry((refs.namespace.clone(), refs.name.clone())).or_default() += 1;
        self.pods.insert(key.to_string(), refs);
    }

    /// Forgets the pod stored under `key`.
    pub fn remove_pod(&mut self, key: &str) {
        let Some(old) = self.pods.remove(key) else { return };
        if let Some(edges) = self.edges.get_mut(&old.node) {
            for r in &old.refs {
                if let Some(n) = edges.get_mut(r) {
                    *n -= 1;
                    if *n == 0 {
                        edges.remove(r);
                    }
                }
            }
            if edges.is_empty() {
                self.edges.remove(&old.node);
            }
        }
        if let Some(bound) = self.bound.get_mut(&old.node) {
            let k = (old.namespace, old.name);
            if let Some(n) = bound.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    bound.remove(&k);
                }
            }
            if bound.is_empty() {
                self.bound.remove(&old.node);
            }
        }
    }

    /// Records the PersistentVolumeClaim stored under `key` (its `spec.volumeName`).
    pub fn set_claim(&mut self, key: &str, claim: &Value) {
        self.remove_claim(key);
        let meta = &claim["metadata"];
        let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else { return };
        let volume = claim["spec"]["volumeName"].as_str().unwrap_or_default();
        if volume.is_empty() {
            return;
        }
        self.volumes.entry(volume.to_string()).or_default().insert((ns.to_string(), name.to_string()));
        self.claims.insert(key.to_string(), (ns.to_string(), name.to_string(), volume.to_string()));
    }

    /// Forgets the PersistentVolumeClaim stored under `key`.
    pub fn remove_claim(&mut self, key: &str) {
        let Some((ns, name, volume)) = self.claims.remove(key) else { return };
        if let Some(claims) = self.volumes.get_mut(&volume) {
            claims.remove(&(ns, name));
            if claims.is_empty() {
                self.volumes.remove(&volume);
            }
        }
    }

    /// Records the VolumeAttachment stored under `key` (the node its `spec.nodeName` names).
    pub fn set_attachment(&mut self, key: &str, attachment: &Value) {
        self.remove_attachment(key);
        let name = attachment["metadata"]["name"].as_str().unwrap_or_default();
        let node = attachment["spec"]["nodeName"].as_str().unwrap_or_default();
        if !name.is_empty() && !node.is_empty() {
            self.attachment_names.insert(key.to_string(), name.to_string());
            self.attachments.insert(name.to_string(), node.to_string());
        }
    }

    /// Forgets the VolumeAttachment stored under `key`.
    pub fn remove_attachment(&mut self, key: &str) {
        if let Some(name) = self.attachment_names.remove(key) {
            self.attachments.remove(&name);
        }
    }

    /// Forgets every VolumeAttachment (before a rebuild from a snapshot).
    pub fn clear_attachments(&mut self) {
        self.attachment_names.clear();
        self.attachments.clear();
    }

    /// Whether VolumeAttachment `name` attaches a volume to `node`.
    pub fn attaches_to(&self, node: &str, name: &str) -> bool {
        self.attachments.get(name).is_some_and(|n| n == node)
    }

    /// Forgets every pod (before a rebuild from a snapshot).
    pub fn clear_pods(&mut self) {
        self.pods.clear();
        self.edges.clear();
        self.bound.clear();
    }

    /// Forgets every claim (before a rebuild from a snapshot).
    pub fn clear_claims(&mut self) {
        self.claims.clear();
        self.volumes.clear();
    }

    /// Whether a pod bound to `node` references `object`.
    pub fn references(&self, node: &str, object: &ObjectRef) -> bool {
        self.edges.get(node).is_some_and(|e| e.contains_key(object))
    }

    /// Whether pod `namespace/name` is bound to `node`.
    pub fn has_pod(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.bound.get(node).is_some_and(|b| b.contains_key(&(namespace.to_string(), name.to_string())))
    }

    /// Whether a pod bound to `node` uses a claim bound to PersistentVolume `volume`.
    pub fn reaches_volume(&self, node: &str, volume: &str) -> bool {
        self.volumes.get(volume).is_some_and(|claims| {
            claims.iter().any(|(ns, name)| {
                self.references(node, &ObjectRef { kind: Kind::Claim, namespace: ns.clone(), name: name.clone() })
            })
        })
    }

    /// How many pods the graph holds (tests, diagnostics).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

/// What pod `pod` references, if it is bound to a node.
pub fn pod_refs(pod: &Value) -> Option<PodRefs> {
    PodView::deserialize(pod).ok()?.into_refs()
}

/// What the pod serialized in `json` references, if it is bound to a node: reads only the fields
/// the graph needs, without building the whole document (the feed calls this for every change
/// of a bound pod).
pub fn pod_refs_json(json: &[u8]) -> Option<PodRefs> {
    serde_json::from_slice::<PodView>(json).ok()?.into_refs()
}

/// The parts of a pod that reference other objects; every other field is skipped while parsing.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PodView {
    metadata: Option<MetaView>,
    spec: Option<SpecView>,
    status: Option<StatusView>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetaView {
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpecView {
    node_name: Option<String>,
    service_account_name: Option<String>,
    image_pull_secrets: Option<Vec<NameRef>>,
    init_containers: Option<Vec<ContainerView>>,
    containers: Option<Vec<ContainerView>>,
    ephemeral_containers: Option<Vec<ContainerView>>,
    volumes: Option<Vec<VolumeView>>,
}

/// `{"name": …}` (LocalObjectReference and its kin).
#[derive(Deserialize, Default)]
#[serde(default)]
struct NameRef {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ContainerView {
    env_from: Option<Vec<EnvFromView>>,
    env: Option<Vec<EnvView>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EnvFromView {
    secret_ref: Option<NameRef>,
    config_map_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EnvView {
    value_from: Option<KeyRefs>,
}

/// `env[].valueFrom`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct KeyRefs {
    secret_key_ref: Option<NameRef>,
    config_map_key_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct VolumeView {
    name: Option<String>,
    secret: Option<SecretVolume>,
    config_map: Option<NameRef>,
    persistent_volume_claim: Option<ClaimVolume>,
    ephemeral: Option<serde::de::IgnoredAny>,
    projected: Option<ProjectedVolume>,
    azure_file: Option<SecretVolume>,
    cephfs: Option<PluginVolume>,
    flex_volume: Option<PluginVolume>,
    iscsi: Option<PluginVolume>,
    rbd: Option<PluginVolume>,
    #[serde(rename = "scaleIO")]
    scale_io: Option<PluginVolume>,
    storageos: Option<PluginVolume>,
    csi: Option<PluginVolume>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SecretVolume {
    secret_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClaimVolume {
    claim_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProjectedVolume {
    sources: Option<Vec<ProjectedSource>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ProjectedSource {
    secret: Option<NameRef>,
    config_map: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PluginVolume {
    secret_ref: Option<NameRef>,
    node_publish_secret_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatusView {
    resource_claim_statuses: Option<Vec<ClaimStatus>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClaimStatus {
    resource_claim_name: Option<String>,
}

fn name_of(r: &Option<NameRef>) -> Option<&str> {
    r.as_ref().and_then(|r| r.name.as_deref())
}

fn list<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or_default()
}

impl PodView {
    fn into_refs(self) -> Option<PodRefs> {
        let spec = self.spec.unwrap_or_default();
        let node = spec.node_name.as_deref().filter(|n| !n.is_empty())?.to_string();
        let meta = self.metadata.unwrap_or_default();
        let namespace = meta.namespace.unwrap_or_default();
        let name = meta.name.unwrap_or_default();
        let mut refs = BTreeSet::new();
        let mut add = |kind: Kind, name: Option<&str>| {
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                refs.insert(ObjectRef { kind, namespace: namespace.clone(), name: n.to_string() });
            }
        };
        add(Kind::ServiceAccount, spec.service_account_name.as_deref());
        for s in list(&spec.image_pull_secrets) {
            add(Kind::Secret, s.name.as_deref());
        }
        let containers = [&spec.init_containers, &spec.containers, &spec.ephemeral_containers];
        for c in containers.into_iter().flat_map(list) {
            for e in list(&c.env_from) {
                add(Kind::Secret, name_of(&e.secret_ref));
                add(Kind::ConfigMap, name_of(&e.config_map_ref));
            }
            for e in list(&c.env).iter().filter_map(|e| e.value_from.as_ref()) {
                add(Kind::Secret, name_of(&e.secret_key_ref));
                add(Kind::ConfigMap, name_of(&e.config_map_key_ref));
            }
        }
        for v in list(&spec.volumes) {
            add(Kind::Secret, v.secret.as_ref().and_then(|s| s.secret_name.as_deref()));
            add(Kind::ConfigMap, name_of(&v.config_map));
            add(Kind::Claim, v.persistent_volume_claim.as_ref().and_then(|c| c.claim_name.as_deref()));
            if v.ephemeral.is_some()
                && let Some(vname) = &v.name
            {
                add(Kind::Claim, Some(&format!("{name}-{vname}")));
            }
            for source in v.projected.as_ref().map(|p| list(&p.sources)).unwrap_or_default() {
                add(Kind::Secret, name_of(&source.secret));
                add(Kind::ConfigMap, name_of(&source.config_map));
            }
            add(Kind::Secret, v.azure_file.as_ref().and_then(|s| s.secret_name.as_deref()));
            let plugins = [&v.cephfs, &v.flex_volume, &v.iscsi, &v.rbd, &v.scale_io, &v.storageos, &v.csi];
            for plugin in plugins.into_iter().flatten() {
                add(Kind::Secret, name_of(&plugin.secret_ref));
                add(Kind::Secret, name_of(&plugin.node_publish_secret_ref));
            }
        }
        let claims = self.status.as_ref().map(|s| list(&s.resource_claim_statuses)).unwrap_or_default();
        for s in claims {
            add(Kind::ResourceClaim, s.resource_claim_name.as_deref());
        }
        Some(PodRefs { node, namespace, name, refs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(kind: Kind, ns: &str, name: &str) -> ObjectRef {
        ObjectRef { kind, namespace: ns.into(), name: name.into() }
    }

    fn pod(name: &str, node: &str, secret: &str) -> Value {
        json!({
            "metadata": {"namespace": "ns", "name": name},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "sa",
                "imagePullSecrets": [{"name": "pull"}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}
                ], "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": secret}},
                    {"name": "c", "configMap": {"name": "vol-cm"}},
                    {"name": "p", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "t", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}, {"secret": {"name": "proj"}}]}},
                    {"name": "x", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}}
                ]
            }
        })
    }

    #[test]
    fn every_reference_of_a_bound_pod_is_an_edge() {
        let refs = pod_refs(&pod("web", "n1", "vol-secret")).expect("bound");
        let want = [
            r(Kind::ServiceAccount, "ns", "sa"),
            r(Kind::Secret, "ns", "pull"),
            r(Kind::Secret, "ns", "env-secret"),
            r(Kind::Secret, "ns", "init-secret"),
            r(Kind::Secret, "ns", "vol-secret"),
            r(Kind::Secret, "ns", "proj"),
            r(Kind::Secret, "ns", "csi-secret"),
            r(Kind::ConfigMap, "ns", "env-cm"),
            r(Kind::ConfigMap, "ns", "from-cm"),
            r(Kind::ConfigMap, "ns", "vol-cm"),
            r(Kind::ConfigMap, "ns", "kube-root-ca.crt"),
            r(Kind::Claim, "ns", "data"),
            r(Kind::Claim, "ns", "web-e"),
        ];
        assert_eq!(refs.refs, want.into_iter().collect::<BTreeSet<_>>());
        assert_eq!(refs.node, "n1");
        let bytes = serde_json::to_vec(&pod("web", "n1", "vol-secret")).expect("encodes");
        assert_eq!(pod_refs_json(&bytes), Some(refs), "the same from the stored bytes");
        assert!(pod_refs(&json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).is_none());
        let odd =
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "volumes": [{"name": "v", "secret": null}]}});
        assert_eq!(pod_refs(&odd).map(|r| r.refs.len()), Some(0), "null members are absent members");
    }

    #[test]
    fn pods_add_and_remove_their_edges_with_reference_counts() {
        let mut g = Graph::default();
        g.set_pod("/k/a", &pod("a", "n1", "shared"));
        g.set_pod("/k/b", &pod("b", "n1", "shared"));
        let shared = r(Kind::Secret, "ns", "shared");
        assert!(g.references("n1", &shared));
        assert!(!g.references("n2", &shared));
        assert!(g.has_pod("n1", "ns", "a") && !g.has_pod("n2", "ns", "a"));
        g.remove_pod("/k/a");
        assert!(g.references("n1", &shared), "b still references it");
        g.remove_pod("/k/b");
        assert!(!g.references("n1", &shared));
        assert_eq!(g.pod_count(), 0);
        assert!(g.edges.is_empty() && g.bound.is_empty());
    }

    #[test]
    fn a_changed_pod_replaces_its_edges() {
        let mut g = Graph::default();
        g.set_pod("/k/a", &pod("a", "n1", "old"));
        g.set_pod("/k/a", &pod("a", "n2", "new"));
        assert!(!g.references("n1", &r(Kind::Secret, "ns", "old")));
        assert!(!g.references("n2", &r(Kind::Secret, "ns", "old")));
        assert!(g.references("n2", &r(Kind::Secret, "ns", "new")));
        let unbound = json!({"metadata": {"namespace": "ns", "name": "a"}, "spec": {"containers": []}});
        g.set_pod("/k/a", &unbound);
        assert!(!g.references("n2", &r(Kind::Secret, "ns", "new")));
        assert_eq!(g.pod_count(), 0);
    }

    #[test]
    fn volumes_are_reached_through_bound_claims() {
        let mut g = Graph::default();
        g.set_pod("/k/a", &pod("a", "n1", "s"));
        assert!(!g.reaches_volume("n1", "pv1"));
        let claim =
            |volume: &str| json!({"metadata": {"namespace": "ns", "name": "data"}, "spec": {"volumeName": volume}});
        g.set_claim("/c/data", &claim("pv1"));
        assert!(g.reaches_volume("n1", "pv1"));
        assert!(!g.reaches_volume("n2", "pv1"));
        g.set_claim("/c/data", &claim("pv2"));
        assert!(!g.reaches_volume("n1", "pv1") && g.reaches_volume("n1", "pv2"));
        g.remove_claim("/c/data");
        assert!(!g.reaches_volume("n1", "pv2"));
        assert!(g.volumes.is_empty());
    }

    #[test]
    fn volume_attachments_point_at_their_node() {
        let mut g = Graph::default();
        let va = |node: &str| json!({"metadata": {"name": "csi-1"}, "spec": {"nodeName": node, "attacher": "a"}});
        g.set_attachment("/va/csi-1", &va("n1"));
        assert!(g.attaches_to("n1", "csi-1") && !g.attaches_to("n2", "csi-1"));
        assert!(!g.attaches_to("n1", "csi-2"));
        g.set_attachment("/va/csi-1", &va("n2"));
        assert!(!g.attaches_to("n1", "csi-1") && g.attaches_to("n2", "csi-1"));
        g.remove_attachment("/va/csi-1");
        assert!(!g.attaches_to("n2", "csi-1"));
        g.set_attachment("/va/csi-1", &va(""));
        assert!(g.attachments.is_empty() && g.attachment_names.is_empty(), "an attachment naming no node is no edge");
    }
}
