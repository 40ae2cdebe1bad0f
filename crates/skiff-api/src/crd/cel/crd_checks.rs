//! What a CustomResourceDefinition's `x-kubernetes-validations` must satisfy when the CRD is
//! written (upstream `ValidateCustomResourceDefinitionOpenAPISchema`): the fields of each rule
//! (`rule` set, `message` and `messageExpression` non-blank and single-line, `reason` one of the
//! four supported, `fieldPath` a valid path), then every rule and message expression compiles,
//! transition rules stay out of uncorrelatable parts of the schema (below lists that are not
//! `x-kubernetes-list-type: map`), and `optionalOldSelf` is only set on transition rules.

use serde_json::Value;

use super::compile::{Rule, compile_rule, valid_field_path};
use crate::crd::schema::{additional, flag, props};
use crate::validation::{ErrorList, FieldError, child, index, key};

const REASONS: &[&str] = &["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

/// Checks the rules of a structural `schema` whose field path is `path`
/// (`spec.validation.openAPIV3Schema`).
pub fn check_rules(schema: &Value, path: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    check_node(schema, path, true, None, &mut errors);
    errors
}

fn has_newline(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

fn check_node(schema: &Value, path: &str, resource_root: bool, uncorrelatable: Option<&str>, errors: &mut ErrorList) {
    let rules = Rule::all_of(schema);
    let mut schema_errors = ErrorList::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = index(&child(path, "x-kubernetes-validations"), i);
        let (trimmed_rule, trimmed_msg) = (rule.rule.trim(), rule.message.trim());
        if trimmed_rule.is_empty() {
            schema_errors.push(FieldError::required(child(&at, "rule"), "rule is not specified"));
        } else if !rule.message.is_empty() && trimmed_msg.is_empty() {
            schema_errors.push(FieldError::invalid(
                child(&at, "message"),
                rule.message.as_str(),
                "message must be non-empty if specified",
            ));
        } else if has_newline(trimmed_msg) {
            schema_errors.push(FieldError::invalid(
                child(&at, "message"),
                rule.message.as_str(),
                "message must not contain line breaks",
            ));
        } else if has_newline(trimmed_rule) && trimmed_msg.is_empty() {
            schema_errors.push(FieldError::required(
                child(&at, "message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !rule.message_expression.is_empty() && rule.message_expression.trim().is_empty() {
            schema_errors.push(FieldError::required(
                child(&at, "messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = &rule.reason
            && !REASONS.contains(&reason.as_str())
        {
            schema_errors.push(FieldError::not_supported(child(&at, "reason"), reason.as_str(), REASONS));
        }
        if !rule.field_path.is_empty() {
            let fp = child(&at, "fieldPath");
            if rule.field_path.trim().is_empty() {
                schema_errors.push(FieldError::invalid(
                    fp.clone(),
                    rule.field_path.as_str(),
                    "fieldPath must be non-empty if specified",
                ));
            }
            if has_newline(&rule.field_path) {
                schema_errors.push(FieldError::invalid(
                    fp.clone(),
                    rule.field_path.as_str(),
                    "fieldPath must not contain line breaks",
                ));
            }
            if valid_field_path(&rule.field_path, schema).is_err() {
                schema_errors.push(FieldError::invalid(fp, rule.field_path.as_str(), "fieldPath must be a valid path"));
            }
        }
    }
    let clean = schema_errors.is_empty();
    errors.extend(schema_errors);
    if clean {
        for (i, rule) in rules.into_iter().enumerate() {
            let at = index(&child(path, "x-kubernetes-validations"), i);
            let go = rule.go_syntax();
            let compiled = compile_rule(rule, schema, resource_root);
            if let Some(e) = &compiled.error {
                errors.push(FieldError::invalid_go(child(&at, "rule"), &go, e));
            }
            if let Some(e) = &compiled.message_error {
                errors.push(FieldError::invalid_go(child(&at, "messageExpression"), &go, e));
            }
            if compiled.uses_old_self {
                if let Some(within) = uncorrelatable {
                    errors.push(FieldError::invalid(
                        child(&at, "rule"),
                        compiled.rule.rule.as_str(),
                        format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"),
                    ));
                }
            } else if compiled.error.is_none()
                && let Some(optional) = compiled.rule.optional_old_self
            {
                errors.push(FieldError::invalid(
                    child(&at, "optionalOldSelf"),
                    optional,
                    "may not be set if oldSelf is not used in rule",
                ));
            }
        }
    }
    for (name, sub) in props(schema).into_iter().flatten() {
        let embedded = flag(sub, "x-kubernetes-embedded-resource");
        check_node(sub, &key(&child(path, "properties"), name), embedded, uncorrelatable, errors);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let is_map_list = schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
        let within = if is_map_list { uncorrelatable } else { uncorrelatable.or(Some(path)) };
        let embedded = flag(items, "x-kubernetes-embedded-resource");
        check_node(items, &child(path, "items"), embedded, within, errors);
    }
    if let Some(sub) = additional(schema) {
        let embedded = flag(sub, "x-kubernetes-embedded-resource");
        check_node(sub, &child(path, "additionalProperties"), embedded, uncorrelatable, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value) -> Vec<String> {
        check_rules(&schema, "spec.validation.openAPIV3Schema").iter().map(ToString::to_string).collect()
    }

    fn with_rules(rules: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": rules,
            "properties": {"replicas": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}}})
    }

    #[test]
    fn broken_rules_are_rejected_naming_the_field() {
        let errs = errors(with_rules(json!([{"rule": "self.replicas >"}])));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas >\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:16: Syntax error:"
            ),
            "{}",
            errs[0]
        );
        assert_eq!(
            errs[1],
            "spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[spec].properties[tags]"
        );
    }

    #[test]
    fn rule_fields_are_validated() {
        let errs = errors(with_rules(json!([
            {"rule": " "},
            {"rule": "true", "message": " "},
            {"rule": "true", "reason": "Bogus"},
            {"rule": "true", "fieldPath": ".nope"},
            {"rule": "true", "optionalOldSelf": true},
            {"rule": "self.replicas > 0", "messageExpression": "1"},
        ])));
        let p = "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations";
        assert!(errs.contains(&format!("{p}[0].rule: Required value: rule is not specified")), "{errs:?}");
        assert!(
            errs.contains(&format!("{p}[1].message: Invalid value: \" \": message must be non-empty if specified")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{p}[2].reason: Unsupported value: \"Bogus\""))),
            "{errs:?}"
        );
        assert!(
            errs.contains(&format!("{p}[3].fieldPath: Invalid value: \".nope\": fieldPath must be a valid path")),
            "{errs:?}"
        );
        let fine = errors(with_rules(json!([
            {"rule": "true", "optionalOldSelf": true},
            {"rule": "self.replicas > 0", "messageExpression": "1"},
        ])));
        assert!(
            fine.contains(&format!(
                "{p}[0].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"
            )),
            "{fine:?}"
        );
        assert!(
            fine.iter().any(|e| e
                .starts_with(&format!("{p}[1].messageExpression: Invalid value: apiextensions.ValidationRule{{"))
                && e.ends_with("messageExpression must evaluate to a string")),
            "{fine:?}"
        );
    }
}
