//! Table-driven tests of rule evaluation: passing and failing rules, transition rules,
//! `messageExpression`, `fieldPath`, reasons, ratcheting and the cost budget.

use serde_json::{Value, json};

use super::validate;
use crate::validation::FieldError;

fn leak(v: Value) -> &'static Value {
    Box::leak(Box::new(v))
}

/// A resource schema whose `spec` has the given rules and the fields the cases use.
fn schema(spec_rules: Value) -> &'static Value {
    leak(json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": spec_rules,
        "properties": {
            "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10", "message": "must be at most 10"}]},
            "min": {"type": "integer"}, "max": {"type": "integer"},
            "name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port", "message": "ports may only grow"}]}},
            "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 5"}]}}}}}}))
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "t.example/v1", "kind": "T", "metadata": {"name": "a"}, "spec": spec})
}

fn run(rules: Value, spec: Value, old_spec: Option<Value>) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let old = old_spec.map(obj);
    let errors = validate(schema(rules), &obj(spec), old.as_ref(), &[], &mut warnings);
    (errors.iter().map(ToString::to_string).collect(), warnings)
}

#[test]
fn rules_pass_or_fail_with_upstream_messages() {
    let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
        (
            "passing rules",
            json!([{"rule": "self.min <= self.max"}]),
            json!({"replicas": 3, "min": 1, "max": 2}),
            vec![],
        ),
        (
            "a failing rule with a message",
            json!([]),
            json!({"replicas": 11}),
            vec!["spec.replicas: Invalid value: \"integer\": must be at most 10"],
        ),
        (
            "no message: the rule is shown",
            json!([{"rule": "self.min <= self.max"}]),
            json!({"min": 3, "max": 2}),
            vec!["spec: Invalid value: \"object\": failed rule: self.min <= self.max"],
        ),
        (
            "messageExpression",
            json!([{"rule": "self.min <= self.max", "message": "unused", "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)"}]),
            json!({"min": 3, "max": 2}),
            vec!["spec: Invalid value: \"object\": min 3 exceeds max 2"],
        ),
        (
            "a failing messageExpression falls back to the message",
            json!([{"rule": "false", "message": "fallback", "messageExpression": "self.labels['nope']"}]),
            json!({"labels": {}}),
            vec!["spec: Invalid value: \"object\": fallback"],
        ),
        (
            "fieldPath moves the error",
            json!([{"rule": "self.min <= self.max", "message": "too small", "fieldPath": ".max"}]),
            json!({"min": 3, "max": 2}),
            vec!["spec.max: Invalid value: \"object\": too small"],
        ),
        (
            "reasons",
            json!([{"rule": "false", "message": "no", "reason": "FieldValueForbidden"},
                   {"rule": "false", "message": "need it", "reason": "FieldValueRequired"},
                   {"rule": "false", "reason": "FieldValueDuplicate"}]),
            json!({}),
            vec!["spec: Forbidden: no", "spec: Required value: need it", "spec: Duplicate value: \"object\""],
        ),
        (
            "evaluation errors are errors",
            json!([{"rule": "self.labels['missing'] == 'x'"}, {"rule": "1 / (self.min - self.min) == 1", "message": "div"}]),
            json!({"labels": {}, "min": 1}),
            vec![
                "spec: Invalid value: \"object\": no such key: missing evaluating rule: self.labels['missing'] == 'x'",
                "spec: Invalid value: \"object\": division by zero evaluating rule: div",
            ],
        ),
        (
            "a rule that does not evaluate to true fails",
            json!([{"rule": "self.any.value", "message": "not a bool"}]),
            json!({"any": {"value": 5}}),
            vec!["spec: Invalid value: \"object\": not a bool"],
        ),
        (
            "runtime overload mismatches",
            json!([{"rule": "self.any.value > 'a'"}]),
            json!({"any": {"value": 5}}),
            vec![
                "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.any.value > 'a'",
            ],
        ),
        (
            "rules on list items and escaped names",
            json!([]),
            json!({"tags": ["ok", "toolong"]}),
            vec!["spec.tags[1]: Invalid value: \"string\": failed rule: self.size() < 5"],
        ),
        ("null values are not evaluated", json!([]), json!({"replicas": null}), vec![]),
    ];
    for (name, rules, spec, want) in cases {
        let (errors, warnings) = run(rules, spec, None);
        assert_eq!(errors, want, "{name}");
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
    }
}

#[test]
fn root_rules_report_the_nil_path() {
    let s =
        leak(json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('x')"}],
        "properties": {"spec": {"type": "object"}}}));
    let errors = validate(s, &obj(json!({})), None, &[], &mut Vec::new());
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["<nil>: Invalid value: \"object\": failed rule: self.metadata.name.startsWith('x')"]
    );
    assert_eq!(errors[0].field, "<nil>");
}

#[test]
fn transition_rules_need_an_old_value() {
    let immutable = json!([{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]);
    let cases: Vec<(&str, Value, Option<Value>, Vec<&str>)> = vec![
        ("create skips transition rules", json!({"name": "a"}), None, vec![]),
        ("an unchanged update passes", json!({"name": "a"}), Some(json!({"name": "a"})), vec![]),
        (
            "a changed update fails",
            json!({"name": "b"}),
            Some(json!({"name": "a"})),
            vec!["spec: Invalid value: \"object\": name is immutable"],
        ),
    ];
    for (name, spec, old, want) in cases {
        assert_eq!(run(immutable.clone(), spec, old).0, want, "{name}");
    }
    let optional = json!([{"rule": "oldSelf.hasValue() ? oldSelf.value().name == self.name : self.name == 'first'",
        "optionalOldSelf": true, "message": "first name must be first"}]);
    assert_eq!(
        run(optional.clone(), json!({"name": "other"}), None).0,
        vec!["spec: Invalid value: \"object\": first name must be first"]
    );
    assert!(run(optional.clone(), json!({"name": "first"}), None).0.is_empty());
    assert!(run(optional, json!({"name": "other"}), Some(json!({"name": "other"}))).0.is_empty());
}

#[test]
fn map_list_items_correlate_by_key() {
    let old = json!({"ports": [{"name": "a", "port": 10}, {"name": "b", "port": 20}]});
    let reordered_and_grown =
        json!({"ports": [{"name": "b", "port": 21}, {"name": "a", "port": 10}, {"name": "c", "port": 1}]});
    assert!(run(json!([]), reordered_and_grown, Some(old.clone())).0.is_empty());
    let shrunk = json!({"ports": [{"name": "b", "port": 19}]});
    assert_eq!(
        run(json!([]), shrunk, Some(old)).0,
        vec!["spec.ports[0]: Invalid value: \"object\": ports may only grow"]
    );
}

#[test]
fn unchanged_invalid_values_only_warn() {
    let rules = json!([{"rule": "self.min <= self.max", "message": "min above max"}]);
    let bad = json!({"min": 3, "max": 2});
    let (errors, warnings) = run(rules.clone(), bad.clone(), Some(bad.clone()));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings, vec!["spec: Invalid value: \"object\": min above max"]);
    let (errors, _) = run(rules, json!({"min": 4, "max": 2}), Some(bad));
    assert_eq!(errors, vec!["spec: Invalid value: \"object\": min above max"]);
}

#[test]
fn a_hostile_rule_is_stopped_by_the_cost_limit() {
    let tags: Vec<String> = (0..1500).map(|i| format!("t{i}")).collect();
    let rules = json!([{"rule": "self.tags.all(a, self.tags.all(b, self.tags.all(c, a != '' || b != c)))"}]);
    let s = leak(json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": rules,
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}}}));
    let errors = validate(s, &obj(json!({"tags": tags})), None, &[], &mut Vec::new());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "spec: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.tags.all(a, self.tags.all(b, self.tags.all(c, a != '' || b != c)))"
    );
}

#[test]
fn schema_errors_that_block_evaluation_are_reported_instead() {
    let blocking = [FieldError::required("spec.name", "")];
    let errors = validate(schema(json!([{"rule": "false"}])), &obj(json!({})), None, &blocking, &mut Vec::new());
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
        ]
    );
    let harmless = [FieldError::invalid("spec.name", "x", "bad")];
    assert_eq!(
        validate(schema(json!([{"rule": "false"}])), &obj(json!({})), None, &harmless, &mut Vec::new()).len(),
        1
    );
}

#[test]
fn compiled_rules_are_cached_per_schema() {
    let s = schema(json!([]));
    let a = super::rules_of(s);
    let b = super::rules_of(s);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}
