//! The agent's Node: registration (capacity, allocatable, addresses, nodeInfo, labels,
//! conditions, images), the Lease heartbeat in `kube-node-lease` every 10 s, and a status
//! refresh when something changes (the node's images, checked at each heartbeat; the pressure
//! conditions, at once) and at least every 5 minutes (as the kubelet does). A pressure condition
//! that changes is also recorded as a Node event (`NodeHasInsufficientMemory`, …).
//!
//! Host facts come from [`crate::sysinfo`], pressure from [`crate::eviction`]; pods are
//! [`crate::pods`]'.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Recorder};
use tokio::sync::watch;

use crate::AgentConfig;
use crate::eviction::Pressure;
use crate::eviction::thresholds::Condition;
use crate::sysinfo::HostInfo;

/// How often the Lease is renewed.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long a Lease stays valid without renewal.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Longest time between two status reports.
pub const STATUS_REFRESH: Duration = Duration::from_secs(300);

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, at: &Time) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(at.clone()),
        last_transition_time: Some(at.clone()),
    }
}

fn quantities(cpu: u64, memory: u64, storage: u64, pods: u32) -> BTreeMap<String, Quantity> {
    [
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", memory / 1024))),
        ("ephemeral-storage".to_string(), Quantity(format!("{}Ki", storage / 1024))),
        ("pods".to_string(), Quantity(pods.to_string())),
    ]
    .into()
}

/// A pressure condition as the kubelet's setters word it: (status, reason, message, event).
fn pressure_condition(kind: Condition, on: bool) -> (bool, &'static str, &'static str, &'static str) {
    match (kind, on) {
        (Condition::Memory, true) => (
            true,
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
            "NodeHasInsufficientMemory",
        ),
        (Condition::Memory, false) => {
            (false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "NodeHasSufficientMemory")
        }
        (Condition::Disk, true) => (true, "KubeletHasDiskPressure", "kubelet has disk pressure", "NodeHasDiskPressure"),
        (Condition::Disk, false) => {
            (false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "NodeHasNoDiskPressure")
        }
        (Condition::Pid, true) => {
            (true, "KubeletHasInsufficientPID", "kubelet has insufficient PID available", "NodeHasInsufficientPID")
        }
        (Condition::Pid, false) => {
            (false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "NodeHasSufficientPID")
        }
    }
}

/// The Node status this agent reports under `pressure`.
pub fn node_status(cfg: &AgentConfig, host: &HostInfo, at: &Time, pressure: &Pressure) -> NodeStatus {
    let reserved_memory = cfg.reserved_memory.min(host.memory_bytes);
    let allocatable_milli_cpu = (host.cpus as u64 * 1000).saturating_sub(cfg.reserved_milli_cpu);
    let mut allocatable =
        quantities(host.cpus as u64, host.memory_bytes - reserved_memory, host.storage_bytes, cfg.max_pods);
    allocatable.insert("cpu".into(), Quantity(format!("{allocatable_milli_cpu}m")));
    NodeStatus {
        capacity: Some(quantities(host.cpus as u64, host.memory_bytes, host.storage_bytes, cfg.max_pods)),
        allocatable: Some(allocatable),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: cfg.node_ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: cfg.node_name.clone() },
        ]),
        conditions: Some(
            [Condition::Memory, Condition::Disk, Condition::Pid]
                .into_iter()
                .map(|kind| {
                    let (status, reason, message, _) = pressure_condition(kind, pressure.contains(&kind));
                    condition(kind.type_name(), status, reason, message, at)
                })
                // Ready goes last, as the kubelet keeps it.
                .chain([condition("Ready", true, "KubeletReady", "kubelet is posting ready status", at)])
                .collect(),
        ),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(cfg.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: host.architecture.clone(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: format!("skiff://{}", crate::VERSION),
            kernel_version: host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: format!("v{}-skiff", crate::KUBE_VERSION),
            machine_id: host.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: host.os_image.clone(),
            system_uuid: host.machine_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Node object to create at registration.
pub fn node_object(cfg: &AgentConfig, host: &HostInfo) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.node_name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), host.architecture.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), host.architecture.clone()),
    ]);
    if cfg.control_plane {
        labels.insert("node-role.kubernetes.io/control-plane".into(), "true".into());
    }
    labels.extend(cfg.labels.clone());
    Node {
        metadata: ObjectMeta { name: Some(cfg.node_name.clone()), labels: Some(labels), ..Default::default() },
        spec: None,
        status: Some(node_status(cfg, host, &now(), &Pressure::new())),
    }
}

/// The pressure conditions a Node shows (those it has), as on (`True`) or off.
fn shown_pressure(node: &Node) -> BTreeMap<Condition, bool> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    [Condition::Memory, Condition::Disk, Condition::Pid]
        .into_iter()
        .filter_map(|kind| {
            let c = conditions?.iter().find(|c| c.type_ == kind.type_name())?;
            Some((kind, c.status == "True"))
        })
        .collect()
}

/// Registers the Node (creating it, or refreshing the status of an existing one). Returns it
/// and the pressure conditions it showed before (none for a new Node).
pub async fn register(
    client: &kube::Client,
    cfg: &AgentConfig,
    host: &HostInfo,
    pressure: &Pressure,
) -> Result<(Node, BTreeMap<Condition, bool>), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(cfg, host);
    let (registered, before) = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => {
            tracing::info!(node = %cfg.node_name, "node registered");
            (n, BTreeMap::new())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({"metadata": {"labels": node.metadata.labels}});
            let n = nodes.patch(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            let before = shown_pressure(&n);
            (n, before)
        }
        Err(e) => return Err(e),
    };
    report_status(client, cfg, host, pressure).await?;
    Ok((registered, before))
}

/// The images on the node as `status.images` reports them.
async fn node_images(cfg: &AgentConfig) -> Vec<ContainerImage> {
    let dir = cfg.agent_dir.join("images");
    let images = tokio::task::spawn_blocking(move || {
        skiff_runtime::images::ImageStore::open(&dir).and_then(|s| s.list()).unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    crate::images::node_status::node_images(images)
}

/// Sends the current status (conditions' transition times kept when unchanged).
pub async fn report_status(
    client: &kube::Client,
    cfg: &AgentConfig,
    host: &HostInfo,
    pressure: &Pressure,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let at = now();
    let mut status = node_status(cfg, host, &at, pressure);
    status.images = Some(node_images(cfg).await);
    if let Ok(current) = nodes.get_status(&cfg.node_name).await {
        let old = current.status.and_then(|s| s.conditions).unwrap_or_default();
        for c in status.conditions.iter_mut().flatten() {
            if let Some(prev) = old.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
                c.last_transition_time = prev.last_transition_time.clone();
            }
        }
    }
    let patch = serde_json::json!({"status": status});
    nodes.patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(client: &kube::Client, cfg: &AgentConfig, node_uid: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = MicroTime(jiff::Timestamp::now());
    let patch = serde_json::json!({"spec": {"renewTime": renew, "holderIdentity": cfg.node_name, "leaseDurationSeconds": LEASE_DURATION_SECONDS}});
    match leases.patch(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.node_name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: cfg.node_name.clone(),
                        uid: node_uid.into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.node_name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(renew),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Records a Node event for each pressure condition that changed (`Node <name> status is now:
/// NodeHasInsufficientMemory`, as the kubelet's `recordNodeStatusEvent`).
async fn record_changes(recorder: &Recorder, node: &str, before: &BTreeMap<Condition, bool>, now: &Pressure) {
    for kind in [Condition::Memory, Condition::Disk, Condition::Pid] {
        let on = now.contains(&kind);
        if before.get(&kind) != Some(&on) {
            let (_, _, _, event) = pressure_condition(kind, on);
            let note = format!("Node {node} status is now: {event}");
            crate::eviction::publish_node_event(recorder, node, EventType::Normal, event, note).await;
        }
    }
}

/// Whether the Node's `Ready` condition in the API is no longer `True` although this agent runs
/// (the node lifecycle controller marked it `Unknown` after missed heartbeats): the status is
/// then reported again at once, as the kubelet compares its status with the Node's.
async fn ready_lost(client: &kube::Client, name: &str) -> bool {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_status(name).await {
        Ok(node) => node
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown"),
        Err(_) => false,
    }
}

/// Registers, then keeps the Lease and status fresh until the task is aborted; a change of
/// `pressure` is reported at once.
pub async fn run(client: kube::Client, cfg: AgentConfig, mut pressure: watch::Receiver<Pressure>, recorder: Recorder) {
    let host = loop {
        match crate::sysinfo::HostInfo::gather(&cfg.agent_dir) {
            Ok(h) => break h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read host facts; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let mut reported = pressure.borrow_and_update().clone();
    let node = loop {
        match register(&client, &cfg, &host, &reported).await {
            Ok((n, before)) => {
                record_changes(&recorder, &cfg.node_name, &before, &reported).await;
                break n;
            }
            Err(e) => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let uid = node.metadata.uid.unwrap_or_default();
    let mut last_status = tokio::time::Instant::now();
    let mut last_images = node_images(&cfg).await;
    let mut next_lease = tokio::time::Instant::now();
    loop {
        let mut lost = false;
        if tokio::time::Instant::now() >= next_lease {
            if let Err(e) = renew_lease(&client, &cfg, &uid).await {
                tracing::warn!(error = %e, "lease renewal failed");
            }
            next_lease = tokio::time::Instant::now() + LEASE_RENEW;
            lost = ready_lost(&client, &cfg.node_name).await;
        }
        // Images pulled or removed are reported at the next heartbeat; pressure at once.
        let images = node_images(&cfg).await;
        let current = pressure.borrow_and_update().clone();
        if last_status.elapsed() >= STATUS_REFRESH || images != last_images || current != reported || lost {
            match report_status(&client, &cfg, &host, &current).await {
                Ok(()) => {
                    last_status = tokio::time::Instant::now();
                    last_images = images;
                    let before = [Condition::Memory, Condition::Disk, Condition::Pid]
                        .into_iter()
                        .map(|kind| (kind, reported.contains(&kind)))
                        .collect();
                    record_changes(&recorder, &cfg.node_name, &before, &current).await;
                    reported = current;
                }
                Err(e) => tracing::warn!(error = %e, "node status update failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_lease) => {}
            changed = pressure.changed() => if changed.is_err() {
                // The eviction manager is gone: keep heartbeating.
                tokio::time::sleep_until(next_lease).await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_conditions_are_worded_as_the_kubelet_does() {
        assert_eq!(
            pressure_condition(Condition::Memory, true),
            (
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                "NodeHasInsufficientMemory"
            )
        );
        assert_eq!(pressure_condition(Condition::Disk, false).1, "KubeletHasNoDiskPressure");
        assert_eq!(pressure_condition(Condition::Pid, true).3, "NodeHasInsufficientPID");
    }

    #[test]
    fn shown_pressure_reads_the_conditions_a_node_has() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "Ready", "status": "True"}
            ]}
        }))
        .expect("node");
        assert_eq!(shown_pressure(&node), BTreeMap::from([(Condition::Memory, true), (Condition::Disk, false)]));
        assert!(shown_pressure(&Node::default()).is_empty());
    }
}
