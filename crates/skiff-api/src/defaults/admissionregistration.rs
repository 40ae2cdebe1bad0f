//! Defaulting of `admissionregistration.k8s.io/v1`: webhook configurations (failure and match
//! policies, selectors, timeout, reinvocation, rule scope, service port) and
//! ValidatingAdmissionPolicy(+Binding) match resources. Validation lives in
//! `validation::kinds::admissionregistration`.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, MutatingWebhook, MutatingWebhookConfiguration, NamedRuleWithOperations, RuleWithOperations,
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{or_set, or_str};
use crate::kinds::{Defaulting, Strategy};

/// Default webhook call timeout in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 10;

fn rule(r: &mut RuleWithOperations) {
    or_str(&mut r.scope, "*");
}

fn named_rule(r: &mut NamedRuleWithOperations) {
    or_str(&mut r.scope, "*");
}

fn client(c: &mut WebhookClientConfig) {
    if let Some(s) = c.service.as_mut() {
        or_set(&mut s.port, 443);
    }
}

/// The fields both webhook kinds share.
#[allow(clippy::too_many_arguments)]
fn common(
    failure_policy: &mut Option<String>,
    match_policy: &mut Option<String>,
    namespace_selector: &mut Option<LabelSelector>,
    object_selector: &mut Option<LabelSelector>,
    timeout: &mut Option<i32>,
    rules: &mut Option<Vec<RuleWithOperations>>,
    client_config: &mut WebhookClientConfig,
) {
    or_str(failure_policy, "Fail");
    or_str(match_policy, "Equivalent");
    or_set(namespace_selector, LabelSelector::default());
    or_set(object_selector, LabelSelector::default());
    or_set(timeout, DEFAULT_TIMEOUT_SECONDS);
    rules.iter_mut().flatten().for_each(rule);
    client(client_config);
}

fn mutating(w: &mut MutatingWebhook) {
    common(
        &mut w.failure_policy,
        &mut w.match_policy,
        &mut w.namespace_selector,
        &mut w.object_selector,
        &mut w.timeout_seconds,
        &mut w.rules,
        &mut w.client_config,
    );
    or_str(&mut w.reinvocation_policy, "Never");
}

fn validating(w: &mut ValidatingWebhook) {
    common(
        &mut w.failure_policy,
        &mut w.match_policy,
        &mut w.namespace_selector,
        &mut w.object_selector,
        &mut w.timeout_seconds,
        &mut w.rules,
        &mut w.client_config,
    );
}

fn match_resources(m: &mut MatchResources) {
    or_str(&mut m.match_policy, "Equivalent");
    or_set(&mut m.namespace_selector, LabelSelector::default());
    or_set(&mut m.object_selector, LabelSelector::default());
    m.resource_rules.iter_mut().flatten().for_each(named_rule);
    m.exclude_resource_rules.iter_mut().flatten().for_each(named_rule);
}

impl Defaulting for MutatingWebhookConfiguration {
    fn set_defaults(&mut self) {
        self.webhooks.iter_mut().flatten().for_each(mutating);
    }
}

impl Strategy for MutatingWebhookConfiguration {}

impl Defaulting for ValidatingWebhookConfiguration {
    fn set_defaults(&mut self) {
        self.webhooks.iter_mut().flatten().for_each(validating);
    }
}

impl Strategy for ValidatingWebhookConfiguration {}

impl Defaulting for ValidatingAdmissionPolicy {
    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            or_str(&mut spec.failure_policy, "Fail");
            if let Some(m) = spec.match_constraints.as_mut() {
                match_resources(m);
            }
        }
    }
}

impl Strategy for ValidatingAdmissionPolicy {
    fn prepare_for_create(&mut self) {
        self.status = None;
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
    }
}

impl Defaulting for ValidatingAdmissionPolicyBinding {
    fn set_defaults(&mut self) {
        if let Some(m) = self.spec.as_mut().and_then(|s| s.match_resources.as_mut()) {
            match_resources(m);
        }
    }
}

impl Strategy for ValidatingAdmissionPolicyBinding {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn webhook_defaults_match_upstream() {
        let mut c: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "m"},
            "webhooks": [{"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]
        }))
        .expect("decode");
        c.set_defaults();
        let v = serde_json::to_value(&c).expect("encode");
        let w = &v["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["matchPolicy"], "Equivalent");
        assert_eq!(w["timeoutSeconds"], 10);
        assert_eq!(w["reinvocationPolicy"], "Never");
        assert_eq!(w["namespaceSelector"], json!({}));
        assert_eq!(w["objectSelector"], json!({}));
        assert_eq!(w["rules"][0]["scope"], "*");
        assert_eq!(w["clientConfig"]["service"]["port"], 443);
    }
}
