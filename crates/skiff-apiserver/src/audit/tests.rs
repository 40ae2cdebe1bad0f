//! Unit tests of the audit policy: parsing, rule matching in order, stages and the default.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::policy::{Level, Policy, RequestAttributes, Stage};
use crate::authz::ResourceAttributes;

fn res(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Default::default()
    }
}

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
- level: Request
  resources:
  - group: ""
    resources: ["pods/log", "pods/status"]
- level: RequestResponse
  namespaces: ["audited"]
  omitStages: [ResponseStarted]
- level: Request
  userGroups: ["system:nodes"]
  resources:
  - group: "apps"
    resources: ["*/scale"]
  - group: ""
    resources: ["nodes/*"]
    resourceNames: ["n1"]
- level: Metadata
  omitManagedFields: true
"#;

fn eval(policy: &Policy, user: &str, groups: &[&str], verb: &str, r: Option<&ResourceAttributes>, path: &str) -> Level {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    policy.evaluate(&RequestAttributes { user, groups: &groups, verb, resource: r, path }).level
}

#[test]
fn the_first_matching_rule_decides() {
    let p = Policy::parse(Path::new("p.yaml"), POLICY).unwrap();
    let pods = res("", "pods", "", "default", "x");
    assert_eq!(eval(&p, "system:kube-proxy", &[], "watch", Some(&pods), "/api/v1/pods"), Level::None);
    assert_eq!(eval(&p, "system:kube-proxy", &[], "list", Some(&pods), "/api/v1/pods"), Level::Metadata);
    assert_eq!(eval(&p, "alice", &[], "get", None, "/healthz/ping"), Level::None);
    assert_eq!(eval(&p, "alice", &[], "get", None, "/version"), Level::None);
    assert_eq!(eval(&p, "alice", &[], "get", None, "/versions"), Level::Metadata);
    let secret = res("", "secrets", "", "audited", "s");
    assert_eq!(eval(&p, "alice", &[], "create", Some(&secret), ""), Level::Metadata);
    assert_eq!(eval(&p, "alice", &[], "get", Some(&res("", "pods", "log", "d", "p")), ""), Level::Request);
    assert_eq!(eval(&p, "alice", &[], "get", Some(&res("", "pods", "exec", "d", "p")), ""), Level::Metadata);
    assert_eq!(eval(&p, "alice", &[], "get", Some(&res("", "pods", "", "audited", "p")), ""), Level::RequestResponse);
    let scale = res("apps", "deployments", "scale", "d", "x");
    assert_eq!(eval(&p, "n", &["system:nodes"], "update", Some(&scale), ""), Level::Request);
    assert_eq!(eval(&p, "n", &["other"], "update", Some(&scale), ""), Level::Metadata);
    let node_status = res("", "nodes", "status", "", "n1");
    assert_eq!(eval(&p, "n", &["system:nodes"], "patch", Some(&node_status), ""), Level::Request);
    let other_node = res("", "nodes", "status", "", "n2");
    assert_eq!(eval(&p, "n", &["system:nodes"], "patch", Some(&other_node), ""), Level::Metadata);
    assert_eq!(eval(&p, "n", &["system:nodes"], "get", Some(&res("", "nodes", "", "", "n1")), ""), Level::Metadata);
}

#[test]
fn stages_and_managed_fields_combine_policy_and_rule() {
    let p = Policy::parse(Path::new("p.yaml"), POLICY).unwrap();
    let d = p.evaluate(&RequestAttributes {
        user: "a",
        groups: &[],
        verb: "get",
        resource: Some(&res("", "pods", "", "audited", "p")),
        path: "",
    });
    assert_eq!(d.omit_stages, vec![Stage::RequestReceived, Stage::ResponseStarted]);
    assert!(!d.omit_managed_fields);
    let d = p.evaluate(&RequestAttributes { user: "a", groups: &[], verb: "get", resource: None, path: "/apis" });
    assert!(d.omit_managed_fields);
}

#[test]
fn no_rule_means_no_audit_and_bad_policies_are_refused() {
    let p = Policy::parse(Path::new("p.yaml"), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").unwrap();
    assert_eq!(eval(&p, "a", &[], "get", None, "/api"), Level::None);
    let err = Policy::parse(Path::new("p.yaml"), "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n").unwrap_err();
    assert!(err.to_string().contains("apiVersion: Unsupported value"), "{err}");
    let err = Policy::parse(Path::new("p.yaml"), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
        .unwrap_err();
    assert!(err.to_string().contains("Loud"), "{err}");
    let err = Policy::parse(
        Path::new("p.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"/api\"]\n  namespaces: [x]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("both regular resources and non-resource URLs"), "{err}");
}

#[test]
fn the_default_policy_keeps_secrets_at_metadata_and_skips_probes() {
    let p = Policy::default_policy();
    for resource in ["secrets", "configmaps"] {
        assert_eq!(eval(&p, "a", &[], "create", Some(&res("", resource, "", "d", "x")), ""), Level::Metadata);
    }
    assert_eq!(eval(&p, "a", &[], "create", Some(&res("apps", "deployments", "", "d", "x")), ""), Level::Metadata);
    assert_eq!(eval(&p, "a", &[], "get", None, "/readyz"), Level::None);
    assert!(p.evaluate(&RequestAttributes::default()).omit_stages.contains(&Stage::RequestReceived));
}

#[test]
fn response_status_carries_failure_details() {
    let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"x\" not found","reason":"NotFound","code":404}"#;
    let s = super::response_status(404, Some(body));
    assert_eq!(s["code"], 404);
    assert_eq!(s["reason"], "NotFound");
    assert_eq!(s["status"], "Failure");
    assert_eq!(super::response_status(200, None), serde_json::json!({"metadata": {}, "code": 200}));
}
