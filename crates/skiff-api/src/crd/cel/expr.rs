//! Standalone CEL expressions over JSON variables, for admission (ValidatingAdmissionPolicy
//! `validations`, `variables`, `matchConditions`, `messageExpression`): compiled once in the
//! shared environment with the Kubernetes libraries and metered like CRD rules, evaluated with
//! any set of untyped variables (`object`, `oldObject`, `request`, `params`, …).
//!
//! Unlike CRD rules there is no schema, so expressions are parsed but not statically checked:
//! undeclared names and type mismatches surface when they are evaluated.

use std::collections::HashMap;

use cel::common::ast::IdedExpr;
use cel::objects::Key;
use cel::{Context, Value as CelValue};
use serde_json::Value;

use super::budget::{Meter, instrument};
use super::env::shared;
use super::value::to_cel;

/// A parsed and metered expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    program: IdedExpr,
}

impl Expression {
    /// Parses `src`; the error is cel-go's display of the syntax errors.
    pub fn compile(src: &str) -> Result<Self, String> {
        let (expr, _) = shared().parser().parse_with_source_info(src).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| format!("ERROR: <input>:{}:{}: {}", e.pos.0.max(1), e.pos.1.max(1), e.msg))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        Ok(Self { source: src.to_string(), program: instrument(expr) })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Variables of one evaluation: JSON values by name, and an optional map variable of
/// already-evaluated values (ValidatingAdmissionPolicy's `variables`).
#[derive(Debug, Default, Clone)]
pub struct Activation {
    vars: Vec<(String, Value)>,
    composited: Option<(String, Vec<(String, Value)>)>,
}

impl Activation {
    /// An activation with no variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `name` to `value` (JSON `null` binds CEL `null`).
    pub fn bind(&mut self, name: &str, value: Value) -> &mut Self {
        self.vars.push((name.to_string(), value));
        self
    }

    /// Adds `value` as field `field` of the map variable `name` (created empty on first use).
    pub fn bind_field(&mut self, name: &str, field: &str, value: Value) -> &mut Self {
        let entry = self.composited.get_or_insert_with(|| (name.to_string(), Vec::new()));
        entry.1.push((field.to_string(), value));
        self
    }

    /// Declares the map variable `name` even when it has no fields yet.
    pub fn declare_map(&mut self, name: &str) -> &mut Self {
        self.composited.get_or_insert_with(|| (name.to_string(), Vec::new()));
        self
    }
}

fn to_json(v: &CelValue) -> Value {
    match v {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        CelValue::String(s) => Value::String(s.to_string()),
        CelValue::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        CelValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        CelValue::Map(m) => Value::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        CelValue::Duration(d) => Value::String(format!("{}s", d.num_seconds())),
        CelValue::Timestamp(t) => Value::String(t.to_rfc3339()),
        other => Value::String(format!("{other:?}")),
    }
}

/// What an evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
    /// Anything else, as JSON.
    Other(Value),
}

/// Evaluates `expr` with the variables of `act`; the error is the evaluation error's text.
pub fn evaluate(expr: &Expression, act: &Activation) -> Result<Outcome, String> {
    let mut ctx = Context::with_env(shared().clone());
    for (name, value) in &act.vars {
        ctx.add_variable_as_val(name.clone(), to_cel(value, None, true));
    }
    if let Some((name, fields)) = &act.composited {
        let map: HashMap<String, CelValue> = fields
            .iter()
            .map(|(k, v)| {
                let val: CelValue = to_cel(v, None, false).as_ref().try_into().unwrap_or(CelValue::Null);
                (k.clone(), val)
            })
            .collect();
        ctx.add_variable_from_value(name.clone(), map);
    }
    let mut meter = Meter::new();
    let (result, exhausted) = meter.run(|| CelValue::resolve(&expr.program, &ctx));
    if exhausted.is_some() {
        return Err("operation cancelled: actual cost limit exceeded".to_string());
    }
    match result.map_err(|e| e.to_string())? {
        CelValue::Bool(b) => Ok(Outcome::Bool(b)),
        CelValue::String(s) => Ok(Outcome::String(s.to_string())),
        other => Ok(Outcome::Other(to_json(&other))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expressions_see_json_variables() {
        let e = Expression::compile("object.spec.replicas <= params.max && request.operation == 'CREATE'").expect("c");
        let mut act = Activation::new();
        act.bind("object", json!({"spec": {"replicas": 3}}))
            .bind("params", json!({"max": 5}))
            .bind("request", json!({"operation": "CREATE"}));
        assert_eq!(evaluate(&e, &act), Ok(Outcome::Bool(true)));
        act.bind("object", json!({"spec": {"replicas": 7}}));
        let e2 = Expression::compile("object.spec.replicas").expect("c");
        assert!(matches!(evaluate(&e2, &act), Ok(Outcome::Other(_))));
    }

    #[test]
    fn composited_variables_and_errors() {
        let e = Expression::compile("variables.name.startsWith('bad')").expect("c");
        let mut act = Activation::new();
        act.bind_field("variables", "name", json!("bad-one"));
        assert_eq!(evaluate(&e, &act), Ok(Outcome::Bool(true)));
        let missing = Expression::compile("object.spec.nope == 1").expect("c");
        let mut act = Activation::new();
        act.bind("object", json!({"spec": {}}));
        assert!(evaluate(&missing, &act).is_err());
        assert!(Expression::compile("object.(").is_err());
    }
}
