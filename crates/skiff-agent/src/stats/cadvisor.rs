//! The kubelet's `/metrics/cadvisor` document: the common cAdvisor series of every pod cgroup
//! (`container=""`) and running container, labelled `container`, `id` (the cgroup),
//! `image`, `name` (the runtime's instance id), `namespace` and `pod`, plus the machine's CPU
//! cores and memory. CPU is reported as a total (`cpu="total"`, the kubelet turns per-CPU usage
//! off), network counters on the pod's row (containers share its namespace), file-system usage
//! for containers' writable layers (labelled with the `device` their file system is mounted
//! from). Samples carry the snapshot's time, metrics come sorted by
//! name as a Prometheus registry gathers them.
//!
//! What does not live here: measuring ([`super::collect`]).

use std::fmt::Write as _;

use super::prometheus::{escape, help_and_type};
use super::{ContainerUsage, Interface, MemoryUsage, PodUsage, Snapshot};

/// One labelled row: a pod's cgroup or one of its containers.
struct Row<'a> {
    pod: &'a PodUsage,
    container: Option<&'a ContainerUsage>,
}

impl Row<'_> {
    fn labels(&self) -> String {
        self.labels_with_device(None)
    }

    /// The labels, with `device` (between `container` and `id`, as sorted) when given.
    fn labels_with_device(&self, device: Option<&str>) -> String {
        let (container, id, image, name) = match self.container {
            Some(c) => (c.name.as_str(), c.cgroup.as_str(), c.image.as_str(), c.instance.as_str()),
            None => ("", self.pod.cgroup.as_str(), "", ""),
        };
        let device = device.map(|d| format!("device=\"{}\",", escape(d))).unwrap_or_default();
        format!(
            "container=\"{}\",{device}id=\"{}\",image=\"{}\",name=\"{}\",namespace=\"{}\",pod=\"{}\"",
            escape(container),
            escape(id),
            escape(image),
            escape(name),
            escape(&self.pod.namespace),
            escape(&self.pod.name)
        )
    }

    fn cpu_nanos(&self) -> Option<u64> {
        self.container.map_or(self.pod.cpu, |c| c.cpu).map(|c| c.total_nanos)
    }

    fn memory(&self) -> Option<MemoryUsage> {
        self.container.map_or(self.pod.memory, |c| c.memory)
    }

    fn start_time_ms(&self) -> Option<i64> {
        self.container.map_or(self.pod.start_time_ms, |c| c.start_time_ms)
    }

    fn interfaces(&self) -> &[Interface] {
        if self.container.is_some() { &[] } else { &self.pod.network }
    }
}

/// Writes one sample per row that has a value.
fn series(out: &mut String, rows: &[Row<'_>], name: &str, ts: i64, value: impl Fn(&Row<'_>) -> Option<String>) {
    for row in rows {
        if let Some(v) = value(row) {
            let _ = writeln!(out, "{name}{{{}}} {v} {ts}", row.labels());
        }
    }
}

/// Writes one sample per row and interface.
fn per_interface(out: &mut String, rows: &[Row<'_>], name: &str, ts: i64, value: impl Fn(&Interface) -> u64) {
    for row in rows {
        for i in row.interfaces() {
            let _ = writeln!(out, "{name}{{{},interface=\"{}\"}} {} {ts}", row.labels(), escape(&i.name), value(i));
        }
    }
}

/// Renders `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let rows: Vec<Row<'_>> = snapshot
        .pods
        .iter()
        .flat_map(|pod| {
            std::iter::once(Row { pod, container: None })
                .chain(pod.containers.iter().map(move |c| Row { pod, container: Some(c) }))
        })
        .collect();
    let ts = snapshot.timestamp_ms;
    let mut out = String::new();

    help_and_type(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative CPU time consumed, in seconds.",
        "counter",
    );
    for row in &rows {
        if let Some(nanos) = row.cpu_nanos() {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{{},cpu=\"total\"}} {} {ts}",
                row.labels(),
                nanos as f64 / 1e9
            );
        }
    }
    help_and_type(
        &mut out,
        "container_fs_usage_bytes",
        "Bytes the container's writable layer takes on its file system.",
        "gauge",
    );
    let device = snapshot.node.container_fs_device.as_deref().unwrap_or("");
    for row in &rows {
        if let Some(used) = row.container.and_then(|c| c.rootfs?.used) {
            let _ = writeln!(out, "container_fs_usage_bytes{{{}}} {used} {ts}", row.labels_with_device(Some(device)));
        }
    }
    help_and_type(&mut out, "container_memory_rss", "Resident anonymous memory, in bytes.", "gauge");
    series(&mut out, &rows, "container_memory_rss", ts, |r| r.memory()?.rss.map(|b| b.to_string()));
    help_and_type(&mut out, "container_memory_usage_bytes", "Memory in use, in bytes, page cache included.", "gauge");
    series(&mut out, &rows, "container_memory_usage_bytes", ts, |r| r.memory().map(|m| m.usage.to_string()));
    help_and_type(
        &mut out,
        "container_memory_working_set_bytes",
        "Working set (usage less inactive file pages), in bytes.",
        "gauge",
    );
    series(&mut out, &rows, "container_memory_working_set_bytes", ts, |r| {
        r.memory().map(|m| m.working_set.to_string())
    });
    help_and_type(&mut out, "container_network_receive_bytes_total", "Bytes received, cumulative.", "counter");
    per_interface(&mut out, &rows, "container_network_receive_bytes_total", ts, |i| i.rx_bytes);
    help_and_type(&mut out, "container_network_transmit_bytes_total", "Bytes sent, cumulative.", "counter");
    per_interface(&mut out, &rows, "container_network_transmit_bytes_total", ts, |i| i.tx_bytes);
    help_and_type(
        &mut out,
        "container_start_time_seconds",
        "When the container started, in seconds since the epoch.",
        "gauge",
    );
    series(&mut out, &rows, "container_start_time_seconds", ts, |r| {
        r.start_time_ms().map(|ms| (ms as f64 / 1e3).to_string())
    });
    help_and_type(&mut out, "machine_cpu_cores", "Logical CPU cores of the machine.", "gauge");
    if let Some(cores) = snapshot.node.cpu_cores {
        let _ = writeln!(out, "machine_cpu_cores {cores} {ts}");
    }
    help_and_type(&mut out, "machine_memory_bytes", "Memory installed on the machine, in bytes.", "gauge");
    if let Some(bytes) = snapshot.node.memory_capacity {
        let _ = writeln!(out, "machine_memory_bytes {bytes} {ts}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CpuUsage, FsUsage, NodeUsage};

    #[test]
    fn renders_cadvisor_names_and_labels() {
        let memory = MemoryUsage { usage: 8192, working_set: 4096, rss: Some(2048), ..Default::default() };
        let snapshot = Snapshot {
            timestamp_ms: 1_700_000_000_123,
            node: NodeUsage {
                cpu_cores: Some(2),
                memory_capacity: Some(1 << 30),
                container_fs_device: Some("/dev/vda1".into()),
                ..Default::default()
            },
            pods: vec![PodUsage {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                cgroup: "/skiff/kubepods/besteffort/podu1".into(),
                cpu: Some(CpuUsage { total_nanos: 2_000_000_000, nano_cores: None }),
                memory: Some(memory),
                network: vec![Interface { name: "eth0".into(), rx_bytes: 5, tx_bytes: 7, ..Default::default() }],
                containers: vec![ContainerUsage {
                    name: "main".into(),
                    image: "docker.io/library/busybox:latest".into(),
                    instance: "u1-main-0".into(),
                    cgroup: "/skiff/kubepods/besteffort/podu1/main".into(),
                    start_time_ms: Some(1_699_999_999_500),
                    cpu: Some(CpuUsage { total_nanos: 1_500_000_000, nano_cores: None }),
                    memory: Some(memory),
                    rootfs: Some(FsUsage { used: Some(12288), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            scrape_error: false,
        };
        let text = render(&snapshot);
        let pod = "container=\"\",id=\"/skiff/kubepods/besteffort/podu1\",image=\"\",name=\"\",namespace=\"default\",pod=\"web\"";
        let main = "container=\"main\",id=\"/skiff/kubepods/besteffort/podu1/main\",\
                    image=\"docker.io/library/busybox:latest\",name=\"u1-main-0\",namespace=\"default\",pod=\"web\"";
        let expected = [
            "# TYPE container_cpu_usage_seconds_total counter".to_string(),
            format!("container_cpu_usage_seconds_total{{{pod},cpu=\"total\"}} 2 1700000000123"),
            format!("container_cpu_usage_seconds_total{{{main},cpu=\"total\"}} 1.5 1700000000123"),
            "container_fs_usage_bytes{container=\"main\",device=\"/dev/vda1\",\
             id=\"/skiff/kubepods/besteffort/podu1/main\",image=\"docker.io/library/busybox:latest\",\
             name=\"u1-main-0\",namespace=\"default\",pod=\"web\"} 12288 1700000000123"
                .to_string(),
            format!("container_memory_rss{{{main}}} 2048 1700000000123"),
            format!("container_memory_usage_bytes{{{main}}} 8192 1700000000123"),
            format!("container_memory_working_set_bytes{{{pod}}} 4096 1700000000123"),
            format!("container_memory_working_set_bytes{{{main}}} 4096 1700000000123"),
            format!("container_network_receive_bytes_total{{{pod},interface=\"eth0\"}} 5 1700000000123"),
            format!("container_network_transmit_bytes_total{{{pod},interface=\"eth0\"}} 7 1700000000123"),
            format!("container_start_time_seconds{{{main}}} 1699999999.5 1700000000123"),
            "machine_cpu_cores 2 1700000000123".to_string(),
            "machine_memory_bytes 1073741824 1700000000123".to_string(),
        ];
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        for want in &expected {
            let found = lines[at..].iter().position(|l| l == want);
            assert!(found.is_some(), "missing or out of order: {want}\n{text}");
            at += found.unwrap_or(0) + 1;
        }
        assert!(!text.contains(&format!("container_fs_usage_bytes{{{pod}}}")), "pods have no writable layer");
        assert!(!text.contains(&format!("container_network_receive_bytes_total{{{main}")), "network is the pod's");
    }
}
