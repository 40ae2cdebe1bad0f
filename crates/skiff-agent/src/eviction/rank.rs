//! Which pod to evict first, and what to tell it, as the kubelet ranks and words it:
//!
//! - memory: pods using more than their request first, then lower priority, then the largest
//!   use above the request;
//! - disk (bytes or inodes): the same with the kinds of ephemeral storage the signal counts;
//! - PIDs: lower priority first, then the most processes.
//!
//! Pods without stats go first in every order (upstream's choice). Critical pods (static,
//! mirror, or of system-critical priority) are never chosen. The message names the resource,
//! the threshold and what is left, and each container using more than it requested.
//!
//! What does not live here: measuring ([`super::stats`]) and killing ([`crate::pods::worker`]).

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::signals::Observations;
use super::stats::{FsKinds, PodStats};
use super::thresholds::{Amount, Resource, Signal, Threshold, observed};

/// Priority at or above which a pod is critical (upstream's `SystemCriticalPriority`).
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// Whether a pod may never be evicted: a static pod, a mirror pod, or a system-critical one.
pub fn is_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let static_pod =
        annotations.and_then(|a| a.get("kubernetes.io/config.source")).is_some_and(|source| source != "api");
    let mirror = annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let priority = pod.spec.as_ref().and_then(|s| s.priority).is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY);
    static_pod || mirror || priority
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn container_request(c: &Container, resource: &str) -> Option<Amount> {
    let q = c.resources.as_ref()?.requests.as_ref()?.get(resource)?;
    Amount::parse(&q.0).ok()
}

/// The pod's request of `resource` (upstream's `GetResourceRequestQuantity`): the app
/// containers' sum, or the largest init container's if larger, plus the overhead when non-zero.
pub fn pod_request(pod: &Pod, resource: &str) -> i64 {
    let Some(spec) = pod.spec.as_ref() else { return 0 };
    let mut total: i64 = spec.containers.iter().filter_map(|c| container_request(c, resource)).map(|a| a.value).sum();
    for init in spec.init_containers.iter().flatten() {
        if let Some(a) = container_request(init, resource) {
            total = total.max(a.value);
        }
    }
    if total != 0
        && let Some(overhead) = spec.overhead.as_ref().and_then(|o| o.get(resource))
        && let Ok(a) = Amount::parse(&overhead.0)
    {
        total += a.value;
    }
    total
}

/// Which kinds of storage the disk ranking of `signal` counts (upstream's
/// `buildSignalToRankFunc`): everything on a shared file system; with a dedicated image file
/// system, logs and volumes for nodefs and writable layers for imagefs.
pub fn fs_kinds(signal: Signal, dedicated_image_fs: bool) -> FsKinds {
    match (signal, dedicated_image_fs) {
        (_, false) => FsKinds::ALL,
        (Signal::ImageFsAvailable | Signal::ImageFsInodesFree, true) => {
            FsKinds { rootfs: true, logs: false, volumes: false }
        }
        (_, true) => FsKinds { rootfs: false, logs: true, volumes: true },
    }
}

/// A pod with its stats (`None`: none could be read).
pub struct Candidate<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its usage.
    pub stats: Option<&'a PodStats>,
}

/// `true` before `false` (upstream's `cmpBool`).
fn first_if(a: bool, b: bool) -> Ordering {
    b.cmp(&a)
}

/// What a pod uses of the resource `signal` reclaims, and its request of it.
fn usage_and_request(c: &Candidate<'_>, signal: Signal, dedicated: bool) -> Option<(i64, i64)> {
    let stats = c.stats?;
    match signal.resource() {
        Resource::Memory => Some((stats.memory? as i64, pod_request(c.pod, "memory"))),
        Resource::EphemeralStorage => {
            Some((stats.disk(fs_kinds(signal, dedicated)).bytes as i64, pod_request(c.pod, "ephemeral-storage")))
        }
        // No pod requests inodes (upstream compares against a request that is always zero).
        Resource::Inodes => Some((stats.disk(fs_kinds(signal, dedicated)).inodes as i64, 0)),
        Resource::Pids => Some((stats.processes? as i64, 0)),
    }
}

/// Orders `a` before `b` when `a` should be evicted first for `signal`.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>, signal: Signal, dedicated: bool) -> Ordering {
    let (ua, ub) = (usage_and_request(a, signal, dedicated), usage_and_request(b, signal, dedicated));
    let (Some((use_a, req_a)), Some((use_b, req_b))) = (ua, ub) else {
        // Pods without stats first; among them, lower priority first.
        return first_if(ua.is_none(), ub.is_none()).then(priority(a.pod).cmp(&priority(b.pod)));
    };
    if signal.resource() == Resource::Pids {
        return priority(a.pod).cmp(&priority(b.pod)).then(use_b.cmp(&use_a));
    }
    first_if(use_a > req_a, use_b > req_b)
        .then(priority(a.pod).cmp(&priority(b.pod)))
        .then((use_b - req_b).cmp(&(use_a - req_a)))
}

/// Sorts `candidates` in eviction order for `signal`.
pub fn rank(candidates: &mut [Candidate<'_>], signal: Signal, dedicated: bool) {
    candidates.sort_by(|a, b| compare(a, b, signal, dedicated));
}

/// The message an evicted pod gets (upstream's `evictionMessage`): the starved resource, the
/// threshold and what was available (from the first met threshold of that resource), and each
/// container using more than its request.
pub fn eviction_message(
    resource: Resource,
    pod: &Pod,
    stats: Option<&PodStats>,
    met: &[&Threshold],
    observations: &Observations,
) -> String {
    let mut message = format!("The node was low on resource: {}. ", resource.name());
    let threshold =
        met.iter().find_map(|t| (t.signal.resource() == resource).then(|| observations.get(&t.signal).map(|o| (t, o))));
    if let Some((t, o)) = threshold.flatten() {
        let quantity = t.value.amount(o.capacity);
        message += &format!("Threshold quantity: {quantity}, available: {}. ", observed(t.signal, o.available));
    }
    let Some(stats) = stats else { return message };
    let Some(spec) = pod.spec.as_ref() else { return message };
    let resource_name = resource.name();
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let Some(c) = stats.containers.get(&container.name) else { continue };
        let usage = match resource {
            Resource::Memory => c.memory,
            Resource::EphemeralStorage => Some(c.rootfs.bytes + c.logs.bytes),
            _ => None,
        };
        let Some(usage) = usage else { continue };
        let request = container_request(container, resource_name);
        if usage as i64 > request.map_or(0, |r| r.value) {
            let request = request.map_or_else(|| "0".to_string(), |r| r.to_string());
            message += &format!(
                "Container {} was using {}, request is {request}, has larger consumption of {resource_name}. ",
                container.name,
                Amount::binary(usage as i64)
            );
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::signals::Observation;
    use crate::eviction::stats::{ContainerStats, DiskUsage};
    use crate::eviction::thresholds::Value;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn pod(name: &str, priority: Option<i32>, memory_request: Option<&str>) -> Pod {
        let resources = match memory_request {
            Some(r) => serde_json::json!({"requests": {"memory": r}}),
            None => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "main", "resources": resources}]}
        }))
        .expect("pod")
    }

    fn stats(memory: u64, disk: u64, processes: u64) -> PodStats {
        let c = ContainerStats {
            memory: Some(memory),
            rootfs: DiskUsage { bytes: disk, inodes: disk / 100 },
            logs: DiskUsage::default(),
        };
        PodStats {
            memory: Some(memory),
            processes: Some(processes),
            containers: BTreeMap::from([("main".to_string(), c)]),
            volumes: DiskUsage::default(),
        }
    }

    fn order(pods: &[(Pod, Option<PodStats>)], signal: Signal) -> Vec<String> {
        let mut c: Vec<Candidate<'_>> = pods.iter().map(|(p, s)| Candidate { pod: p, stats: s.as_ref() }).collect();
        rank(&mut c, signal, false);
        c.iter().map(|c| c.pod.metadata.name.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn memory_ranks_over_request_then_priority_then_excess() {
        let pods = vec![
            // Within its request: last, whatever its priority and use.
            (pod("within", Some(-10), Some("1Gi")), Some(stats(500 << 20, 0, 1))),
            (pod("high-prio-over", Some(100), Some("10Mi")), Some(stats(900 << 20, 0, 1))),
            (pod("low-prio-small", Some(0), None), Some(stats(10 << 20, 0, 1))),
            (pod("low-prio-big", Some(0), None), Some(stats(200 << 20, 0, 1))),
            (pod("no-stats", Some(1000), None), None),
            (pod("no-stats-low", Some(5), None), None),
        ];
        assert_eq!(
            order(&pods, Signal::MemoryAvailable),
            ["no-stats-low", "no-stats", "low-prio-big", "low-prio-small", "high-prio-over", "within"]
        );
    }

    #[test]
    fn disk_and_pids_rank_their_own_way() {
        let pods = vec![
            (pod("small", None, None), Some(stats(0, 1000, 50))),
            (pod("big", None, None), Some(stats(0, 9000, 2))),
            (pod("important", Some(10), None), Some(stats(0, 99_000, 999))),
        ];
        assert_eq!(order(&pods, Signal::NodeFsAvailable), ["big", "small", "important"]);
        assert_eq!(order(&pods, Signal::NodeFsInodesFree), ["big", "small", "important"]);
        assert_eq!(order(&pods, Signal::PidAvailable), ["small", "big", "important"]);
    }

    #[test]
    fn dedicated_image_fs_splits_what_counts() {
        assert_eq!(fs_kinds(Signal::NodeFsAvailable, false), FsKinds::ALL);
        assert_eq!(fs_kinds(Signal::ImageFsAvailable, true), FsKinds { rootfs: true, logs: false, volumes: false });
        assert_eq!(fs_kinds(Signal::NodeFsInodesFree, true), FsKinds { rootfs: false, logs: true, volumes: true });
    }

    #[test]
    fn critical_pods_are_recognised() {
        let mut p = pod("p", Some(SYSTEM_CRITICAL_PRIORITY), None);
        assert!(is_critical(&p));
        p.spec.as_mut().expect("spec").priority = Some(0);
        assert!(!is_critical(&p));
        p.metadata.annotations = Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
        assert!(is_critical(&p));
        p.metadata.annotations = Some([("kubernetes.io/config.source".to_string(), "file".to_string())].into());
        assert!(is_critical(&p));
        p.metadata.annotations = Some([("kubernetes.io/config.source".to_string(), "api".to_string())].into());
        assert!(!is_critical(&p));
    }

    #[test]
    fn requests_add_up_as_upstream() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "overhead": {"memory": "1Mi"},
                "initContainers": [{"name": "i", "resources": {"requests": {"memory": "100Mi"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"memory": "30Mi"}}},
                    {"name": "b", "resources": {"requests": {"memory": "40Mi"}}}
                ]
            }
        }))
        .expect("pod");
        assert_eq!(pod_request(&p, "memory"), 101 << 20);
        assert_eq!(pod_request(&p, "ephemeral-storage"), 0, "no overhead on a zero request");
    }

    #[test]
    fn messages_are_worded_as_upstream() {
        let threshold = Threshold {
            signal: Signal::MemoryAvailable,
            value: Value::Quantity(Amount::parse("200Gi").expect("q")),
            grace_period: Duration::ZERO,
            min_reclaim: None,
        };
        let observations = Observations::from([(
            Signal::MemoryAvailable,
            Observation { available: 1_234_567_168, capacity: 1 << 34 },
        )]);
        let p = pod("p", None, Some("64Mi"));
        let s = stats(100 << 20, 0, 1);
        let message = eviction_message(Resource::Memory, &p, Some(&s), &[&threshold], &observations);
        assert_eq!(
            message,
            "The node was low on resource: memory. Threshold quantity: 200Gi, available: 1205632Ki. \
             Container main was using 100Mi, request is 64Mi, has larger consumption of memory. "
        );
        let best_effort = pod("b", None, None);
        let message = eviction_message(Resource::Memory, &best_effort, Some(&s), &[&threshold], &observations);
        assert!(message.ends_with("Container main was using 100Mi, request is 0, has larger consumption of memory. "));
        // Within the request: no container part; no stats: only the node part.
        let s = stats(10 << 20, 0, 1);
        let message = eviction_message(Resource::Memory, &p, Some(&s), &[&threshold], &observations);
        assert!(message.ends_with("available: 1205632Ki. "), "{message}");
        let disk = Threshold { signal: Signal::NodeFsAvailable, value: Value::Percentage(0.1), ..threshold.clone() };
        let observations =
            Observations::from([(Signal::NodeFsAvailable, Observation { available: 5 << 30, capacity: 100 << 30 })]);
        let message = eviction_message(Resource::EphemeralStorage, &p, None, &[&disk], &observations);
        assert_eq!(
            message,
            // 10% as a float32, as upstream computes it.
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. "
        );
    }
}
