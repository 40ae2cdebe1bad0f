//! Decisions of the Node authorizer over a fixed graph.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::authn::UserInfo;

fn node_user(name: &str) -> UserInfo {
    UserInfo::new(format!("system:node:{name}"), vec![NODES_GROUP.into()])
}

fn ask(a: &NodeAuthorizer, user: UserInfo, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Decision {
    ask_selecting(a, user, verb, group, resource, ns, name, "")
}

/// `ask` for a request with field selector `fields`.
#[allow(clippy::too_many_arguments)]
fn ask_selecting(
    a: &NodeAuthorizer,
    user: UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: &str,
    name: &str,
    fields: &str,
) -> Decision {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let r = ResourceAttributes {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: ns.into(),
        name: name.into(),
        field_selector: crate::authz::selectors::FieldSelector::parse(fields),
        ..Default::default()
    };
    a.authorize(&Attributes { user: Arc::new(user), verb: verb.into(), resource: Some(r), path: String::new() })
}

fn authorizer() -> NodeAuthorizer {
    let mut g = Graph::default();
    let pod = json!({
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "sa",
            "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "mounted"}},
                        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
        }
    });
    g.set_pod("/registry/core/pods/ns/web", &pod);
    g.set_pod(
        "/registry/core/pods/ns/elsewhere",
        &json!({"metadata": {"namespace": "ns", "name": "elsewhere"}, "spec": {"nodeName": "n2"}}),
    );
    g.set_attachment(
        "/registry/storage.k8s.io/volumeattachments/csi-n1",
        &json!({"metadata": {"name": "csi-n1"}, "spec": {"nodeName": "n1", "attacher": "x"}}),
    );
    g.set_claim(
        "/registry/core/persistentvolumeclaims/ns/data",
        &json!({"metadata": {"namespace": "ns", "name": "data"}, "spec": {"volumeName": "pv1"}}),
    );
    NodeAuthorizer::with_graph(g)
}

fn denied(d: Decision) -> String {
    match d {
        Decision::Deny(why) => why,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn node_identity_needs_prefix_and_group() {
    assert_eq!(node_identity(&node_user("n1")), Some("n1"));
    assert_eq!(node_identity(&UserInfo::new("system:node:n1".into(), vec![])), None);
    assert_eq!(node_identity(&UserInfo::new("bob".into(), vec![NODES_GROUP.into()])), None);
    let a = authorizer();
    let bob = UserInfo::new("bob".into(), vec![]);
    assert_eq!(ask(&a, bob, "get", "", "secrets", "ns", "mounted"), Decision::NoOpinion(String::new()));
    let unnamed = UserInfo::new("system:node:".into(), vec![NODES_GROUP.into()]);
    assert_eq!(
        ask(&a, unnamed, "get", "", "secrets", "ns", "mounted"),
        Decision::NoOpinion("unknown node for user \"system:node:\"".into())
    );
}

#[test]
fn secrets_and_configmaps_only_of_its_pods() {
    let a = authorizer();
    let n1 = || node_user("n1");
    assert_eq!(ask(&a, n1(), "get", "", "secrets", "ns", "mounted"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "watch", "", "secrets", "ns", "mounted"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "list", "", "configmaps", "ns", "cm"), Decision::Allow);
    assert_eq!(
        denied(ask(&a, n1(), "get", "", "secrets", "ns", "other")),
        "no relationship found between node 'n1' and this object"
    );
    assert_eq!(
        denied(ask(&a, node_user("n2"), "get", "", "secrets", "ns", "mounted")),
        "no relationship found between node 'n2' and this object"
    );
    assert_eq!(
        denied(ask(&a, n1(), "list", "", "secrets", "ns", "")),
        "can only get individual resources of this type"
    );
    assert_eq!(denied(ask(&a, n1(), "update", "", "secrets", "ns", "mounted")), "can only read resources of this type");
}

#[test]
fn claims_volumes_and_tokens_follow_the_graph() {
    let a = authorizer();
    let n1 = || node_user("n1");
    assert_eq!(ask(&a, n1(), "get", "", "persistentvolumeclaims", "ns", "data"), Decision::Allow);
    assert!(matches!(ask(&a, n1(), "get", "", "persistentvolumeclaims", "ns", "x"), Decision::Deny(_)));
    assert_eq!(ask(&a, n1(), "patch", "", "persistentvolumeclaims/status", "ns", "data"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "get", "", "persistentvolumes", "", "pv1"), Decision::Allow);
    assert!(matches!(ask(&a, node_user("n2"), "get", "", "persistentvolumes", "", "pv1"), Decision::NoOpinion(_)));
    assert!(matches!(ask(&a, n1(), "list", "", "persistentvolumes", "", ""), Decision::NoOpinion(_)));
    assert_eq!(ask(&a, n1(), "create", "", "serviceaccounts/token", "ns", "sa"), Decision::Allow);
    assert!(matches!(ask(&a, n1(), "create", "", "serviceaccounts/token", "ns", "other"), Decision::Deny(_)));
    assert!(matches!(ask(&a, n1(), "get", "", "serviceaccounts", "ns", "sa"), Decision::NoOpinion(_)));
}

#[test]
fn own_node_lease_and_static_rules() {
    let a = authorizer();
    let n1 = || node_user("n1");
    assert_eq!(ask(&a, n1(), "get", "", "nodes", "", "n1"), Decision::Allow);
    assert_eq!(
        denied(ask(&a, n1(), "get", "", "nodes", "", "n2")),
        "node 'n1' cannot read 'n2', only its own Node object"
    );
    assert_eq!(ask(&a, n1(), "patch", "", "nodes", "", "n2"), Decision::Allow, "NodeRestriction narrows writes");
    assert_eq!(ask(&a, n1(), "patch", "", "nodes/status", "", "n1"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "patch", "coordination.k8s.io", "leases", NODE_LEASE_NAMESPACE, "n1"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "create", "coordination.k8s.io", "leases", NODE_LEASE_NAMESPACE, ""), Decision::Allow);
    assert_eq!(
        denied(ask(&a, n1(), "update", "coordination.k8s.io", "leases", NODE_LEASE_NAMESPACE, "n2")),
        "can only access node lease with the same name as the requesting node"
    );
    assert_eq!(
        denied(ask(&a, n1(), "get", "coordination.k8s.io", "leases", "kube-system", "n1")),
        "can only access leases in the \"kube-node-lease\" system namespace"
    );
    assert_eq!(ask(&a, n1(), "create", "", "events", "ns", ""), Decision::Allow);
    assert_eq!(ask(&a, n1(), "list", "", "services", "", ""), Decision::Allow);
    assert_eq!(ask(&a, n1(), "delete", "", "nodes", "", "n1"), Decision::NoOpinion(String::new()));
    assert_eq!(ask(&a, n1(), "create", "apps", "deployments", "ns", ""), Decision::NoOpinion(String::new()));
}

#[test]
fn pod_reads_are_narrowed_to_the_node() {
    let a = authorizer();
    let n1 = || node_user("n1");
    let selecting = |verb: &str, ns: &str, fields: &str| ask_selecting(&a, n1(), verb, "", "pods", ns, "", fields);
    assert_eq!(selecting("list", "", "spec.nodeName=n1"), Decision::Allow);
    assert_eq!(selecting("watch", "ns", "status.phase!=Failed,spec.nodeName==n1"), Decision::Allow);
    let refused = "can only list/watch pods with spec.nodeName field selector";
    assert_eq!(denied(selecting("list", "", "")), refused);
    assert_eq!(denied(selecting("watch", "", "spec.nodeName=n2")), refused);
    assert_eq!(denied(selecting("list", "", "spec.nodeName!=n1")), refused);
    assert_eq!(denied(selecting("list", "ns", "spec.nodeName")), refused, "an unparsable selector narrows nothing");
    assert_eq!(ask(&a, n1(), "get", "", "pods", "ns", "web"), Decision::Allow);
    assert_eq!(
        denied(ask(&a, n1(), "get", "", "pods", "ns", "elsewhere")),
        "no relationship found between node 'n1' and this object"
    );
    assert_eq!(
        denied(ask(&a, n1(), "get", "", "pods", "ns", "missing")),
        "no relationship found between node 'n1' and this object"
    );
    // A list narrowed to one bound pod by `metadata.name` is authorized as a get of it.
    assert_eq!(ask(&a, n1(), "watch", "", "pods", "ns", "web"), Decision::Allow);
    assert!(matches!(ask(&a, n1(), "watch", "", "pods", "ns", "elsewhere"), Decision::Deny(_)));
}

#[test]
fn pod_writes_are_left_to_node_restriction() {
    let a = authorizer();
    let n1 = || node_user("n1");
    assert_eq!(ask(&a, n1(), "create", "", "pods", "ns", ""), Decision::Allow);
    assert_eq!(ask(&a, n1(), "delete", "", "pods", "ns", "elsewhere"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "patch", "", "pods/status", "ns", "web"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "create", "", "pods/eviction", "ns", "web"), Decision::Allow);
    assert_eq!(ask(&a, n1(), "update", "", "pods", "ns", "web"), Decision::NoOpinion(String::new()));
    assert_eq!(ask(&a, n1(), "get", "", "pods/log", "ns", "web"), Decision::NoOpinion(String::new()));
    assert_eq!(ask(&a, n1(), "deletecollection", "", "pods", "ns", ""), Decision::NoOpinion(String::new()));
}

#[test]
fn volume_attachments_only_of_the_node() {
    let a = authorizer();
    assert_eq!(ask(&a, node_user("n1"), "get", "storage.k8s.io", "volumeattachments", "", "csi-n1"), Decision::Allow);
    assert_eq!(
        denied(ask(&a, node_user("n2"), "get", "storage.k8s.io", "volumeattachments", "", "csi-n1")),
        "no relationship found between node 'n2' and this object"
    );
    assert_eq!(
        denied(ask(&a, node_user("n1"), "list", "storage.k8s.io", "volumeattachments", "", "")),
        "can only get individual resources of this type"
    );
}
