//! The kubelet's `/stats/summary` document: the `stats/v1alpha1` Summary (field names of
//! `k8s.io/kubelet/pkg/apis/stats/v1alpha1`) built from a [`Snapshot`]: the node with its
//! system containers (`kubelet`: the agent's process, `pods`: the pods' cgroup), CPU, memory,
//! network, file systems (`runtime.imageFs` and `runtime.containerFs`, the writable layers'),
//! process limits and swap, then each pod with its containers, swap, network, volumes, ephemeral
//! storage and process count. Times are RFC 3339 in whole seconds, as
//! `metav1.Time` carries them; a value that was not measured is left out.
//!
//! What does not live here: measuring ([`super::collect`]).

use serde::Serialize;

use super::{
    ContainerUsage, CpuUsage, FsUsage, Interface, MemoryUsage, PodUsage, Snapshot, SwapUsage, SystemContainer, netdev,
};

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Summary {
    node: NodeStats,
    pods: Vec<PodStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats {
    node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system_containers: Vec<ContainerStats>,
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rlimit: Option<RlimitStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap: Option<SwapStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    image_fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_fs: Option<FsStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SwapStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap_available_bytes: Option<u64>,
    swap_usage_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RlimitStats {
    time: String,
    maxpid: u64,
    curproc: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: PodReference,
    start_time: Option<String>,
    containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap: Option<SwapStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volume: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    ephemeral_storage: Option<FsStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    process_stats: Option<ProcessStats>,
}

#[derive(Debug, Serialize)]
struct PodReference {
    name: String,
    namespace: String,
    uid: String,
}

#[derive(Debug, Serialize)]
struct ProcessStats {
    process_count: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStats {
    name: String,
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap: Option<SwapStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logs: Option<FsStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CpuStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_nano_cores: Option<u64>,
    usage_core_nano_seconds: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    available_bytes: Option<u64>,
    usage_bytes: u64,
    working_set_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    major_page_faults: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InterfaceStats {
    name: String,
    rx_bytes: u64,
    rx_errors: u64,
    tx_bytes: u64,
    tx_errors: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkStats {
    time: String,
    #[serde(flatten)]
    default: InterfaceStats,
    interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FsStats {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inodes_used: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeStats {
    #[serde(flatten)]
    fs: FsStats,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pvc_ref: Option<PvcReference>,
}

#[derive(Debug, Serialize)]
struct PvcReference {
    name: String,
    namespace: String,
}

/// `ms` (milliseconds since the epoch) as `metav1.Time` writes it.
fn time(ms: i64) -> String {
    match jiff::Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".into(),
    }
}

fn cpu(at: &str, cpu: Option<CpuUsage>) -> Option<CpuStats> {
    cpu.map(|c| CpuStats { time: at.into(), usage_nano_cores: c.nano_cores, usage_core_nano_seconds: c.total_nanos })
}

/// Memory stats; `limit` (the node's capacity) gives `availableBytes`.
fn memory(at: &str, memory: Option<MemoryUsage>, limit: Option<u64>) -> Option<MemoryStats> {
    memory.map(|m| MemoryStats {
        time: at.into(),
        available_bytes: limit.map(|l| l.saturating_sub(m.working_set)),
        usage_bytes: m.usage,
        working_set_bytes: m.working_set,
        rss_bytes: m.rss,
        page_faults: m.page_faults,
        major_page_faults: m.major_page_faults,
    })
}

fn swap(at: &str, swap: Option<SwapUsage>) -> Option<SwapStats> {
    swap.map(|s| SwapStats { time: at.into(), swap_available_bytes: s.available, swap_usage_bytes: s.usage })
}

fn interface(i: &Interface) -> InterfaceStats {
    InterfaceStats {
        name: i.name.clone(),
        rx_bytes: i.rx_bytes,
        rx_errors: i.rx_errors,
        tx_bytes: i.tx_bytes,
        tx_errors: i.tx_errors,
    }
}

fn network(at: &str, interfaces: &[Interface]) -> Option<NetworkStats> {
    let default = netdev::default_interface(interfaces)?;
    Some(NetworkStats {
        time: at.into(),
        default: interface(default),
        interfaces: interfaces.iter().map(interface).collect(),
    })
}

fn fs(at: &str, fs: FsUsage) -> FsStats {
    FsStats {
        time: at.into(),
        available_bytes: fs.available,
        capacity_bytes: fs.capacity,
        used_bytes: fs.used,
        inodes_free: fs.inodes_free,
        inodes: fs.inodes,
        inodes_used: fs.inodes_used,
    }
}

fn system_container(at: &str, c: &SystemContainer) -> ContainerStats {
    ContainerStats {
        name: c.name.clone(),
        start_time: c.start_time_ms.map(time),
        cpu: cpu(at, c.cpu),
        memory: memory(at, c.memory, None),
        swap: None,
        rootfs: None,
        logs: None,
    }
}

fn container(at: &str, c: &ContainerUsage) -> ContainerStats {
    ContainerStats {
        name: c.name.clone(),
        start_time: c.start_time_ms.map(time),
        cpu: cpu(at, c.cpu),
        memory: memory(at, c.memory, None),
        swap: swap(at, c.swap),
        rootfs: c.rootfs.map(|r| fs(at, r)),
        logs: c.logs.map(|l| fs(at, l)),
    }
}

fn pod(at: &str, p: &PodUsage) -> PodStats {
    PodStats {
        pod_ref: PodReference { name: p.name.clone(), namespace: p.namespace.clone(), uid: p.uid.clone() },
        start_time: p.start_time_ms.map(time),
        containers: p.containers.iter().map(|c| container(at, c)).collect(),
        cpu: cpu(at, p.cpu),
        memory: memory(at, p.memory, None),
        swap: swap(at, p.swap),
        network: network(at, &p.network),
        volume: p
            .volumes
            .iter()
            .map(|v| VolumeStats {
                fs: fs(at, v.fs),
                name: v.name.clone(),
                pvc_ref: v
                    .pvc_ref
                    .as_ref()
                    .map(|r| PvcReference { name: r.name.clone(), namespace: r.namespace.clone() }),
            })
            .collect(),
        ephemeral_storage: p.ephemeral.map(|e| fs(at, e)),
        process_stats: p.processes.map(|process_count| ProcessStats { process_count }),
    }
}

/// The Summary of `snapshot`.
pub fn build(snapshot: &Snapshot) -> Summary {
    let at = time(snapshot.timestamp_ms);
    let node = &snapshot.node;
    Summary {
        node: NodeStats {
            node_name: node.name.clone(),
            system_containers: node.system_containers.iter().map(|c| system_container(&at, c)).collect(),
            start_time: node.start_time_ms.map(time),
            cpu: cpu(&at, node.cpu),
            memory: memory(&at, node.memory, node.memory_capacity),
            network: network(&at, &node.network),
            fs: node.fs.map(|f| fs(&at, f)),
            runtime: (node.image_fs.is_some() || node.container_fs.is_some()).then(|| RuntimeStats {
                image_fs: node.image_fs.map(|f| fs(&at, f)),
                container_fs: node.container_fs.map(|f| fs(&at, f)),
            }),
            rlimit: node.rlimit.map(|(maxpid, curproc)| RlimitStats { time: at.clone(), maxpid, curproc }),
            swap: swap(&at, node.swap),
        },
        pods: snapshot.pods.iter().map(|p| pod(&at, p)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{NodeUsage, PvcRef, VolumeUsage};
    use serde_json::json;

    fn snapshot() -> Snapshot {
        let memory = MemoryUsage {
            usage: 8192,
            working_set: 4096,
            rss: Some(2048),
            page_faults: Some(10),
            major_page_faults: Some(1),
        };
        let disk = FsUsage {
            capacity: Some(1000),
            available: Some(400),
            used: Some(20),
            inodes: Some(100),
            inodes_free: Some(50),
            inodes_used: Some(2),
        };
        let eth0 = Interface { name: "eth0".into(), rx_bytes: 5, rx_errors: 0, tx_bytes: 7, tx_errors: 0 };
        Snapshot {
            timestamp_ms: 1_767_225_600_900,
            node: NodeUsage {
                name: "n1".into(),
                start_time_ms: Some(1_767_225_000_000),
                cpu_cores: Some(2),
                memory_capacity: Some(10_000),
                cpu: Some(CpuUsage { total_nanos: 9_000, nano_cores: Some(250) }),
                memory: Some(memory),
                network: vec![Interface { name: "ens3".into(), ..eth0.clone() }],
                fs: Some(disk),
                image_fs: Some(disk),
                container_fs: Some(FsUsage { used: Some(30), ..disk }),
                swap: Some(SwapUsage { usage: 0, available: Some(2048) }),
                rlimit: Some((4_194_304, 321)),
                system_containers: vec![SystemContainer {
                    name: "pods".into(),
                    cpu: Some(CpuUsage { total_nanos: 5, nano_cores: None }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            pods: vec![PodUsage {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                start_time_ms: Some(1_767_225_500_000),
                memory: Some(memory),
                swap: Some(SwapUsage { usage: 4096, available: None }),
                network: vec![eth0],
                volumes: vec![
                    VolumeUsage { name: "scratch".into(), fs: disk, pvc_ref: None },
                    VolumeUsage {
                        name: "data".into(),
                        fs: disk,
                        pvc_ref: Some(PvcRef { name: "claim".into(), namespace: "default".into() }),
                    },
                ],
                ephemeral: Some(disk),
                processes: Some(3),
                containers: vec![ContainerUsage {
                    name: "main".into(),
                    start_time_ms: Some(1_767_225_550_000),
                    memory: Some(memory),
                    swap: Some(SwapUsage { usage: 1024, available: Some(512) }),
                    rootfs: Some(disk),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            scrape_error: false,
        }
    }

    #[test]
    fn the_summary_has_the_kubelet_field_names() {
        let doc = serde_json::to_value(build(&snapshot())).expect("json");
        let at = "2026-01-01T00:00:00Z";
        let node = &doc["node"];
        assert_eq!(node["nodeName"], "n1");
        assert_eq!(node["startTime"], "2025-12-31T23:50:00Z");
        assert_eq!(node["cpu"], json!({"time": at, "usageNanoCores": 250, "usageCoreNanoSeconds": 9000}));
        assert_eq!(
            node["memory"],
            json!({"time": at, "availableBytes": 5904, "usageBytes": 8192, "workingSetBytes": 4096,
                   "rssBytes": 2048, "pageFaults": 10, "majorPageFaults": 1})
        );
        // Without eth0 the first interface is the default one.
        assert_eq!(node["network"]["name"], "ens3");
        assert_eq!(node["network"]["interfaces"][0]["txBytes"], 7);
        assert_eq!(node["fs"]["capacityBytes"], 1000);
        assert_eq!(node["runtime"]["imageFs"]["inodesFree"], 50);
        assert_eq!(node["runtime"]["containerFs"]["usedBytes"], 30);
        assert_eq!(node["swap"], json!({"time": at, "swapAvailableBytes": 2048, "swapUsageBytes": 0}));
        assert_eq!(node["rlimit"], json!({"time": at, "maxpid": 4_194_304, "curproc": 321}));
        assert_eq!(node["systemContainers"][0]["name"], "pods");
        assert!(node["systemContainers"][0].get("memory").is_none());

        let pod = &doc["pods"][0];
        assert_eq!(pod["podRef"], json!({"name": "web", "namespace": "default", "uid": "u1"}));
        assert_eq!(pod["network"]["name"], "eth0");
        assert_eq!(pod["network"]["rxBytes"], 5);
        assert!(pod["memory"].get("availableBytes").is_none());
        assert_eq!(pod["swap"], json!({"time": at, "swapUsageBytes": 4096}), "no limit, no availableBytes");
        assert_eq!(
            pod["volume"][0],
            json!({"time": at, "availableBytes": 400, "capacityBytes": 1000, "usedBytes": 20, "inodesFree": 50,
                   "inodes": 100, "inodesUsed": 2, "name": "scratch"})
        );
        assert_eq!(pod["volume"][1]["name"], "data");
        assert_eq!(pod["volume"][1]["pvcRef"], json!({"name": "claim", "namespace": "default"}));
        assert_eq!(pod["volume"][1]["usedBytes"], 20);
        assert_eq!(pod["ephemeral-storage"]["usedBytes"], 20);
        assert_eq!(pod["process_stats"], json!({"process_count": 3}));
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "main");
        assert_eq!(container["startTime"], "2025-12-31T23:59:10Z");
        assert_eq!(container["memory"]["workingSetBytes"], 4096);
        assert_eq!(container["rootfs"]["usedBytes"], 20);
        assert_eq!(container["swap"], json!({"time": at, "swapAvailableBytes": 512, "swapUsageBytes": 1024}));
        assert!(container.get("cpu").is_none() && container.get("logs").is_none());
    }
}
