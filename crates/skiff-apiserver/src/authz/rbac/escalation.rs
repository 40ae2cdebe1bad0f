//! Escalation prevention (upstream `pkg/registry/rbac` and `rbac/validation`): a user may only
//! write a Role or ClusterRole whose rules they hold themselves (unless they may `escalate` it),
//! and may only bind a role whose rules they hold (unless they may `bind` it). Members of
//! `system:masters` and the API server's own writes always may.
//!
//! [`covers`] and [`compact`] are the pure rule arithmetic; [`check`] is called by admission for
//! creates and updates of the four RBAC resources.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::status::GroupResource;

use super::rules::Rule;
use crate::authn::{MASTERS_GROUP, UserInfo};
use crate::authz::{Attributes, Decision, ResourceAttributes};
use crate::state::ApiState;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Splits rules into atoms of one verb on one group/resource(/name) or one verb on one path.
fn atoms(rules: &[Rule]) -> Vec<Rule> {
    let mut out = Vec::new();
    for r in rules {
        for verb in &r.verbs {
            for url in &r.non_resource_urls {
                out.push(Rule {
                    verbs: vec![verb.clone()],
                    non_resource_urls: vec![url.clone()],
                    ..Default::default()
                });
            }
            for group in &r.api_groups {
                for resource in &r.resources {
                    let base = Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..Default::default()
                    };
                    if r.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for name in &r.resource_names {
                            out.push(Rule { resource_names: vec![name.clone()], ..base.clone() });
                        }
                    }
                }
            }
        }
    }
    out
}

fn covers_atom(owner: &Rule, atom: &Rule) -> bool {
    let has = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    let Some(verb) = atom.verbs.first() else { return true };
    if !has(&owner.verbs, verb) {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.first() {
        return owner
            .non_resource_urls
            .iter()
            .any(|o| o == "*" || o == url || (o.ends_with('*') && url.starts_with(o.trim_end_matches('*'))));
    }
    let (Some(group), Some(resource)) = (atom.api_groups.first(), atom.resources.first()) else { return true };
    if !has(&owner.api_groups, group) {
        return false;
    }
    let resource_ok = owner.resources.iter().any(|o| {
        o == "*"
            || o == resource
            || o.strip_prefix("*/").is_some_and(|sub| resource.split_once('/').is_some_and(|(_, s)| s == sub))
    });
    if !resource_ok {
        return false;
    }
    owner.resource_names.is_empty()
        || atom.resource_names.first().is_some_and(|n| owner.resource_names.iter().any(|o| o == n))
}

/// The atoms of `requested` no rule of `owner` covers (empty when `owner` covers everything).
pub fn covers(owner: &[Rule], requested: &[Rule]) -> Vec<Rule> {
    atoms(requested).into_iter().filter(|atom| !owner.iter().any(|o| covers_atom(o, atom))).collect()
}

/// Missing atoms merged by verb where they differ only in the verb, as sorted descriptions
/// (upstream `CompactRules` + `CompactString`).
pub fn compact(missing: &[Rule]) -> Vec<String> {
    let mut merged: Vec<Rule> = Vec::new();
    for m in missing {
        match merged.iter_mut().find(|r| {
            r.api_groups == m.api_groups
                && r.resources == m.resources
                && r.resource_names == m.resource_names
                && r.non_resource_urls.is_empty()
                && m.non_resource_urls.is_empty()
        }) {
            Some(r) => {
                for v in &m.verbs {
                    if !r.verbs.contains(v) {
                        r.verbs.push(v.clone());
                    }
                }
            }
            None => merged.push(m.clone()),
        }
    }
    merged.iter().map(super::rules::describe).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Go's `%q` of a string list: `["a" "b"]`.
fn quoted(list: &[String]) -> String {
    format!("[{}]", list.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "))
}

/// Why `user` may not grant `rules` in `namespace`, if they may not (upstream
/// `ConfirmNoEscalation`'s message).
pub fn confirm_no_escalation(state: &ApiState, user: &UserInfo, namespace: &str, rules: &[Rule]) -> Option<String> {
    let (owned, errors) = state.rbac.rules_for(user, namespace);
    let missing = covers(&owned, rules);
    if missing.is_empty() {
        return None;
    }
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        quoted(&user.groups),
        compact(&missing).join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Some(msg)
}

/// Whether the authorization chain allows `verb` on a role resource.
fn authorized(state: &ApiState, user: &Arc<UserInfo>, verb: &str, resource: &str, namespace: &str, name: &str) -> bool {
    let Some(chain) = state.authorizers.get() else { return false };
    let attrs = Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            group: RBAC_GROUP.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }),
        path: String::new(),
    };
    chain.authorize(&attrs) == Decision::Allow
}

fn rules_of(obj: &Value) -> Vec<Rule> {
    obj.get("rules").and_then(|r| serde_json::from_value(r.clone()).ok()).unwrap_or_default()
}

fn role_ref(obj: &Value) -> (String, String) {
    let r = obj.get("roleRef");
    let s = |k: &str| r.and_then(|r| r.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
    (s("kind"), s("name"))
}

/// The escalation check for a create (`old` = `None`) or update of an RBAC object of
/// `resource` (`roles`, `clusterroles`, `rolebindings`, `clusterrolebindings`); other
/// resources pass.
pub fn check(
    state: &ApiState,
    user: &Arc<UserInfo>,
    resource: &str,
    namespace: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), StatusError> {
    if user.in_group(MASTERS_GROUP) {
        return Ok(());
    }
    let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    let gr = GroupResource::new(RBAC_GROUP.to_string(), resource.to_string());
    match resource {
        "roles" | "clusterroles" => {
            let rules = rules_of(obj);
            let aggregated = resource == "clusterroles" && obj.get("aggregationRule").is_some_and(|a| !a.is_null());
            if old.is_some_and(|o| rules_of(o) == rules && o.get("aggregationRule") == obj.get("aggregationRule")) {
                return Ok(());
            }
            if authorized(state, user, "escalate", resource, namespace, name) {
                return Ok(());
            }
            if let Some(msg) = confirm_no_escalation(state, user, namespace, &rules) {
                return Err(StatusError::forbidden(&gr, name, &msg));
            }
            let everything = [super::rules::rule(&["*"], &["*"], &["*"]), super::rules::url_rule(&["*"], &["*"])];
            if aggregated && confirm_no_escalation(state, user, namespace, &everything).is_some() {
                return Err(StatusError::forbidden(
                    &gr,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let (kind, role) = role_ref(obj);
            if old.is_some_and(|o| role_ref(o) == (kind.clone(), role.clone())) {
                return Ok(());
            }
            let role_resource = if kind == "Role" { "roles" } else { "clusterroles" };
            if authorized(state, user, "bind", role_resource, namespace, &role) {
                return Ok(());
            }
            let index = state.rbac.index();
            let rules = match kind.as_str() {
                "Role" => index.role(namespace, &role).cloned(),
                _ => index.cluster_role(&role).cloned(),
            };
            let Some(rules) = rules else {
                let singular = if kind == "Role" { "role" } else { "clusterrole" };
                return Err(StatusError::not_found(
                    &GroupResource::new(RBAC_GROUP.to_string(), singular.to_string()),
                    &role,
                ));
            };
            match confirm_no_escalation(state, user, namespace, &rules) {
                Some(msg) => Err(StatusError::forbidden(&gr, name, &msg)),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rbac::rules::{rule, url_rule};

    #[test]
    fn owner_rules_cover_atoms() {
        let owner = vec![rule(&["get", "list"], &[""], &["pods", "pods/log"]), url_rule(&["get"], &["/metrics*"])];
        assert!(covers(&owner, &[rule(&["get"], &[""], &["pods"])]).is_empty());
        assert!(covers(&owner, &[rule(&["get"], &[""], &["pods"]).names(&["a"])]).is_empty());
        assert!(covers(&owner, &[url_rule(&["get"], &["/metrics/x"])]).is_empty());
        let missing = covers(&owner, &[rule(&["get", "delete"], &["", "apps"], &["pods"])]);
        assert_eq!(missing.len(), 3);
        assert_eq!(
            compact(&missing),
            vec![
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#.to_string(),
                r#"{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "delete"]}"#.to_string(),
            ]
        );
    }

    #[test]
    fn names_and_wildcards() {
        let named = vec![rule(&["get"], &[""], &["secrets"]).names(&["a"])];
        assert!(covers(&named, &[rule(&["get"], &[""], &["secrets"]).names(&["a"])]).is_empty());
        assert_eq!(covers(&named, &[rule(&["get"], &[""], &["secrets"])]).len(), 1, "a named rule does not cover all");
        let subs = vec![rule(&["get"], &[""], &["*/status"])];
        assert!(covers(&subs, &[rule(&["get"], &[""], &["nodes/status"])]).is_empty());
        assert_eq!(covers(&subs, &[rule(&["get"], &[""], &["nodes"])]).len(), 1);
        let all = vec![rule(&["*"], &["*"], &["*"])];
        assert!(covers(&all, &[rule(&["escalate"], &["x"], &["y/z"])]).is_empty());
        assert_eq!(covers(&all, &[url_rule(&["get"], &["/x"])]).len(), 1, "resource rules do not cover paths");
    }
}

#[cfg(test)]
mod properties {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::authz::rbac::rules::any_allows;

    fn words(choices: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(proptest::sample::select(choices).prop_map(str::to_string), 0..3)
    }

    fn rules() -> impl Strategy<Value = Rule> {
        (
            words(&["get", "list", "*", "create"]),
            words(&["", "apps", "*"]),
            words(&["pods", "pods/log", "*/log", "*", "nodes"]),
            words(&["a", "b"]),
            words(&["/api", "/api/*", "/a**", "*", "/apis"]),
        )
            .prop_map(|(verbs, api_groups, resources, resource_names, non_resource_urls)| Rule {
                verbs,
                api_groups,
                resources,
                resource_names,
                non_resource_urls,
            })
    }

    fn requests() -> impl Strategy<Value = Attributes> {
        (
            proptest::sample::select(vec!["get", "list", "create", "delete"]),
            proptest::sample::select(vec!["", "apps"]),
            proptest::sample::select(vec!["pods", "nodes", "secrets"]),
            proptest::sample::select(vec!["", "log"]),
            proptest::sample::select(vec!["", "a", "b"]),
            proptest::sample::select(vec!["", "/api", "/api/v1", "/apis", "/abc"]),
        )
            .prop_map(|(verb, group, resource, sub, name, path)| Attributes {
                user: Arc::new(UserInfo::new("u".into(), vec![])),
                verb: verb.into(),
                resource: path.is_empty().then(|| ResourceAttributes {
                    group: group.into(),
                    resource: resource.into(),
                    subresource: sub.into(),
                    name: name.into(),
                    ..Default::default()
                }),
                path: path.into(),
            })
    }

    proptest! {
        /// Whatever an owner's rules cover, they also allow: no request slips through a role
        /// the escalation check let the owner write.
        #[test]
        fn covered_rules_allow_nothing_more(owner in rules(), requested in rules(), attrs in requests()) {
            prop_assert!(covers(std::slice::from_ref(&owner), std::slice::from_ref(&owner)).is_empty());
            if covers(std::slice::from_ref(&owner), std::slice::from_ref(&requested)).is_empty()
                && any_allows(std::slice::from_ref(&requested), &attrs)
            {
                prop_assert!(any_allows(std::slice::from_ref(&owner), &attrs));
            }
        }
    }
}
