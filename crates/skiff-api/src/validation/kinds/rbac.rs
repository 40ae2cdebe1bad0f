//! RBAC validation: rules of Roles and ClusterRoles, roleRef and subjects of bindings.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::common::{dns_subdomain, each, json, label_selector, supported};
use crate::kinds::Validation;
use crate::validation::names::is_path_segment_name;
use crate::validation::{ErrorList, FieldError, child, index};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rules(errs: &mut ErrorList, rules: &[PolicyRule], namespaced: bool) {
    for (i, r) in rules.iter().enumerate() {
        let p = index("rules", i);
        if r.verbs.is_empty() {
            errs.push(FieldError::required(child(&p, "verbs"), "verbs must contain at least one value"));
        }
        let urls = r.non_resource_urls.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    json(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if r.api_groups.as_ref().is_some_and(|g| !g.is_empty())
                || r.resources.as_ref().is_some_and(|g| !g.is_empty())
            {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    json(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if r.api_groups.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if r.resources.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(child(&p, "resources"), "resource rules must supply at least one resource"));
        }
    }
}

impl Validation for Role {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        rules(&mut errs, self.rules.as_deref().unwrap_or_default(), true);
        errs
    }
}

impl Validation for ClusterRole {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        rules(&mut errs, self.rules.as_deref().unwrap_or_default(), false);
        for (i, s) in self.aggregation_rule.iter().flat_map(|a| a.cluster_role_selectors.iter().flatten()).enumerate() {
            label_selector(&mut errs, &index("aggregationRule.clusterRoleSelectors", i), s);
        }
        errs
    }
}

fn binding(errs: &mut ErrorList, role_ref: &RoleRef, subjects: &[Subject], kinds: &[&str], namespaced: bool) {
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported("roleRef.apiGroup", role_ref.api_group.as_str(), &[RBAC_GROUP]));
    }
    supported(errs, "roleRef.kind", &role_ref.kind, kinds);
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        each(errs, "roleRef.name", &role_ref.name, is_path_segment_name(&role_ref.name));
    }
    for (i, s) in subjects.iter().enumerate() {
        let p = index("subjects", i);
        let group = s.api_group.as_deref().unwrap_or_default();
        if s.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.name.is_empty() {
                    dns_subdomain(errs, &child(&p, "name"), &s.name);
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(child(&p, "apiGroup"), group, &[""]));
                }
                if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(child(&p, "namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(child(&p, "apiGroup"), group, &[RBAC_GROUP]));
                }
            }
            other => {
                errs.push(FieldError::not_supported(child(&p, "kind"), other, &["ServiceAccount", "User", "Group"]))
            }
        }
    }
}

fn role_ref_unchanged(errs: &mut ErrorList, new: &RoleRef, old: &RoleRef) {
    if new != old {
        errs.push(FieldError::invalid("roleRef", json(new), "cannot change roleRef"));
    }
}

impl Validation for RoleBinding {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        binding(
            &mut errs,
            &self.role_ref,
            self.subjects.as_deref().unwrap_or_default(),
            &["Role", "ClusterRole"],
            true,
        );
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        role_ref_unchanged(&mut errs, &self.role_ref, &old.role_ref);
        errs
    }
}

impl Validation for ClusterRoleBinding {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        binding(&mut errs, &self.role_ref, self.subjects.as_deref().unwrap_or_default(), &["ClusterRole"], false);
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        role_ref_unchanged(&mut errs, &self.role_ref, &old.role_ref);
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::ErrorKind;
    use serde_json::json;

    fn has(errs: &ErrorList, field: &str, kind: ErrorKind) -> bool {
        errs.iter().any(|e| e.field == field && e.kind == kind)
    }

    #[test]
    fn roles() {
        let role: Role = serde_json::from_value(json!({"metadata": {"name": "r"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": []},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            {"verbs": ["get"]}]}))
        .expect("role");
        let errs = role.validate_create();
        assert!(has(&errs, "rules[1].verbs", ErrorKind::Required));
        assert!(has(&errs, "rules[2].nonResourceURLs", ErrorKind::Invalid));
        assert!(has(&errs, "rules[3].apiGroups", ErrorKind::Required));
        assert!(has(&errs, "rules[3].resources", ErrorKind::Required));
        assert!(!errs.iter().any(|e| e.field.starts_with("rules[0]")));
    }

    #[test]
    fn bindings() {
        let rb = |role_ref: serde_json::Value, subjects: serde_json::Value| -> RoleBinding {
            serde_json::from_value(json!({"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects}))
                .expect("rb")
        };
        let good_ref = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"});
        let good = rb(
            good_ref.clone(),
            json!([{"kind": "ServiceAccount", "name": "default"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]),
        );
        assert_eq!(good.validate_create(), ErrorList::new());
        let bad = rb(json!({"apiGroup": "x", "kind": "Thing", "name": ""}), json!([{"kind": "Robot", "name": "r"}]));
        let errs = bad.validate_create();
        for (f, k) in [
            ("roleRef.apiGroup", ErrorKind::NotSupported),
            ("roleRef.kind", ErrorKind::NotSupported),
            ("roleRef.name", ErrorKind::Required),
            ("subjects[0].kind", ErrorKind::NotSupported),
        ] {
            assert!(has(&errs, f, k), "{f}: {errs:?}");
        }
        let changed =
            rb(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}), json!([]));
        assert!(has(&changed.validate_update(&good), "roleRef", ErrorKind::Invalid));
        let crb: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "c"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}))
        .expect("crb");
        assert!(has(&crb.validate_create(), "subjects[0].namespace", ErrorKind::Required));
    }
}
