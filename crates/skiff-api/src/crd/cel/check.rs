//! A small static checker standing in for cel-go's type checker, which cel-rust lacks.
//!
//! It infers a coarse type for every expression from the structural schema of `self`/`oldSelf`
//! and reports, as upstream's compiler would: references to undeclared variables or functions,
//! selections of fields the schema does not declare, field selection on scalars, and (through
//! [`Ty`] of the whole expression) a result that is certainly not a `bool` (or, for a
//! `messageExpression`, a `string`). Whatever it cannot type is `dyn` and left to runtime, where
//! a non-`true` result fails the rule, as upstream.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use serde_json::Value;

use super::env::is_function;
use super::value::escape;
use crate::crd::schema::{additional, flag, props, str_of};

/// The coarse type of an expression.
#[derive(Debug, Clone)]
pub(crate) enum Ty<'s> {
    /// Unknown until runtime.
    Dyn,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `uint`.
    Uint,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `null`.
    Null,
    /// `timestamp`.
    Timestamp,
    /// `duration`.
    Duration,
    /// A type value (`int`, `string`, ...).
    Type,
    /// A list of the given element type.
    List(Box<Ty<'s>>),
    /// A map with string keys and the given value type.
    Map(Box<Ty<'s>>),
    /// An object described by a schema with `properties`.
    Object(&'s Value, bool),
    /// An optional value.
    Optional(Box<Ty<'s>>),
}

impl Ty<'_> {
    /// The cel-go name of the type, for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Ty::Dyn => "dyn".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Null => "null_type".into(),
            Ty::Timestamp => "google.protobuf.Timestamp".into(),
            Ty::Duration => "google.protobuf.Duration".into(),
            Ty::Type => "type".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(t) => format!("map(string, {})", t.name()),
            Ty::Object(..) => "object".into(),
            Ty::Optional(t) => format!("optional_type({})", t.name()),
        }
    }

    fn same_kind(&self, other: &Ty<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && !matches!(self, Ty::List(_) | Ty::Map(_))
    }
}

/// The type of a value described by `schema`.
pub(crate) fn from_schema(schema: &Value, resource_root: bool) -> Ty<'_> {
    if flag(schema, "x-kubernetes-int-or-string") {
        return Ty::Dyn;
    }
    match str_of(schema, "type") {
        "boolean" => Ty::Bool,
        "integer" => Ty::Int,
        "number" => Ty::Double,
        "string" => match str_of(schema, "format") {
            "byte" => Ty::Bytes,
            "duration" => Ty::Duration,
            "date" | "date-time" => Ty::Timestamp,
            _ => Ty::String,
        },
        "array" => match schema.get("items").filter(|i| i.is_object()) {
            Some(items) => Ty::List(Box::new(from_schema(items, flag(items, "x-kubernetes-embedded-resource")))),
            None => Ty::List(Box::new(Ty::Dyn)),
        },
        "object" if props(schema).is_some() || resource_root => Ty::Object(schema, resource_root),
        "object" => match additional(schema) {
            Some(sub) => Ty::Map(Box::new(from_schema(sub, flag(sub, "x-kubernetes-embedded-resource")))),
            None => Ty::Dyn,
        },
        _ => Ty::Dyn,
    }
}

/// The type of field `field` (an escaped name) of an object, or `None` when it is not declared.
fn field_of<'s>(schema: &'s Value, resource_root: bool, field: &str) -> Option<Ty<'s>> {
    if let Some(properties) = props(schema) {
        for (name, sub) in properties {
            if escape(name).as_deref() == Some(field) {
                return Some(from_schema(sub, flag(sub, "x-kubernetes-embedded-resource")));
            }
        }
    }
    if resource_root {
        match field {
            "apiVersion" | "kind" => return Some(Ty::String),
            "metadata" => return Some(Ty::Dyn),
            _ => {}
        }
    }
    if props(schema).is_none() && flag(schema, "x-kubernetes-preserve-unknown-fields") {
        return Some(Ty::Dyn);
    }
    None
}

/// Type identifiers CEL expressions may name.
const TYPE_NAMES: &[&str] =
    &["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"];

/// One problem found, at the expression with the given id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    /// The expression the problem is about.
    pub(crate) id: u64,
    /// cel-go's wording of the problem.
    pub(crate) message: String,
}

/// Checks an expression against the types of `self` and `oldSelf`.
pub(crate) struct Checker<'s> {
    self_ty: Ty<'s>,
    old_self_ty: Ty<'s>,
    scopes: Vec<(String, Ty<'s>)>,
    /// Problems found so far.
    pub(crate) issues: Vec<Issue>,
}

impl<'s> Checker<'s> {
    /// A checker for rules on a node described by `schema`; `oldSelf` is optional when
    /// `optional_old_self` is set.
    pub(crate) fn new(schema: &'s Value, resource_root: bool, optional_old_self: bool) -> Self {
        let self_ty = from_schema(schema, resource_root);
        let old_self_ty = if optional_old_self { Ty::Optional(Box::new(self_ty.clone())) } else { self_ty.clone() };
        Self { self_ty, old_self_ty, scopes: Vec::new(), issues: Vec::new() }
    }

    fn issue(&mut self, id: u64, message: String) -> Ty<'s> {
        self.issues.push(Issue { id, message });
        Ty::Dyn
    }

    /// The type of `e`, recording problems.
    pub(crate) fn check(&mut self, e: &IdedExpr) -> Ty<'s> {
        match &e.expr {
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::Select(select) => {
                if !select.test
                    && let Some(qualified) = qualified_name(e)
                    && is_function(&qualified)
                {
                    return Ty::Dyn;
                }
                let operand = self.check(&select.operand);
                let field = self.select(e.id, operand, &select.field);
                if select.test { Ty::Bool } else { field }
            }
            Expr::Call(call) => {
                let target = call.target.as_deref();
                if let Some(t) = target
                    && let Some(q) = qualified_name(t)
                    && is_function(&format!("{q}.{}", call.func_name))
                    && !self.scopes.iter().any(|(n, _)| Some(n.as_str()) == q.split('.').next())
                {
                    let args: Vec<Ty<'s>> = call.args.iter().map(|a| self.check(a)).collect();
                    return call_type(&format!("{q}.{}", call.func_name), None, &args);
                }
                let target_ty = target.map(|t| self.check(t));
                let args: Vec<Ty<'s>> = call.args.iter().map(|a| self.check(a)).collect();
                let name = call.func_name.as_str();
                if !(name.starts_with('_')
                    || name.starts_with('@')
                    || name == "!_"
                    || name == "-_"
                    || is_function(name))
                {
                    return self.issue(e.id, format!("undeclared reference to '{name}' (in container '')"));
                }
                call_type(name, target_ty, &args)
            }
            Expr::List(list) => {
                let elems: Vec<Ty<'s>> = list.elements.iter().map(|x| self.check(x)).collect();
                let elem = match elems.split_first() {
                    Some((first, rest)) if rest.iter().all(|t| t.same_kind(first)) => first.clone(),
                    _ => Ty::Dyn,
                };
                Ty::List(Box::new(elem))
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.check(&m.key);
                        self.check(&m.value);
                    }
                }
                Ty::Map(Box::new(Ty::Dyn))
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range);
                let elem = match range {
                    Ty::List(t) => *t,
                    Ty::Map(_) | Ty::Object(..) => Ty::String,
                    _ => Ty::Dyn,
                };
                let accu = self.check(&c.accu_init);
                self.scopes.push((c.accu_var.clone(), accu));
                self.scopes.push((c.iter_var.clone(), elem));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push((v2.clone(), Ty::Dyn));
                }
                self.check(&c.loop_cond);
                let step = self.check(&c.loop_step);
                if matches!(step, Ty::List(_))
                    && let Some(accu) = self.scopes.iter_mut().rev().find(|(n, _)| *n == c.accu_var)
                {
                    accu.1 = step;
                }
                let result = self.check(&c.result);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scopes.truncate(self.scopes.len() - pushed);
                result
            }
            Expr::Struct(_) | Expr::Unspecified => Ty::Dyn,
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Ty<'s> {
        if let Some((_, t)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return t.clone();
        }
        match name {
            "self" => self.self_ty.clone(),
            "oldSelf" => self.old_self_ty.clone(),
            n if TYPE_NAMES.contains(&n) => Ty::Type,
            n => self.issue(id, format!("undeclared reference to '{n}' (in container '')")),
        }
    }

    fn select(&mut self, id: u64, operand: Ty<'s>, field: &str) -> Ty<'s> {
        match operand {
            Ty::Object(schema, root) => match field_of(schema, root, field) {
                Some(t) => t,
                None => self.issue(id, format!("undefined field '{field}'")),
            },
            Ty::Map(v) => *v,
            Ty::Dyn | Ty::Optional(_) => Ty::Dyn,
            other => self.issue(id, format!("type '{}' does not support field selection", other.name())),
        }
    }
}

/// The name an identifier or a chain of selections on one spells (`format.dns1123Label`).
fn qualified_name(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(n) => Some(n.clone()),
        Expr::Select(s) if !s.test => qualified_name(&s.operand).map(|q| format!("{q}.{}", s.field)),
        _ => None,
    }
}

/// The result type of calling `name`.
fn call_type<'s>(name: &str, target: Option<Ty<'s>>, args: &[Ty<'s>]) -> Ty<'s> {
    let first = target.clone().or_else(|| args.first().cloned()).unwrap_or(Ty::Dyn);
    match name {
        operators::EQUALS
        | operators::NOT_EQUALS
        | operators::LESS
        | operators::LESS_EQUALS
        | operators::GREATER
        | operators::GREATER_EQUALS
        | operators::LOGICAL_AND
        | operators::LOGICAL_OR
        | operators::LOGICAL_NOT
        | operators::IN
        | operators::NOT_STRICTLY_FALSE => Ty::Bool,
        operators::ADD | operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO => {
            match (args.first(), args.get(1)) {
                (Some(a), Some(b)) if a.same_kind(b) && !matches!(a, Ty::Dyn | Ty::Timestamp) => a.clone(),
                (Some(Ty::List(a)), Some(Ty::List(_))) => Ty::List(a.clone()),
                _ => Ty::Dyn,
            }
        }
        operators::NEGATE => first,
        operators::INDEX => match first {
            Ty::List(t) | Ty::Map(t) => *t,
            _ => Ty::Dyn,
        },
        operators::CONDITIONAL => match (args.get(1), args.get(2)) {
            (Some(a), Some(b)) if a.same_kind(b) => a.clone(),
            _ => Ty::Dyn,
        },
        "startsWith"
        | "endsWith"
        | "contains"
        | "matches"
        | "isSorted"
        | "isURL"
        | "isQuantity"
        | "isGreaterThan"
        | "isLessThan"
        | "isInteger"
        | "isIP"
        | "isCIDR"
        | "containsIP"
        | "containsCIDR"
        | "isUnspecified"
        | "isLoopback"
        | "isLinkLocalMulticast"
        | "isLinkLocalUnicast"
        | "isGlobalUnicast"
        | "ip.isCanonical"
        | "hasValue"
        | "sets.contains"
        | "sets.equivalent"
        | "sets.intersects"
        | "bool" => Ty::Bool,
        "size" | "indexOf" | "lastIndexOf" | "compareTo" | "sign" | "asInteger" | "int" | "prefixLength" | "family"
        | "getFullYear" | "getMonth" | "getDayOfYear" | "getDayOfMonth" | "getDate" | "getDayOfWeek" | "getHours"
        | "getMinutes" | "getSeconds" | "getMilliseconds" => Ty::Int,
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "join" | "substring" | "charAt" | "string" | "find"
        | "getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath" | "strings.quote" => Ty::String,
        "format" if target.is_some() => Ty::String,
        "split" | "findAll" => Ty::List(Box::new(Ty::String)),
        "double" | "asApproximateFloat" => Ty::Double,
        "uint" => Ty::Uint,
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "type" => Ty::Type,
        "value" => match first {
            Ty::Optional(t) => *t,
            _ => Ty::Dyn,
        },
        "orValue" => match first {
            Ty::Optional(t) => *t,
            _ => Ty::Dyn,
        },
        "min" | "max" | "sum" => match first {
            Ty::List(t) => *t,
            _ => Ty::Dyn,
        },
        _ => Ty::Dyn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: &Value, src: &str) -> (String, Vec<String>) {
        let expr = super::super::env::shared().parser().parse(src).expect("parses");
        let mut c = Checker::new(schema, false, false);
        let ty = c.check(&expr);
        (ty.name(), c.issues.into_iter().map(|i| i.message).collect())
    }

    #[test]
    fn the_checker_types_rules_from_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "replicas": {"type": "integer"}, "name": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
        for (src, ty) in [
            ("self.replicas < 10", "bool"),
            ("self.replicas", "int"),
            ("self.name + 'x'", "string"),
            ("self.items.all(i, i.n > 0)", "bool"),
            ("self.items.map(i, i.n)", "list(dyn)"),
            ("self.labels['a']", "string"),
            ("self.any.whatever.deep", "dyn"),
            ("has(self.name) ? self.name.startsWith('a') : true", "bool"),
            ("quantity('1').isLessThan(quantity('2'))", "bool"),
            ("format.dns1123Label().validate(self.name).hasValue()", "bool"),
            ("sets.contains([1], [1])", "bool"),
            ("optional.none()", "dyn"),
        ] {
            assert_eq!(check(&schema, src), (ty.to_string(), vec![]), "{src}");
        }
        assert_eq!(check(&schema, "self.replicaz > 1").1, vec!["undefined field 'replicaz'"]);
        assert_eq!(check(&schema, "foo == 1").1, vec!["undeclared reference to 'foo' (in container '')"]);
        assert_eq!(check(&schema, "self.name.nope()").1, vec!["undeclared reference to 'nope' (in container '')"]);
        assert_eq!(check(&schema, "self.name.x == 1").1, vec!["type 'string' does not support field selection"]);
        assert_eq!(check(&schema, "self.items.all(i, i.m > 0)").1, vec!["undefined field 'm'"]);
    }
}
