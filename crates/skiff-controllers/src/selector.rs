//! Label selectors as controllers evaluate them against objects in their stores
//! (`metav1.LabelSelectorAsSelector` semantics: an empty selector matches everything, a nil one
//! nothing; an invalid operator matches nothing).
//!
//! What does not live here: parsing selector strings (the API server's `skiff-api::selector`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` selects an object with `labels`.
pub fn matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = &selector.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `selector` is empty (selects everything).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// A `matchLabels`-only selector from a map (ReplicationController and Service selectors).
pub fn from_map(map: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(map.clone()), match_expressions: None }
}

/// Whether a map selector (Services, ReplicationControllers) selects `labels`; an empty map
/// selects nothing, as `labels.SelectorFromValidatedSet` of an empty set is used only after a
/// non-empty check by those controllers.
pub fn map_matches(map: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    !map.is_empty() && map.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement { key: "tier".into(), operator: "In".into(), values: Some(vec!["a".into()]) },
                LabelSelectorRequirement { key: "canary".into(), operator: "DoesNotExist".into(), values: None },
            ]),
        };
        assert!(matches(&sel, Some(&labels(&[("app", "web"), ("tier", "a")]))));
        assert!(!matches(&sel, Some(&labels(&[("app", "web"), ("tier", "b")]))));
        assert!(!matches(&sel, Some(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")]))));
        assert!(!matches(&sel, None));
        assert!(matches(&LabelSelector::default(), None));
        assert!(is_empty(&LabelSelector::default()));
        assert!(!map_matches(&BTreeMap::new(), Some(&labels(&[("a", "b")]))));
        assert!(map_matches(&labels(&[("a", "b")]), Some(&labels(&[("a", "b"), ("c", "d")]))));
    }
}
