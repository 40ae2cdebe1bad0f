//! Evaluating a [`RuleTree`] against an object (and, on update, the stored object), as upstream's
//! `cel.Validator`: rules run on every non-null value of a node that has them, `self` bound to the
//! value and, for transition rules, `oldSelf` to the correlated old value.
//!
//! Correlation: object properties and map entries by key; items of `x-kubernetes-list-type: map`
//! lists by their map keys; nothing else (so transition rules below atomic lists or sets never
//! run). A rule that uses `oldSelf` runs only when the old value exists, unless it sets
//! `optionalOldSelf`, in which case `oldSelf` is an optional. Errors of rules that do not use
//! `oldSelf` are downgraded to warnings when the value (or its nearest correlated ancestor) is
//! unchanged (validation ratcheting, on by default since Kubernetes 1.30).

use cel::common::types::CelOptional;
use cel::{Context, ExecutionError, Value as CelValue};
use serde_json::Value;

use super::budget::{Exhausted, LIMIT_EXCEEDED, Meter};
use super::compile::{CompiledRule, RuleTree};
use super::env::shared;
use super::value::to_cel;
use crate::validation::{ErrorKind, ErrorList, FieldError, child, index, key};

/// The largest `messageExpression` result upstream accepts, in bytes.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// Validates `obj` (and `old`, on update) against the compiled rules of its schema. Errors of
/// unchanged values become `warnings` (ratcheting).
pub(crate) fn validate(
    tree: &RuleTree,
    schema: &Value,
    obj: &Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ErrorList {
    let mut run = Run { meter: Meter::new(), errors: ErrorList::new(), warnings, stopped: false };
    let ratchet = old.map(|o| (obj, o));
    run.node(tree, schema, true, obj, old, "", ratchet);
    run.errors
}

struct Run<'w> {
    meter: Meter,
    errors: ErrorList,
    warnings: &'w mut Vec<String>,
    stopped: bool,
}

/// The field path upstream prints for a node (`<nil>` at the root).
fn shown(path: &str) -> String {
    if path.is_empty() { "<nil>".into() } else { path.into() }
}

/// The error shapes of a failed rule, by `reason`.
fn rule_error(reason: Option<&str>, path: String, type_name: &str, detail: String) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(path, detail),
        Some("FieldValueRequired") => FieldError::required(path, detail),
        Some("FieldValueDuplicate") => FieldError::duplicate(path, type_name),
        _ => FieldError::invalid(path, type_name, detail),
    }
}

/// cel-go's wording of a runtime error.
fn describe(err: &ExecutionError) -> String {
    match err {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::IndexOutOfBounds(i) => format!("index out of bounds: {}", cel_text(i)),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn cel_text(v: &CelValue) -> String {
    match v {
        CelValue::Int(i) => i.to_string(),
        CelValue::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

impl Run<'_> {
    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        tree: &RuleTree,
        schema: &Value,
        resource_root: bool,
        obj: &Value,
        old: Option<&Value>,
        path: &str,
        ratchet: Option<(&Value, &Value)>,
    ) {
        if self.stopped || obj.is_null() {
            return;
        }
        if !tree.rules.is_empty() {
            self.rules(tree, schema, resource_root, obj, old, path, ratchet);
        }
        match obj {
            Value::Object(map) => {
                let old_map = old.and_then(Value::as_object);
                let properties = schema.get("properties");
                for (k, v) in map {
                    let (sub_tree, sub_schema, sub_path) =
                        match (tree.properties.get(k), properties.and_then(|p| p.get(k))) {
                            (Some(t), Some(s)) => (t, s, child(path, k)),
                            _ => match (&tree.additional, schema.get("additionalProperties")) {
                                (Some(t), Some(s)) if properties.is_none() => (t.as_ref(), s, key(path, k)),
                                _ => continue,
                            },
                        };
                    let old_v = old_map.and_then(|m| m.get(k));
                    let r = old_v.map(|o| (v, o)).or(ratchet);
                    let root = crate::crd::schema::flag(sub_schema, "x-kubernetes-embedded-resource");
                    self.node(sub_tree, sub_schema, root, v, old_v, &sub_path, r);
                }
            }
            Value::Array(items) => {
                let (Some(item_tree), Some(item_schema)) = (&tree.items, schema.get("items")) else { return };
                let old_items = old.and_then(Value::as_array);
                let root = crate::crd::schema::flag(item_schema, "x-kubernetes-embedded-resource");
                for (i, item) in items.iter().enumerate() {
                    let old_item = match (&tree.list_map_keys, old_items) {
                        (Some(keys), Some(olds)) => olds.iter().find(|o| same_keys(o, item, keys)),
                        _ => None,
                    };
                    let r = old_item.map(|o| (item, o)).or(ratchet);
                    self.node(item_tree, item_schema, root, item, old_item, &index(path, i), r);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rules(
        &mut self,
        tree: &RuleTree,
        schema: &Value,
        resource_root: bool,
        obj: &Value,
        old: Option<&Value>,
        path: &str,
        ratchet: Option<(&Value, &Value)>,
    ) {
        let type_name = tree.type_name.as_str();
        if self.meter.spent() {
            self.budget_exhausted(path, type_name);
            return;
        }
        let env = shared();
        let mut ctx = Context::with_env(env.clone());
        ctx.add_variable_as_val("self", to_cel(obj, Some(schema), resource_root));
        let old_val = old.map(|o| to_cel(o, Some(schema), resource_root));
        if let Some(o) = &old_val {
            ctx.add_variable_as_val("oldSelf", o.clone());
        }
        // Rules with `optionalOldSelf` see `oldSelf` as an optional; build their context only
        // when there are some.
        let optional_ctx = tree.rules.iter().any(|r| r.rule.optional_old_self == Some(true)).then(|| {
            let mut c = Context::with_env(env.clone());
            c.add_variable_as_val("self", to_cel(obj, Some(schema), resource_root));
            c.add_variable_as_val(
                "oldSelf",
                Box::new(match &old_val {
                    Some(o) => CelOptional::of(o.clone()),
                    None => CelOptional::none(),
                }),
            );
            c
        });
        for compiled in &tree.rules {
            if self.stopped {
                return;
            }
            let rule = &compiled.rule;
            if let Some(e) = &compiled.error {
                self.errors.push(FieldError::invalid(shown(path), type_name, format!("rule compile error: {e}")));
                continue;
            }
            let Some(program) = &compiled.program else { continue };
            let optional = rule.optional_old_self == Some(true);
            if compiled.uses_old_self && old.is_none() && !optional {
                continue;
            }
            let rule_ctx = match (&optional_ctx, optional) {
                (Some(c), true) => c,
                _ => &ctx,
            };
            let (result, exhausted) = self.meter.run(|| CelValue::resolve(program, rule_ctx));
            if let Some(why) = exhausted {
                self.stop(why, path, type_name, rule.error_string());
                return;
            }
            let passed = match result {
                Ok(CelValue::Bool(true)) => true,
                Ok(_) => false,
                Err(err) => {
                    let msg = match &err {
                        ExecutionError::NoSuchOverload(_) => format!(
                            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                            rule.error_string()
                        ),
                        other => format!("{} evaluating rule: {}", describe(other), rule.error_string()),
                    };
                    self.errors.push(FieldError::invalid(shown(path), type_name, msg));
                    continue;
                }
            };
            if passed {
                continue;
            }
            let error_path = match &compiled.field_path {
                Some(fp) => child(path, fp),
                None => shown(path),
            };
            let detail = match self.message(compiled, &ctx) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    if rule.message.is_empty() {
                        format!("failed rule: {}", rule.error_string())
                    } else {
                        rule.message.trim().to_string()
                    }
                }
                Err(why) => {
                    self.stop(why, &error_path, type_name, &rule.message_expression);
                    return;
                }
            };
            let error = rule_error(rule.reason.as_deref(), error_path, type_name, detail);
            let unchanged = ratchet.is_some_and(|(new, old)| new == old);
            if !compiled.uses_old_self && unchanged {
                self.warnings.push(error.to_string());
            } else {
                self.errors.push(error);
            }
        }
    }

    /// The evaluated `messageExpression`, `None` when there is none or it failed (upstream then
    /// falls back to the message), or why the budget stopped it.
    fn message(&mut self, compiled: &CompiledRule, ctx: &Context<'_, '_>) -> Result<Option<String>, Exhausted> {
        let Some(program) = &compiled.message_program else { return Ok(None) };
        let (result, exhausted) = self.meter.run(|| CelValue::resolve(program, ctx));
        if let Some(why) = exhausted {
            return Err(why);
        }
        let text = match result {
            Ok(CelValue::String(s)) => s.trim().to_string(),
            Ok(_) | Err(_) => {
                tracing::debug!(rule = %compiled.rule.rule, "messageExpression evaluation failed");
                return Ok(None);
            }
        };
        if text.is_empty() || text.len() > MAX_MESSAGE_BYTES || text.contains('\n') {
            return Ok(None);
        }
        Ok(Some(text))
    }

    fn budget_exhausted(&mut self, path: &str, type_name: &str) {
        self.errors.push(FieldError::invalid(
            shown(path),
            type_name,
            "validation failed due to running out of cost budget, no further validation rules will be run",
        ));
        self.stopped = true;
    }

    fn stop(&mut self, why: Exhausted, path: &str, type_name: &str, what: &str) {
        match why {
            Exhausted::Budget => self.budget_exhausted(path, type_name),
            Exhausted::CallLimit => {
                self.errors.push(FieldError::invalid(
                    shown(path),
                    type_name,
                    format!(
                        "'{LIMIT_EXCEEDED}': no further validation rules will be run due to call cost exceeds limit for rule: {what}"
                    ),
                ));
                self.stopped = true;
            }
        }
    }
}

/// Whether two items of a map list have the same values for every key.
fn same_keys(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| a.get(k) == b.get(k))
}

/// The error upstream adds instead of evaluating rules when schema validation already failed in a
/// way that makes the object unsafe to evaluate.
pub(crate) fn blocked_by(schema_errors: &[FieldError]) -> Option<FieldError> {
    schema_errors
        .iter()
        .any(|e| {
            matches!(
                e.kind,
                ErrorKind::NotSupported | ErrorKind::Required | ErrorKind::TooLong | ErrorKind::TooMany | ErrorKind::TypeInvalid
            )
        })
        .then(|| {
            FieldError::invalid(
                "<nil>",
                "null",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            )
        })
}
