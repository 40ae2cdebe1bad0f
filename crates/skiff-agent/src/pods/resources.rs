//! A pod's compute resources as the kubelet applies them: its QoS class and cgroup, the limits of
//! the pod's cgroup (upstream's `ResourceConfigForPod`: CPU shares from the requests, quota and
//! memory from the limits only when every container sets them, the node's pids limit), the limits
//! of `kubepods` (the node's allocatable resources), and each container's OOM score adjustment.
//!
//! What does not live here: the containers' own limits ([`super::convert::resources`]) and the
//! cgroup files themselves (`skiff_runtime::cgroups`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use skiff_api::quantity::Quantity;
use skiff_runtime::cgroups::{self, Layout, QosClass};
use skiff_runtime::spec::Resources;

use crate::AgentConfig;

/// The OOM score adjustment of Guaranteed pods' containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// The OOM score adjustment of BestEffort pods' containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// The pod's QoS class (`status.qosClass`, set by the API server; computed if absent).
pub fn qos(pod: &Pod) -> QosClass {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some(class) => QosClass::parse(class),
        None => QosClass::parse(pod.spec.as_ref().map(skiff_api::defaults::pod_qos_class).unwrap_or("BestEffort")),
    }
}

/// The pod's cgroup on this host.
pub fn pod_cgroup(pod: &Pod) -> String {
    Layout::host().pod_cgroup(qos(pod), pod.metadata.uid.as_deref().unwrap_or_default())
}

/// Removes pod `uid`'s cgroup (whatever its class) and the levels left empty. Blocking.
pub fn remove_pod_cgroup(uid: &str) {
    if let Err(e) = Layout::host().remove_pod_uid(uid) {
        tracing::warn!(pod = uid, error = %e, "removing the pod's cgroup");
    }
    // Where agents before the QoS layout put it (pods they started may still be adopted).
    skiff_runtime::container::remove_cgroup(&format!("/skiff/pod{uid}"));
}

fn amount(list: Option<&BTreeMap<String, K8sQuantity>>, name: &str, milli: bool) -> Option<i64> {
    let q = Quantity::parse(&list?.get(name)?.0).ok()?;
    let v = if milli { q.milli_value() } else { q.value() };
    (v > 0).then_some(v)
}

/// A pod-wide amount (upstream's `PodRequests`/`PodLimits`): app containers and sidecars add up;
/// each ordinary init container runs alone with the sidecars started before it; the pod needs
/// the most of either.
fn pod_amount(pod: &Pod, of: impl Fn(&Container) -> Option<i64>) -> i64 {
    let Some(spec) = pod.spec.as_ref() else { return 0 };
    let mut total: i64 = spec.containers.iter().filter_map(&of).sum();
    let (mut sidecars, mut init_peak) = (0i64, 0i64);
    for init in spec.init_containers.iter().flatten() {
        let own = of(init).unwrap_or(0);
        let running = if init.restart_policy.as_deref() == Some("Always") {
            total += own;
            sidecars += own;
            sidecars
        } else {
            own + sidecars
        };
        init_peak = init_peak.max(running);
    }
    total.max(init_peak)
}

fn requests(c: &Container, name: &str, milli: bool) -> Option<i64> {
    amount(c.resources.as_ref().and_then(|r| r.requests.as_ref()), name, milli)
}

fn limits(c: &Container, name: &str, milli: bool) -> Option<i64> {
    amount(c.resources.as_ref().and_then(|r| r.limits.as_ref()), name, milli)
}

/// The limits of the pod's cgroup. `pod_pids_limit` is the node's per-pod process limit
/// (`--pod-max-pids`; not positive for none).
pub fn pod_limits(pod: &Pod, pod_pids_limit: i64) -> Resources {
    let qos = qos(pod);
    let spec = pod.spec.as_ref();
    // Limits count only when every long-running container (app containers and sidecars) sets one.
    let long_running: Vec<&Container> = spec
        .map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always")))
                .collect()
        })
        .unwrap_or_default();
    let declared = |name: &str| long_running.iter().all(|c| limits(c, name, false).is_some());
    let cpu_requests = pod_amount(pod, |c| requests(c, "cpu", true));
    let cpu_limits = pod_amount(pod, |c| limits(c, "cpu", true));
    let memory_limits = pod_amount(pod, |c| limits(c, "memory", false));
    let quota = cgroups::milli_cpu_to_quota(cpu_limits, cgroups::CPU_PERIOD);
    let mut out = Resources {
        pids_limit: (pod_pids_limit > 0).then_some(pod_pids_limit),
        cpu_shares: Some(cgroups::milli_cpu_to_shares(cpu_requests)),
        ..Default::default()
    };
    match qos {
        QosClass::Guaranteed => {
            (out.cpu_quota, out.cpu_period) = (quota, Some(cgroups::CPU_PERIOD));
            out.memory_limit = Some(memory_limits);
        }
        QosClass::Burstable => {
            if declared("cpu") {
                (out.cpu_quota, out.cpu_period) = (quota, Some(cgroups::CPU_PERIOD));
            }
            if declared("memory") {
                out.memory_limit = Some(memory_limits);
            }
        }
        QosClass::BestEffort => out.cpu_shares = Some(cgroups::MIN_SHARES),
    }
    out
}

/// The limits of `kubepods`: the node's allocatable CPU (as shares) and memory, from its
/// capacity less what is reserved.
pub fn node_limits(cpus: u64, memory_bytes: u64, reserved_milli_cpu: u64, reserved_memory: u64) -> Resources {
    let milli = (cpus * 1000).saturating_sub(reserved_milli_cpu);
    let memory = memory_bytes.saturating_sub(reserved_memory);
    Resources {
        cpu_shares: Some(cgroups::milli_cpu_to_shares(milli as i64)),
        memory_limit: (memory > 0).then_some(memory as i64),
        ..Default::default()
    }
}

/// The limits of `kubepods` on this node.
pub fn node_cgroup_limits(cfg: &AgentConfig) -> Resources {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    node_limits(cpus, cfg.node_memory_bytes(), cfg.reserved_milli_cpu, cfg.reserved_memory)
}

/// Creates the cgroup of `pod` with its limits (and the levels above it). Blocking.
pub fn ensure_pod_cgroup(pod: &Pod, cfg: &AgentConfig) -> Result<String, cgroups::CgroupError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    Layout::host().ensure_pod(qos(pod), uid, &pod_limits(pod, cfg.pod_pids_limit), &node_cgroup_limits(cfg))
}

/// The container's OOM score adjustment (the kubelet's `GetContainerOOMScoreAdjust`): the
/// lowest for Guaranteed pods, the highest for BestEffort ones, and for Burstable ones the less
/// the larger its share of the node's `memory_capacity` its memory request is.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: u64) -> i32 {
    match qos(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let request = requests(container, "memory", false).unwrap_or(0);
    if memory_capacity == 0 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    let adj = 1000 - (1000 * request as i128 / memory_capacity as i128) as i64;
    if adj < (1000 + GUARANTEED_OOM_SCORE_ADJ) as i64 {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ as i64 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    adj as i32
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};

    use super::*;

    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty())
                .then(|| pairs.iter().map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string()))).collect())
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        let spec = PodSpec { containers, init_containers: Some(init), ..Default::default() };
        let class = skiff_api::defaults::pod_qos_class(&spec).to_string();
        Pod {
            spec: Some(spec),
            status: Some(PodStatus { qos_class: Some(class), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn guaranteed_pods_are_limited_by_the_sum_of_their_containers() {
        let both = [("cpu", "500m"), ("memory", "64Mi")];
        let p = pod(vec![container("a", &both, &both), container("b", &both, &both)], vec![]);
        assert_eq!(qos(&p), QosClass::Guaranteed);
        let r = pod_limits(&p, -1);
        assert_eq!(r.cpu_shares, Some(1024));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(100_000), Some(100_000)));
        assert_eq!(r.memory_limit, Some(128 << 20));
        assert_eq!(r.pids_limit, None);
        assert_eq!(pod_limits(&p, 1024).pids_limit, Some(1024));
        assert_eq!(oom_score_adj(&p, &p.spec.as_ref().expect("spec").containers[0], 8 << 30), -997);
    }

    #[test]
    fn burstable_pods_get_limits_only_when_every_container_sets_them() {
        let p = pod(
            vec![
                container("a", &[("cpu", "250m"), ("memory", "1Gi")], &[("memory", "2Gi")]),
                container("b", &[("cpu", "250m")], &[]),
            ],
            vec![],
        );
        assert_eq!(qos(&p), QosClass::Burstable);
        let r = pod_limits(&p, -1);
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!((r.cpu_quota, r.memory_limit), (None, None), "b sets no limits");
        let a = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(oom_score_adj(&p, a, 4 << 30), 750);
        assert_eq!(oom_score_adj(&p, a, 1 << 30), 3, "at least 3");
        let b = &p.spec.as_ref().expect("spec").containers[1];
        assert_eq!(oom_score_adj(&p, b, 4 << 30), 999, "no memory request: just below BestEffort");

        let limited = pod(vec![container("a", &[("cpu", "100m")], &[("cpu", "200m"), ("memory", "32Mi")])], vec![]);
        let r = pod_limits(&limited, -1);
        assert_eq!((r.cpu_quota, r.memory_limit), (Some(20_000), Some(32 << 20)));
    }

    #[test]
    fn init_containers_count_as_upstream_counts_them() {
        // An init container needing more than the app containers sets the pod's limit.
        let p = pod(
            vec![container("app", &[("memory", "64Mi")], &[("memory", "64Mi")])],
            vec![container("init", &[("memory", "256Mi")], &[("memory", "256Mi")])],
        );
        assert_eq!(pod_limits(&p, -1).memory_limit, Some(256 << 20));
        // A sidecar runs beside everything after it.
        let mut sidecar = container("proxy", &[("memory", "32Mi")], &[("memory", "32Mi")]);
        sidecar.restart_policy = Some("Always".into());
        let p = pod(
            vec![container("app", &[("memory", "64Mi")], &[("memory", "64Mi")])],
            vec![sidecar, container("init", &[("memory", "80Mi")], &[("memory", "80Mi")])],
        );
        assert_eq!(pod_limits(&p, -1).memory_limit, Some(112 << 20), "max(64+32, 80+32)");
    }

    #[test]
    fn hugepages_are_ignored() {
        let both = [("cpu", "500m"), ("memory", "64Mi"), ("hugepages-2Mi", "128Mi")];
        let p = pod(vec![container("a", &both, &both)], vec![]);
        let r = pod_limits(&p, -1);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.memory_limit), (Some(512), Some(50_000), Some(64 << 20)));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(super::super::convert::resources(c).memory_limit, Some(64 << 20));
    }

    #[test]
    fn best_effort_pods_get_the_least_cpu_weight_and_no_limits() {
        let p = pod(vec![container("a", &[], &[])], vec![]);
        assert_eq!(qos(&p), QosClass::BestEffort);
        assert_eq!(pod_limits(&p, -1), Resources { cpu_shares: Some(2), ..Default::default() });
        assert_eq!(oom_score_adj(&p, &p.spec.as_ref().expect("spec").containers[0], 8 << 30), 1000);
        // Without a class in the status it is computed.
        let mut unknown = p.clone();
        unknown.status = None;
        assert_eq!(qos(&unknown), QosClass::BestEffort);
    }

    #[test]
    fn kubepods_gets_the_allocatable_resources() {
        let r = node_limits(2, 4 << 30, 500, 1 << 30);
        assert_eq!((r.cpu_shares, r.memory_limit), (Some(1536), Some(3 << 30)));
    }
}
