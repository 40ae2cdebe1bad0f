//! ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`): policies and their bindings
//! evaluated on every write with the CEL engine of `skiff_api::crd::cel`, as upstream's
//! `policy/validating` plugin. Variables: `object`, `oldObject`, `request`, `params` (from
//! `paramKind` and the binding's `paramRef`), `namespaceObject` and `variables`.
//! `validationActions` `Deny`, `Warn` and `Audit` act (`Audit` failures and the policies'
//! `auditAnnotations` go to the audit log as upstream's annotations). The `authorizer` variable
//! and static type checking are absent.
//!
//! [`compiled`] holds the policies in effect; this module matches and evaluates them.

pub mod compiled;

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::crd::cel::{Activation, Outcome, evaluate};
use skiff_api::selector::label::LabelSelectorExpr;
use skiff_api::status::{GroupResource, Reason, StatusCause};

pub use compiled::Registry;
use compiled::{Binding, Compiled, Policy};
use k8s_openapi::api::admissionregistration::v1::{MatchResources, NamedRuleWithOperations, RuleWithOperations};

use super::webhook::rules::{self, NamespaceLabels, Target};
use super::webhook::{self, Write};
use crate::audit::Level as AuditLevel;
use crate::handlers::Ctx;
use crate::state::ApiState;

/// Audit annotation listing the failures of bindings with the `Audit` action.
const VALIDATION_FAILURE_ANNOTATION: &str = "validation.policy.admission.k8s.io/validation_failure";

/// Why a policy denies a request.
#[derive(Debug, Clone, PartialEq)]
struct Denial {
    policy: String,
    binding: String,
    message: String,
    reason: String,
}

fn as_rule(r: &NamedRuleWithOperations) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: r.api_groups.clone(),
        api_versions: r.api_versions.clone(),
        operations: r.operations.clone(),
        resources: r.resources.clone(),
        scope: r.scope.clone(),
    }
}

fn named_rule_matches(r: &NamedRuleWithOperations, t: &Target<'_>, name: &str) -> bool {
    let names = r.resource_names.as_deref().unwrap_or_default();
    rules::rule_matches(&as_rule(r), t) && (names.is_empty() || names.iter().any(|n| n == name))
}

/// Whether `mr` selects the request; the resource it matches it as.
fn matches(
    state: &ApiState,
    ctx: &Ctx,
    mr: &MatchResources,
    w: &Write<'_>,
    obj: Option<&Value>,
) -> Result<Option<&'static ResourceInfo>, StatusError> {
    let sub = ctx.subresource.as_deref().unwrap_or_default();
    let namespace = webhook::namespace_of(ctx, obj, w.old);
    let name = webhook::name_of(ctx, obj, w.old);
    let is_ns = |info: &ResourceInfo| info.group.is_empty() && info.plural == "namespaces";
    let target = |info: &'static ResourceInfo| Target {
        operation: w.operation,
        group: info.group,
        version: info.version,
        resource: info.plural,
        subresource: sub,
        namespace: if is_ns(info) { "" } else { namespace.as_str() },
    };
    let ns_sel = LabelSelectorExpr::from_label_selector(mr.namespace_selector.as_ref())
        .map_err(|e| StatusError::internal(e.0))?;
    if !ns_sel.is_empty() {
        let t = Target { namespace: &namespace, ..target(ctx.info) };
        match rules::namespace_labels(&t, obj, |n| webhook::namespace_lookup(state, n)) {
            Some(NamespaceLabels::NotApplicable) => {}
            Some(NamespaceLabels::Labels(l)) if ns_sel.matches(&l) => {}
            Some(NamespaceLabels::Labels(_)) => return Ok(None),
            None => return Err(StatusError::not_found(&GroupResource::new("", "namespaces"), &namespace)),
        }
    }
    let obj_sel =
        LabelSelectorExpr::from_label_selector(mr.object_selector.as_ref()).map_err(|e| StatusError::internal(e.0))?;
    if !rules::object_selector_matches(&obj_sel, obj, w.old) {
        return Ok(None);
    }
    let included = mr.resource_rules.as_deref().unwrap_or_default();
    let excluded = mr.exclude_resource_rules.as_deref().unwrap_or_default();
    let selects = |info: &'static ResourceInfo| {
        let t = target(info);
        // No resourceRules (a binding narrowing by selectors only) constrains nothing, as upstream.
        (included.is_empty() || included.iter().any(|r| named_rule_matches(r, &t, &name)))
            && !excluded.iter().any(|r| named_rule_matches(r, &t, &name))
    };
    if selects(ctx.info) {
        return Ok(Some(ctx.info));
    }
    if mr.match_policy.as_deref() != Some("Exact") {
        return Ok(webhook::equivalents(ctx.info).find(|eq| selects(eq)));
    }
    Ok(None)
}

/// The parameter objects of `binding` (served JSON), or `None` when the policy takes none.
fn params(state: &ApiState, ctx: &Ctx, policy: &Policy, binding: &Binding) -> Result<Option<Vec<Value>>, String> {
    let Some(kind) = policy.param_kind.as_ref() else { return Ok(None) };
    let Some(pref) = binding.param_ref.as_ref() else {
        return Err("failed to configure binding: no paramRef in binding".to_string());
    };
    let api_version = kind.api_version.as_deref().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind_name = kind.kind.as_deref().unwrap_or_default();
    let info = catalogue::find_kind(group, version, kind_name)
        .ok_or_else(|| format!("failed to configure policy: failed to find resource referenced by paramKind: '{api_version}, Kind={kind_name}'"))?;
    let namespace = match pref.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None if info.namespaced => ctx.namespace.clone().unwrap_or_default(),
        None => String::new(),
    };
    let cache = state.caches.cache(&info.key_prefix()).ok_or("parameter resource is not cached")?;
    let found: Vec<Value> = match pref.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => cache.get(&info.key(Some(&namespace), name)).map(|e| e.value()).into_iter().collect(),
        None => {
            let sel = LabelSelectorExpr::from_label_selector(pref.selector.as_ref()).map_err(|e| e.0)?;
            cache
                .snapshot()
                .objects
                .values()
                .filter(|e| !info.namespaced || e.namespace == namespace)
                .filter(|e| sel.matches(&e.labels))
                .map(|e| e.value())
                .collect()
        }
    };
    Ok(Some(found.into_iter().map(|v| crate::views::from_storage(info, v)).collect()))
}

fn run(expr: &Compiled, act: &Activation) -> Result<Outcome, String> {
    match expr {
        Ok(e) => evaluate(e, act),
        Err(e) => Err(e.clone()),
    }
}

/// One failed (or unevaluable) check: its index in `validations` and its message and reason,
/// or the error that stopped its evaluation.
type Failure = (usize, Result<(String, String), String>);

/// Evaluates the checks of `policy` with `act`.
fn failures(policy: &Policy, act: &Activation) -> Vec<Failure> {
    let mut out = Vec::new();
    for (index, check) in policy.checks.iter().enumerate() {
        let failed = match run(&check.expression, act) {
            Ok(Outcome::Bool(true)) => continue,
            Ok(Outcome::Bool(false)) => {
                let from_expr = match check.message_expression.as_ref().map(|m| run(m, act)) {
                    Some(Ok(Outcome::String(s))) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    _ => None,
                };
                let message = from_expr.unwrap_or_else(|| {
                    if check.message.is_empty() {
                        format!("failed expression: {}", check.source)
                    } else {
                        check.message.clone()
                    }
                });
                Ok((message, check.reason.clone()))
            }
            Ok(_) => Err(format!("expression '{}' resulted in error: no such overload", check.source)),
            Err(e) if check.expression.is_err() => Err(e),
            Err(e) => Err(format!("expression '{}' resulted in error: {e}", check.source)),
        };
        out.push((index, failed));
    }
    out
}

/// What one binding found for one parameter value.
#[derive(Debug, Default)]
struct Evaluation {
    /// Failed checks.
    failures: Vec<Failure>,
    /// `auditAnnotations` that produced a value (`<policy>/<key>`, value).
    audit: Vec<(String, String)>,
}

/// Evaluates one binding for one parameter value.
fn evaluate_binding(policy: &Policy, mut act: Activation) -> Evaluation {
    for (name, cond) in &policy.match_conditions {
        match run(cond, &act) {
            Ok(Outcome::Bool(true)) => {}
            Ok(Outcome::Bool(false)) => return Evaluation::default(),
            Ok(_) => {
                let failures = vec![(0, Err(format!("matchCondition '{name}' must evaluate to a bool")))];
                return Evaluation { failures, audit: Vec::new() };
            }
            Err(e) => {
                let failures = vec![(0, Err(format!("failed to evaluate matchCondition '{name}': {e}")))];
                return Evaluation { failures, audit: Vec::new() };
            }
        }
    }
    act.declare_map("variables");
    let mut evaluated = act.clone();
    for (name, expr) in &policy.variables {
        let value = match run(expr, &evaluated) {
            Ok(Outcome::Bool(b)) => Value::Bool(b),
            Ok(Outcome::String(s)) => Value::String(s),
            Ok(Outcome::Other(v)) => v,
            Err(_) => Value::Null,
        };
        evaluated.bind_field("variables", name, value);
    }
    let mut audit = Vec::new();
    for (key, expr) in &policy.audit_annotations {
        match run(expr, &evaluated) {
            Ok(Outcome::String(v)) => audit.push((format!("{}/{key}", policy.name), v)),
            Ok(Outcome::Other(Value::Null)) => {}
            Ok(_) => {
                tracing::warn!(policy = %policy.name, %key, "audit annotation valueExpression must evaluate to a string or null")
            }
            Err(e) => tracing::warn!(policy = %policy.name, %key, error = %e, "audit annotation evaluation failed"),
        }
    }
    Evaluation { failures: failures(policy, &evaluated), audit }
}

/// Adds a binding's evaluated `auditAnnotations` to the request's audit events.
fn annotate(ctx: &Ctx, annotations: Vec<(String, String)>) {
    for (key, value) in annotations {
        ctx.audit_annotation(AuditLevel::Metadata, &key, value);
    }
}

fn reason_and_code(reason: &str) -> (Reason, u16) {
    match reason {
        "Forbidden" => (Reason::Forbidden, 403),
        "Unauthorized" => (Reason::Unauthorized, 401),
        "RequestEntityTooLarge" => (Reason::RequestEntityTooLarge, 413),
        _ => (Reason::Invalid, 422),
    }
}

fn denied(ctx: &Ctx, name: &str, d: &Denial) -> StatusError {
    let message =
        format!("ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}", d.policy, d.binding, d.message);
    let mut err = StatusError::forbidden(&ctx.group_resource(), name, &message);
    let (reason, code) = reason_and_code(&d.reason);
    err.reason = reason;
    err.code = code;
    if let Some(details) = err.details.as_mut() {
        details.causes.push(StatusCause { reason: String::new(), message, field: String::new() });
    }
    err
}

/// Evaluates the bound policies on a write of `obj` (stored form; `None` for deletes).
/// `Warn` failures become warnings; the first `Deny` failure is the answer.
pub fn validate(
    state: &ApiState,
    ctx: &Ctx,
    w: Write<'_>,
    obj: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<(), StatusError> {
    if rules::is_exempt(ctx.storage.group, ctx.storage.kind) {
        return Ok(());
    }
    let set = state.policies.current(&state.caches);
    if set.bindings.is_empty() {
        return Ok(());
    }
    let mut first: Option<Denial> = None;
    let mut audited = Vec::new();
    for policy in &set.policies {
        let Some(constraints) = policy.constraints.as_ref() else { continue };
        for binding in set.bindings.iter().filter(|b| b.policy == policy.name) {
            let Some(info) = matches(state, ctx, constraints, &w, obj)? else { continue };
            if let Some(mr) = binding.match_resources.as_ref()
                && matches(state, ctx, mr, &w, obj)?.is_none()
            {
                continue;
            }
            let base = webhook::cel_activation(ctx, info, &w, obj);
            let namespace_object = ctx
                .namespace
                .as_deref()
                .and_then(|ns| {
                    state.caches.cache("/registry/core/namespaces/")?.get(&format!("/registry/core/namespaces/{ns}"))
                })
                .map(|e| e.value())
                .unwrap_or(Value::Null);
            let mut results = Vec::new();
            match params(state, ctx, policy, binding) {
                Err(e) => results.push((0, Err(e))),
                Ok(None) => {
                    let mut act = base.clone();
                    act.bind("params", Value::Null).bind("namespaceObject", namespace_object.clone());
                    let found = evaluate_binding(policy, act);
                    annotate(ctx, found.audit);
                    results = found.failures;
                }
                Ok(Some(found)) if found.is_empty() => {
                    let deny = binding.param_ref.as_ref().and_then(|p| p.parameter_not_found_action.as_deref())
                        == Some("Deny");
                    if deny {
                        results.push((
                            0,
                            Ok((
                                "no params found for policy binding with `Deny` parameterNotFoundAction".to_string(),
                                String::new(),
                            )),
                        ));
                    }
                }
                Ok(Some(found)) => {
                    for p in found {
                        let mut act = base.clone();
                        act.bind("params", p).bind("namespaceObject", namespace_object.clone());
                        let found = evaluate_binding(policy, act);
                        annotate(ctx, found.audit);
                        results.extend(found.failures);
                    }
                }
            }
            for (index, r) in results {
                let (message, reason) = match r {
                    Ok(f) => f,
                    Err(e) if policy.ignore_failures => {
                        tracing::warn!(policy = %policy.name, binding = %binding.name, error = %e, "policy evaluation failed, failing open");
                        continue;
                    }
                    Err(e) => (e, String::new()),
                };
                if binding.warn {
                    warnings.push(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {message}",
                        policy.name, binding.name
                    ));
                }
                if binding.audit {
                    audited.push(json!({
                        "message": message, "policy": policy.name, "binding": binding.name,
                        "expressionIndex": index, "validationActions": binding.actions,
                    }));
                }
                if binding.deny && first.is_none() {
                    first =
                        Some(Denial { policy: policy.name.clone(), binding: binding.name.clone(), message, reason });
                }
            }
        }
    }
    if !audited.is_empty() {
        ctx.audit_annotation(AuditLevel::Metadata, VALIDATION_FAILURE_ANNOTATION, Value::Array(audited).to_string());
    }
    match first {
        Some(d) => Err(denied(ctx, &webhook::name_of(ctx, obj, w.old), &d)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy_of(v: Value) -> Policy {
        compiled::policy(&serde_json::from_value(v).expect("policy")).expect("spec")
    }

    fn act(obj: Value) -> Activation {
        let mut a = Activation::new();
        a.bind("object", obj).bind("oldObject", Value::Null).bind("params", json!({"max": 3}));
        a
    }

    #[test]
    fn failed_checks_carry_upstream_messages() {
        let p = policy_of(json!({"metadata": {"name": "p"}, "spec": {"validations": [
            {"expression": "object.spec.replicas <= params.max"},
            {"expression": "object.metadata.name != 'bad'", "message": "no bad names", "reason": "Forbidden"},
            {"expression": "false", "messageExpression": "'replicas: ' + string(object.spec.replicas)"},
            {"expression": "object.spec.nope == 1"}
        ]}}));
        let got = evaluate_binding(&p, act(json!({"metadata": {"name": "bad"}, "spec": {"replicas": 5}}))).failures;
        assert_eq!(got[0], (0, Ok(("failed expression: object.spec.replicas <= params.max".into(), String::new()))));
        assert_eq!(got[1], (1, Ok(("no bad names".into(), "Forbidden".into()))));
        assert_eq!(got[2], (2, Ok(("replicas: 5".into(), String::new()))));
        let err = got[3].1.clone().expect_err("an evaluation error");
        assert!(err.starts_with("expression 'object.spec.nope == 1' resulted in error: "), "{err}");
        let ok = evaluate_binding(&p, act(json!({"metadata": {"name": "good"}, "spec": {"replicas": 1, "nope": 1}})))
            .failures;
        assert_eq!(ok.len(), 1, "only the always-false check fails: {ok:?}");
        assert_eq!(ok[0].0, 2);
    }

    #[test]
    fn match_conditions_and_variables_apply() {
        let p = policy_of(json!({"metadata": {"name": "p"}, "spec": {
            "matchConditions": [{"name": "only-web", "expression": "object.metadata.name.startsWith('web')"}],
            "variables": [{"name": "n", "expression": "object.spec.replicas * 2"}],
            "validations": [{"expression": "variables.n <= 4"}]
        }}));
        let failures = |obj| evaluate_binding(&p, act(obj)).failures;
        assert!(failures(json!({"metadata": {"name": "db"}, "spec": {"replicas": 9}})).is_empty());
        assert_eq!(failures(json!({"metadata": {"name": "web"}, "spec": {"replicas": 9}})).len(), 1);
        assert!(failures(json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}})).is_empty());
    }

    #[test]
    fn audit_annotations_are_evaluated_and_prefixed() {
        let p = policy_of(json!({"metadata": {"name": "p"}, "spec": {
            "auditAnnotations": [
                {"key": "replicas", "valueExpression": "'seen ' + string(object.spec.replicas)"},
                {"key": "skipped", "valueExpression": "null"}
            ],
            "validations": [{"expression": "true"}]
        }}));
        let got = evaluate_binding(&p, act(json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}})));
        assert_eq!(got.audit, vec![("p/replicas".to_string(), "seen 3".to_string())]);
        assert!(got.failures.is_empty());
    }

    #[test]
    fn resource_names_narrow_rules() {
        let r: NamedRuleWithOperations = serde_json::from_value(json!({"operations": ["*"], "apiGroups": ["apps"],
            "apiVersions": ["v1"], "resources": ["deployments"], "resourceNames": ["web"]}))
        .expect("rule");
        let t = Target {
            operation: "CREATE",
            group: "apps",
            version: "v1",
            resource: "deployments",
            subresource: "",
            namespace: "d",
        };
        assert!(named_rule_matches(&r, &t, "web"));
        assert!(!named_rule_matches(&r, &t, "db"));
        assert_eq!(reason_and_code(""), (Reason::Invalid, 422));
        assert_eq!(reason_and_code("Forbidden"), (Reason::Forbidden, 403));
    }
}
