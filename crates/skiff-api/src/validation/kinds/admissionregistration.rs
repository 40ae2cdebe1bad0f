//! Validation of `admissionregistration.k8s.io/v1`: Mutating/ValidatingWebhookConfiguration
//! (webhook names, rules, client configuration, policies, timeouts, review versions, selectors,
//! match conditions) and ValidatingAdmissionPolicy(+Binding). Field paths and messages follow
//! upstream's `admissionregistration/validation`. CEL expressions are compiled at admission
//! time, not here.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, MutatingWebhookConfiguration, NamedRuleWithOperations, RuleWithOperations,
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::common::{dns_label, label_selector, qualified_name, supported, supported_opt};
use crate::kinds::Validation;
use crate::validation::gofmt::{go_strings, with_rendered_value};
use crate::validation::names;
use crate::validation::{ErrorKind, ErrorList, FieldError, child, index};

/// Admission review versions the API server can send.
pub const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const REINVOCATION: &[&str] = &["IfNeeded", "Never"];
const VALIDATION_ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];
const MAX_MATCH_CONDITIONS: usize = 64;

/// A fully qualified name: a DNS subdomain with at least three segments (webhook names).
fn fully_qualified_name(errs: &mut ErrorList, path: &str, name: &str) {
    if name.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let msgs = names::is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        for m in msgs {
            errs.push(FieldError::invalid(path, name, m));
        }
        return;
    }
    if name.split('.').count() < 3 {
        errs.push(FieldError::invalid(path, name, "should be a domain with at least three segments separated by dots"));
    }
}

/// An `Invalid value` about a string list, rendered as Go's `[]string{…}`.
fn list_invalid(path: &str, items: &[String], detail: &str) -> FieldError {
    with_rendered_value(ErrorKind::Invalid, path, go_strings(items), detail)
}

/// A list where `*` excludes every other entry.
fn star_list(errs: &mut ErrorList, path: &str, items: Option<&Vec<String>>, what: &str) -> bool {
    let items = match items {
        Some(v) if !v.is_empty() => v,
        _ => {
            errs.push(FieldError::required(path, ""));
            return false;
        }
    };
    if items.len() > 1 && items.iter().any(|i| i == "*") {
        errs.push(list_invalid(path, items, &format!("if '*' is present, must not specify other {what}")));
    }
    true
}

/// `resources`: names with optional `/subresource`, `*`, `*/*`, `*/sub`, `res/*`.
fn resources(errs: &mut ErrorList, path: &str, items: Option<&Vec<String>>) {
    let Some(items) = items.filter(|v| !v.is_empty()) else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    let mut with_sub: BTreeSet<&str> = BTreeSet::new();
    let mut without_sub: BTreeSet<&str> = BTreeSet::new();
    for (i, r) in items.iter().enumerate() {
        let p = index(path, i);
        if r.is_empty() {
            errs.push(FieldError::required(p, ""));
            continue;
        }
        if r == "*/*" && items.len() > 1 {
            errs.push(FieldError::invalid(
                p.as_str(),
                r.as_str(),
                "if '*/*' is present, must not specify other resources",
            ));
        }
        let (res, sub) = match r.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (r.as_str(), None),
        };
        if let Some(sub) = sub {
            if sub.contains('/') {
                errs.push(FieldError::invalid(
                    p.as_str(),
                    r.as_str(),
                    "resource must be of the form 'resource' or 'resource/subresource'",
                ));
                continue;
            }
            if without_sub.contains("*") {
                errs.push(FieldError::invalid(
                    p.as_str(),
                    r.as_str(),
                    "if '*' is present, must not specify other resources without subresources",
                ));
            }
            with_sub.insert(res);
        } else {
            if res == "*" && items.len() > 1 {
                errs.push(FieldError::invalid(
                    p.as_str(),
                    r.as_str(),
                    "if '*' is present, must not specify other resources without subresources",
                ));
            }
            without_sub.insert(res);
        }
    }
}

fn operations(errs: &mut ErrorList, path: &str, ops: Option<&Vec<String>>) {
    if star_list(errs, path, ops, "operations") {
        for (i, op) in ops.into_iter().flatten().enumerate() {
            supported(errs, &index(path, i), op, OPERATIONS);
        }
    }
}

fn rule(errs: &mut ErrorList, path: &str, r: &RuleWithOperations) {
    operations(errs, &child(path, "operations"), r.operations.as_ref());
    star_list(errs, &child(path, "apiGroups"), r.api_groups.as_ref(), "API groups");
    star_list(errs, &child(path, "apiVersions"), r.api_versions.as_ref(), "API versions");
    resources(errs, &child(path, "resources"), r.resources.as_ref());
    supported_opt(errs, &child(path, "scope"), r.scope.as_deref(), SCOPES);
}

fn named_rule(errs: &mut ErrorList, path: &str, r: &NamedRuleWithOperations) {
    operations(errs, &child(path, "operations"), r.operations.as_ref());
    star_list(errs, &child(path, "apiGroups"), r.api_groups.as_ref(), "API groups");
    star_list(errs, &child(path, "apiVersions"), r.api_versions.as_ref(), "API versions");
    resources(errs, &child(path, "resources"), r.resources.as_ref());
    supported_opt(errs, &child(path, "scope"), r.scope.as_deref(), SCOPES);
}

/// A webhook URL: https, a host, no user information, query or fragment.
fn webhook_url(errs: &mut ErrorList, path: &str, url: &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        errs.push(FieldError::invalid(path, url, "'https' is the only allowed URL scheme"));
        return;
    };
    if scheme != "https" {
        errs.push(FieldError::invalid(path, url, "'https' is the only allowed URL scheme"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        errs.push(FieldError::invalid(path, url, "user information is not permitted in the URL"));
    }
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() {
        errs.push(FieldError::invalid(path, url, "host must be specified"));
    }
    if rest.contains('#') {
        errs.push(FieldError::invalid(path, url, "fragments are not permitted in the URL"));
    }
    if rest.contains('?') {
        errs.push(FieldError::invalid(path, url, "query parameters are not permitted in the URL"));
    }
}

fn client_config(errs: &mut ErrorList, path: &str, c: &WebhookClientConfig) {
    match (&c.url, &c.service) {
        (Some(_), Some(_)) | (None, None) => {
            errs.push(FieldError::required(path, "exactly one of url or service is required"));
        }
        (Some(url), None) => webhook_url(errs, &child(path, "url"), url),
        (None, Some(svc)) => {
            let p = child(path, "service");
            if svc.name.is_empty() {
                errs.push(FieldError::required(child(&p, "name"), "service name is required"));
            }
            if svc.namespace.is_empty() {
                errs.push(FieldError::required(child(&p, "namespace"), "service namespace is required"));
            }
            if let Some(port) = svc.port
                && !(1..=65535).contains(&port)
            {
                errs.push(FieldError::invalid(
                    child(&p, "port"),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(path_value) = svc.path.as_deref()
                && !path_value.starts_with('/')
            {
                errs.push(FieldError::invalid(child(&p, "path"), path_value, "must start with a '/'"));
            }
        }
    }
}

fn review_versions(errs: &mut ErrorList, path: &str, versions: &[String]) {
    if versions.is_empty() {
        errs.push(FieldError::required(path, format!("must specify one of {}", REVIEW_VERSIONS.join(", "))));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        for m in names::is_dns1035_label(v) {
            errs.push(FieldError::invalid(index(path, i), v.as_str(), m));
        }
        if !seen.insert(v.as_str()) {
            errs.push(FieldError::invalid(index(path, i), v.as_str(), "duplicate version"));
        }
    }
    if !versions.iter().any(|v| REVIEW_VERSIONS.contains(&v.as_str())) {
        errs.push(list_invalid(
            path,
            versions,
            &format!("must include at least one of {}", REVIEW_VERSIONS.join(", ")),
        ));
    }
}

fn selector(errs: &mut ErrorList, path: &str, sel: Option<&LabelSelector>) {
    if let Some(sel) = sel {
        label_selector(errs, path, sel);
    }
}

/// `matchConditions`: unique qualified names, non-empty expressions, at most 64.
pub fn match_conditions(errs: &mut ErrorList, path: &str, conds: &[MatchCondition]) {
    if conds.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(path, conds.len(), MAX_MATCH_CONDITIONS));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in conds.iter().enumerate() {
        let p = index(path, i);
        if c.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            qualified_name(errs, &child(&p, "name"), &c.name);
            if !seen.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(child(&p, "name"), c.name.as_str()));
            }
        }
        if c.expression.trim().is_empty() {
            errs.push(FieldError::required(child(&p, "expression"), ""));
        }
    }
}

/// The fields of one webhook, borrowed from either kind.
struct Hook<'a> {
    name: &'a str,
    rules: Option<&'a Vec<RuleWithOperations>>,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    side_effects: &'a str,
    timeout: Option<i32>,
    versions: &'a [String],
    client: &'a WebhookClientConfig,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    match_conditions: Option<&'a Vec<MatchCondition>>,
}

fn hook(errs: &mut ErrorList, path: &str, h: &Hook<'_>) {
    fully_qualified_name(errs, &child(path, "name"), h.name);
    for (i, r) in h.rules.into_iter().flatten().enumerate() {
        rule(errs, &index(&child(path, "rules"), i), r);
    }
    supported_opt(errs, &child(path, "failurePolicy"), h.failure_policy, FAILURE_POLICIES);
    supported_opt(errs, &child(path, "matchPolicy"), h.match_policy, MATCH_POLICIES);
    let se = child(path, "sideEffects");
    if h.side_effects.is_empty() {
        errs.push(FieldError::required(se, ""));
    } else {
        supported(errs, &se, h.side_effects, SIDE_EFFECTS);
    }
    if let Some(t) = h.timeout
        && !(1..=30).contains(&t)
    {
        errs.push(FieldError::invalid(
            child(path, "timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    review_versions(errs, &child(path, "admissionReviewVersions"), h.versions);
    client_config(errs, &child(path, "clientConfig"), h.client);
    selector(errs, &child(path, "namespaceSelector"), h.namespace_selector);
    selector(errs, &child(path, "objectSelector"), h.object_selector);
    match_conditions(errs, &child(path, "matchConditions"), h.match_conditions.map(Vec::as_slice).unwrap_or_default());
}

fn unique_name(errs: &mut ErrorList, seen: &mut BTreeSet<String>, path: &str, name: &str) {
    if !name.is_empty() && !seen.insert(name.to_string()) {
        errs.push(FieldError::duplicate(child(path, "name"), name));
    }
}

impl Validation for MutatingWebhookConfiguration {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let mut seen = BTreeSet::new();
        for (i, w) in self.webhooks.iter().flatten().enumerate() {
            let p = index("webhooks", i);
            unique_name(&mut errs, &mut seen, &p, &w.name);
            hook(
                &mut errs,
                &p,
                &Hook {
                    name: &w.name,
                    rules: w.rules.as_ref(),
                    failure_policy: w.failure_policy.as_deref(),
                    match_policy: w.match_policy.as_deref(),
                    side_effects: &w.side_effects,
                    timeout: w.timeout_seconds,
                    versions: &w.admission_review_versions,
                    client: &w.client_config,
                    namespace_selector: w.namespace_selector.as_ref(),
                    object_selector: w.object_selector.as_ref(),
                    match_conditions: w.match_conditions.as_ref(),
                },
            );
            supported_opt(&mut errs, &child(&p, "reinvocationPolicy"), w.reinvocation_policy.as_deref(), REINVOCATION);
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> ErrorList {
        self.validate_create()
    }
}

impl Validation for ValidatingWebhookConfiguration {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let mut seen = BTreeSet::new();
        for (i, w) in self.webhooks.iter().flatten().enumerate() {
            let p = index("webhooks", i);
            unique_name(&mut errs, &mut seen, &p, &w.name);
            hook(
                &mut errs,
                &p,
                &Hook {
                    name: &w.name,
                    rules: w.rules.as_ref(),
                    failure_policy: w.failure_policy.as_deref(),
                    match_policy: w.match_policy.as_deref(),
                    side_effects: &w.side_effects,
                    timeout: w.timeout_seconds,
                    versions: &w.admission_review_versions,
                    client: &w.client_config,
                    namespace_selector: w.namespace_selector.as_ref(),
                    object_selector: w.object_selector.as_ref(),
                    match_conditions: w.match_conditions.as_ref(),
                },
            );
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> ErrorList {
        self.validate_create()
    }
}

fn match_resources(errs: &mut ErrorList, path: &str, m: &MatchResources, require_rules: bool) {
    selector(errs, &child(path, "namespaceSelector"), m.namespace_selector.as_ref());
    selector(errs, &child(path, "objectSelector"), m.object_selector.as_ref());
    supported_opt(errs, &child(path, "matchPolicy"), m.match_policy.as_deref(), MATCH_POLICIES);
    let rules = m.resource_rules.as_deref().unwrap_or_default();
    if require_rules && rules.is_empty() {
        errs.push(FieldError::required(child(path, "resourceRules"), ""));
    }
    for (i, r) in rules.iter().enumerate() {
        named_rule(errs, &index(&child(path, "resourceRules"), i), r);
    }
    for (i, r) in m.exclude_resource_rules.iter().flatten().enumerate() {
        named_rule(errs, &index(&child(path, "excludeResourceRules"), i), r);
    }
}

impl Validation for ValidatingAdmissionPolicy {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = self.spec.as_ref() else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        supported_opt(&mut errs, "spec.failurePolicy", spec.failure_policy.as_deref(), FAILURE_POLICIES);
        match spec.match_constraints.as_ref() {
            Some(m) => match_resources(&mut errs, "spec.matchConstraints", m, true),
            None => errs.push(FieldError::required("spec.matchConstraints", "")),
        }
        if let Some(pk) = spec.param_kind.as_ref() {
            if pk.kind.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required("spec.paramKind.kind", ""));
            }
            if pk.api_version.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required("spec.paramKind.apiVersion", ""));
            }
        }
        let validations = spec.validations.as_deref().unwrap_or_default();
        let audits = spec.audit_annotations.as_deref().unwrap_or_default();
        if validations.is_empty() && audits.is_empty() {
            errs.push(FieldError::required(
                "spec.validations",
                "validations or auditAnnotations must contain at least one item",
            ));
        }
        for (i, v) in validations.iter().enumerate() {
            let p = index("spec.validations", i);
            if v.expression.trim().is_empty() {
                errs.push(FieldError::required(child(&p, "expression"), "expression is not specified"));
            }
            supported_opt(
                &mut errs,
                &child(&p, "reason"),
                v.reason.as_deref(),
                &["Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized"],
            );
        }
        match_conditions(&mut errs, "spec.matchConditions", spec.match_conditions.as_deref().unwrap_or_default());
        let mut seen = BTreeSet::new();
        for (i, v) in spec.variables.iter().flatten().enumerate() {
            let p = index("spec.variables", i);
            if v.name.is_empty() {
                errs.push(FieldError::required(child(&p, "name"), "name is not specified"));
            } else if !seen.insert(v.name.as_str()) {
                errs.push(FieldError::duplicate(child(&p, "name"), v.name.as_str()));
            }
            if v.expression.trim().is_empty() {
                errs.push(FieldError::required(child(&p, "expression"), "expression is not specified"));
            }
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> ErrorList {
        self.validate_create()
    }

    fn validate_status_update(&self, _old: &Self) -> ErrorList {
        ErrorList::new()
    }
}

impl Validation for ValidatingAdmissionPolicyBinding {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = self.spec.as_ref() else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        match spec.policy_name.as_deref() {
            None | Some("") => errs.push(FieldError::required("spec.policyName", "")),
            Some(name) => {
                for m in names::is_dns1123_subdomain(name) {
                    errs.push(FieldError::invalid("spec.policyName", name, m));
                }
            }
        }
        if let Some(pr) = spec.param_ref.as_ref() {
            if pr.name.is_some() && pr.selector.is_some() {
                errs.push(FieldError::forbidden("spec.paramRef.name", "name and selector are mutually exclusive"));
            }
            if pr.name.is_none() && pr.selector.is_none() {
                errs.push(FieldError::required("spec.paramRef", "one of name or selector must be specified"));
            }
            if let Some(ns) = pr.namespace.as_deref() {
                dns_label(&mut errs, "spec.paramRef.namespace", ns);
            }
            match pr.parameter_not_found_action.as_deref() {
                None | Some("") => errs.push(FieldError::required("spec.paramRef.parameterNotFoundAction", "")),
                Some(a) => supported(&mut errs, "spec.paramRef.parameterNotFoundAction", a, &["Allow", "Deny"]),
            }
        }
        if let Some(m) = spec.match_resources.as_ref() {
            match_resources(&mut errs, "spec.matchResources", m, false);
        }
        let actions = spec.validation_actions.as_deref().unwrap_or_default();
        if actions.is_empty() {
            errs.push(FieldError::required("spec.validationActions", "at least one validation action is required"));
        }
        let mut seen = BTreeSet::new();
        for (i, a) in actions.iter().enumerate() {
            let p = index("spec.validationActions", i);
            if !seen.insert(a.as_str()) {
                errs.push(FieldError::duplicate(p.clone(), a.as_str()));
            }
            supported(&mut errs, &p, a, VALIDATION_ACTIONS);
        }
        if seen.contains("Deny") && seen.contains("Warn") {
            errs.push(list_invalid(
                "spec.validationActions",
                actions,
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> ErrorList {
        self.validate_create()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn webhook(extra: Value) -> ValidatingWebhookConfiguration {
        let mut w = json!({"name": "deny.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]});
        if let (Some(w), Some(extra)) = (w.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                w.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({"metadata": {"name": "v"}, "webhooks": [w]})).expect("decode")
    }

    fn bodies(errs: ErrorList) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.field, e.body())).collect()
    }

    #[test]
    fn a_good_webhook_is_valid() {
        assert_eq!(bodies(webhook(json!({})).validate_create()), Vec::<String>::new());
    }

    #[test]
    fn webhook_fields_are_checked_as_upstream() {
        let errs = bodies(
            webhook(json!({"name": "short.name", "timeoutSeconds": 31, "sideEffects": "Some",
            "admissionReviewVersions": ["v2"], "failurePolicy": "Maybe"}))
            .validate_create(),
        );
        let all = errs.join("\n");
        assert!(all.contains("webhooks[0].name: Invalid value: \"short.name\": should be a domain with at least three segments separated by dots"), "{all}");
        assert!(
            all.contains(
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"
            ),
            "{all}"
        );
        assert!(all.contains("webhooks[0].sideEffects: Unsupported value: \"Some\""), "{all}");
        assert!(all.contains("webhooks[0].failurePolicy: Unsupported value: \"Maybe\""), "{all}");
        assert!(all.contains("webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1"), "{all}");
    }

    #[test]
    fn client_config_needs_exactly_one_https_target() {
        let errs = bodies(webhook(json!({"clientConfig": {"url": "http://x/y?z"}})).validate_create()).join("\n");
        assert!(errs.contains("'https' is the only allowed URL scheme"), "{errs}");
        assert!(errs.contains("query parameters are not permitted in the URL"), "{errs}");
        let errs = bodies(webhook(json!({"clientConfig": {}})).validate_create()).join("\n");
        assert!(
            errs.contains("webhooks[0].clientConfig: Required value: exactly one of url or service is required"),
            "{errs}"
        );
    }

    #[test]
    fn rules_reject_star_with_others() {
        let errs = bodies(
            webhook(json!({"rules": [{"operations": ["*", "CREATE"], "apiGroups": [], "apiVersions": ["v1"],
                "resources": ["*/*", "pods"]}]}))
            .validate_create(),
        )
        .join("\n");
        assert!(errs.contains("webhooks[0].rules[0].operations: Invalid value"), "{errs}");
        assert!(errs.contains("webhooks[0].rules[0].apiGroups: Required value"), "{errs}");
        assert!(errs.contains("if '*/*' is present, must not specify other resources"), "{errs}");
    }

    #[test]
    fn duplicate_webhook_names_are_rejected() {
        let mut c = webhook(json!({}));
        if let Some(ws) = c.webhooks.as_mut() {
            let first = ws[0].clone();
            ws.push(first);
        }
        let errs = bodies(c.validate_create()).join("\n");
        assert!(errs.contains("webhooks[1].name: Duplicate value: \"deny.example.com\""), "{errs}");
    }
}
