//! Policy rules and how one matches a request (upstream `rbac/v1` helpers `VerbMatches`,
//! `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches`, `NonResourceURLMatches`).
//!
//! Pure functions over plain data, so they can be fuzzed and reused by the reviews and the
//! escalation check; who holds which rules is [`super::index`]'s job.

use serde::{Deserialize, Serialize};

use crate::authz::Attributes;

/// One RBAC policy rule (`rbac.authorization.k8s.io/v1` `PolicyRule`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Verbs; `*` means all.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups; `*` means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources: `*`, `res`, `res/sub` or `*/sub`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names; empty means every name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths; a trailing `*` matches any suffix.
    #[serde(default, rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

/// Builds a rule from string slices (for the default policy and tests).
pub fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Rule { verbs: owned(verbs), api_groups: owned(groups), resources: owned(resources), ..Default::default() }
}

/// A rule over non-resource paths.
pub fn url_rule(verbs: &[&str], urls: &[&str]) -> Rule {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Rule { verbs: owned(verbs), non_resource_urls: owned(urls), ..Default::default() }
}

impl Rule {
    /// The same rule restricted to `names`.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Whether `rule` grants `verb`.
pub fn verb_matches(rule: &Rule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

/// Whether `rule` covers API group `group`.
pub fn group_matches(rule: &Rule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// Whether `rule` covers `resource` (`res` or `res/sub`) whose subresource is `subresource`.
pub fn resource_matches(rule: &Rule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == resource
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// Whether `rule` covers the object `name` (an empty list covers every name, also none).
pub fn name_matches(rule: &Rule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// Whether `rule` covers the non-resource `path`.
pub fn url_matches(rule: &Rule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

/// Whether `rule` allows the request `attrs`.
pub fn allows(rule: &Rule, attrs: &Attributes) -> bool {
    match &attrs.resource {
        Some(r) => {
            let combined;
            let resource = if r.subresource.is_empty() {
                r.resource.as_str()
            } else {
                combined = format!("{}/{}", r.resource, r.subresource);
                combined.as_str()
            };
            verb_matches(rule, &attrs.verb)
                && group_matches(rule, &r.group)
                && resource_matches(rule, resource, &r.subresource)
                && name_matches(rule, &r.name)
        }
        None => verb_matches(rule, &attrs.verb) && url_matches(rule, &attrs.path),
    }
}

/// Whether any of `rules` allows `attrs`.
pub fn any_allows(rules: &[Rule], attrs: &Attributes) -> bool {
    rules.iter().any(|r| allows(r, attrs))
}

/// The rules as upstream prints them in messages (`{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`).
pub fn describe(rule: &Rule) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    if !rule.api_groups.is_empty() {
        parts.push(format!("APIGroups:[{}]", list(&rule.api_groups)));
    }
    if !rule.resources.is_empty() {
        parts.push(format!("Resources:[{}]", list(&rule.resources)));
    }
    if !rule.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:[{}]", list(&rule.non_resource_urls)));
    }
    if !rule.resource_names.is_empty() {
        parts.push(format!("ResourceNames:[{}]", list(&rule.resource_names)));
    }
    parts.push(format!("Verbs:[{}]", list(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::authn::UserInfo;
    use crate::authz::ResourceAttributes;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: Arc::new(UserInfo::new("u".into(), vec![])),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
                namespace: "ns".into(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    fn url(verb: &str, path: &str) -> Attributes {
        Attributes {
            user: Arc::new(UserInfo::new("u".into(), vec![])),
            verb: verb.into(),
            resource: None,
            path: path.into(),
        }
    }

    #[test]
    fn verbs_groups_and_resources() {
        let r = rule(&["get", "list"], &[""], &["pods"]);
        assert!(allows(&r, &res("get", "", "pods", "", "x")));
        assert!(allows(&r, &res("list", "", "pods", "", "")));
        assert!(!allows(&r, &res("delete", "", "pods", "", "x")));
        assert!(!allows(&r, &res("get", "apps", "pods", "", "x")));
        assert!(!allows(&r, &res("get", "", "pods", "log", "x")), "a resource does not cover its subresources");
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(allows(&all, &res("escalate", "rbac.authorization.k8s.io", "roles", "", "")));
        assert!(allows(&all, &res("get", "", "pods", "exec", "")));
        assert!(!allows(&all, &url("get", "/healthz")), "resource rules never match paths");
    }

    #[test]
    fn subresources() {
        let r = rule(&["get"], &[""], &["pods/log"]);
        assert!(allows(&r, &res("get", "", "pods", "log", "x")));
        assert!(!allows(&r, &res("get", "", "pods", "", "x")));
        let any = rule(&["get"], &[""], &["*/status"]);
        assert!(allows(&any, &res("get", "", "nodes", "status", "")));
        assert!(!allows(&any, &res("get", "", "nodes", "", "")));
        assert!(!allows(&any, &res("get", "", "nodes", "xstatus", "")));
        // Upstream has no `res/*` wildcard: it only matches a subresource literally named `*`.
        let star = rule(&["get"], &[""], &["pods/*"]);
        assert!(!allows(&star, &res("get", "", "pods", "log", "")));
    }

    #[test]
    fn resource_names() {
        let r = rule(&["get", "create"], &[""], &["configmaps"]).names(&["a"]);
        assert!(allows(&r, &res("get", "", "configmaps", "", "a")));
        assert!(!allows(&r, &res("get", "", "configmaps", "", "b")));
        assert!(!allows(&r, &res("create", "", "configmaps", "", "")), "a create has no name");
    }

    #[test]
    fn non_resource_urls() {
        let r = url_rule(&["get"], &["/healthz", "/api/*"]);
        assert!(allows(&r, &url("get", "/healthz")));
        assert!(!allows(&r, &url("get", "/healthz/etcd")));
        assert!(allows(&r, &url("get", "/api/v1")));
        assert!(allows(&r, &url("get", "/api/")));
        assert!(!allows(&r, &url("get", "/api")));
        assert!(!allows(&r, &url("post", "/healthz")));
        assert!(allows(&url_rule(&["*"], &["*"]), &url("put", "/x")));
        assert!(!allows(&r, &res("get", "", "pods", "", "")));
    }

    #[test]
    fn descriptions_match_upstream_form() {
        assert_eq!(
            describe(&rule(&["get", "list"], &["apps"], &["deployments"])),
            r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}"#
        );
        assert_eq!(describe(&url_rule(&["get"], &["/x"])), r#"{NonResourceURLs:["/x"], Verbs:["get"]}"#);
    }
}
