//! The answers of the authorization reviews (`authorization.k8s.io/v1`):
//! `SubjectAccessReview` (any user, asked by a privileged caller), `LocalSubjectAccessReview`
//! (the same within the namespace of the URL), `SelfSubjectAccessReview` (the caller itself) —
//! all decided by the server's authorization chain — and `SelfSubjectRulesReview` (the rules the
//! caller holds in a namespace, as RBAC resolves them). Decoding and responding is
//! `handlers::review`'s job.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::GroupKind;
use skiff_api::validation::FieldError;

use super::rbac::rules::Rule;
use super::{Attributes, Decision, ResourceAttributes, selectors};
use crate::authn::{MASTERS_GROUP, UserInfo};
use crate::state::ApiState;

fn string(v: Option<&Value>, key: &str) -> String {
    v.and_then(|v| v.get(key)).and_then(Value::as_str).unwrap_or("").to_string()
}

fn invalid(kind: &str, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(&GroupKind::new("authorization.k8s.io", kind), "", errors)
}

/// The attributes a review's `spec` asks about for `user`; validation errors as upstream.
fn attributes(kind: &str, spec: &Value, user: Arc<UserInfo>) -> Result<Attributes, StatusError> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (None, None) => Err(invalid(
            kind,
            &[FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
        (Some(_), Some(n)) => Err(invalid(
            kind,
            &[FieldError::invalid(
                "spec.nonResourceAttributes",
                n.clone(),
                "cannot be specified in combination with resourceAttributes",
            )],
        )),
        (Some(r), None) => Ok(Attributes {
            user,
            verb: string(Some(r), "verb"),
            resource: Some(ResourceAttributes {
                group: string(Some(r), "group"),
                version: string(Some(r), "version"),
                resource: string(Some(r), "resource"),
                subresource: string(Some(r), "subresource"),
                namespace: string(Some(r), "namespace"),
                name: string(Some(r), "name"),
                field_selector: selectors::review_field_selector(r.get("fieldSelector")),
                label_selector: selectors::review_label_selector(r.get("labelSelector")),
            }),
            path: String::new(),
        }),
        (None, Some(n)) => {
            Ok(Attributes { user, verb: string(Some(n), "verb"), resource: None, path: string(Some(n), "path") })
        }
    }
}

/// The user a `SubjectAccessReview` spec names.
fn spec_user(spec: &Value) -> UserInfo {
    let groups = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let extra: BTreeMap<String, Vec<String>> =
        spec.get("extra").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
    // The spec's groups are taken as given (no implicit `system:authenticated`), as upstream.
    UserInfo { name: string(Some(spec), "user"), uid: string(Some(spec), "uid"), groups, extra }
}

fn decide(state: &ApiState, attrs: &Attributes) -> Value {
    let Some(chain) = state.authorizers.get() else {
        return json!({"allowed": false, "evaluationError": "no authorizer configured"});
    };
    let mut status = match chain.evaluate_explained(attrs) {
        (Decision::Allow, reason) if reason.is_empty() => json!({"allowed": true}),
        (Decision::Allow, reason) => json!({"allowed": true, "reason": reason}),
        (Decision::Deny(reason), _) => json!({"allowed": false, "denied": true, "reason": reason}),
        (Decision::NoOpinion(reason), _) if reason.is_empty() => json!({"allowed": false}),
        (Decision::NoOpinion(reason), _) => json!({"allowed": false, "reason": reason}),
    };
    if let Some(r) = &attrs.resource {
        let ignored = selectors::review_selector_errors(&r.field_selector, &r.label_selector);
        if !ignored.is_empty() {
            status["evaluationError"] = json!(ignored.join("; "));
        }
    }
    status
}

/// Answers a `SubjectAccessReview` or `LocalSubjectAccessReview` (`namespace` = the URL's).
pub fn subject_access_review(
    state: &ApiState,
    mut review: Value,
    namespace: Option<&str>,
) -> Result<Value, StatusError> {
    let kind = if namespace.is_some() { "LocalSubjectAccessReview" } else { "SubjectAccessReview" };
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let user = spec_user(&spec);
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(invalid(
            kind,
            &[FieldError::invalid("spec.user", "", "at least one of user or group must be specified")],
        ));
    }
    let attrs = attributes(kind, &spec, Arc::new(user))?;
    if let Some(ns) = namespace {
        let asked = attrs.resource.as_ref().map(|r| r.namespace.as_str());
        if attrs.resource.is_none() {
            return Err(invalid(
                kind,
                &[FieldError::invalid(
                    "spec.nonResourceAttributes",
                    spec["nonResourceAttributes"].clone(),
                    "disallowed on this kind of request",
                )],
            ));
        }
        if asked != Some(ns) {
            return Err(invalid(
                kind,
                &[FieldError::invalid(
                    "spec.resourceAttributes.namespace",
                    asked.unwrap_or(""),
                    "must match metadata.namespace",
                )],
            ));
        }
    }
    review["status"] = decide(state, &attrs);
    Ok(review)
}

/// Answers a `SelfSubjectAccessReview` for `user`.
pub fn self_subject_access_review(
    state: &ApiState,
    user: &Arc<UserInfo>,
    mut review: Value,
) -> Result<Value, StatusError> {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let attrs = attributes("SelfSubjectAccessReview", &spec, user.clone())?;
    review["status"] = decide(state, &attrs);
    Ok(review)
}

/// Answers a `SelfSubjectRulesReview` for `user`.
pub fn self_subject_rules_review(
    state: &ApiState,
    user: &Arc<UserInfo>,
    mut review: Value,
) -> Result<Value, StatusError> {
    let namespace = review.pointer("/spec/namespace").and_then(Value::as_str).unwrap_or("").to_string();
    if namespace.is_empty() {
        return Err(StatusError::bad_request("no namespace on request"));
    }
    let (mut rules, errors) = state.rbac.rules_for(user, &namespace);
    if user.in_group(MASTERS_GROUP) {
        let all = [super::rbac::rules::rule(&["*"], &["*"], &["*"]), super::rbac::rules::url_rule(&["*"], &["*"])];
        rules.splice(0..0, all);
    }
    review["status"] = rules_status(&rules, &errors);
    Ok(review)
}

/// The `status` of a rules review.
fn rules_status(rules: &[Rule], errors: &[String]) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if !r.resources.is_empty() {
            let mut v = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rbac::rules::{rule, url_rule};

    #[test]
    fn spec_validation_matches_upstream() {
        let u = Arc::new(UserInfo::new("u".into(), vec![]));
        let e = attributes("SelfSubjectAccessReview", &json!({}), u.clone()).expect_err("must fail");
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.resourceAttributes: Required value: exactly one of"), "{}", e.message);
        let both =
            json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/x", "verb": "get"}});
        let e = attributes("SelfSubjectAccessReview", &both, u.clone()).expect_err("must fail");
        assert!(e.message.contains("cannot be specified in combination with resourceAttributes"), "{}", e.message);
        let ok = attributes(
            "SelfSubjectAccessReview",
            &json!({"resourceAttributes": {"verb": "get", "resource": "pods", "subresource": "log", "namespace": "n"}}),
            u,
        )
        .expect("test value");
        assert_eq!(ok.verb, "get");
        assert_eq!(ok.resource.expect("test value").subresource, "log");
    }

    #[test]
    fn resource_attributes_carry_their_selectors() {
        let u = Arc::new(UserInfo::new("system:node:n1".into(), vec!["system:nodes".into()]));
        let spec = json!({"resourceAttributes": {"verb": "list", "resource": "pods",
            "fieldSelector": {"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]},
            "labelSelector": {"rawSelector": "app=web"}}});
        let attrs = attributes("SubjectAccessReview", &spec, u).expect("valid");
        let r = attrs.resource.expect("resource attributes");
        assert!(r.field_selector.requires("spec.nodeName", "n1"));
        assert_eq!(r.label_selector.requirements.len(), 1);
    }

    #[test]
    fn spec_users_keep_their_groups_as_given() {
        let u = spec_user(&json!({"user": "bob", "groups": ["g"], "extra": {"k": ["v"]}}));
        assert_eq!(u.groups, vec!["g".to_string()]);
        assert_eq!(u.extra["k"], vec!["v".to_string()]);
    }

    #[test]
    fn rules_status_splits_resource_and_path_rules() {
        let s = rules_status(&[rule(&["get"], &[""], &["pods"]).names(&["a"]), url_rule(&["get"], &["/api"])], &[]);
        assert_eq!(s["resourceRules"][0]["resourceNames"][0], "a");
        assert_eq!(s["nonResourceRules"][0]["nonResourceURLs"][0], "/api");
        assert_eq!(s["incomplete"], false);
        let s = rules_status(&[], &["role.rbac.authorization.k8s.io \"x\" not found".into()]);
        assert_eq!(s["incomplete"], true);
    }
}
