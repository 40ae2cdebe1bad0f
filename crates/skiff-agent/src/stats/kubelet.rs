//! The kubelet's own `/metrics` document (Prometheus text format): the node's name, pods with a
//! running sandbox and containers by state, what the pod workers started and the lifecycle hooks
//! that fell back to HTTP ([`super::activity`]),
//! the pod start-up histogram, and the `kubelet_volume_stats_*` gauges of every
//! persistentVolumeClaim mounted on the node (one series per claim, labelled `namespace` and
//! `persistentvolumeclaim`). Metric names, types and labels are the kubelet's; all are of stability
//! level ALPHA there. Samples carry no timestamp, metrics come sorted by name.
//!
//! What does not live here: measuring ([`super::collect`]), counting ([`super::activity`]).

use std::fmt::Write as _;

use super::activity::{ActivityTotals, Histogram};
use super::prometheus::{escape, help_and_type};
use super::{FsUsage, PvcRef};

/// Containers on the node by state, as their pods' statuses report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerStates {
    /// Running instances.
    pub running: u64,
    /// Instances that ended and are kept (the last one of each container).
    pub exited: u64,
}

/// A persistentVolumeClaim mounted on the node, measured at its volume's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimVolume {
    /// The claim.
    pub claim: PvcRef,
    /// Its file system's totals and what the volume uses; `None` when the path cannot be read
    /// (the volume is reported abnormal).
    pub fs: Option<FsUsage>,
}

/// What `/metrics` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletMetrics {
    /// The node's name.
    pub node_name: String,
    /// Pods with a running sandbox.
    pub running_pods: u64,
    /// Containers by state.
    pub containers: ContainerStates,
    /// The workers' counters.
    pub activity: ActivityTotals,
    /// The claims mounted on the node, each once.
    pub claims: Vec<ClaimVolume>,
}

/// The header of a kubelet metric of stability level ALPHA.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    help_and_type(out, name, &format!("[ALPHA] {help}"), kind);
}

fn histogram(out: &mut String, name: &str, h: &Histogram) {
    for (bound, n) in h.cumulative() {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A `kubelet_volume_stats_*` gauge: name suffix, help, value for a claim's measurement.
type VolumeGauge = (&'static str, &'static str, fn(Option<&FsUsage>) -> Option<u64>);

/// The volume gauges, sorted by name.
const VOLUME_GAUGES: [VolumeGauge; 7] = [
    ("available_bytes", "Bytes free in the volume", |fs| fs?.available),
    ("capacity_bytes", "Size in bytes of the volume", |fs| fs?.capacity),
    ("health_status_abnormal", "1 when the volume cannot be measured (its path is gone), else 0", |fs| {
        Some(u64::from(fs.is_none()))
    }),
    ("inodes", "Inodes the volume can hold", |fs| fs?.inodes),
    ("inodes_free", "Inodes free in the volume", |fs| fs?.inodes_free),
    ("inodes_used", "Inodes the volume uses", |fs| fs?.inodes_used),
    ("used_bytes", "Bytes the volume uses", |fs| fs?.used),
];

fn claim_labels(claim: &PvcRef) -> String {
    format!("{{namespace=\"{}\",persistentvolumeclaim=\"{}\"}}", escape(&claim.namespace), escape(&claim.name))
}

/// Renders `metrics`.
pub fn render(metrics: &KubeletMetrics) -> String {
    let mut out = String::new();
    let fallbacks = "kubelet_lifecycle_handler_http_fallbacks_total";
    header(
        &mut out,
        fallbacks,
        "Lifecycle hooks that succeeded over HTTP after HTTPS got a plain HTTP answer",
        "counter",
    );
    let _ = writeln!(out, "{fallbacks} {}", metrics.activity.http_fallbacks);
    header(&mut out, "kubelet_node_name", "The node's name, as a label; the value is always 1.", "gauge");
    let _ = writeln!(out, "kubelet_node_name{{node=\"{}\"}} 1", escape(&metrics.node_name));
    let start = "kubelet_pod_start_duration_seconds";
    header(
        &mut out,
        start,
        "Seconds from the agent first seeing a pending pod to the pod first reported running",
        "histogram",
    );
    histogram(&mut out, start, &metrics.activity.pod_start);
    header(&mut out, "kubelet_running_containers", "Containers on the node by state", "gauge");
    for (state, n) in [("exited", metrics.containers.exited), ("running", metrics.containers.running)] {
        let _ = writeln!(out, "kubelet_running_containers{{container_state=\"{state}\"}} {n}");
    }
    header(&mut out, "kubelet_running_pods", "Pods whose sandbox runs", "gauge");
    let _ = writeln!(out, "kubelet_running_pods {}", metrics.running_pods);
    header(&mut out, "kubelet_started_containers_total", "Container starts, by container type", "counter");
    for (kind, n) in &metrics.activity.started_containers {
        let _ = writeln!(out, "kubelet_started_containers_total{{container_type=\"{}\"}} {n}", kind.label());
    }
    header(&mut out, "kubelet_started_pods_errors_total", "Pod sandbox starts that failed", "counter");
    let _ = writeln!(out, "kubelet_started_pods_errors_total {}", metrics.activity.started_pod_errors);
    header(&mut out, "kubelet_started_pods_total", "Pod sandbox starts", "counter");
    let _ = writeln!(out, "kubelet_started_pods_total {}", metrics.activity.started_pods);
    for (suffix, help, value) in VOLUME_GAUGES {
        let name = format!("kubelet_volume_stats_{suffix}");
        header(&mut out, &name, help, "gauge");
        for claim in &metrics.claims {
            if let Some(v) = value(claim.fs.as_ref()) {
                let _ = writeln!(out, "{name}{} {v}", claim_labels(&claim.claim));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::activity::{Activity, ContainerType};
    use std::time::Duration;

    fn claim(namespace: &str, name: &str, fs: Option<FsUsage>) -> ClaimVolume {
        ClaimVolume { claim: PvcRef { name: name.into(), namespace: namespace.into() }, fs }
    }

    fn in_order(text: &str, expected: &[&str]) {
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        for want in expected {
            let found = lines[at..].iter().position(|l| l == want);
            assert!(found.is_some(), "missing or out of order: {want}\n{text}");
            at += found.unwrap_or(0) + 1;
        }
    }

    #[test]
    fn renders_kubelet_names_labels_and_types_sorted_by_name() {
        let activity = Activity::default();
        activity.pod_starting();
        activity.container_starting(ContainerType::Container);
        activity.pod_started(Duration::from_millis(2500));
        activity.hook_fell_back();
        let fs = FsUsage {
            capacity: Some(1000),
            available: Some(600),
            used: Some(40),
            inodes: Some(100),
            inodes_free: Some(90),
            inodes_used: Some(3),
        };
        let metrics = KubeletMetrics {
            node_name: "n1".into(),
            running_pods: 2,
            containers: ContainerStates { running: 3, exited: 1 },
            activity: activity.totals(),
            claims: vec![claim("default", "data", Some(fs)), claim("other", "gone\"", None)],
        };
        let text = render(&metrics);
        in_order(
            &text,
            &[
                "# TYPE kubelet_lifecycle_handler_http_fallbacks_total counter",
                "kubelet_lifecycle_handler_http_fallbacks_total 1",
                "# TYPE kubelet_node_name gauge",
                "kubelet_node_name{node=\"n1\"} 1",
                "# TYPE kubelet_pod_start_duration_seconds histogram",
                "kubelet_pod_start_duration_seconds_bucket{le=\"2\"} 0",
                "kubelet_pod_start_duration_seconds_bucket{le=\"3\"} 1",
                "kubelet_pod_start_duration_seconds_bucket{le=\"3600\"} 1",
                "kubelet_pod_start_duration_seconds_bucket{le=\"+Inf\"} 1",
                "kubelet_pod_start_duration_seconds_sum 2.5",
                "kubelet_pod_start_duration_seconds_count 1",
                "kubelet_running_containers{container_state=\"exited\"} 1",
                "kubelet_running_containers{container_state=\"running\"} 3",
                "kubelet_running_pods 2",
                "# TYPE kubelet_started_containers_total counter",
                "kubelet_started_containers_total{container_type=\"container\"} 1",
                "kubelet_started_containers_total{container_type=\"init_container\"} 0",
                "kubelet_started_pods_errors_total 0",
                "kubelet_started_pods_total 1",
                "kubelet_volume_stats_available_bytes{namespace=\"default\",persistentvolumeclaim=\"data\"} 600",
                "kubelet_volume_stats_capacity_bytes{namespace=\"default\",persistentvolumeclaim=\"data\"} 1000",
                "kubelet_volume_stats_health_status_abnormal{namespace=\"default\",persistentvolumeclaim=\"data\"} 0",
                "kubelet_volume_stats_health_status_abnormal{namespace=\"other\",persistentvolumeclaim=\"gone\\\"\"} 1",
                "kubelet_volume_stats_inodes{namespace=\"default\",persistentvolumeclaim=\"data\"} 100",
                "kubelet_volume_stats_inodes_free{namespace=\"default\",persistentvolumeclaim=\"data\"} 90",
                "kubelet_volume_stats_inodes_used{namespace=\"default\",persistentvolumeclaim=\"data\"} 3",
                "# HELP kubelet_volume_stats_used_bytes [ALPHA] Bytes the volume uses",
                "kubelet_volume_stats_used_bytes{namespace=\"default\",persistentvolumeclaim=\"data\"} 40",
            ],
        );
        assert!(!text.contains("used_bytes{namespace=\"other\""), "an unmeasured volume has no sizes");
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        assert!(names.is_sorted(), "{names:?}");
    }
}
