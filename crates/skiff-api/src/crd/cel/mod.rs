//! CEL validation rules of custom resources (`x-kubernetes-validations`), as upstream's
//! `apiextensions-apiserver/pkg/apiserver/schema/cel`, on the `cel` crate (cel-rust).
//!
//! - [`check_rules`]: what a CRD's rules must satisfy when the CRD is written (they compile,
//!   their fields are valid); used by the CRD validation hooks.
//! - [`validate`]: evaluating the rules of a custom object on create and update, with `self`,
//!   `oldSelf` (transition rules), `optionalOldSelf`, `message`, `messageExpression`, `reason`,
//!   `fieldPath` and ratcheting; compiled programs are cached per (leaked, `&'static`) schema.
//!
//! - [`Expression`], [`evaluate`]: standalone expressions over JSON variables, for admission
//!   policies and match conditions.
//!
//! Inside: `env` (the environment), `library` (the Kubernetes functions), `value` (JSON → CEL by
//! schema), `check` (a static checker standing in for cel-go's type checker), `compile`,
//! `budget` (the cost guard), `validate` (evaluation) and `crd_checks`.
//!
//! Available: the CEL standard library and macros (`has`, `all`, `exists`, `exists_one`, `map`,
//! `filter`, `size`, conversions, timestamps and durations), optional types, cel-go's strings
//! extension (`charAt`, `indexOf`, `lastIndexOf`, `join`, `lowerAscii`, `upperAscii`, `replace`,
//! `split`, `substring`, `trim`, `format`, `strings.quote`, `reverse`) and sets extension, and the
//! Kubernetes libraries lists (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`), regex
//! (`find`, `findAll`), URLs, quantity, IP, CIDR and format.
//!
//! Missing compared with Kubernetes 1.33: the semver library, two-variable comprehensions
//! (`all(k, v, …)`, `transformList`, `transformMap`, …), the authz libraries (not available to
//! CRD rules upstream either), rules inside `allOf`/`anyOf`/`oneOf`, set/map-list equality that
//! ignores order (`==` on lists compares in order), static cost estimation when the CRD is
//! written (skiff meters evaluation instead, see `budget`), and cel-go's full type checker (the
//! static checker catches undeclared names, undefined fields and non-bool results, but not every
//! overload mismatch; those fail at evaluation).

mod budget;
mod check;
mod compile;
mod crd_checks;
mod env;
mod expr;
mod library;
mod validate;
mod value;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use serde_json::Value;

pub use crd_checks::check_rules;
pub use expr::{Activation, Expression, Outcome, evaluate};

use crate::validation::{ErrorList, FieldError};
use compile::RuleTree;

/// Compiled rules per schema, keyed by the address of the leaked schema they were compiled from
/// (registered schemas are never freed, so an address is never reused for another schema).
static CACHE: LazyLock<RwLock<HashMap<usize, Arc<RuleTree>>>> = LazyLock::new(Default::default);

fn rules_of(schema: &'static Value) -> Arc<RuleTree> {
    let addr = std::ptr::from_ref(schema) as usize;
    if let Some(tree) = CACHE.read().unwrap_or_else(|p| p.into_inner()).get(&addr) {
        return tree.clone();
    }
    let tree = Arc::new(compile::compile_schema(schema));
    CACHE.write().unwrap_or_else(|p| p.into_inner()).entry(addr).or_insert(tree).clone()
}

/// Evaluates the `x-kubernetes-validations` rules of the registered `schema` against `obj`
/// (with the stored object `old` on update). `schema_errors` are the errors structural
/// validation already found: when they make the object unsafe to evaluate, rules are skipped and
/// upstream's "some validation rules were not checked" error is returned instead. Errors of
/// unchanged values are added to `warnings` (ratcheting).
pub fn validate(
    schema: &'static Value,
    obj: &Value,
    old: Option<&Value>,
    schema_errors: &[FieldError],
    warnings: &mut Vec<String>,
) -> ErrorList {
    let tree = rules_of(schema);
    if tree.rules.is_empty() && tree.properties.is_empty() && tree.items.is_none() && tree.additional.is_none() {
        return ErrorList::new();
    }
    if let Some(blocked) = validate::blocked_by(schema_errors) {
        return vec![blocked];
    }
    validate::validate(&tree, schema, obj, old, warnings)
}

#[cfg(test)]
mod tests;
