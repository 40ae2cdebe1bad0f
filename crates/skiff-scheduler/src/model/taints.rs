//! Taints and tolerations: upstream `ToleratesTaint` (empty effect or key in a toleration
//! matches any, `Exists` ignores the value, an empty operator means `Equal`) and
//! `FindMatchingUntoleratedTaint` (the first taint, in node order, that passes a filter and that
//! no toleration tolerates).

use k8s_openapi::api::core::v1::{Taint as K8sTaint, Toleration as K8sToleration};

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// The key.
    pub key: String,
    /// The value (may be empty).
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// From the API type.
    pub fn new(t: &K8sTaint) -> Self {
        Self { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect: t.effect.clone() }
    }

    /// Whether the effect keeps pods off the node (`NoSchedule` or `NoExecute`).
    pub fn blocks_scheduling(&self) -> bool {
        self.effect == "NoSchedule" || self.effect == "NoExecute"
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// The key (empty with `Exists` tolerates every key).
    pub key: String,
    /// `Equal` (default) or `Exists`.
    pub operator: String,
    /// The value compared with `Equal`.
    pub value: String,
    /// The effect (empty tolerates every effect).
    pub effect: String,
}

impl Toleration {
    /// From the API type.
    pub fn new(t: &K8sToleration) -> Self {
        Self {
            key: t.key.clone().unwrap_or_default(),
            operator: t.operator.clone().unwrap_or_default(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone().unwrap_or_default(),
        }
    }

    /// Upstream `Toleration.ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// The first taint passing `filter` that the tolerations do not tolerate.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints.iter().find(|t| filter(t) && !tolerated(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint { key: key.into(), value: value.into(), effect: effect.into() }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration { key: key.into(), operator: op.into(), value: value.into(), effect: effect.into() }
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        assert!(tol("dedicated", "Equal", "gpu", "NoSchedule").tolerates(&t));
        assert!(tol("dedicated", "", "gpu", "").tolerates(&t));
        assert!(tol("dedicated", "Exists", "", "").tolerates(&t));
        assert!(tol("", "Exists", "", "").tolerates(&t));
        assert!(!tol("dedicated", "Equal", "cpu", "NoSchedule").tolerates(&t));
        assert!(!tol("dedicated", "Exists", "", "NoExecute").tolerates(&t));
        assert!(!tol("other", "Exists", "", "").tolerates(&t));
        assert!(!tol("dedicated", "Bogus", "gpu", "").tolerates(&t));
    }

    #[test]
    fn first_untolerated_keeps_node_order_and_filters_effects() {
        let taints =
            vec![taint("soft", "", "PreferNoSchedule"), taint("a", "1", "NoSchedule"), taint("b", "", "NoExecute")];
        let tols = vec![tol("a", "Equal", "1", "")];
        let found = first_untolerated(&taints, &tols, Taint::blocks_scheduling);
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
        assert!(first_untolerated(&taints, &[tol("", "Exists", "", "")], Taint::blocks_scheduling).is_none());
    }
}
