//! The agent's Node: registration (capacity, allocatable, addresses, nodeInfo, labels,
//! conditions, images), the Lease heartbeat in `kube-node-lease` every 10 s, and a status
//! refresh when something changes (the node's images, checked at each heartbeat) and at least
//! every 5 minutes (as the kubelet does).
//!
//! Host facts come from [`crate::sysinfo`]; pods are [`crate::pods`]'.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::AgentConfig;
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

/// The Node status this agent reports.
pub fn node_status(cfg: &AgentConfig, host: &HostInfo, at: &Time) -> NodeStatus {
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
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                at,
            ),
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", at),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", at),
            condition("Ready", true, "KubeletReady", "kubelet is posting ready status", at),
        ]),
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
        status: Some(node_status(cfg, host, &now())),
    }
}

/// Registers the Node (creating it, or refreshing the status of an existing one).
pub async fn register(client: &kube::Client, cfg: &AgentConfig, host: &HostInfo) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(cfg, host);
    let created = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => {
            tracing::info!(node = %cfg.node_name, "node registered");
            n
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({"metadata": {"labels": node.metadata.labels}});
            nodes.patch(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?
        }
        Err(e) => return Err(e),
    };
    report_status(client, cfg, host).await?;
    Ok(created)
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
pub async fn report_status(client: &kube::Client, cfg: &AgentConfig, host: &HostInfo) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let at = now();
    let mut status = node_status(cfg, host, &at);
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

/// Registers, then keeps the Lease and status fresh until the task is aborted.
pub async fn run(client: kube::Client, cfg: AgentConfig) {
    let host = loop {
        match crate::sysinfo::HostInfo::gather(&cfg.agent_dir) {
            Ok(h) => break h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read host facts; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let node = loop {
        match register(&client, &cfg, &host).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let uid = node.metadata.uid.unwrap_or_default();
    let mut last_status = tokio::time::Instant::now();
    let mut last_images = node_images(&cfg).await;
    loop {
        if let Err(e) = renew_lease(&client, &cfg, &uid).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        // Images pulled or removed are reported at the next heartbeat.
        let images = node_images(&cfg).await;
        if last_status.elapsed() >= STATUS_REFRESH || images != last_images {
            match report_status(&client, &cfg, &host).await {
                Ok(()) => {
                    last_status = tokio::time::Instant::now();
                    last_images = images;
                }
                Err(e) => tracing::warn!(error = %e, "node status update failed"),
            }
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}
