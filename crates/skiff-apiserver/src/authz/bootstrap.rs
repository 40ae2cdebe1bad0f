//! The default RBAC policy (upstream `bootstrappolicy`): the ClusterRoles and
//! ClusterRoleBindings every cluster has (cluster-admin, admin/edit/view and their
//! `aggregate-to-*` parts, the `system:*` component roles, the `system:controller:*` roles) and
//! the Roles and RoleBindings of `kube-system` and `kube-public`.
//!
//! The policy is data ([`cluster_roles`], [`cluster_role_bindings`], [`roles`],
//! [`role_bindings`]); [`reconcile`] writes it at every start as upstream does: missing objects
//! are created, objects annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` are left
//! alone, the others get missing rules, aggregation selectors, labels, annotations and subjects
//! added (nothing is removed); a binding whose `roleRef` changed is recreated.
//! The aggregation of `aggregationRule` roles is [`crate::authz::aggregation`]'s job.

use serde_json::{Map, Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;

use super::rbac::escalation::covers;
use super::rbac::rules::{Rule, rule, url_rule};
use crate::handlers::{Admission, Ctx, DeleteOptions, Part, create_object, delete_object, update_object};
use crate::reqinfo::Verb;
use crate::state::ApiState;

/// The annotation that lets reconciliation update an object (`"false"` protects it).
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label of every default policy object.
const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const EVENTS: &[&str] = &["create", "update", "patch"];

fn metadata(name: &str, namespace: Option<&str>, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = Map::new();
    labels.insert(BOOTSTRAP_LABEL.0.into(), json!(BOOTSTRAP_LABEL.1));
    for (k, v) in extra_labels {
        labels.insert(k.to_string(), json!(v));
    }
    let mut m = json!({"name": name, "labels": labels, "annotations": {AUTOUPDATE_ANNOTATION: "true"}});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn role_value(kind: &str, name: &str, namespace: Option<&str>, labels: &[(&str, &str)], rules: Vec<Rule>) -> Value {
    json!({"apiVersion": API_VERSION, "kind": kind, "metadata": metadata(name, namespace, labels), "rules": rules})
}

fn cluster_role(name: &str, rules: Vec<Rule>) -> Value {
    role_value("ClusterRole", name, None, &[], rules)
}

fn aggregate(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    let mut v = role_value("ClusterRole", name, None, labels, vec![]);
    v["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]});
    v
}

/// A binding subject.
fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}
fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}
fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn binding(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    role_kind: &str,
    role: &str,
    subjects: Vec<Value>,
) -> Value {
    let mut v = json!({"apiVersion": API_VERSION, "kind": kind, "metadata": metadata(name, namespace, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}});
    if !subjects.is_empty() {
        v["subjects"] = json!(subjects);
    }
    v
}

fn cluster_binding(role: &str, subjects: Vec<Value>) -> Value {
    binding("ClusterRoleBinding", role, None, "ClusterRole", role, subjects)
}

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    rule(verbs, groups, resources)
}

fn event_rules() -> Vec<Rule> {
    vec![r(EVENTS, &["", "events.k8s.io"], &["events"])]
}

/// The rules of `system:aggregate-to-view`.
fn view_rules() -> Vec<Rule> {
    vec![
        r(
            READ,
            &[""],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        r(
            READ,
            &[""],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        r(READ, &[""], &["namespaces"]),
        r(READ, &["discovery.k8s.io"], &["endpointslices"]),
        r(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        r(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        r(READ, &["batch"], &["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
        r(
            READ,
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        r(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        r(READ, &["networking.k8s.io"], &["networkpolicies", "ingresses", "ingresses/status"]),
    ]
}

/// The rules of `system:aggregate-to-edit`.
fn edit_rules() -> Vec<Rule> {
    vec![
        r(&["impersonate"], &[""], &["serviceaccounts"]),
        r(WRITE, &[""], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        r(&["create"], &[""], &["pods/eviction"]),
        r(
            WRITE,
            &[""],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        r(&["create"], &[""], &["serviceaccounts/token"]),
        r(
            WRITE,
            &["apps"],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        r(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        r(WRITE, &["batch"], &["jobs", "cronjobs"]),
        r(
            WRITE,
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        r(WRITE, &["policy"], &["poddisruptionbudgets"]),
        r(WRITE, &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
        r(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
        r(READ, &[""], &["secrets", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "services/proxy"]),
    ]
}

/// The rules of `system:aggregate-to-admin`.
fn admin_rules() -> Vec<Rule> {
    vec![
        r(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        r(READ_WRITE, &["rbac.authorization.k8s.io"], &["rolebindings", "roles"]),
    ]
}

fn node_rules() -> Vec<Rule> {
    vec![
        r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        r(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews", "localsubjectaccessreviews"]),
        r(&["get", "list", "watch"], &[""], &["services"]),
        r(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        r(&["update", "patch"], &[""], &["nodes/status"]),
        r(&["update", "patch"], &[""], &["nodes"]),
        r(EVENTS, &["", "events.k8s.io"], &["events"]),
        r(&["get", "list", "watch"], &[""], &["pods"]),
        r(&["create", "delete"], &[""], &["pods"]),
        r(&["update", "patch"], &[""], &["pods/status"]),
        r(&["create"], &[""], &["pods/eviction"]),
        r(&["get"], &[""], &["configmaps", "secrets"]),
        r(&["get"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        r(&["get"], &[""], &["endpoints"]),
        r(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        r(&["get", "create", "update", "patch", "delete"], &["coordination.k8s.io"], &["leases"]),
        r(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        r(&["create"], &[""], &["serviceaccounts/token"]),
        r(&["update", "patch"], &[""], &["persistentvolumeclaims/status"]),
        r(&["get"], &["storage.k8s.io"], &["csidrivers"]),
        r(&["get", "create", "update", "patch", "delete"], &["storage.k8s.io"], &["csinodes"]),
        r(&["get", "list", "watch"], &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

fn scheduler_rules() -> Vec<Rule> {
    let mut rules = event_rules();
    rules.extend([
        r(&["create"], &["coordination.k8s.io"], &["leases"]),
        r(&["get", "update"], &["coordination.k8s.io"], &["leases"]).names(&["kube-scheduler"]),
        r(&["create"], &[""], &["endpoints"]),
        r(&["get", "update"], &[""], &["endpoints"]).names(&["kube-scheduler"]),
        r(READ, &[""], &["nodes"]),
        r(&["get", "list", "watch", "delete"], &[""], &["pods"]),
        r(&["create"], &[""], &["pods/binding", "bindings"]),
        r(&["patch", "update"], &[""], &["pods/status"]),
        r(READ, &[""], &["replicationcontrollers", "services"]),
        r(READ, &["apps", "extensions"], &["replicasets"]),
        r(READ, &["apps"], &["statefulsets"]),
        r(READ, &["policy"], &["poddisruptionbudgets"]),
        r(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        r(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        r(READ, &["storage.k8s.io"], &["csinodes"]),
        r(READ, &[""], &["namespaces"]),
        r(READ, &["storage.k8s.io"], &["csidrivers", "csistoragecapacities"]),
    ]);
    rules
}

fn controller_manager_rules() -> Vec<Rule> {
    let mut rules = event_rules();
    rules.extend([
        r(&["create"], &["coordination.k8s.io"], &["leases"]),
        r(&["get", "update"], &["coordination.k8s.io"], &["leases"]).names(&["kube-controller-manager"]),
        r(&["create"], &[""], &["secrets", "serviceaccounts"]),
        r(&["delete"], &[""], &["secrets"]),
        r(&["get"], &[""], &["configmaps", "namespaces", "secrets", "serviceaccounts"]),
        r(&["update"], &[""], &["secrets", "serviceaccounts"]),
        r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        r(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        r(&["list", "watch"], &["*"], &["*"]),
        r(&["create"], &[""], &["serviceaccounts/token"]),
    ]);
    rules
}

/// One `system:controller:<name>` role with its rules.
fn controller_roles() -> Vec<(&'static str, Vec<Rule>)> {
    let with_events = |mut rules: Vec<Rule>| {
        rules.push(r(EVENTS, &["", "events.k8s.io"], &["events"]));
        rules
    };
    vec![
        (
            "attachdetach-controller",
            with_events(vec![
                r(&["list", "watch"], &[""], &["persistentvolumes", "persistentvolumeclaims"]),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["list", "watch"], &[""], &["pods"]),
                r(&["get", "create", "delete", "list", "watch"], &["storage.k8s.io"], &["volumeattachments"]),
                r(&["get", "list", "watch"], &["storage.k8s.io"], &["csidrivers", "csinodes"]),
            ]),
        ),
        (
            "clusterrole-aggregation-controller",
            vec![r(
                &["escalate", "get", "list", "watch", "update", "patch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
        (
            "cronjob-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update"], &["batch"], &["cronjobs"]),
                r(&["get", "list", "watch", "create", "update", "delete", "patch"], &["batch"], &["jobs"]),
                r(&["update"], &["batch"], &["cronjobs/status"]),
                r(&["update"], &["batch"], &["cronjobs/finalizers"]),
                r(&["list", "watch", "delete"], &[""], &["pods"]),
            ]),
        ),
        (
            "daemon-set-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &["apps", "extensions"], &["daemonsets"]),
                r(&["update"], &["apps", "extensions"], &["daemonsets/status"]),
                r(&["update"], &["apps", "extensions"], &["daemonsets/finalizers"]),
                r(&["list", "watch"], &[""], &["nodes"]),
                r(&["list", "watch", "create", "delete", "patch"], &[""], &["pods"]),
                r(&["create"], &[""], &["pods/binding"]),
                r(
                    &["get", "list", "watch", "create", "delete", "update", "patch"],
                    &["apps"],
                    &["controllerrevisions"],
                ),
            ]),
        ),
        (
            "deployment-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update"], &["apps", "extensions"], &["deployments"]),
                r(&["update"], &["apps", "extensions"], &["deployments/status"]),
                r(&["update"], &["apps", "extensions"], &["deployments/finalizers"]),
                r(
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                r(&["get", "list", "watch", "update"], &[""], &["pods"]),
            ]),
        ),
        (
            "disruption-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &["apps", "extensions"], &["deployments", "replicasets"]),
                r(&["get", "list", "watch"], &[""], &["replicationcontrollers"]),
                r(&["get", "list", "watch"], &["policy"], &["poddisruptionbudgets"]),
                r(&["get", "list", "watch"], &["apps"], &["statefulsets"]),
                r(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                r(&["get"], &["*"], &["*/scale"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
            ]),
        ),
        (
            "endpoint-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &[""], &["services", "pods"]),
                r(&["get", "list", "watch", "create", "update", "delete"], &[""], &["endpoints"]),
                r(&["create"], &[""], &["endpoints/restricted"]),
            ]),
        ),
        (
            "endpointslice-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &[""], &["services", "pods", "nodes"]),
                r(&["update"], &[""], &["services/finalizers"]),
                r(&["get", "list", "watch", "create", "update", "delete"], &["discovery.k8s.io"], &["endpointslices"]),
            ]),
        ),
        (
            "endpointslicemirroring-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &[""], &["services", "endpoints"]),
                r(&["update"], &[""], &["services/finalizers"]),
                r(&["update"], &[""], &["endpoints/finalizers"]),
                r(&["get", "list", "watch", "create", "update", "delete"], &["discovery.k8s.io"], &["endpointslices"]),
            ]),
        ),
        (
            "ephemeral-volume-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &[""], &["pods"]),
                r(&["update"], &[""], &["pods/finalizers"]),
                r(&["get", "list", "watch", "create"], &[""], &["persistentvolumeclaims"]),
            ]),
        ),
        (
            "expand-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update", "patch"], &[""], &["persistentvolumes"]),
                r(&["update", "patch"], &[""], &["persistentvolumeclaims/status"]),
                r(&["get", "list", "watch"], &[""], &["persistentvolumeclaims"]),
                r(&["get"], &[""], &["services"]),
            ]),
        ),
        (
            "generic-garbage-collector",
            with_events(vec![r(&["get", "list", "watch", "patch", "update", "delete"], &["*"], &["*"])]),
        ),
        (
            "horizontal-pod-autoscaler",
            with_events(vec![
                r(&["get", "list", "watch"], &["autoscaling"], &["horizontalpodautoscalers"]),
                r(&["update"], &["autoscaling"], &["horizontalpodautoscalers/status"]),
                r(&["get", "update"], &["*"], &["*/scale"]),
                r(&["list", "watch"], &[""], &["pods"]),
                r(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                r(READ, &["custom.metrics.k8s.io", "external.metrics.k8s.io"], &["*"]),
            ]),
        ),
        (
            "job-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update", "patch"], &["batch"], &["jobs"]),
                r(&["update"], &["batch"], &["jobs/status"]),
                r(&["update"], &["batch"], &["jobs/finalizers"]),
                r(&["list", "watch", "create", "delete", "patch"], &[""], &["pods"]),
            ]),
        ),
        (
            "namespace-controller",
            vec![
                r(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                r(&["update"], &[""], &["namespaces/finalize", "namespaces/status"]),
                r(&["get", "list", "watch", "delete", "deletecollection"], &["*"], &["*"]),
            ],
        ),
        (
            "node-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update", "delete", "patch"], &[""], &["nodes"]),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(&["list", "watch", "get", "delete"], &[""], &["pods"]),
            ]),
        ),
        (
            "persistent-volume-binder",
            with_events(vec![
                r(&["get", "list", "watch", "update", "create", "delete"], &[""], &["persistentvolumes"]),
                r(&["update"], &[""], &["persistentvolumes/status"]),
                r(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims"]),
                r(&["update"], &[""], &["persistentvolumeclaims/status"]),
                r(&["get", "list", "watch", "create", "delete"], &[""], &["pods"]),
                r(&["get", "list", "watch"], &["storage.k8s.io"], &["storageclasses"]),
                r(&["list", "watch"], &[""], &["nodes"]),
                r(&["watch"], &[""], &["events"]),
                r(&["get"], &[""], &["services"]),
            ]),
        ),
        (
            "pod-garbage-collector",
            vec![
                r(&["list", "watch", "delete"], &[""], &["pods"]),
                r(READ, &[""], &["nodes"]),
                r(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "pv-protection-controller",
            with_events(vec![r(&["get", "list", "watch", "update"], &[""], &["persistentvolumes"])]),
        ),
        (
            "pvc-protection-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims"]),
                r(&["list", "watch", "get"], &[""], &["pods"]),
            ]),
        ),
        (
            "replicaset-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update"], &["apps", "extensions"], &["replicasets"]),
                r(&["update"], &["apps", "extensions"], &["replicasets/status"]),
                r(&["update"], &["apps", "extensions"], &["replicasets/finalizers"]),
                r(&["list", "watch", "patch", "create", "delete"], &[""], &["pods"]),
            ]),
        ),
        (
            "replication-controller",
            with_events(vec![
                r(&["get", "list", "watch", "update"], &[""], &["replicationcontrollers"]),
                r(&["update"], &[""], &["replicationcontrollers/status"]),
                r(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                r(&["list", "watch", "patch", "create", "delete"], &[""], &["pods"]),
            ]),
        ),
        (
            "resourcequota-controller",
            with_events(vec![r(&["list", "watch"], &["*"], &["*"]), r(&["update"], &[""], &["resourcequotas/status"])]),
        ),
        ("root-ca-cert-publisher", with_events(vec![r(&["create", "update"], &[""], &["configmaps"])])),
        (
            "route-controller",
            with_events(vec![r(&["list", "watch"], &[""], &["nodes"]), r(&["patch"], &[""], &["nodes/status"])]),
        ),
        ("service-account-controller", with_events(vec![r(&["create"], &[""], &["serviceaccounts"])])),
        (
            "service-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &[""], &["services"]),
                r(&["patch", "update"], &[""], &["services/status"]),
                r(&["list", "watch"], &[""], &["nodes"]),
            ]),
        ),
        (
            "statefulset-controller",
            with_events(vec![
                r(&["list", "watch"], &[""], &["pods"]),
                r(&["get", "list", "watch"], &["apps"], &["statefulsets"]),
                r(&["update"], &["apps"], &["statefulsets/status"]),
                r(&["update"], &["apps"], &["statefulsets/finalizers"]),
                r(&["get", "create", "delete", "update", "patch"], &[""], &["pods"]),
                r(
                    &["get", "create", "delete", "update", "patch", "list", "watch"],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                r(&["get", "create", "list", "watch"], &[""], &["persistentvolumeclaims"]),
                r(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
                r(&["update"], &[""], &["pods/finalizers"]),
            ]),
        ),
        ("ttl-controller", with_events(vec![r(&["update", "patch", "list", "watch"], &[""], &["nodes"])])),
        (
            "certificate-controller",
            with_events(vec![
                r(&["get", "list", "watch", "delete"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
                r(
                    &["update"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests/status", "certificatesigningrequests/approval"],
                ),
                r(&["approve"], &["certificates.k8s.io"], &["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client-kubelet"]),
                r(&["sign"], &["certificates.k8s.io"], &["signers"]).names(&[
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                    "kubernetes.io/legacy-unknown",
                ]),
                r(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            ]),
        ),
        (
            "ttl-after-finished-controller",
            with_events(vec![r(&["get", "list", "watch", "delete"], &["batch"], &["jobs"])]),
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                r(&["get"], &[""], &["configmaps"]).names(&["kube-apiserver-legacy-service-account-token-tracking"]),
                r(&["patch", "delete"], &[""], &["secrets"]),
            ],
        ),
        (
            "validatingadmissionpolicy-status-controller",
            with_events(vec![
                r(&["get", "list", "watch"], &["admissionregistration.k8s.io"], &["validatingadmissionpolicies"]),
                r(
                    &["get", "patch", "update"],
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies/status"],
                ),
            ]),
        ),
    ]
}

fn approver(name: &str, signer: &str) -> Value {
    cluster_role(name, vec![r(&["approve"], &["certificates.k8s.io"], &["signers"]).names(&[signer])])
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let health = ["/livez", "/readyz", "/healthz", "/version", "/version/"];
    let mut roles = vec![
        cluster_role("cluster-admin", vec![r(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])]),
        cluster_role(
            "system:discovery",
            vec![url_rule(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![url_rule(
                &["get"],
                &["/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                r(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
                r(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            ],
        ),
        cluster_role("system:public-info-viewer", vec![url_rule(&["get"], &health)]),
        aggregate("admin", &[], AGG_ADMIN),
        aggregate("edit", &[(AGG_ADMIN, "true")], AGG_EDIT),
        aggregate("view", &[(AGG_EDIT, "true")], AGG_VIEW),
        role_value("ClusterRole", "system:aggregate-to-admin", None, &[(AGG_ADMIN, "true")], admin_rules()),
        role_value("ClusterRole", "system:aggregate-to-edit", None, &[(AGG_EDIT, "true")], edit_rules()),
        role_value("ClusterRole", "system:aggregate-to-view", None, &[(AGG_VIEW, "true")], view_rules()),
        // metrics-server's reader role, aggregated into view, edit and admin.
        role_value(
            "ClusterRole",
            "system:aggregated-metrics-reader",
            None,
            &[(AGG_VIEW, "true"), (AGG_EDIT, "true"), (AGG_ADMIN, "true")],
            vec![r(READ, &["metrics.k8s.io"], &["pods", "nodes"])],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                r(&["list", "watch"], &[""], &["services", "endpoints"]),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                r(EVENTS, &["", "events.k8s.io"], &["events"]),
                r(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
        cluster_role("system:kube-dns", vec![r(&["list", "watch"], &[""], &["endpoints", "services"])]),
        cluster_role("system:kube-aggregator", vec![r(READ, &[""], &["services", "endpoints"])]),
        cluster_role(
            "system:node-problem-detector",
            vec![
                r(&["get"], &[""], &["nodes"]),
                r(&["patch"], &[""], &["nodes/status"]),
                r(EVENTS, &["", "events.k8s.io"], &["events"]),
            ],
        ),
        cluster_role("system:kube-scheduler", scheduler_rules()),
        cluster_role("system:kube-controller-manager", controller_manager_rules()),
        cluster_role(
            "system:volume-scheduler",
            vec![
                r(&["get", "list", "patch", "update", "watch"], &[""], &["persistentvolumes"]),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(&["get", "list", "patch", "update", "watch"], &[""], &["persistentvolumeclaims"]),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            vec![
                r(&["get", "list", "watch", "create", "delete"], &[""], &["persistentvolumes"]),
                r(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims"]),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(&["watch", "create", "update", "patch"], &["", "events.k8s.io"], &["events"]),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                r(&["get", "list", "watch", "proxy"], &[""], &["nodes"]),
                r(&["*"], &[""], &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"]),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![r(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"])],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![url_rule(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![r(&["create"], &["certificates.k8s.io"], &["certificatesigningrequests/nodeclient"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![r(&["create"], &["certificates.k8s.io"], &["certificatesigningrequests/selfnodeclient"])],
        ),
        approver("system:certificates.k8s.io:kube-apiserver-client-approver", "kubernetes.io/kube-apiserver-client"),
        approver(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            "kubernetes.io/kube-apiserver-client-kubelet",
        ),
        approver("system:certificates.k8s.io:kubelet-serving-approver", "kubernetes.io/kubelet-serving"),
        approver("system:certificates.k8s.io:legacy-unknown-approver", "kubernetes.io/legacy-unknown"),
    ];
    for (name, rules) in controller_roles() {
        roles.push(cluster_role(&format!("system:controller:{name}"), rules));
    }
    roles.extend(super::components::cluster_roles());
    roles
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut bindings = vec![
        cluster_binding("cluster-admin", vec![group("system:masters")]),
        cluster_binding("system:monitoring", vec![group("system:monitoring")]),
        cluster_binding("system:discovery", vec![group("system:authenticated")]),
        cluster_binding("system:basic-user", vec![group("system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            vec![group("system:authenticated"), group("system:unauthenticated")],
        ),
        cluster_binding("system:node-proxier", vec![user("system:kube-proxy")]),
        cluster_binding("system:kube-controller-manager", vec![user("system:kube-controller-manager")]),
        cluster_binding("system:kube-dns", vec![service_account("kube-system", "kube-dns")]),
        cluster_binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:volume-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:node", vec![]),
        cluster_binding("system:service-account-issuer-discovery", vec![group("system:serviceaccounts")]),
    ];
    for (name, _) in controller_roles() {
        let role = format!("system:controller:{name}");
        bindings.push(cluster_binding(&role, vec![service_account("kube-system", name)]));
    }
    bindings.extend(super::components::cluster_role_bindings());
    bindings
}

/// The default Roles of `kube-system` and `kube-public`.
pub fn roles() -> Vec<Value> {
    let ks = Some("kube-system");
    vec![
        role_value(
            "Role",
            "extension-apiserver-authentication-reader",
            ks,
            &[],
            vec![r(READ, &[""], &["configmaps"]).names(&["extension-apiserver-authentication"])],
        ),
        role_value(
            "Role",
            "system::leader-locking-kube-controller-manager",
            ks,
            &[],
            vec![
                r(&["watch"], &[""], &["configmaps"]),
                r(&["get", "update"], &[""], &["configmaps"]).names(&["kube-controller-manager"]),
            ],
        ),
        role_value(
            "Role",
            "system::leader-locking-kube-scheduler",
            ks,
            &[],
            vec![
                r(&["watch"], &[""], &["configmaps"]),
                r(&["get", "update"], &[""], &["configmaps"]).names(&["kube-scheduler"]),
            ],
        ),
        role_value("Role", "system:controller:bootstrap-signer", ks, &[], vec![r(READ, &[""], &["secrets"])]),
        role_value(
            "Role",
            "system:controller:cloud-provider",
            ks,
            &[],
            vec![r(&["create", "get", "list", "watch"], &[""], &["configmaps"])],
        ),
        role_value(
            "Role",
            "system:controller:token-cleaner",
            ks,
            &[],
            vec![
                r(&["delete", "get", "list", "watch"], &[""], &["secrets"]),
                r(EVENTS, &["", "events.k8s.io"], &["events"]),
            ],
        ),
        role_value(
            "Role",
            "system:controller:bootstrap-signer",
            Some("kube-public"),
            &[],
            vec![
                r(READ, &[""], &["configmaps"]),
                r(&["update"], &[""], &["configmaps"]).names(&["cluster-info"]),
                r(EVENTS, &["", "events.k8s.io"], &["events"]),
            ],
        ),
    ]
    .into_iter()
    .chain(super::components::roles())
    .collect()
}

/// The default RoleBindings of `kube-system` and `kube-public`.
pub fn role_bindings() -> Vec<Value> {
    let ks = Some("kube-system");
    let rb = |name: &str, ns: Option<&str>, role: &str, subjects: Vec<Value>| {
        binding("RoleBinding", name, ns, "Role", role, subjects)
    };
    vec![
        rb(
            "system::extension-apiserver-authentication-reader",
            ks,
            "extension-apiserver-authentication-reader",
            vec![user("system:kube-controller-manager"), user("system:kube-scheduler")],
        ),
        rb(
            "system::leader-locking-kube-controller-manager",
            ks,
            "system::leader-locking-kube-controller-manager",
            vec![service_account("kube-system", "kube-controller-manager"), user("system:kube-controller-manager")],
        ),
        rb(
            "system::leader-locking-kube-scheduler",
            ks,
            "system::leader-locking-kube-scheduler",
            vec![service_account("kube-system", "kube-scheduler"), user("system:kube-scheduler")],
        ),
        rb(
            "system:controller:bootstrap-signer",
            ks,
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
        rb(
            "system:controller:cloud-provider",
            ks,
            "system:controller:cloud-provider",
            vec![service_account("kube-system", "cloud-provider")],
        ),
        rb(
            "system:controller:token-cleaner",
            ks,
            "system:controller:token-cleaner",
            vec![service_account("kube-system", "token-cleaner")],
        ),
        rb(
            "system:controller:bootstrap-signer",
            Some("kube-public"),
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
    ]
    .into_iter()
    .chain(super::components::role_bindings())
    .collect()
}

/// `expected` merged into `existing` as upstream reconciliation does (labels, annotations,
/// missing rules, missing aggregation selectors, missing subjects); `None` when nothing is
/// missing or the object is protected.
pub fn reconciled(existing: &Value, expected: &Value) -> Option<Value> {
    let meta = |v: &Value, f: &str| {
        v.get("metadata").and_then(|m| m.get(f)).and_then(Value::as_object).cloned().unwrap_or_default()
    };
    if meta(existing, "annotations").get(AUTOUPDATE_ANNOTATION).and_then(Value::as_str) == Some("false") {
        return None;
    }
    let mut out = existing.clone();
    for field in ["labels", "annotations"] {
        let mut merged = meta(expected, field);
        merged.extend(meta(existing, field));
        if merged != meta(existing, field) {
            out["metadata"][field] = Value::Object(merged);
        }
    }
    if expected.get("roleRef").is_some() {
        let mut subjects = existing.get("subjects").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut added = false;
        for s in expected.get("subjects").and_then(Value::as_array).into_iter().flatten() {
            let same = |a: &Value| ["kind", "name", "namespace"].iter().all(|k| a.get(*k) == s.get(*k));
            if !subjects.iter().any(same) {
                subjects.push(s.clone());
                added = true;
            }
        }
        if added {
            out["subjects"] = json!(subjects);
        }
    } else {
        let rules_of = |v: &Value| -> Vec<Rule> {
            v.get("rules").and_then(|r| serde_json::from_value(r.clone()).ok()).unwrap_or_default()
        };
        let have = rules_of(existing);
        let want = rules_of(expected);
        if existing.get("aggregationRule").is_none_or(Value::is_null) {
            let missing: Vec<Rule> =
                want.into_iter().filter(|w| !covers(&have, std::slice::from_ref(w)).is_empty()).collect();
            if !missing.is_empty() {
                let mut rules = existing.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
                rules.extend(missing.iter().map(|r| json!(r)));
                out["rules"] = json!(rules);
            }
        }
        if let Some(want) = expected.pointer("/aggregationRule/clusterRoleSelectors").and_then(Value::as_array) {
            let mut selectors = existing
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let before = selectors.len();
            for s in want {
                if !selectors.contains(s) {
                    selectors.push(s.clone());
                }
            }
            if selectors.len() != before {
                out["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
            }
        }
    }
    (out != *existing).then_some(out)
}

async fn ensure(state: &ApiState, plural: &str, expected: Value) -> Result<(), StatusError> {
    let info = catalogue::find("rbac.authorization.k8s.io", "v1", plural)
        .ok_or_else(|| StatusError::internal(format!("{plural} not served")))?;
    let ns = expected.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
    let name = expected.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let ctx = Ctx::internal(info, ns.as_deref(), Verb::Update);
    let Some(kv) = state.store.get(&ctx.key(&name)).await.map_err(StatusError::internal)? else {
        return match create_object(state, &ctx, expected, &mut Admission::internal()).await {
            Err(e) if e.code != 409 => Err(e),
            _ => Ok(()),
        };
    };
    let existing: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
    if expected.get("roleRef").is_some()
        && existing.get("roleRef") != expected.get("roleRef")
        && existing.pointer(&format!("/metadata/annotations/{}", AUTOUPDATE_ANNOTATION.replace('/', "~1")))
            != Some(&json!("false"))
    {
        tracing::info!(binding = %name, "recreating a default binding whose roleRef changed");
        let mut merged = expected.clone();
        if let Some(r) = reconciled(&existing, &expected) {
            merged["subjects"] = r.get("subjects").cloned().unwrap_or(Value::Null);
        }
        delete_object(state, &ctx, &name, &DeleteOptions::default()).await?;
        return create_object(state, &ctx, merged, &mut Admission::internal()).await.map(|_| ());
    }
    if reconciled(&existing, &expected).is_none() {
        return Ok(());
    }
    let change = move |current: &Value| -> Result<Value, StatusError> {
        Ok(reconciled(current, &expected).unwrap_or_else(|| current.clone()))
    };
    update_object(state, &ctx, &name, Part::Main, &mut Admission::internal(), &change).await.map(|_| ())
}

/// Writes the default policy (creates what is missing, reconciles the rest).
pub async fn reconcile(state: &ApiState) -> Result<(), StatusError> {
    for v in cluster_roles() {
        ensure(state, "clusterroles", v).await?;
    }
    for v in cluster_role_bindings() {
        ensure(state, "clusterrolebindings", v).await?;
    }
    for v in roles() {
        ensure(state, "roles", v).await?;
    }
    for v in role_bindings() {
        ensure(state, "rolebindings", v).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_objects_are_well_formed() {
        let all: Vec<Value> =
            [cluster_roles(), cluster_role_bindings(), roles(), role_bindings()].into_iter().flatten().collect();
        for v in &all {
            assert_eq!(v["metadata"]["annotations"][AUTOUPDATE_ANNOTATION], "true", "{v}");
            assert_eq!(v["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
        }
        let roles = cluster_roles();
        let names: Vec<&str> = roles.iter().filter_map(|v| v["metadata"]["name"].as_str()).collect();
        for b in cluster_role_bindings() {
            assert!(names.contains(&b["roleRef"]["name"].as_str().expect("test value")), "{b}");
        }
        for want in
            ["cluster-admin", "admin", "edit", "view", "system:basic-user", "system:controller:deployment-controller"]
        {
            assert!(names.contains(&want), "{want}");
        }
    }

    /// Whether the `system:controller:<controller>` role allows `verbs` on `group`/`resource`.
    fn controller_may(controller: &str, verbs: &[&str], group: &str, resource: &str) -> bool {
        let roles = controller_roles();
        let (_, rules) = roles.iter().find(|(n, _)| *n == controller).expect("a controller role");
        covers(rules, &[r(verbs, &[group], &[resource])]).is_empty()
    }

    #[test]
    fn controller_roles_grant_what_upstreams_grant() {
        let granted: &[(&str, &[&str], &str, &str)] = &[
            ("deployment-controller", &["update"], "apps", "deployments/status"),
            ("deployment-controller", &["create", "update", "patch", "delete"], "apps", "replicasets"),
            ("replicaset-controller", &["update"], "apps", "replicasets/status"),
            ("replicaset-controller", &["create", "delete", "patch"], "", "pods"),
            ("statefulset-controller", &["update"], "apps", "statefulsets/status"),
            ("statefulset-controller", &["list", "watch", "update", "delete"], "", "persistentvolumeclaims"),
            ("daemon-set-controller", &["create"], "", "pods/binding"),
            ("job-controller", &["update"], "batch", "jobs/status"),
            ("cronjob-controller", &["watch", "delete"], "", "pods"),
            ("endpoint-controller", &["watch", "create", "update"], "", "endpoints"),
            (
                "endpointslice-controller",
                &["watch", "create", "update", "delete"],
                "discovery.k8s.io",
                "endpointslices",
            ),
            ("endpointslicemirroring-controller", &["update"], "", "services/finalizers"),
            ("node-controller", &["watch", "get", "delete"], "", "pods"),
            ("namespace-controller", &["watch", "deletecollection"], "apps", "deployments"),
            ("generic-garbage-collector", &["patch", "delete"], "apps", "replicasets"),
            ("horizontal-pod-autoscaler", &["get", "update"], "apps", "deployments/scale"),
            ("horizontal-pod-autoscaler", &["watch"], "metrics.k8s.io", "pods"),
            ("disruption-controller", &["update"], "policy", "poddisruptionbudgets/status"),
            ("pod-garbage-collector", &["watch"], "", "nodes"),
            ("persistent-volume-binder", &["update"], "", "persistentvolumeclaims/status"),
            ("resourcequota-controller", &["update"], "", "resourcequotas/status"),
            ("validatingadmissionpolicy-status-controller", &["create"], "events.k8s.io", "events"),
        ];
        for (controller, verbs, group, resource) in granted {
            assert!(controller_may(controller, verbs, group, resource), "{controller}: {verbs:?} {group}/{resource}");
        }
        // Grants upstream dropped (or never had) stay out.
        let refused: &[(&str, &[&str], &str, &str)] = &[
            ("job-controller", &["patch"], "batch", "jobs/status"),
            ("expand-controller", &["get"], "", "secrets"),
            ("persistent-volume-binder", &["create"], "", "services"),
            ("deployment-controller", &["delete"], "", "pods"),
        ];
        for (controller, verbs, group, resource) in refused {
            assert!(!controller_may(controller, verbs, group, resource), "{controller}: {verbs:?} {group}/{resource}");
        }
        let roles = controller_roles();
        let (_, certs) = roles.iter().find(|(n, _)| *n == "certificate-controller").expect("role");
        let approve = |signer: &str| r(&["approve"], &["certificates.k8s.io"], &["signers"]).names(&[signer]);
        assert!(covers(certs, &[approve("kubernetes.io/kube-apiserver-client-kubelet")]).is_empty());
        assert!(!covers(certs, &[approve("kubernetes.io/legacy-unknown")]).is_empty());
    }

    #[test]
    fn every_controller_role_is_bound_to_its_service_account() {
        let bindings = cluster_role_bindings();
        for (name, _) in controller_roles() {
            let role = format!("system:controller:{name}");
            let b = bindings.iter().find(|b| b["metadata"]["name"] == role.as_str()).expect("a binding");
            assert_eq!(b["subjects"], json!([service_account("kube-system", name)]), "{role}");
        }
    }

    #[test]
    fn reconciliation_adds_and_never_removes() {
        let expected = cluster_role("r", vec![r(&["get"], &[""], &["pods"]), r(&["list"], &[""], &["pods"])]);
        let mut existing = cluster_role("r", vec![r(&["get", "delete"], &[""], &["pods"])]);
        existing["metadata"]["labels"] = json!({"mine": "yes"});
        let out = reconciled(&existing, &expected).expect("changed");
        let rules: Vec<Rule> = serde_json::from_value(out["rules"].clone()).expect("test value");
        assert_eq!(rules, vec![r(&["get", "delete"], &[""], &["pods"]), r(&["list"], &[""], &["pods"])]);
        assert_eq!(out["metadata"]["labels"]["mine"], "yes");
        assert_eq!(out["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
        assert!(reconciled(&out, &expected).is_none(), "a reconciled object is stable");
        existing["metadata"]["annotations"] = json!({AUTOUPDATE_ANNOTATION: "false"});
        assert!(reconciled(&existing, &expected).is_none(), "protected objects are left alone");
    }

    #[test]
    fn reconciliation_adds_subjects() {
        let expected = cluster_binding("b", vec![group("g1")]);
        let existing = cluster_binding("b", vec![user("u")]);
        let out = reconciled(&existing, &expected).expect("changed");
        assert_eq!(out["subjects"].as_array().expect("test value").len(), 2);
    }
}
