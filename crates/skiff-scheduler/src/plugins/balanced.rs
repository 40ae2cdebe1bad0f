//! NodeResourcesBalancedAllocation: prefers nodes whose resource usage fractions (with the pod)
//! are close to each other: `(1 - std) * 100` over the configured resources, using the plain
//! requests (upstream `useRequested=true`); best-effort pods are not scored.

use crate::cache::NodeInfo;
use crate::framework::Profile;
use crate::model::PodInfo;

use super::fit::{MAX_NODE_SCORE, allocatable_and_requested, pod_request};

/// PreScore: the pod's requests per resource, or `None` (Skip) for a best-effort pod.
pub fn pre_score(pod: &PodInfo, profile: &Profile) -> Option<Vec<i64>> {
    let reqs: Vec<i64> = profile.balanced_resources.iter().map(|(n, _)| pod_request(pod, n, false)).collect();
    if reqs.iter().all(|r| *r == 0) { None } else { Some(reqs) }
}

/// Score.
pub fn score(pod_requests: &[i64], node: &NodeInfo, profile: &Profile) -> i64 {
    let mut fractions = Vec::with_capacity(pod_requests.len());
    for (i, (name, _)) in profile.balanced_resources.iter().enumerate() {
        let (alloc, req) = allocatable_and_requested(node, name, pod_requests[i], false);
        if alloc == 0 {
            continue;
        }
        fractions.push((req as f64 / alloc as f64).min(1.0));
    }
    let std = match fractions.len() {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n if n > 2 => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}
