//! The in-tree plugins, one module each, written against upstream's semantics and messages.
//! Each exposes plain functions (PreFilter/Filter/PreScore/Score/Normalize as the plugin has
//! them); [`crate::schedule`] runs them in the profile's order.
//!
//! Filters return `None` when the node passes and `Some(status)` naming the plugin otherwise.

pub mod balanced;
pub mod fit;
pub mod image_locality;
pub mod interpod;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_unschedulable;
pub mod spread;
pub mod taint_toleration;
pub mod volume_binding;

#[cfg(test)]
mod tests;

/// Upstream `DefaultNormalizeScore`: scales to `[0, 100]` by the maximum; `reverse` flips it
/// (and gives every node 100 when all scores are 0).
pub fn default_normalize(scores: &mut [(usize, i64)], reverse: bool) {
    let max = scores.iter().map(|(_, s)| *s).max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|(_, s)| *s = fit::MAX_NODE_SCORE);
        }
        return;
    }
    for (_, s) in scores.iter_mut() {
        let v = fit::MAX_NODE_SCORE * *s / max;
        *s = if reverse { fit::MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[test]
    fn default_normalize_matches_upstream() {
        let mut s = vec![(0, 2), (1, 4), (2, 0)];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![(0, 50), (1, 100), (2, 0)]);
        let mut s = vec![(0, 1), (1, 2)];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![(0, 50), (1, 0)]);
        let mut s = vec![(0, 0), (1, 0)];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![(0, 100), (1, 100)]);
    }
}
