//! ImageLocality: prefers nodes that already have the pod's images, weighting each image's size
//! by the fraction of nodes that have it and scaling between upstream's thresholds (23 MiB and
//! 1000 MiB per container).

use crate::cache::{Cache, NodeInfo};
use crate::model::PodInfo;

use super::fit::MAX_NODE_SCORE;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Score.
pub fn score(pod: &PodInfo, node: &NodeInfo, cache: &Cache) -> i64 {
    let Some(spec) = node.spec.as_ref() else { return 0 };
    let total_nodes = cache.num_nodes().max(1) as f64;
    let mut sum: i64 = 0;
    for image in &pod.images {
        let on_node = spec.images.iter().any(|i| i.names.iter().any(|n| n == image));
        if !on_node {
            continue;
        }
        if let Some(state) = cache.image(image) {
            let spread = state.nodes as f64 / total_nodes;
            sum += (state.size as f64 * spread) as i64;
        }
    }
    calculate_priority(sum, pod.images.len() as i64)
}

fn calculate_priority(sum: i64, containers: i64) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * containers;
    let clamped = sum.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_scales_between_thresholds() {
        assert_eq!(calculate_priority(0, 1), 0);
        assert_eq!(calculate_priority(1000 * MB, 1), 100);
        assert_eq!(calculate_priority(2000 * MB, 1), 100);
        // Upstream test: a 250 MB image on every node, one container.
        assert_eq!(calculate_priority(250 * MB, 1), 100 * (250 - 23) / (1000 - 23));
    }
}
