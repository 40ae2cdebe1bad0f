//! Which webhooks a request calls: rule matching (operations, API groups and versions,
//! resources with `*` and `res/sub` forms, scope) and the label selectors on the namespace and
//! the object, as upstream's `predicates/rules`, `predicates/namespace` and `predicates/object`.
//! What is absent: the configurations themselves ([`super::config`]) and `matchConditions`.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use serde_json::Value;
use skiff_api::selector::label::LabelSelectorExpr;

/// The request attributes rules are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    /// API group of the resource (`""` for core).
    pub group: &'a str,
    /// API version of the resource.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Subresource (`""` for the main resource).
    pub subresource: &'a str,
    /// Namespace of the object (`""` for cluster-scoped objects).
    pub namespace: &'a str,
}

impl Target<'_> {
    fn is_namespace_resource(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.resource == "namespaces"
    }
}

fn exact_or_wildcard(items: Option<&Vec<String>>, requested: &str) -> bool {
    items.into_iter().flatten().any(|i| i == "*" || i == requested)
}

/// Whether `rule` matches `t`.
pub fn rule_matches(rule: &RuleWithOperations, t: &Target<'_>) -> bool {
    let scope = match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Namespaced") => !t.is_namespace_resource() && !t.namespace.is_empty(),
        Some("Cluster") => t.is_namespace_resource() || t.namespace.is_empty(),
        Some(_) => false,
    };
    scope
        && exact_or_wildcard(rule.operations.as_ref(), t.operation)
        && exact_or_wildcard(rule.api_groups.as_ref(), t.group)
        && exact_or_wildcard(rule.api_versions.as_ref(), t.version)
        && rule.resources.iter().flatten().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (res == "*" || res == t.resource) && (sub == "*" || sub == t.subresource)
        })
}

/// Whether any of `rules` matches `t`.
pub fn any_rule_matches(rules: &[RuleWithOperations], t: &Target<'_>) -> bool {
    rules.iter().any(|r| rule_matches(r, t))
}

/// The labels of an object (empty when it has none).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}

/// The object selector: an empty selector matches everything, otherwise the new or the old
/// object must match (a missing object never matches).
pub fn object_selector_matches(sel: &LabelSelectorExpr, obj: Option<&Value>, old: Option<&Value>) -> bool {
    if sel.is_empty() {
        return true;
    }
    [obj, old].into_iter().flatten().any(|o| sel.matches(&labels_of(o)))
}

/// Where the namespace selector takes its labels from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceLabels {
    /// The request is cluster-scoped (not a namespace): the selector does not apply.
    NotApplicable,
    /// The labels to match.
    Labels(BTreeMap<String, String>),
}

/// Which labels the namespace selector of a request sees: for creates and updates of a
/// namespace, the namespace object's own; for other cluster-scoped requests, none; otherwise the
/// labels `lookup` finds for the request's namespace (`None`: the namespace does not exist).
pub fn namespace_labels(
    t: &Target<'_>,
    obj: Option<&Value>,
    lookup: impl FnOnce(&str) -> Option<BTreeMap<String, String>>,
) -> Option<NamespaceLabels> {
    let own = t.is_namespace_resource() && t.subresource.is_empty() && matches!(t.operation, "CREATE" | "UPDATE");
    if own {
        return Some(NamespaceLabels::Labels(obj.map(labels_of).unwrap_or_default()));
    }
    if t.namespace.is_empty() && !t.is_namespace_resource() {
        return Some(NamespaceLabels::NotApplicable);
    }
    let name = if t.namespace.is_empty() { "" } else { t.namespace };
    lookup(name).map(NamespaceLabels::Labels)
}

/// Whether resources of `group` are exempt from webhooks (the admission configuration kinds).
pub fn is_exempt(group: &str, kind: &str) -> bool {
    group == "admissionregistration.k8s.io"
        && matches!(
            kind,
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> RuleWithOperations {
        serde_json::from_value(v).expect("rule")
    }

    fn pods(op: &'static str, sub: &'static str) -> Target<'static> {
        Target { operation: op, group: "", version: "v1", resource: "pods", subresource: sub, namespace: "default" }
    }

    #[test]
    fn rules_match_operations_groups_versions_and_resources() {
        let r =
            rule(json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}));
        assert!(rule_matches(&r, &pods("CREATE", "")));
        assert!(!rule_matches(&r, &pods("UPDATE", "")));
        assert!(!rule_matches(&r, &pods("CREATE", "status")), "a bare resource does not match its subresources");
        let deploy = Target { group: "apps", resource: "deployments", ..pods("CREATE", "") };
        assert!(!rule_matches(&r, &deploy));
        let all = rule(json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}));
        assert!(rule_matches(&all, &deploy));
        assert!(!rule_matches(&all, &pods("CREATE", "status")), "`*` matches no subresource");
        let everything =
            rule(json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}));
        assert!(rule_matches(&everything, &pods("UPDATE", "status")));
        assert!(rule_matches(&everything, &pods("UPDATE", "")));
        let status = rule(
            json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}),
        );
        assert!(rule_matches(&status, &pods("UPDATE", "status")));
        assert!(!rule_matches(&status, &pods("UPDATE", "")));
        let any_status =
            rule(json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}));
        assert!(rule_matches(&any_status, &pods("UPDATE", "status")));
    }

    #[test]
    fn scope_separates_namespaced_and_cluster_requests() {
        let ns = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
        );
        let cl = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        );
        assert!(rule_matches(&ns, &pods("CREATE", "")));
        assert!(!rule_matches(&cl, &pods("CREATE", "")));
        let namespace = Target { resource: "namespaces", namespace: "x", ..pods("CREATE", "") };
        assert!(rule_matches(&cl, &namespace), "namespaces are cluster-scoped even with a namespace attribute");
        assert!(!rule_matches(&ns, &namespace));
    }

    #[test]
    fn selectors_use_the_object_or_its_namespace() {
        let sel = LabelSelectorExpr::parse("team=a").expect("sel");
        let a = json!({"metadata": {"labels": {"team": "a"}}});
        let b = json!({"metadata": {"labels": {"team": "b"}}});
        assert!(object_selector_matches(&sel, Some(&a), None));
        assert!(object_selector_matches(&sel, Some(&b), Some(&a)), "the old object counts too");
        assert!(!object_selector_matches(&sel, Some(&b), None));
        assert!(!object_selector_matches(&sel, None, None));
        assert!(object_selector_matches(&LabelSelectorExpr::everything(), None, None));

        let lookup = |ns: &str| (ns == "default").then(|| BTreeMap::from([("env".to_string(), "prod".to_string())]));
        let got = namespace_labels(&pods("CREATE", ""), None, lookup);
        assert_eq!(got, Some(NamespaceLabels::Labels(BTreeMap::from([("env".into(), "prod".into())]))));
        let missing = Target { namespace: "gone", ..pods("CREATE", "") };
        assert_eq!(namespace_labels(&missing, None, lookup), None);
        let node = Target { resource: "nodes", namespace: "", ..pods("CREATE", "") };
        assert_eq!(namespace_labels(&node, None, lookup), Some(NamespaceLabels::NotApplicable));
        let ns_obj = json!({"metadata": {"name": "x", "labels": {"own": "yes"}}});
        let ns_create = Target { resource: "namespaces", namespace: "x", ..pods("CREATE", "") };
        assert_eq!(
            namespace_labels(&ns_create, Some(&ns_obj), lookup),
            Some(NamespaceLabels::Labels(BTreeMap::from([("own".into(), "yes".into())])))
        );
    }
}
