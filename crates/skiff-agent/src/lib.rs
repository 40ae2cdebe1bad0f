//! skiff's node agent (the kubelet): registers the Node and keeps its Lease fresh ([`node`]),
//! runs the pods bound to it and the static pods of its manifest files ([`static_pods`]) on the
//! container runtime and reports their status ([`pods`]), pulls and garbage-collects their
//! images ([`images`]), evicts pods under node pressure ([`eviction`]) and rotates container
//! logs ([`logrotate`]).
//!
//! Pods run once the Node has a pod CIDR ([`network`]).
//!
//! Like every component it talks only to the API server, through a kube client with its own
//! identity. What does not live here: images, containers and shims (`skiff-runtime`), pod
//! networking mechanics (`skiff-net`), scheduling (the scheduler binds pods to nodes).

pub mod certificate;
pub mod events;
pub mod eviction;
pub mod images;
pub mod logrotate;
pub mod network;
pub mod node;
pub mod pods;
pub mod static_pods;
pub mod stats;
pub mod streaming;
pub mod sysinfo;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use skiff_runtime::container::Runtime;

/// skiff's version, reported in `nodeInfo`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Kubernetes version the agent reports as kubelet version.
pub const KUBE_VERSION: &str = "1.33.0";

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node name.
    pub node_name: String,
    /// The node's address (InternalIP).
    pub node_ip: IpAddr,
    /// `<data-dir>/agent`.
    pub agent_dir: PathBuf,
    /// Where container logs go (`/var/log/pods`).
    pub log_dir: PathBuf,
    /// Labels added to the Node.
    pub labels: BTreeMap<String, String>,
    /// Whether this node runs the control plane (labelled so).
    pub control_plane: bool,
    /// Pods per node.
    pub max_pods: u32,
    /// CPU kept back from pods (kube-reserved + system-reserved), in millicores.
    pub reserved_milli_cpu: u64,
    /// Memory kept back from pods, in bytes.
    pub reserved_memory: u64,
    /// The cluster DNS Service address pods resolve through (`None`: pods use the node's
    /// resolvers, as the kubelet does without `--cluster-dns`).
    pub cluster_dns: Option<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Registry hosts (`host:port`) pulled from over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// When image garbage collection starts and where it stops.
    pub image_gc: skiff_runtime::images::gc::GcPolicy,
    /// Port of the streaming server (logs, exec, attach, port-forward), reported as the Node's
    /// `daemonEndpoints.kubeletEndpoint.port`.
    pub kubelet_port: u16,
    /// TLS material of the streaming server; without it the server does not run.
    pub streaming_tls: Option<streaming::StreamingTls>,
    /// Most processes per pod (`--pod-max-pids`; not positive for no limit).
    pub pod_pids_limit: i64,
    /// Node-pressure eviction (`--eviction-*`).
    pub eviction: eviction::EvictionConfig,
    /// Container log rotation (`--container-log-max-size`, `--container-log-max-files`).
    pub container_logs: logrotate::LogRotatePolicy,
    /// Where static pod manifests are read from (`--pod-manifest-path`; a directory or a file).
    pub pod_manifest_path: PathBuf,
}

impl AgentConfig {
    /// Total memory of the node, in bytes (0 if unknown).
    pub fn node_memory_bytes(&self) -> u64 {
        std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(sysinfo::mem_total).unwrap_or(0)
    }
}

/// Agent failures at start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The runtime could not be opened.
    #[error("cannot open the container runtime: {0}")]
    Runtime(#[from] skiff_runtime::container::ContainerError),
    /// `registries.yaml` is not valid.
    #[error("cannot read the registry configuration: {0}")]
    Registries(#[from] skiff_runtime::images::registries::RegistriesError),
    /// The streaming server could not start.
    #[error(transparent)]
    Streaming(#[from] streaming::server::StreamingError),
}

/// The running agent.
pub struct Agent {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Stops the agent's loops. Containers keep running (a restarted agent re-adopts them).
    pub fn abort(&self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Starts the agent: node registration and heartbeat, the drop-directory image import, the pods.
/// `shim_binary` is the `skiff` executable (it runs `skiff shim`).
pub fn start(client: kube::Client, cfg: AgentConfig, shim_binary: PathBuf) -> Result<Agent, AgentError> {
    let runtime = Arc::new(Runtime::open(&cfg.agent_dir, &shim_binary)?);
    let streaming_runtime = Arc::clone(&runtime);
    let reporter =
        kube::runtime::events::Reporter { controller: "kubelet".into(), instance: Some(cfg.node_name.clone()) };
    let recorder = kube::runtime::events::Recorder::new(client.clone(), reporter.clone());
    let registries = skiff_runtime::images::registries::Registries::load(
        &cfg.agent_dir.join("registries.yaml"),
        &cfg.insecure_registries,
    )?;
    let image_manager = Arc::new(images::ImageManager::new(Arc::clone(&runtime), client.clone(), reporter, registries));
    let gc = tokio::spawn(images::gc::run(
        Arc::clone(&image_manager),
        recorder.clone(),
        cfg.image_gc,
        cfg.node_name.clone(),
    ));
    let volumes = volumes::VolumeManager::new(client.clone(), &cfg);
    let mounted_claims = volumes.mounted_claims();
    let pod_set = pods::set::PodSet::new();
    let activity = Arc::new(stats::activity::Activity::default());
    let eviction = eviction::EvictionManager::new(cfg.eviction.clone());
    let eviction_task = tokio::spawn(Arc::clone(&eviction).run(eviction::Deps {
        client: client.clone(),
        runtime: Arc::clone(&runtime),
        images: Arc::clone(&image_manager),
        recorder: recorder.clone(),
        node_name: cfg.node_name.clone(),
        paths: eviction::signals::Paths {
            node_fs: cfg.agent_dir.clone(),
            log_dir: cfg.log_dir.clone(),
            image_fs: cfg.agent_dir.join("images"),
        },
        pod_paths: eviction::stats::PodPaths {
            containers: cfg.agent_dir.join("containers"),
            pods: cfg.agent_dir.join("pods"),
            logs: cfg.log_dir.clone(),
        },
    }));
    let pressure = eviction.pressure();
    let node_recorder = recorder.clone();
    let logrotate = tokio::spawn(logrotate::run(Arc::clone(&runtime), cfg.container_logs));
    let pod_task = {
        let (client, runtime, cfg, volumes, pod_set, activity) = (
            client.clone(),
            Arc::clone(&runtime),
            cfg.clone(),
            Arc::clone(&volumes),
            pod_set.clone(),
            Arc::clone(&activity),
        );
        async move {
            let cidr = network::wait_for_pod_cidr(&client, &cfg.node_name).await;
            let data_dir = cfg.agent_dir.parent().unwrap_or(&cfg.agent_dir).to_path_buf();
            let network = Arc::new(network::open(&data_dir, cidr).await);
            let images = image_manager;
            let shared = pods::worker::Shared {
                client,
                runtime,
                network,
                cfg,
                recorder,
                volumes,
                images,
                eviction,
                pod_set,
                activity,
            };
            pods::run(Arc::new(shared)).await;
        }
    };
    let images = tokio::spawn(async move {
        loop {
            let rt = Arc::clone(&runtime);
            match tokio::task::spawn_blocking(move || rt.images().import_dropped()).await {
                Ok(Ok(imported)) => {
                    for image in imported {
                        tracing::info!(references = ?image.references, "imported dropped image");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "scanning the image drop directory"),
                Err(e) => tracing::warn!(error = %e, "image import task"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    let mut tasks = vec![images, tokio::spawn(volumes.monitor()), gc, eviction_task, logrotate];
    if let Some(tls) = &cfg.streaming_tls {
        let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, cfg.kubelet_port));
        let listener = std::net::TcpListener::bind(addr)
            .or_else(|_| std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, cfg.kubelet_port)))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|source| streaming::server::StreamingError::Bind { addr, source })?;
        let ctx = Arc::new(streaming::server::Streaming {
            runtime: Arc::clone(&streaming_runtime),
            client: client.clone(),
            log_dir: cfg.log_dir.clone(),
            stats: Arc::new(stats::collect::Collector::new(
                pod_set,
                Arc::clone(&streaming_runtime),
                stats::collect::Paths {
                    agent_dir: cfg.agent_dir.clone(),
                    log_dir: cfg.log_dir.clone(),
                    claims: mounted_claims,
                },
                cfg.node_name.clone(),
                activity,
            )),
        });
        tracing::info!(port = cfg.kubelet_port, "streaming server listening");
        tasks.push(tokio::spawn(streaming::server::serve(listener, streaming::server::tls_config(tls)?, ctx)));
    }
    tasks.push(tokio::spawn(volumes::local_path::run(client.clone(), cfg.node_name.clone())));
    tasks.push(tokio::spawn(node::run(client, cfg, pressure, node_recorder)));
    tasks.push(tokio::spawn(pod_task));
    Ok(Agent { tasks })
}
