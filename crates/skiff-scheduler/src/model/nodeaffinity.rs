//! Node selection rules of a pod: `spec.nodeSelector`, required node affinity (ORed node
//! selector terms of ANDed label expressions and `metadata.name` fields, with every operator
//! including `Gt`/`Lt`) and weighted preferred terms, as upstream's `nodeaffinity` helpers
//! evaluate them. A malformed requirement never matches (upstream ignores parse errors and the
//! term fails).
//!
//! Which plugin uses them, and with what message, is in [`crate::plugins`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm};

/// One node selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    /// An operator or values upstream refuses to parse: the term never matches.
    Invalid,
}

impl Requirement {
    fn new(r: &NodeSelectorRequirement, field: bool) -> Self {
        let values = r.values.clone().unwrap_or_default();
        let op =
            match r.operator.as_str() {
                "In" if !values.is_empty() => Op::In,
                "NotIn" if !values.is_empty() => Op::NotIn,
                "Exists" if values.is_empty() && !field => Op::Exists,
                "DoesNotExist" if values.is_empty() && !field => Op::DoesNotExist,
                "Gt" | "Lt" if !field && values.len() == 1 && values[0].parse::<i64>().is_ok() => {
                    if r.operator == "Gt" { Op::Gt } else { Op::Lt }
                }
                _ => Op::Invalid,
            };
        // Only metadata.name is a supported node field, with one value.
        let op = if field && (r.key != "metadata.name" || values.len() != 1) { Op::Invalid } else { op };
        Self { key: r.key.clone(), op, values }
    }

    fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else { return false };
                let bound = self.values[0].parse::<i64>().unwrap_or(0);
                if self.op == Op::Gt { actual > bound } else { actual < bound }
            }
            Op::Invalid => false,
        }
    }
}

/// One node selector term: label expressions and `metadata.name` fields, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Term {
    /// Parses a term.
    pub fn new(t: &NodeSelectorTerm) -> Self {
        Self {
            labels: t.match_expressions.iter().flatten().map(|r| Requirement::new(r, false)).collect(),
            fields: t.match_fields.iter().flatten().map(|r| Requirement::new(r, true)).collect(),
        }
    }

    /// Whether the term matches a node (an empty term matches nothing).
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.labels.iter().all(|r| r.matches(|k| labels.get(k).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(|k| (k == "metadata.name").then_some(name)))
    }

    /// The node names a term pins with `metadata.name In (…)` requirements (intersected), or
    /// `None` when it has none.
    pub fn pinned_names(&self) -> Option<Vec<String>> {
        let mut names: Option<Vec<String>> = None;
        for f in &self.fields {
            if f.key == "metadata.name" && f.op == Op::In {
                names = Some(match names {
                    None => f.values.clone(),
                    Some(prev) => prev.into_iter().filter(|n| f.values.contains(n)).collect(),
                });
            }
        }
        names
    }
}

/// A node selector: ORed terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The terms.
    pub terms: Vec<Term>,
}

impl Selector {
    /// Parses a node selector.
    pub fn new(s: &NodeSelector) -> Self {
        Self { terms: s.node_selector_terms.iter().map(Term::new).collect() }
    }

    /// Whether any term matches.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().any(|t| t.matches(name, labels))
    }
}

/// Upstream `RequiredNodeAffinity`: `spec.nodeSelector` AND the required affinity terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    /// `spec.nodeSelector` (every label must equal).
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution`.
    pub affinity: Option<Selector>,
}

impl RequiredNodeAffinity {
    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.affinity.is_none()
    }

    /// Whether a node satisfies both parts.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.affinity.as_ref().is_none_or(|s| s.matches(name, labels))
    }
}

/// Weighted preferred terms (upstream `PreferredSchedulingTerms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferred {
    terms: Vec<(i64, Term)>,
}

impl Preferred {
    /// Parses the preferred terms (zero weights are dropped, as upstream).
    pub fn new(terms: &[PreferredSchedulingTerm]) -> Self {
        Self {
            terms: terms
                .iter()
                .filter(|t| t.weight != 0)
                .map(|t| (i64::from(t.weight), Term::new(&t.preference)))
                .collect(),
        }
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The sum of the weights of the terms a node matches.
    pub fn score(&self, name: &str, labels: &BTreeMap<String, String>) -> i64 {
        self.terms.iter().filter(|(_, t)| t.matches(name, labels)).map(|(w, _)| *w).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn selector(v: serde_json::Value) -> Selector {
        Selector::new(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn operators_match_as_upstream() {
        let node = labels(&[("zone", "a"), ("gen", "5")]);
        let cases = [
            (json!({"key": "zone", "operator": "In", "values": ["a", "b"]}), true),
            (json!({"key": "zone", "operator": "NotIn", "values": ["a"]}), false),
            (json!({"key": "missing", "operator": "NotIn", "values": ["a"]}), true),
            (json!({"key": "zone", "operator": "Exists"}), true),
            (json!({"key": "zone", "operator": "DoesNotExist"}), false),
            (json!({"key": "gen", "operator": "Gt", "values": ["4"]}), true),
            (json!({"key": "gen", "operator": "Lt", "values": ["5"]}), false),
            (json!({"key": "zone", "operator": "Gt", "values": ["1"]}), false),
            (json!({"key": "gen", "operator": "Gt", "values": ["x"]}), false),
            (json!({"key": "zone", "operator": "In", "values": []}), false),
        ];
        for (req, want) in cases {
            let s = selector(json!({"nodeSelectorTerms": [{"matchExpressions": [req.clone()]}]}));
            assert_eq!(s.matches("n1", &node), want, "{req}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded_and_fields_name_nodes() {
        let node = labels(&[("zone", "a")]);
        let s = selector(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
             "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}));
        assert!(s.matches("n1", &node));
        assert!(!s.matches("n2", &node));
        // An empty term matches nothing.
        assert!(!selector(json!({"nodeSelectorTerms": [{}]})).matches("n1", &node));
        let t = Term::new(
            &serde_json::from_value(
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
            )
            .unwrap(),
        );
        assert_eq!(t.pinned_names(), Some(vec!["n1".to_string()]));
    }

    #[test]
    fn preferred_terms_sum_weights() {
        let p = Preferred::new(
            &serde_json::from_value::<Vec<PreferredSchedulingTerm>>(json!([
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 3, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]))
            .unwrap(),
        );
        assert_eq!(p.score("n", &labels(&[("zone", "a"), ("disk", "ssd")])), 8);
        assert_eq!(p.score("n", &labels(&[("zone", "b")])), 0);
    }
}
