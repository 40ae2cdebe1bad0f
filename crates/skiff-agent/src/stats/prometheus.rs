//! The kubelet's `/metrics/resource` document: Prometheus text format (version 0.0.4) with the
//! kubelet's metric names, help texts, types and labels, each sample stamped with the time it was
//! measured (milliseconds since the epoch), which metrics-server uses to compute rates.
//!
//! What does not live here: measuring ([`super::collect`]).

use std::fmt::Write as _;

use super::{ContainerUsage, PodUsage, Snapshot};

/// The content type of the document.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn help_and_type(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The header of a kubelet metric of stability level STABLE.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    help_and_type(out, name, &format!("[STABLE] {help}"), kind);
}

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`).
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn container_labels(pod: &PodUsage, c: &ContainerUsage) -> String {
    format!(
        "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
        escape(&c.name),
        escape(&pod.namespace),
        escape(&pod.name)
    )
}

fn pod_labels(pod: &PodUsage) -> String {
    format!("{{namespace=\"{}\",pod=\"{}\"}}", escape(&pod.namespace), escape(&pod.name))
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Renders `snapshot` (metrics in the kubelet's order: alphabetical by name).
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let ts = snapshot.timestamp_ms;
    let containers = || snapshot.pods.iter().flat_map(|p| p.containers.iter().map(move |c| (p, c)));
    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    for (pod, c) in containers() {
        if let Some(cpu) = c.cpu.map(|c| c.total_nanos) {
            let _ =
                writeln!(out, "container_cpu_usage_seconds_total{} {} {ts}", container_labels(pod, c), seconds(cpu));
        }
    }
    header(&mut out, "container_memory_working_set_bytes", "Current working set of the container in bytes", "gauge");
    for (pod, c) in containers() {
        if let Some(memory) = c.memory.map(|m| m.working_set) {
            let _ = writeln!(out, "container_memory_working_set_bytes{} {memory} {ts}", container_labels(pod, c));
        }
    }
    header(
        &mut out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
    );
    for (pod, c) in containers() {
        if let Some(start) = c.start_time_ms {
            let _ = writeln!(
                out,
                "container_start_time_seconds{} {} {start}",
                container_labels(pod, c),
                start as f64 / 1e3
            );
        }
    }
    header(
        &mut out,
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    if let Some(cpu) = snapshot.node.cpu.map(|c| c.total_nanos) {
        let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ts}", seconds(cpu));
    }
    header(&mut out, "node_memory_working_set_bytes", "Current working set of the node in bytes", "gauge");
    if let Some(memory) = snapshot.node.memory.map(|m| m.working_set) {
        let _ = writeln!(out, "node_memory_working_set_bytes {memory} {ts}");
    }
    header(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    for pod in &snapshot.pods {
        if let Some(cpu) = pod.cpu.map(|c| c.total_nanos) {
            let _ = writeln!(out, "pod_cpu_usage_seconds_total{} {} {ts}", pod_labels(pod), seconds(cpu));
        }
    }
    header(&mut out, "pod_memory_working_set_bytes", "Current working set of the pod in bytes", "gauge");
    for pod in &snapshot.pods {
        if let Some(memory) = pod.memory.map(|m| m.working_set) {
            let _ = writeln!(out, "pod_memory_working_set_bytes{} {memory} {ts}", pod_labels(pod));
        }
    }
    header(
        &mut out,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    let _ = writeln!(out, "resource_scrape_error {}", u8::from(snapshot.scrape_error));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CpuUsage, MemoryUsage, NodeUsage};

    fn cpu(total_nanos: u64) -> Option<CpuUsage> {
        Some(CpuUsage { total_nanos, nano_cores: None })
    }

    fn memory(working_set: u64) -> Option<MemoryUsage> {
        Some(MemoryUsage { working_set, ..Default::default() })
    }

    #[test]
    fn renders_kubelet_names_labels_and_timestamps() {
        let snapshot = Snapshot {
            timestamp_ms: 1_700_000_000_123,
            node: NodeUsage { cpu: cpu(12_500_000_000), memory: memory(1_048_576), ..Default::default() },
            pods: vec![PodUsage {
                namespace: "default".into(),
                name: "burn\"er".into(),
                cpu: cpu(2_000_000_000),
                memory: memory(4096),
                containers: vec![ContainerUsage {
                    name: "main".into(),
                    cpu: cpu(1_500_000_000),
                    memory: memory(2048),
                    start_time_ms: Some(1_699_999_999_500),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            scrape_error: false,
        };
        let text = render(&snapshot);
        let expected = [
            "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds",
            "# TYPE container_cpu_usage_seconds_total counter",
            "container_cpu_usage_seconds_total{container=\"main\",namespace=\"default\",pod=\"burn\\\"er\"} 1.5 1700000000123",
            "container_memory_working_set_bytes{container=\"main\",namespace=\"default\",pod=\"burn\\\"er\"} 2048 1700000000123",
            "container_start_time_seconds{container=\"main\",namespace=\"default\",pod=\"burn\\\"er\"} 1699999999.5 1699999999500",
            "# TYPE node_cpu_usage_seconds_total counter",
            "node_cpu_usage_seconds_total 12.5 1700000000123",
            "# TYPE node_memory_working_set_bytes gauge",
            "node_memory_working_set_bytes 1048576 1700000000123",
            "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"burn\\\"er\"} 2 1700000000123",
            "pod_memory_working_set_bytes{namespace=\"default\",pod=\"burn\\\"er\"} 4096 1700000000123",
            "resource_scrape_error 0",
        ];
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        for want in expected {
            let found = lines[at..].iter().position(|l| *l == want);
            assert!(found.is_some(), "missing or out of order: {want}\n{text}");
            at += found.unwrap_or(0) + 1;
        }
    }

    #[test]
    fn unmeasured_values_are_left_out() {
        let snapshot = Snapshot { timestamp_ms: 1, scrape_error: true, ..Default::default() };
        let text = render(&snapshot);
        assert!(!text.lines().any(|l| l.starts_with("node_cpu_usage_seconds_total ")));
        assert!(text.contains("resource_scrape_error 1\n"));
    }
}
