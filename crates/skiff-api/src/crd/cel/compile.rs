//! Compiling the `x-kubernetes-validations` of a structural schema: parsing each `rule` and
//! `messageExpression` in the shared environment, checking them ([`super::check`]), noting
//! whether a rule uses `oldSelf`, normalizing `fieldPath`, and metering the programs
//! ([`super::budget::instrument`]). The result is a [`RuleTree`] parallel to the schema, holding
//! only the branches that lead to rules.
//!
//! Error texts follow cel-go (`ERROR: <input>:1:13: Syntax error: …` with the source line and a
//! caret under the column) and upstream's compiler (`compilation failed: …`, `cel expression must
//! evaluate to a bool`, `messageExpression must evaluate to a string`).

use std::collections::BTreeMap;

use cel::common::ast::SourceInfo;
use cel::common::ast::{Expr, IdedExpr};
use serde_json::Value;

use super::budget::instrument;
use super::check::{Checker, Issue, Ty};
use super::env::shared;
use crate::crd::schema::{additional, flag, props};
use crate::validation::{child, key};

/// One entry of `x-kubernetes-validations`, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rule {
    pub(crate) rule: String,
    pub(crate) message: String,
    pub(crate) message_expression: String,
    pub(crate) reason: Option<String>,
    pub(crate) field_path: String,
    pub(crate) optional_old_self: Option<bool>,
}

impl Rule {
    fn from_json(v: &Value) -> Rule {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Rule {
            rule: s("rule"),
            message: s("message"),
            message_expression: s("messageExpression"),
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
            field_path: s("fieldPath"),
            optional_old_self: v.get("optionalOldSelf").and_then(Value::as_bool),
        }
    }

    /// The rules of a schema node.
    pub(crate) fn all_of(schema: &Value) -> Vec<Rule> {
        schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(Rule::from_json).collect())
            .unwrap_or_default()
    }

    /// What error messages name the rule by: its message, else its source.
    pub(crate) fn error_string(&self) -> &str {
        if self.message.is_empty() { self.rule.trim() } else { self.message.trim() }
    }

    /// The rule as Go's `%#v` prints upstream's internal `ValidationRule` (the value upstream
    /// shows in compile errors). Non-nil pointers print as a fixed address.
    pub(crate) fn go_syntax(&self) -> String {
        let reason = match &self.reason {
            Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000010000)",
            None => "(*apiextensions.FieldValueErrorReason)(nil)",
        };
        let optional = match self.optional_old_self {
            Some(_) => "(*bool)(0xc000010008)",
            None => "(*bool)(nil)",
        };
        format!(
            "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:{reason}, FieldPath:{:?}, OptionalOldSelf:{optional}}}",
            self.rule, self.message, self.message_expression, self.field_path
        )
    }
}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// The rule as written.
    pub(crate) rule: Rule,
    /// The metered program; `None` for an empty rule or when compilation failed.
    pub(crate) program: Option<IdedExpr>,
    /// Why the rule did not compile.
    pub(crate) error: Option<String>,
    /// The metered `messageExpression` program.
    pub(crate) message_program: Option<IdedExpr>,
    /// Why the `messageExpression` did not compile.
    pub(crate) message_error: Option<String>,
    /// Whether the rule references `oldSelf` (a transition rule).
    pub(crate) uses_old_self: bool,
    /// `fieldPath` normalized to a field path relative to the node (`replicas`, `labels[a]`).
    pub(crate) field_path: Option<String>,
}

/// The compiled rules of a schema and of the nodes below it that have rules.
#[derive(Debug, Default)]
pub(crate) struct RuleTree {
    /// The node's rules.
    pub(crate) rules: Vec<CompiledRule>,
    /// The node's schema `type` (the value upstream shows in rule errors).
    pub(crate) type_name: String,
    /// Rules below `properties`, by property name.
    pub(crate) properties: BTreeMap<String, RuleTree>,
    /// Rules below `items`.
    pub(crate) items: Option<Box<RuleTree>>,
    /// Rules below `additionalProperties`.
    pub(crate) additional: Option<Box<RuleTree>>,
    /// Keys of `x-kubernetes-list-type: map` lists (old items are correlated by them).
    pub(crate) list_map_keys: Option<Vec<String>>,
}

impl RuleTree {
    fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.properties.is_empty() && self.items.is_none() && self.additional.is_none()
    }
}

/// Compiles every rule of `schema` (the root of a resource).
pub(crate) fn compile_schema(schema: &Value) -> RuleTree {
    compile_node(schema, true).unwrap_or_default()
}

fn compile_node(schema: &Value, resource_root: bool) -> Option<RuleTree> {
    let mut tree = RuleTree {
        rules: Rule::all_of(schema).into_iter().map(|r| compile_rule(r, schema, resource_root)).collect(),
        type_name: schema.get("type").and_then(Value::as_str).unwrap_or("").to_string(),
        ..Default::default()
    };
    if resource_root && tree.type_name.is_empty() {
        tree.type_name = "object".into();
    }
    for (name, sub) in props(schema).into_iter().flatten() {
        if let Some(t) = compile_node(sub, flag(sub, "x-kubernetes-embedded-resource")) {
            tree.properties.insert(name.clone(), t);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        tree.items = compile_node(items, flag(items, "x-kubernetes-embedded-resource")).map(Box::new);
        if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
            tree.list_map_keys = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_string).collect());
        }
    }
    if let Some(sub) = additional(schema) {
        tree.additional = compile_node(sub, flag(sub, "x-kubernetes-embedded-resource")).map(Box::new);
    }
    (!tree.is_empty()).then_some(tree)
}

/// What expression to expect from a compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Bool,
    String,
}

/// A parsed, checked and metered expression, or cel-go's description of what is wrong with it.
struct Compiled {
    program: IdedExpr,
    uses_old_self: bool,
}

fn compile_expr(
    src: &str,
    schema: &Value,
    resource_root: bool,
    optional_old_self: bool,
    want: Want,
) -> Result<Compiled, (bool, String)> {
    let parsed = shared().parser().parse_with_source_info(src);
    let (expr, info) = match parsed {
        Ok(p) => p,
        Err(errors) => {
            let text = errors
                .errors
                .iter()
                .map(|e| display_issue(src, e.pos.0.max(1) as usize, e.pos.1.max(1) as usize, &e.msg))
                .collect::<Vec<_>>()
                .join("\n");
            return Err((true, text));
        }
    };
    let mut checker = Checker::new(schema, resource_root, optional_old_self);
    let ty = checker.check(&expr);
    if !checker.issues.is_empty() {
        return Err((true, render_issues(src, &info, &checker.issues)));
    }
    match (want, ty) {
        (Want::Bool, Ty::Bool | Ty::Dyn) | (Want::String, Ty::String | Ty::Dyn) => {}
        (Want::Bool, _) => return Err((false, "cel expression must evaluate to a bool".into())),
        (Want::String, _) => return Err((false, "messageExpression must evaluate to a string".into())),
    }
    Ok(Compiled { uses_old_self: references(&expr, "oldSelf"), program: instrument(expr) })
}

/// Compiles one rule of a node described by `schema`.
pub(crate) fn compile_rule(rule: Rule, schema: &Value, resource_root: bool) -> CompiledRule {
    let mut out = CompiledRule {
        rule,
        program: None,
        error: None,
        message_program: None,
        message_error: None,
        uses_old_self: false,
        field_path: None,
    };
    if out.rule.rule.trim().is_empty() {
        return out;
    }
    let optional = out.rule.optional_old_self == Some(true);
    match compile_expr(&out.rule.rule, schema, resource_root, optional, Want::Bool) {
        Ok(c) => {
            out.uses_old_self = c.uses_old_self;
            out.program = Some(c.program);
        }
        Err((true, text)) => out.error = Some(format!("compilation failed: {text}")),
        Err((false, text)) => out.error = Some(text),
    }
    if out.error.is_some() {
        return out;
    }
    if !out.rule.message_expression.is_empty() {
        match compile_expr(&out.rule.message_expression, schema, resource_root, optional, Want::String) {
            Ok(c) => out.message_program = Some(c.program),
            Err((true, text)) => out.message_error = Some(format!("messageExpression compilation failed: {text}")),
            Err((false, text)) => out.message_error = Some(text),
        }
    }
    if !out.rule.field_path.is_empty() {
        out.field_path = valid_field_path(&out.rule.field_path, schema).ok();
    }
    out
}

/// Whether `e` references the identifier `name`.
fn references(e: &IdedExpr, name: &str) -> bool {
    match &e.expr {
        Expr::Ident(n) => n == name,
        Expr::Select(s) => references(&s.operand, name),
        Expr::Call(c) => {
            c.target.as_deref().is_some_and(|t| references(t, name)) || c.args.iter().any(|a| references(a, name))
        }
        Expr::List(l) => l.elements.iter().any(|x| references(x, name)),
        Expr::Map(m) => m.entries.iter().any(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(m) => references(&m.key, name) || references(&m.value, name),
            cel::common::ast::EntryExpr::StructField(f) => references(&f.value, name),
        }),
        Expr::Comprehension(c) => {
            [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result].iter().any(|x| references(x, name))
        }
        Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// cel-go's display of one issue: the message, then the source line and a caret under the column
/// (1-based).
fn display_issue(src: &str, line: usize, column: usize, msg: &str) -> String {
    let mut out = format!("ERROR: <input>:{line}:{column}: {msg}");
    if let Some(text) = src.lines().nth(line - 1) {
        let text = text.replace('\t', " ");
        let dots: String = text.chars().take(column - 1).map(|c| if c.len_utf8() > 1 { '．' } else { '.' }).collect();
        out.push_str(&format!("\n | {text}\n | {dots}^"));
    }
    out
}

fn render_issues(src: &str, info: &SourceInfo, issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            let offset = info.offset_for(i.id).map_or(0, |(start, _)| start as usize);
            let before: String = src.chars().take(offset).collect();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            display_issue(src, line, column, &i.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Validates a rule's `fieldPath` (`.spec.replicas`, `.labels['a.b']`) against `schema` and
/// returns it as a field path (`spec.replicas`, `labels[a.b]`), as upstream's `ValidFieldPath`.
pub(crate) fn valid_field_path(path: &str, schema: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut node = schema;
    let mut rest = path;
    while !rest.is_empty() {
        let (name, after) = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err("unexpected end of JSON path".into());
            }
            (r[..end].to_string(), &r[end..])
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.strip_prefix('\'').ok_or_else(|| format!("expected single quoted string but got {r}"))?;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or("unexpected end of JSON path")?;
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            let after = r[end + 1..].strip_prefix(']').ok_or("expected ] but got something else")?;
            (name, after)
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        if let Some(properties) = props(node) {
            node = properties.get(&name).ok_or("does not refer to a valid field")?;
            out = child(&out, &name);
        } else if let Some(sub) = additional(node) {
            node = sub;
            out = key(&out, &name);
        } else {
            return Err("does not refer to a valid field".into());
        }
        rest = after;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}})
    }

    fn compile(rule: &str) -> CompiledRule {
        compile_rule(Rule { rule: rule.into(), ..Default::default() }, &schema()["properties"]["spec"], false)
    }

    #[test]
    fn compile_errors_are_worded_as_upstream() {
        for (rule, error) in [
            ("self.replicas >", "compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>'"),
            (
                "self.replicaz > 1",
                "compilation failed: ERROR: <input>:1:5: undefined field 'replicaz'\n | self.replicaz > 1\n | ....^",
            ),
            ("nope(self)", "compilation failed: ERROR: <input>:1:5: undeclared reference to 'nope' (in container '')"),
            ("self.replicas", "cel expression must evaluate to a bool"),
        ] {
            let c = compile(rule);
            let got = c.error.unwrap_or_default();
            assert!(got.starts_with(error), "{rule}: {got}");
            assert!(c.program.is_none());
        }
        let ok = compile("self.replicas <= oldSelf.replicas");
        assert!(ok.error.is_none() && ok.uses_old_self && ok.program.is_some());
        assert!(!compile("self.replicas > 0").uses_old_self);
        let mut with_message = Rule { rule: "true".into(), message_expression: "1".into(), ..Default::default() };
        let c = compile_rule(with_message.clone(), &schema(), true);
        assert_eq!(c.message_error.as_deref(), Some("messageExpression must evaluate to a string"));
        with_message.message_expression = "'x' +".into();
        let c = compile_rule(with_message, &schema(), true);
        assert!(c.message_error.is_some_and(|e| e.starts_with("messageExpression compilation failed: ERROR")));
    }

    #[test]
    fn field_paths_are_checked_against_the_schema() {
        let s = schema();
        assert_eq!(valid_field_path(".spec.replicas", &s).as_deref(), Ok("spec.replicas"));
        assert_eq!(valid_field_path(".spec.labels['a.b']", &s).as_deref(), Ok("spec.labels[a.b]"));
        assert_eq!(valid_field_path("['spec'].replicas", &s).as_deref(), Ok("spec.replicas"));
        assert_eq!(valid_field_path("['spec']['replicas']", &s).as_deref(), Ok("spec.replicas"));
        assert!(valid_field_path(".spec.nope", &s).is_err());
        assert!(valid_field_path("spec", &s).is_err());
    }

    #[test]
    fn the_rule_tree_keeps_only_branches_with_rules() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string"},
            "spec": {"type": "object", "x-kubernetes-validations": [{"rule": "true"}], "properties": {
                "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "x-kubernetes-validations": [{"rule": "self.name != ''"}],
                        "properties": {"name": {"type": "string"}}}}}}}});
        let tree = compile_schema(&s);
        assert!(tree.rules.is_empty());
        assert_eq!(tree.properties.keys().collect::<Vec<_>>(), vec!["spec"]);
        let spec = &tree.properties["spec"];
        assert_eq!(spec.rules.len(), 1);
        let items = &spec.properties["items"];
        assert_eq!(items.list_map_keys, Some(vec!["name".to_string()]));
        assert_eq!(items.items.as_ref().map(|i| i.rules.len()), Some(1));
    }
}
