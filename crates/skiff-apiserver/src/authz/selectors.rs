//! The field and label selectors of a request as authorizers see them (upstream
//! `Attributes.GetFieldSelector`/`GetLabelSelector`, on by default since 1.32): read from the
//! query of a list, watch or deletecollection, or from the `fieldSelector`/`labelSelector` of a
//! SubjectAccessReview's `resourceAttributes`. What could not be read is kept as an error beside
//! the requirements that could, so an authorizer narrowing by a selector sees a broader request,
//! never a narrower one.
//!
//! What does not live here: the selector grammars (`skiff_api::selector`) and the decisions
//! that use them (the Node authorizer narrows a node's pod reads by `spec.nodeName`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use serde_json::Value;
use skiff_api::selector::{FieldOp, FieldRequirement, FieldSelectorExpr, LabelSelectorExpr, Requirement};

/// A selector's requirements, and why some (or all) of the selector was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector<R> {
    /// The requirements read (all must hold).
    pub requirements: Vec<R>,
    /// The parse error, when part of the selector was ignored.
    pub error: Option<String>,
}

impl<R> Default for Selector<R> {
    fn default() -> Self {
        Self { requirements: Vec::new(), error: None }
    }
}

/// A request's field selector requirements.
pub type FieldSelector = Selector<FieldRequirement>;
/// A request's label selector requirements.
pub type LabelSelector = Selector<Requirement>;

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax.
    pub fn parse(raw: &str) -> Self {
        match FieldSelectorExpr::parse(raw) {
            Ok(expr) => Self { requirements: expr.requirements, error: None },
            Err(e) => Self { requirements: Vec::new(), error: Some(e.0) },
        }
    }

    /// Whether a requirement says `field` equals `value` (`=` or `==`).
    pub fn requires(&self, field: &str, value: &str) -> bool {
        self.requirements.iter().any(|r| r.field == field && r.op == FieldOp::Equals && r.value == value)
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(raw: &str) -> Self {
        match LabelSelectorExpr::parse(raw) {
            Ok(expr) => Self { requirements: expr.requirements, error: None },
            Err(e) => Self { requirements: Vec::new(), error: Some(e.0) },
        }
    }
}

/// Whether a request with `verb` carries selectors for authorization (upstream reads them only
/// for collections).
pub fn verb_has_selectors(verb: &str) -> bool {
    matches!(verb, "list" | "watch" | "deletecollection")
}

/// The field selector of a review's `resourceAttributes.fieldSelector`: `rawSelector` in the
/// query syntax, or `requirements` (`In`/`NotIn` with one value each), which win when both are
/// given.
pub fn review_field_selector(v: Option<&Value>) -> FieldSelector {
    let Some(v) = v.filter(|v| v.is_object()) else { return FieldSelector::default() };
    let mut selector = match v["rawSelector"].as_str().filter(|s| !s.is_empty()) {
        Some(raw) => FieldSelector::parse(raw),
        None => FieldSelector::default(),
    };
    let Some(items) = v["requirements"].as_array().filter(|a| !a.is_empty()) else { return selector };
    let mut errors = Vec::new();
    selector.requirements =
        items.iter().filter_map(|item| review_field_requirement(item).map_err(|e| errors.push(e)).ok()).collect();
    selector.error = (!errors.is_empty()).then(|| errors.join(", "));
    selector
}

fn review_field_requirement(item: &Value) -> Result<FieldRequirement, String> {
    let values: Vec<&str> = item["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if values.len() > 1 {
        return Err("fieldSelectors do not yet support multiple values".into());
    }
    let field = item["key"].as_str().unwrap_or_default().to_string();
    let (op, one) = match item["operator"].as_str().unwrap_or_default() {
        "In" => (FieldOp::Equals, "in"),
        "NotIn" => (FieldOp::NotEquals, "not in"),
        other @ ("Exists" | "DoesNotExist") => return Err(format!("fieldSelectors do not yet support {other}")),
        other => return Err(format!("{other:?} is not a valid field selector operator")),
    };
    let Some(value) = values.first() else { return Err(format!("fieldSelectors {one} must have one value")) };
    Ok(FieldRequirement { field, op, value: (*value).to_string() })
}

/// The label selector of a review's `resourceAttributes.labelSelector`: `rawSelector` in the
/// query syntax, or `requirements` (as in a `LabelSelector`'s `matchExpressions`), which win
/// when both are given.
pub fn review_label_selector(v: Option<&Value>) -> LabelSelector {
    let Some(v) = v.filter(|v| v.is_object()) else { return LabelSelector::default() };
    let mut selector = match v["rawSelector"].as_str().filter(|s| !s.is_empty()) {
        Some(raw) => LabelSelector::parse(raw),
        None => LabelSelector::default(),
    };
    let Some(items) = v["requirements"].as_array().filter(|a| !a.is_empty()) else { return selector };
    let mut errors = Vec::new();
    selector.requirements = Vec::new();
    for item in items {
        let parsed = serde_json::from_value::<MetaLabelSelector>(serde_json::json!({"matchExpressions": [item]}))
            .map_err(|e| e.to_string())
            .and_then(|s| LabelSelectorExpr::from_label_selector(Some(&s)).map_err(|e| e.0));
        match parsed {
            Ok(expr) => selector.requirements.extend(expr.requirements),
            Err(e) => errors.push(e),
        }
    }
    selector.error = (!errors.is_empty()).then(|| errors.join(", "));
    selector
}

/// A review's `status.evaluationError` for the parts of its selectors it ignored (upstream's
/// wording), empty when none was.
pub fn review_selector_errors(field: &FieldSelector, label: &LabelSelector) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, ignored, partly) in [
        ("fieldSelector", field.error.is_some(), !field.requirements.is_empty()),
        ("labelSelector", label.error.is_some(), !label.requirements.is_empty()),
    ] {
        if ignored {
            let how = if partly { "partially ignored" } else { "ignored" };
            errors.push(format!("spec.resourceAttributes.{name} {how} due to parse error"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_selectors_parse_or_keep_their_error() {
        let s = FieldSelector::parse("spec.nodeName==n1,status.phase!=Failed");
        assert!(s.requires("spec.nodeName", "n1") && s.error.is_none());
        assert!(!s.requires("status.phase", "Failed"), "a != term requires nothing");
        let bad = FieldSelector::parse("spec.nodeName");
        assert!(bad.requirements.is_empty() && bad.error.is_some());
        assert_eq!(LabelSelector::parse("app=web,tier in (a,b)").requirements.len(), 2);
        assert!(LabelSelector::parse("a in (").error.is_some());
        assert!(verb_has_selectors("watch") && !verb_has_selectors("get"));
    }

    #[test]
    fn review_field_selectors_follow_upstream() {
        let raw = review_field_selector(Some(&json!({"rawSelector": "spec.nodeName=n1"})));
        assert!(raw.requires("spec.nodeName", "n1"));
        let reqs = review_field_selector(Some(&json!({"rawSelector": "spec.nodeName=n2", "requirements": [
            {"key": "spec.nodeName", "operator": "In", "values": ["n1"]},
            {"key": "status.phase", "operator": "NotIn", "values": ["Failed"]},
            {"key": "a", "operator": "In", "values": ["x", "y"]},
            {"key": "b", "operator": "Exists"}
        ]})));
        assert!(reqs.requires("spec.nodeName", "n1") && !reqs.requires("spec.nodeName", "n2"), "requirements win");
        assert_eq!(reqs.requirements.len(), 2);
        assert_eq!(
            reqs.error.as_deref(),
            Some("fieldSelectors do not yet support multiple values, fieldSelectors do not yet support Exists")
        );
        assert_eq!(review_field_selector(None), FieldSelector::default());
    }

    #[test]
    fn review_label_selectors_and_their_errors() {
        let l = review_label_selector(Some(&json!({"requirements": [
            {"key": "app", "operator": "In", "values": ["web"]},
            {"key": "x", "operator": "Bogus", "values": ["1"]}
        ]})));
        assert_eq!(l.requirements.len(), 1);
        assert!(l.error.is_some());
        let f = review_field_selector(Some(&json!({"rawSelector": "nonsense"})));
        assert_eq!(
            review_selector_errors(&f, &l),
            [
                "spec.resourceAttributes.fieldSelector ignored due to parse error",
                "spec.resourceAttributes.labelSelector partially ignored due to parse error"
            ]
        );
        assert!(review_selector_errors(&FieldSelector::default(), &LabelSelector::default()).is_empty());
    }
}
