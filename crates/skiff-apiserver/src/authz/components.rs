//! The RBAC policy skiff's own components need beyond upstream's default roles, as data the
//! bootstrap policy (`authz/bootstrap.rs`) reconciles at start: the controller manager's role
//! (skiff's controllers share one client, where upstream gives each controller its own
//! ServiceAccount and `system:controller:*` role), the cluster DNS server's and the built-in
//! LoadBalancer's, the NetworkPolicy controller's and the Ingress controller's roles, the node
//! agents' local-path volume cleanup, and bindings of the scheduler and the service proxy to
//! upstream's role names.
//!
//! The user names are those of the component certificates the server issues
//! (`crates/skiff/src/identities.rs`). What a node agent may do otherwise is decided by the Node
//! authorizer ([`super::node`]), not by RBAC.

use serde_json::{Value, json};

/// The controller manager's user.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The scheduler's user.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The service proxy's user.
pub const PROXY_USER: &str = "system:kube-proxy";
/// The cluster DNS server's user.
pub const DNS_USER: &str = "system:skiff:dns";
/// The built-in LoadBalancer's user.
pub const SERVICELB_USER: &str = "system:skiff:servicelb";
/// The NetworkPolicy controller's user (one per cluster: every node's controller reads the same).
pub const NETPOL_USER: &str = "system:skiff:netpol";
/// The built-in Ingress controller's user.
pub const INGRESS_USER: &str = "system:skiff:ingress";
/// The skiff role of the controller manager.
pub const CONTROLLER_MANAGER_ROLE: &str = "system:skiff:controller-manager";
/// The skiff role of the cluster DNS server.
pub const DNS_ROLE: &str = "system:skiff:dns";
/// The namespaced role with which the DNS server publishes the `kube-dns` Service.
pub const DNS_PUBLISHER_ROLE: &str = "system:skiff:dns-publisher";
/// The skiff role of the built-in LoadBalancer.
pub const SERVICELB_ROLE: &str = "system:skiff:servicelb";
/// The skiff role of the NetworkPolicy controller (reads policies, pods and namespaces).
pub const NETPOL_ROLE: &str = "system:skiff:netpol";
/// The skiff role of the built-in Ingress controller.
pub const INGRESS_ROLE: &str = "system:skiff:ingress";
/// The skiff role letting node agents clean up local-path PersistentVolumes.
pub const NODE_LOCAL_PATH_ROLE: &str = "system:skiff:node-local-path";

/// The binding that lets every node have its own client-certificate renewals auto-approved.
pub const NODE_AUTOAPPROVE_ROTATION_BINDING: &str = "system:skiff:node-autoapprove-certificate-rotation";
const READ: [&str; 3] = ["get", "list", "watch"];
const EVENT_WRITE: [&str; 3] = ["create", "update", "patch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn meta(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name, None), "rules": rules})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

fn binding(kind: &str, name: &str, namespace: Option<&str>, role_kind: &str, role: &str, subject: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [subject]
    })
}

/// The ClusterRoles of skiff's components.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            CONTROLLER_MANAGER_ROLE,
            vec![
                // The garbage collector and the namespace controller act on every kind (as
                // upstream's generic-garbage-collector and namespace-controller roles); the
                // workload controllers update the status and scale of what they own.
                rule(&["*"], &["*"], &["get", "list", "watch", "update", "patch", "delete", "deletecollection"]),
                // What the controllers create.
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/eviction",
                        "events",
                        "endpoints",
                        "serviceaccounts",
                        "configmaps",
                        "persistentvolumes",
                        "persistentvolumeclaims",
                    ],
                    &["create"],
                ),
                rule(&["apps"], &["replicasets", "controllerrevisions"], &["create"]),
                rule(&["batch"], &["jobs"], &["create"]),
                rule(&["discovery.k8s.io"], &["endpointslices"], &["create"]),
                rule(&["coordination.k8s.io"], &["leases"], &["create"]),
                rule(&["events.k8s.io"], &["events"], &["create"]),
            ],
        ),
        cluster_role(
            DNS_ROLE,
            vec![
                rule(&[""], &["services", "pods", "namespaces"], &READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], &READ),
                // Its slice's owner reference names the Node's UID.
                rule(&[""], &["nodes"], &["get"]),
            ],
        ),
        cluster_role(
            SERVICELB_ROLE,
            vec![
                rule(&[""], &["services", "nodes"], &READ),
                rule(&[""], &["services/status"], &["update", "patch"]),
                rule(&["", "events.k8s.io"], &["events"], &EVENT_WRITE),
            ],
        ),
        cluster_role(
            NETPOL_ROLE,
            vec![
                rule(&[""], &["pods", "namespaces"], &READ),
                rule(&["networking.k8s.io"], &["networkpolicies"], &READ),
            ],
        ),
        cluster_role(
            INGRESS_ROLE,
            vec![
                rule(&[""], &["services", "secrets", "nodes"], &READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], &READ),
                rule(&["networking.k8s.io"], &["ingresses", "ingressclasses"], &READ),
                rule(&["networking.k8s.io"], &["ingressclasses"], &["create"]),
                rule(&["networking.k8s.io"], &["ingresses/status"], &["update", "patch"]),
                rule(&["", "events.k8s.io"], &["events"], &EVENT_WRITE),
            ],
        ),
        cluster_role(
            NODE_LOCAL_PATH_ROLE,
            vec![rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "update", "patch"])],
        ),
    ]
}

/// The ClusterRoleBindings of skiff's components.
pub fn cluster_role_bindings() -> Vec<Value> {
    let crb = |name: &str, role: &str, subject: Value| {
        binding("ClusterRoleBinding", name, None, "ClusterRole", role, subject)
    };
    vec![
        crb(CONTROLLER_MANAGER_ROLE, CONTROLLER_MANAGER_ROLE, user(CONTROLLER_MANAGER_USER)),
        crb("system:skiff:kube-scheduler", "system:kube-scheduler", user(SCHEDULER_USER)),
        crb("system:skiff:volume-scheduler", "system:volume-scheduler", user(SCHEDULER_USER)),
        crb("system:skiff:node-proxier", "system:node-proxier", user(PROXY_USER)),
        crb(DNS_ROLE, DNS_ROLE, user(DNS_USER)),
        crb(SERVICELB_ROLE, SERVICELB_ROLE, user(SERVICELB_USER)),
        crb(NETPOL_ROLE, NETPOL_ROLE, user(NETPOL_USER)),
        crb(INGRESS_ROLE, INGRESS_ROLE, user(INGRESS_USER)),
        crb(NODE_LOCAL_PATH_ROLE, NODE_LOCAL_PATH_ROLE, group(super::node::NODES_GROUP)),
        // Nodes renewing their own client certificates are auto-approved (kubeadm's
        // `kubeadm:node-autoapprove-certificate-rotation`).
        crb(
            NODE_AUTOAPPROVE_ROTATION_BINDING,
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            group(super::node::NODES_GROUP),
        ),
        // The signers, approver and cleaner run in the controller manager (upstream's
        // certificate-controller ServiceAccount).
        crb(
            "system:skiff:certificate-controller",
            "system:controller:certificate-controller",
            user(CONTROLLER_MANAGER_USER),
        ),
    ]
}

/// The namespaced Roles of skiff's components: the DNS server publishes the `kube-dns` Service,
/// its EndpointSlices and its Endpoints in `kube-system` (server-side apply, so `create` too).
pub fn roles() -> Vec<Value> {
    vec![json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(DNS_PUBLISHER_ROLE, Some("kube-system")),
        "rules": [
            rule(&[""], &["services"], &["get", "create", "update", "patch", "delete"]),
            rule(&["discovery.k8s.io"], &["endpointslices"], &["get", "create", "update", "patch", "delete"]),
            rule(&[""], &["endpoints"], &["get", "list", "watch", "create", "update", "patch"]),
        ]
    })]
}

/// The RoleBindings of [`roles`].
pub fn role_bindings() -> Vec<Value> {
    vec![binding("RoleBinding", DNS_PUBLISHER_ROLE, Some("kube-system"), "Role", DNS_PUBLISHER_ROLE, user(DNS_USER))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_role_defined_here_or_upstream() {
        let ours: Vec<String> =
            cluster_roles().iter().map(|r| r["metadata"]["name"].as_str().unwrap_or("").into()).collect();
        let upstream = [
            "system:kube-scheduler",
            "system:volume-scheduler",
            "system:node-proxier",
            "system:controller:certificate-controller",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        ];
        for b in cluster_role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            assert!(ours.iter().any(|r| r == role) || upstream.contains(&role), "{role} is undefined");
            assert_eq!(b["subjects"].as_array().map(Vec::len), Some(1));
        }
        let roles: Vec<&str> = vec![DNS_PUBLISHER_ROLE];
        for b in role_bindings() {
            assert!(roles.contains(&b["roleRef"]["name"].as_str().unwrap_or("")));
            assert_eq!(b["metadata"]["namespace"], "kube-system");
        }
    }

    #[test]
    fn the_controller_manager_may_act_on_every_kind() {
        let roles = cluster_roles();
        let cm = roles.iter().find(|r| r["metadata"]["name"] == CONTROLLER_MANAGER_ROLE).expect("role");
        let first = &cm["rules"][0];
        assert_eq!(first["apiGroups"], json!(["*"]));
        assert_eq!(first["resources"], json!(["*"]));
        assert!(first["verbs"].as_array().is_some_and(|v| v.contains(&json!("delete"))));
    }
}
