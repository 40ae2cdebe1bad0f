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
    /// Records the pod stored under `key` (replacing what it contributed before); a pod not
    /// bound to a node contributes nothing.
    pub fn set_pod(&mut self, key: &str, pod: &Value) {
        self.remove_pod(key);
        let Some(refs) = pod_refs(pod) else { return };
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
    let spec = &pod["spec"];
    let node = spec["nodeName"].as_str().filter(|n| !n.is_empty())?;
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut refs = BTreeSet::new();
    let mut add = |kind: Kind, name: Option<&str>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            refs.insert(ObjectRef { kind, namespace: namespace.clone(), name: n.to_string() });
        }
    };
    add(Kind::ServiceAccount, spec["serviceAccountName"].as_str());
    for s in array(&spec["imagePullSecrets"]) {
        add(Kind::Secret, s["name"].as_str());
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in array(&spec[key]) {
            for e in array(&c["envFrom"]) {
                add(Kind::Secret, e["secretRef"]["name"].as_str());
                add(Kind::ConfigMap, e["configMapRef"]["name"].as_str());
            }
            for e in array(&c["env"]) {
                add(Kind::Secret, e["valueFrom"]["secretKeyRef"]["name"].as_str());
                add(Kind::ConfigMap, e["valueFrom"]["configMapKeyRef"]["name"].as_str());
            }
        }
    }
    for v in array(&spec["volumes"]) {
        add(Kind::Secret, v["secret"]["secretName"].as_str());
        add(Kind::ConfigMap, v["configMap"]["name"].as_str());
        add(Kind::Claim, v["persistentVolumeClaim"]["claimName"].as_str());
        if v["ephemeral"].is_object()
            && let Some(vname) = v["name"].as_str()
        {
            add(Kind::Claim, Some(&format!("{name}-{vname}")));
        }
        for source in array(&v["projected"]["sources"]) {
            add(Kind::Secret, source["secret"]["name"].as_str());
            add(Kind::ConfigMap, source["configMap"]["name"].as_str());
        }
        add(Kind::Secret, v["azureFile"]["secretName"].as_str());
        for plugin in ["cephfs", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos", "csi"] {
            add(Kind::Secret, v[plugin]["secretRef"]["name"].as_str());
            add(Kind::Secret, v[plugin]["nodePublishSecretRef"]["name"].as_str());
        }
    }
    for s in array(&pod["status"]["resourceClaimStatuses"]) {
        add(Kind::ResourceClaim, s["resourceClaimName"].as_str());
    }
    Some(PodRefs { node: node.to_string(), namespace, name, refs })
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
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
        assert!(pod_refs(&json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).is_none());
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
