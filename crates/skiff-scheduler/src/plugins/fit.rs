//! NodeResourcesFit: the pod's requests must fit the node's allocatable minus what placed pods
//! request (pod count first, then cpu, memory, ephemeral storage and scalar resources, every
//! shortfall reported, as upstream `fitsRequest`); the score is LeastAllocated (default) or
//! MostAllocated over the configured resources, using the non-zero request defaults for cpu and
//! memory (upstream `resourceAllocationScorer` with `useRequested=false`).

use crate::cache::NodeInfo;
use crate::framework::{FitStrategy, PluginId, Profile, Status};
use crate::model::PodInfo;
use crate::model::resources::{is_extended_resource_name, is_scalar_resource_name};

/// Upstream `MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;

/// The reasons the pod does not fit (empty when it fits).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo, ignored: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = node.spec.as_ref() else { return out };
    let alloc = &spec.allocatable;
    if node.pods.len() as i64 + 1 > alloc.allowed_pods {
        out.push("Too many pods".to_string());
    }
    let req = &pod.requests;
    if req.is_zero() {
        return out;
    }
    let used = &node.requested;
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        out.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        out.push("Insufficient memory".to_string());
    }
    if req.ephemeral_storage > 0 && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage {
        out.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, q) in &req.scalar {
        if *q == 0 {
            continue;
        }
        if is_extended_resource_name(name) {
            let group = name.split('/').next().unwrap_or("");
            if ignored.iter().any(|i| i == name || i == group) {
                continue;
            }
        }
        if *q > alloc.scalar(name) - used.scalar(name) {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

/// Filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo, profile: &Profile) -> Option<Status> {
    let reasons = insufficient(pod, node, &profile.ignored_resources);
    if reasons.is_empty() {
        return None;
    }
    Some(Status::unschedulable(reasons).with_plugin(PluginId::NodeResourcesFit))
}

/// The pod's request of `resource` for scoring; `non_zero` applies the cpu/memory defaults.
pub fn pod_request(pod: &PodInfo, resource: &str, non_zero: bool) -> i64 {
    match resource {
        "cpu" if non_zero => pod.non_zero_milli_cpu,
        "memory" if non_zero => pod.non_zero_memory,
        other => pod.requests.get(other),
    }
}

/// Upstream `calculateResourceAllocatableRequest`: (allocatable, requested including the pod),
/// or (0, 0) for a resource not to score.
pub fn allocatable_and_requested(node: &NodeInfo, resource: &str, pod_request: i64, non_zero: bool) -> (i64, i64) {
    let Some(spec) = node.spec.as_ref() else { return (0, 0) };
    if pod_request == 0 && is_scalar_resource_name(resource) {
        return (0, 0);
    }
    let alloc = &spec.allocatable;
    match resource {
        "cpu" => {
            let used = if non_zero { node.non_zero_milli_cpu } else { node.requested.milli_cpu };
            (alloc.milli_cpu, used + pod_request)
        }
        "memory" => {
            let used = if non_zero { node.non_zero_memory } else { node.requested.memory };
            (alloc.memory, used + pod_request)
        }
        "ephemeral-storage" => (alloc.ephemeral_storage, node.requested.ephemeral_storage + pod_request),
        other if alloc.scalar.iter().any(|(n, _)| n == other) => {
            (alloc.scalar(other), node.requested.scalar(other) + pod_request)
        }
        _ => (0, 0),
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// Score (LeastAllocated or MostAllocated, weighted over the profile's resources).
pub fn score(pod_requests: &[i64], node: &NodeInfo, profile: &Profile) -> i64 {
    let mut total = 0;
    let mut weights = 0;
    for (i, (name, weight)) in profile.fit_resources.iter().enumerate() {
        let (alloc, req) = allocatable_and_requested(node, name, pod_requests[i], true);
        if alloc == 0 {
            continue;
        }
        let s = match profile.fit_strategy {
            FitStrategy::LeastAllocated => least_requested(req, alloc),
            FitStrategy::MostAllocated => most_requested(req, alloc),
        };
        total += s * weight;
        weights += weight;
    }
    if weights == 0 { 0 } else { total / weights }
}

/// The pod's scored requests, in the order of the profile's resources.
pub fn pre_score(pod: &PodInfo, profile: &Profile) -> Vec<i64> {
    profile.fit_resources.iter().map(|(n, _)| pod_request(pod, n, true)).collect()
}
