//! ValidatingAdmissionPolicies and their bindings as evaluated: expressions compiled once, read
//! from the watch cache and rebuilt when either kind changes. What is absent: evaluation
//! ([`super`]).

use std::sync::{Arc, Mutex};

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, ParamKind, ParamRef, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use skiff_api::crd::cel::Expression;
use skiff_store::Revision;

use crate::cache::WatchCaches;

/// Cache prefix of ValidatingAdmissionPolicies.
pub const POLICY_PREFIX: &str = "/registry/admissionregistration.k8s.io/validatingadmissionpolicies/";
/// Cache prefix of ValidatingAdmissionPolicyBindings.
pub const BINDING_PREFIX: &str = "/registry/admissionregistration.k8s.io/validatingadmissionpolicybindings/";

/// A compiled expression, or why it does not compile.
pub type Compiled = Result<Expression, String>;

/// One `validations` entry.
#[derive(Debug, Clone)]
pub struct Check {
    /// The expression.
    pub expression: Compiled,
    /// The expression as written.
    pub source: String,
    /// `message`.
    pub message: String,
    /// `messageExpression`.
    pub message_expression: Option<Compiled>,
    /// `reason` (empty: `Invalid`).
    pub reason: String,
}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// `failurePolicy: Ignore`.
    pub ignore_failures: bool,
    /// `matchConstraints`.
    pub constraints: Option<MatchResources>,
    /// `paramKind`.
    pub param_kind: Option<ParamKind>,
    /// `matchConditions`, by name.
    pub match_conditions: Vec<(String, Compiled)>,
    /// `variables`, in order.
    pub variables: Vec<(String, Compiled)>,
    /// `validations`.
    pub checks: Vec<Check>,
    /// `auditAnnotations`: key and `valueExpression`.
    pub audit_annotations: Vec<(String, Compiled)>,
}

/// A binding of a policy.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Name.
    pub name: String,
    /// `policyName`.
    pub policy: String,
    /// `paramRef`.
    pub param_ref: Option<ParamRef>,
    /// `matchResources`.
    pub match_resources: Option<MatchResources>,
    /// `validationActions` contains `Deny`.
    pub deny: bool,
    /// `validationActions` contains `Warn`.
    pub warn: bool,
    /// `validationActions` contains `Audit`.
    pub audit: bool,
    /// `validationActions` as written.
    pub actions: Vec<String>,
}

fn compile(src: &str) -> Compiled {
    Expression::compile(src).map_err(|e| format!("compilation failed: {e}"))
}

/// Compiles a policy.
pub fn policy(p: &ValidatingAdmissionPolicy) -> Option<Policy> {
    let spec = p.spec.as_ref()?;
    Some(Policy {
        name: p.metadata.name.clone().unwrap_or_default(),
        ignore_failures: spec.failure_policy.as_deref() == Some("Ignore"),
        constraints: spec.match_constraints.clone(),
        param_kind: spec.param_kind.clone(),
        match_conditions: spec
            .match_conditions
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), compile(&c.expression)))
            .collect(),
        variables: spec.variables.iter().flatten().map(|v| (v.name.clone(), compile(&v.expression))).collect(),
        checks: spec
            .validations
            .iter()
            .flatten()
            .map(|v| Check {
                expression: compile(&v.expression),
                source: v.expression.trim().to_string(),
                message: v.message.clone().unwrap_or_default().trim().to_string(),
                message_expression: v.message_expression.as_deref().filter(|m| !m.is_empty()).map(compile),
                reason: v.reason.clone().unwrap_or_default(),
            })
            .collect(),
        audit_annotations: spec
            .audit_annotations
            .iter()
            .flatten()
            .map(|a| (a.key.clone(), compile(&a.value_expression)))
            .collect(),
    })
}

/// Reads a binding.
pub fn binding(b: &ValidatingAdmissionPolicyBinding) -> Option<Binding> {
    let spec = b.spec.as_ref()?;
    let actions = spec.validation_actions.clone().unwrap_or_default();
    Some(Binding {
        name: b.metadata.name.clone().unwrap_or_default(),
        policy: spec.policy_name.clone().unwrap_or_default(),
        param_ref: spec.param_ref.clone(),
        match_resources: spec.match_resources.clone(),
        deny: actions.iter().any(|a| a == "Deny"),
        warn: actions.iter().any(|a| a == "Warn"),
        audit: actions.iter().any(|a| a == "Audit"),
        actions,
    })
}

/// Policies and bindings in effect.
#[derive(Debug, Default, Clone)]
pub struct Set {
    /// Policies by name order.
    pub policies: Vec<Policy>,
    /// Bindings by name order.
    pub bindings: Vec<Binding>,
}

#[derive(Default)]
struct Slot {
    fingerprint: (usize, Revision, usize, Revision),
    set: Arc<Set>,
}

/// The policies in effect, compiled from the watch cache on demand.
#[derive(Default)]
pub struct Registry {
    slot: Mutex<Slot>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// The current policies and bindings.
    pub fn current(&self, caches: &WatchCaches) -> Arc<Set> {
        let (Some(pc), Some(bc)) = (caches.cache(POLICY_PREFIX), caches.cache(BINDING_PREFIX)) else {
            return Arc::default();
        };
        let (ps, bs) = (pc.snapshot(), bc.snapshot());
        let max = |s: &crate::cache::Snapshot| s.objects.values().map(|e| e.revision).max().unwrap_or(0);
        let fingerprint = (ps.objects.len(), max(&ps), bs.objects.len(), max(&bs));
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.fingerprint != fingerprint {
            let policies = ps
                .objects
                .values()
                .filter_map(|e| serde_json::from_value::<ValidatingAdmissionPolicy>(e.value()).ok())
                .filter_map(|p| policy(&p))
                .collect();
            let bindings = bs
                .objects
                .values()
                .filter_map(|e| serde_json::from_value::<ValidatingAdmissionPolicyBinding>(e.value()).ok())
                .filter_map(|b| binding(&b))
                .collect();
            *slot = Slot { fingerprint, set: Arc::new(Set { policies, bindings }) };
        }
        slot.set.clone()
    }
}
