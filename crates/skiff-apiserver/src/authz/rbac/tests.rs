//! Tests of the RBAC index and decisions.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::index::{Builder, Index, Sources};
use super::*;
use crate::authz::ResourceAttributes;
use crate::cache::Entry;

fn entry(kind: &str, ns: &str, name: &str, body: Value, revision: u64) -> Arc<Entry> {
    let mut obj = body;
    obj["metadata"] = json!({"name": name, "namespace": ns});
    Arc::new(Entry {
        key: format!("/registry/rbac.authorization.k8s.io/{kind}/{ns}/{name}"),
        namespace: ns.into(),
        name: name.into(),
        labels: Default::default(),
        fields: vec![],
        json: Bytes::from(serde_json::to_vec(&obj).expect("test value")),
        revision,
    })
}

struct Fixture {
    roles: Vec<Arc<Entry>>,
    cluster_roles: Vec<Arc<Entry>>,
    bindings: Vec<Arc<Entry>>,
    cluster_bindings: Vec<Arc<Entry>>,
}

impl Fixture {
    fn index(&self, b: &mut Builder) -> Index {
        b.build(Sources {
            roles: self.roles.iter().collect(),
            cluster_roles: self.cluster_roles.iter().collect(),
            bindings: self.bindings.iter().collect(),
            cluster_bindings: self.cluster_bindings.iter().collect(),
        })
    }
}

fn fixture() -> Fixture {
    Fixture {
        roles: vec![entry(
            "roles",
            "ns1",
            "pod-reader",
            json!({"rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
            1,
        )],
        cluster_roles: vec![
            entry(
                "clusterroles",
                "",
                "view",
                json!({"rules": [{"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}]}),
                1,
            ),
            entry(
                "clusterroles",
                "",
                "health",
                json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz*"]}]}),
                1,
            ),
        ],
        bindings: vec![
            entry(
                "rolebindings",
                "ns1",
                "alice-reads",
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                       "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "robot", "namespace": "ns1"}]}),
                1,
            ),
            entry(
                "rolebindings",
                "ns2",
                "devs-view",
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                       "subjects": [{"kind": "Group", "name": "devs"}]}),
                1,
            ),
            entry(
                "rolebindings",
                "ns3",
                "dangling",
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
                       "subjects": [{"kind": "User", "name": "alice"}]}),
                1,
            ),
        ],
        cluster_bindings: vec![entry(
            "clusterrolebindings",
            "",
            "all-health",
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "health"},
                   "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
            1,
        )],
    }
}

fn decide(index: &Index, user: UserInfo, verb: &str, ns: &str, resource: &str, path: &str) -> Decision {
    let attrs = Attributes {
        user: Arc::new(user),
        verb: verb.into(),
        resource: (!resource.is_empty()).then(|| ResourceAttributes {
            resource: resource.into(),
            namespace: ns.into(),
            ..Default::default()
        }),
        path: path.into(),
    };
    decide_attrs(index, &attrs)
}

/// The decision of [`Rbac::authorize`] over a given index.
fn decide_attrs(index: &Index, attrs: &Attributes) -> Decision {
    super::decide(index, attrs, false).0
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name.into(), groups.iter().map(|g| g.to_string()).collect())
}

#[test]
fn bindings_grant_by_user_group_and_service_account() {
    let index = fixture().index(&mut Builder::default());
    assert_eq!(decide(&index, user("alice", &[]), "list", "ns1", "pods", ""), Decision::Allow);
    assert_eq!(decide(&index, user("alice", &[]), "list", "ns2", "pods", ""), Decision::NoOpinion(String::new()));
    assert_eq!(decide(&index, user("alice", &[]), "delete", "ns1", "pods", ""), Decision::NoOpinion(String::new()));
    assert_eq!(decide(&index, user("bob", &["devs"]), "get", "ns2", "secrets", ""), Decision::Allow);
    assert_eq!(decide(&index, user("bob", &["devs"]), "get", "", "secrets", ""), Decision::NoOpinion(String::new()));
    let sa = user("system:serviceaccount:ns1:robot", &["system:serviceaccounts", "system:serviceaccounts:ns1"]);
    assert_eq!(decide(&index, sa, "get", "ns1", "pods", ""), Decision::Allow);
    assert_eq!(decide(&index, user("carol", &[]), "get", "", "", "/healthz/etcd"), Decision::Allow);
    assert_eq!(decide(&index, UserInfo::anonymous(), "get", "", "", "/healthz"), Decision::NoOpinion(String::new()));
}

#[test]
fn a_binding_to_a_missing_role_grants_nothing_and_says_so() {
    let index = fixture().index(&mut Builder::default());
    assert_eq!(
        decide(&index, user("alice", &[]), "get", "ns3", "pods", ""),
        Decision::NoOpinion("RBAC: role.rbac.authorization.k8s.io \"x\" not found".into())
    );
    assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
}

#[test]
fn the_builder_reuses_unchanged_objects_and_sees_changes() {
    let mut f = fixture();
    let mut builder = Builder::default();
    let first = f.index(&mut builder);
    let before = first.role("ns1", "pod-reader").expect("test value").clone();
    let again = f.index(&mut builder);
    assert!(
        Arc::ptr_eq(&before, again.role("ns1", "pod-reader").expect("test value")),
        "unchanged roles are not re-parsed"
    );
    f.roles[0] = entry(
        "roles",
        "ns1",
        "pod-reader",
        json!({"rules": [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]}),
        2,
    );
    f.bindings.remove(0);
    let changed = f.index(&mut builder);
    assert_eq!(changed.role("ns1", "pod-reader").expect("test value")[0].verbs, vec!["delete".to_string()]);
    assert_eq!(decide(&changed, user("alice", &[]), "delete", "ns1", "pods", ""), Decision::NoOpinion(String::new()));
}

#[test]
fn a_thousand_bindings_each_grant_only_their_subject() {
    let mut f = fixture();
    for i in 0..1000 {
        f.bindings.push(entry(
            "rolebindings",
            &format!("team{}", i % 50),
            &format!("b{i}"),
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "User", "name": format!("user{i}")}]}),
            1,
        ));
    }
    let index = f.index(&mut Builder::default());
    // Speed is measured by `cargo bench -p skiff-apiserver --bench authz` (BENCHMARKS.md).
    for i in 0..1000 {
        let d = decide(&index, user(&format!("user{i}"), &["g1", "g2"]), "get", &format!("team{}", i % 50), "pods", "");
        assert_eq!(d, Decision::Allow);
        let elsewhere =
            decide(&index, user(&format!("user{i}"), &[]), "get", &format!("team{}", (i + 1) % 50), "pods", "");
        assert_ne!(elsewhere, Decision::Allow, "user{i} is bound only in team{}", i % 50);
    }
}

#[test]
fn allowed_decisions_name_the_granting_binding_as_upstream() {
    let index = fixture().index(&mut Builder::default());
    let explain = |user: UserInfo, verb: &str, ns: &str, resource: &str, path: &str| {
        let attrs = Attributes {
            user: Arc::new(user),
            verb: verb.into(),
            resource: (!resource.is_empty()).then(|| ResourceAttributes {
                resource: resource.into(),
                namespace: ns.into(),
                ..Default::default()
            }),
            path: path.into(),
        };
        super::decide(&index, &attrs, true)
    };
    let alice = UserInfo::new("alice".into(), vec![]);
    assert_eq!(
        explain(alice.clone(), "list", "ns1", "pods", ""),
        (
            Decision::Allow,
            r#"RBAC: allowed by RoleBinding "alice-reads/ns1" of Role "pod-reader" to User "alice""#.into()
        )
    );
    let robot = UserInfo::new("system:serviceaccount:ns1:robot".into(), vec![]);
    assert_eq!(
        explain(robot, "get", "ns1", "pods", "").1,
        r#"RBAC: allowed by RoleBinding "alice-reads/ns1" of Role "pod-reader" to ServiceAccount "robot/ns1""#
    );
    let dev = UserInfo::new("bob".into(), vec!["devs".into()]);
    assert_eq!(
        explain(dev, "get", "ns2", "secrets", "").1,
        r#"RBAC: allowed by RoleBinding "devs-view/ns2" of ClusterRole "view" to Group "devs""#
    );
    assert_eq!(
        explain(alice.clone(), "get", "", "", "/healthz").1,
        r#"RBAC: allowed by ClusterRoleBinding "all-health" of ClusterRole "health" to Group "system:authenticated""#
    );
    // Without `explain` nothing is formatted; denials keep their own reasons.
    let attrs = Attributes {
        user: Arc::new(alice.clone()),
        verb: "list".into(),
        resource: Some(ResourceAttributes { resource: "pods".into(), namespace: "ns1".into(), ..Default::default() }),
        path: String::new(),
    };
    assert_eq!(super::decide(&index, &attrs, false), (Decision::Allow, String::new()));
    assert_eq!(explain(alice, "delete", "ns1", "pods", "").0, Decision::NoOpinion(String::new()));
}

/// The bootstrap policy and skiff's component policy, as the API server installs them.
fn default_policy() -> Fixture {
    let named = |kind: &str, v: Value| {
        let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
        entry(kind, "", &name, v, 1)
    };
    let bootstrap = crate::authz::bootstrap::cluster_roles().into_iter();
    let components = crate::authz::components::cluster_roles().into_iter();
    let bindings = crate::authz::bootstrap::cluster_role_bindings().into_iter();
    let component_bindings = crate::authz::components::cluster_role_bindings().into_iter();
    Fixture {
        roles: vec![],
        cluster_roles: bootstrap.chain(components).map(|v| named("clusterroles", v)).collect(),
        bindings: vec![],
        cluster_bindings: bindings.chain(component_bindings).map(|v| named("clusterrolebindings", v)).collect(),
    }
}

fn csr_subresource(subresource: &str) -> Attributes {
    Attributes {
        user: Arc::new(user("system:node:n1", &["system:nodes", "system:authenticated"])),
        verb: "create".into(),
        resource: Some(ResourceAttributes {
            group: "certificates.k8s.io".into(),
            resource: "certificatesigningrequests".into(),
            subresource: subresource.into(),
            ..Default::default()
        }),
        path: String::new(),
    }
}

#[test]
fn nodes_may_renew_their_own_client_certificates_but_not_request_others() {
    let index = default_policy().index(&mut Builder::default());
    // The approver's SubjectAccessReview for a node renewing itself…
    assert_eq!(decide_attrs(&index, &csr_subresource("selfnodeclient")), Decision::Allow);
    // …and for a node asking a certificate with another node's name (only `nodeclient` applies).
    assert!(matches!(decide_attrs(&index, &csr_subresource("nodeclient")), Decision::NoOpinion(_)));
}
