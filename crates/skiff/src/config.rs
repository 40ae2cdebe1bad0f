//! Command line, environment and config-file handling for the `skiff` binary.
//!
//! Every `skiff server` flag can come from four places. The first one that sets it wins:
//!
//! 1. the command line (`--https-listen-port 7443`),
//! 2. the environment (`SKIFF_HTTPS_LISTEN_PORT=7443`),
//! 3. the config file, `/etc/skiff/config.yaml` unless `--config`/`SKIFF_CONFIG` names another
//!    (`https-listen-port: 7443`; keys are the flag names without the dashes),
//! 4. the built-in default.
//!
//! clap handles 1, 2 and 4. The file is merged in by [`parse_args`]: it reads the file into a
//! map, rejects keys that are not flags, checks each value with the flag's own value parser (so the
//! error can name the file), and appends the values of flags whose value still comes from the
//! default to the argument list before parsing again. The result is a typed [`ServerConfig`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Deserialize;

use crate::pki::PkiRequest;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/skiff";
/// Default config file; a missing default file is not an error, a missing explicit one is.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/skiff/config.yaml";

/// Errors from reading the command line and the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line itself was wrong, or help/version was asked for. `main` lets clap print it.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file could not be read.
    #[error("failed to read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not a YAML mapping of flag names to scalars.
    #[error("config file {path} is not valid: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
    },
    /// The config file names a key that is not a `skiff server` flag.
    #[error("config file {path}: unknown key {key:?} (keys are `skiff server` flag names, e.g. data-dir)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
    },
    /// A config file value does not parse as its flag's type.
    #[error("config file {path}: invalid value for {key}: {message}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was wrong with it.
        message: String,
    },
    /// The merged settings are inconsistent (for example overlapping CIDRs).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The `skiff` command line.
#[derive(Debug, Parser)]
#[command(name = "skiff", about = "A Kubernetes-compatible orchestrator in one binary", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The subcommands, as clap parses them (before the config file is merged).
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the control plane (and, unless --disable-agent, a node agent on this host).
    Server(Box<ServerArgs>),
    /// Print the admin kubeconfig of a data directory.
    Kubeconfig(KubeconfigArgs),
    /// Show or rotate the keys that encrypt Secrets at rest.
    SecretsEncrypt(SecretsEncryptArgs),
    /// Print the version, the git commit and the Kubernetes API version served.
    Version,
    /// Run a benchmark and print its numbers.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage the node's image store (import tarballs, list, remove).
    Images(ImagesArgs),
    /// Run only the scheduler, against the API server of a kubeconfig (like kube-scheduler).
    Scheduler(SchedulerArgs),
    /// Run one container (started by the agent; not for direct use).
    #[command(hide = true)]
    Shim(ShimArgs),
    /// Hold one pod's namespaces (started by the agent; not for direct use).
    #[command(hide = true)]
    Pause(PauseArgs),
    /// Run one command inside a running container (started by the agent; not for direct use).
    #[command(hide = true)]
    Exec(ExecArgs),
}

/// Flags of `skiff scheduler`.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// Kubeconfig of the API server to schedule for.
    #[arg(long, env = "SKIFF_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights, leader election).
    #[arg(long, env = "SKIFF_SCHEDULER_CONFIG", value_name = "FILE")]
    pub scheduler_config: Option<PathBuf>,
    /// Log filter (e.g. info, debug, skiff_scheduler=debug).
    #[arg(long, env = "SKIFF_LOG_LEVEL", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
}

/// Flags of the internal `skiff exec` command.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The request (`skiff_runtime::exec::HelperRequest`), as JSON.
    pub request: String,
}

/// Flags of the internal `skiff shim` command.
#[derive(Debug, Clone, Args)]
pub struct ShimArgs {
    /// The container directory prepared by the agent.
    pub dir: PathBuf,
    /// Run the shim in this process (otherwise launch it as a daemon and return).
    #[arg(long)]
    pub foreground: bool,
}

/// Flags of the internal `skiff pause` command.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// The sandbox directory prepared by the agent.
    #[arg(required_unless_present = "init")]
    pub dir: Option<PathBuf>,
    /// Hold the namespaces in this process (otherwise launch the holder as a daemon and return).
    #[arg(long)]
    pub foreground: bool,
    /// Be PID 1 of a pod's shared PID namespace (started by the holder): reap orphans.
    #[arg(long, conflicts_with_all = ["dir", "foreground"])]
    pub init: bool,
}

/// Flags of `skiff images`.
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Data directory whose image store (`<dir>/agent/images`) to manage.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR", global = true)]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: ImagesCommand,
}

/// The subcommands of `skiff images`.
#[derive(Debug, Clone, Subcommand)]
pub enum ImagesCommand {
    /// Import OCI-layout or docker-archive tarballs (plain, gzip or zstd).
    Import {
        /// Tarballs to import.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the images in the store.
    #[command(alias = "list")]
    Ls,
    /// Remove image references (a tag, or a digest to remove the whole image).
    #[command(alias = "remove")]
    Rm {
        /// References or digests to remove.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
}

/// The benchmarks `skiff bench` runs.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Start a server in a temp dir and measure the API: creates, GET, LIST, watch fan-out, RSS.
    Api(BenchApiArgs),
    /// Start a server in a temp dir and measure apply: a 50-object manifest (server-side, and
    /// client-side through kubectl when it is installed) and a 20-container Deployment.
    Apply(BenchApplyArgs),
    /// Measure the scheduler on simulated nodes: throughput binding a backlog of pods, create →
    /// bound latency, scheduler memory (plain, anti-affinity and spread workloads).
    Scheduler(BenchSchedulerArgs),
    /// Measure the controller manager on simulated nodes: a large Deployment created, bound and
    /// available, its rolling update, and the server's idle CPU afterwards.
    Deployment(BenchDeploymentArgs),
    /// Measure the cluster DNS's queries per second (a server in a child process, load from this
    /// one).
    Dns(BenchDnsArgs),
    /// Measure the service proxy's rule sync time (needs root; run in a scratch network namespace).
    Proxy(BenchProxyArgs),
}

/// Flags of `skiff bench scheduler`.
#[derive(Debug, Clone, Args)]
pub struct BenchSchedulerArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5_000)]
    pub nodes: usize,
    /// Pod counts of the backlog runs (the smallest is also the streaming run's).
    #[arg(long, value_delimiter = ',', default_value = "10000,50000")]
    pub pods: Vec<usize>,
    /// Workloads: plain, anti-affinity, spread.
    #[arg(long, value_delimiter = ',', default_value = "plain,anti-affinity,spread")]
    pub workloads: Vec<String>,
    /// Do not mark bound pods Running.
    #[arg(long)]
    pub no_kubelet: bool,
    /// Skip the streaming (latency) runs.
    #[arg(long)]
    pub no_streaming: bool,
    /// Give up a run after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// Only time the scheduling algorithm in this process (no API server, no binding).
    #[arg(long)]
    pub algorithm_only: bool,
}

/// Flags of `skiff bench deployment`.
#[derive(Debug, Clone, Args)]
pub struct BenchDeploymentArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1_000)]
    pub replicas: usize,
    /// Seconds over which idle CPU is sampled.
    #[arg(long, default_value_t = 30)]
    pub idle_window_secs: u64,
    /// Give up a phase after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// Flags of `skiff bench dns`.
#[derive(Debug, Clone, Args)]
pub struct BenchDnsArgs {
    /// Services in the served zone.
    #[arg(long, default_value_t = 1_000)]
    pub services: usize,
    /// Load-generating UDP clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Queries each client keeps in flight.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Internal: serve the zone on this address instead of measuring.
    #[arg(long, hide = true)]
    pub serve: Option<std::net::SocketAddr>,
}

/// Flags of `skiff bench proxy`.
#[derive(Debug, Clone, Args)]
pub struct BenchProxyArgs {
    /// Services.
    #[arg(long, default_value_t = 1_000)]
    pub services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
}

/// Flags of `skiff bench apply`.
#[derive(Debug, Clone, Args)]
pub struct BenchApplyArgs {
    /// kubectl used for the client-side apply measurement (skipped when it does not exist).
    #[arg(long, default_value = "kubectl")]
    pub kubectl: String,
    /// Rounds of each measurement.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

/// Flags of `skiff bench api`.
#[derive(Debug, Clone, Args)]
pub struct BenchApiArgs {
    /// Pods held for the LIST and RSS measurements.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Watchers for the fan-out measurement.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Creates per concurrency level in the throughput runs.
    #[arg(long, default_value_t = 3_000)]
    pub creates: usize,
}

/// Flags of `skiff server`. Field docs are the `--help` text.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Config file with flag values (keys are flag names).
    #[arg(long, env = "SKIFF_CONFIG", default_value = DEFAULT_CONFIG_FILE, value_name = "FILE")]
    pub config: PathBuf,
    /// Directory holding all state (store, certificates, images).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, env = "SKIFF_BIND_ADDRESS", default_value = "0.0.0.0", value_name = "IP")]
    pub bind_address: IpAddr,
    /// Address other hosts and the kubeconfig use to reach this server.
    #[arg(long, env = "SKIFF_ADVERTISE_ADDRESS", value_name = "IP")]
    pub advertise_address: Option<IpAddr>,
    /// HTTPS port of the API server.
    #[arg(long, env = "SKIFF_HTTPS_LISTEN_PORT", default_value_t = 6443, value_name = "PORT")]
    pub https_listen_port: u16,
    /// Where to write the admin kubeconfig.
    #[arg(long, env = "SKIFF_WRITE_KUBECONFIG", default_value = "/etc/skiff/skiff.yaml", value_name = "FILE")]
    pub write_kubeconfig: PathBuf,
    /// File mode of the written kubeconfig, in octal.
    #[arg(long, env = "SKIFF_WRITE_KUBECONFIG_MODE", default_value = "0600", value_parser = parse_mode, value_name = "MODE")]
    pub write_kubeconfig_mode: u32,
    /// IP range for Service cluster IPs.
    #[arg(long, env = "SKIFF_SERVICE_CIDR", default_value = "10.43.0.0/16", value_name = "CIDR")]
    pub service_cidr: Cidr,
    /// IP range for pod IPs (a /24 per node).
    #[arg(long, env = "SKIFF_CLUSTER_CIDR", default_value = "10.42.0.0/16", value_name = "CIDR")]
    pub cluster_cidr: Cidr,
    /// Cluster DNS domain.
    #[arg(long, env = "SKIFF_CLUSTER_DOMAIN", default_value = "cluster.local", value_parser = parse_dns_subdomain, value_name = "DOMAIN")]
    pub cluster_domain: String,
    /// Name of this node (default: the host name, lowercased).
    #[arg(long, env = "SKIFF_NODE_NAME", value_parser = parse_dns_subdomain, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Run only the control plane, no node agent.
    #[arg(long, env = "SKIFF_DISABLE_AGENT", action = ArgAction::SetTrue)]
    pub disable_agent: bool,
    /// Do not run the service proxy on this node.
    #[arg(long, env = "SKIFF_DISABLE_PROXY", action = ArgAction::SetTrue)]
    pub disable_proxy: bool,
    /// Do not run the cluster DNS server on this node.
    #[arg(long, env = "SKIFF_DISABLE_DNS", action = ArgAction::SetTrue)]
    pub disable_dns: bool,
    /// Do not enforce NetworkPolicies on this node.
    #[arg(long, env = "SKIFF_DISABLE_NETWORK_POLICY", action = ArgAction::SetTrue)]
    pub disable_network_policy: bool,
    /// Do not run the built-in Ingress controller on this node.
    #[arg(long, env = "SKIFF_DISABLE_INGRESS", action = ArgAction::SetTrue)]
    pub disable_ingress: bool,
    /// Port of the Ingress controller's HTTP listener.
    #[arg(long, env = "SKIFF_INGRESS_HTTP_PORT", default_value_t = 80, value_name = "PORT")]
    pub ingress_http_port: u16,
    /// Port of the Ingress controller's HTTPS listener.
    #[arg(long, env = "SKIFF_INGRESS_HTTPS_PORT", default_value_t = 443, value_name = "PORT")]
    pub ingress_https_port: u16,
    /// Cluster IP of the cluster DNS Service (kube-system/kube-dns); inside --service-cidr.
    #[arg(long, env = "SKIFF_CLUSTER_DNS", default_value = "10.43.0.10", value_name = "IP")]
    pub cluster_dns: Ipv4Addr,
    /// Addresses LoadBalancer Services get from the built-in load balancer (default: the nodes'
    /// InternalIPs).
    #[arg(long, env = "SKIFF_LB_POOL", value_name = "CIDR")]
    pub lb_pool: Option<Cidr>,
    /// Do not run the scheduler (another instance schedules, or pods are bound by hand).
    #[arg(long, env = "SKIFF_DISABLE_SCHEDULER", action = ArgAction::SetTrue)]
    pub disable_scheduler: bool,
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights, percentageOfNodesToScore).
    #[arg(long, env = "SKIFF_SCHEDULER_CONFIG", value_name = "FILE")]
    pub scheduler_config: Option<PathBuf>,
    /// A PodSecurityConfiguration (or AdmissionConfiguration) file: the Pod Security levels of
    /// namespaces without labels, and exempt users, namespaces and runtime classes.
    #[arg(long, env = "SKIFF_POD_SECURITY_ADMISSION_CONFIG_FILE", value_name = "FILE")]
    pub pod_security_admission_config_file: Option<PathBuf>,
    /// A registry (host:port) the agent pulls from over plain HTTP; repeatable. More registry
    /// settings (mirrors, credentials, TLS) go in <data-dir>/agent/registries.yaml.
    #[arg(long = "insecure-registry", env = "SKIFF_INSECURE_REGISTRY", value_delimiter = ',', action = ArgAction::Append, value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Audiences the API accepts in ServiceAccount tokens, and TokenRequests' default audiences
    /// (default: the issuer, https://kubernetes.default.svc.<domain>); repeatable.
    #[arg(long = "api-audiences", env = "SKIFF_API_AUDIENCES", value_delimiter = ',', action = ArgAction::Append, value_name = "AUDIENCE")]
    pub api_audiences: Vec<String>,
    /// Image file system usage (percent) at which unused images are garbage collected; 100 disables it.
    #[arg(long, env = "SKIFF_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100), value_name = "PERCENT")]
    pub image_gc_high_threshold: u8,
    /// Image file system usage (percent) image garbage collection frees down to.
    #[arg(long, env = "SKIFF_IMAGE_GC_LOW_THRESHOLD", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100), value_name = "PERCENT")]
    pub image_gc_low_threshold: u8,
    /// Port of the node agent's streaming server (logs, exec, attach, port-forward).
    #[arg(long, env = "SKIFF_KUBELET_PORT", default_value_t = 10250, value_name = "PORT")]
    pub kubelet_port: u16,
    /// Most processes in one pod (-1: no limit).
    #[arg(long, env = "SKIFF_POD_MAX_PIDS", default_value = "-1", allow_negative_numbers = true, value_name = "N")]
    pub pod_max_pids: i64,
    /// Thresholds that evict pods at once when met (e.g. memory.available<1Gi); signals:
    /// memory.available, nodefs.available, nodefs.inodesFree, imagefs.available,
    /// imagefs.inodesFree, pid.available.
    #[arg(long, env = "SKIFF_EVICTION_HARD", default_value = skiff_agent::eviction::thresholds::DEFAULT_EVICTION_HARD, value_parser = parse_eviction_thresholds, value_name = "SIGNAL<VALUE,...")]
    pub eviction_hard: String,
    /// Thresholds that evict pods once met for their grace period (e.g. memory.available<1.5Gi).
    #[arg(long, env = "SKIFF_EVICTION_SOFT", default_value = "", value_parser = parse_eviction_thresholds, value_name = "SIGNAL<VALUE,...")]
    pub eviction_soft: String,
    /// How long each soft threshold must hold before pods are evicted (e.g. memory.available=1m30s).
    #[arg(long, env = "SKIFF_EVICTION_SOFT_GRACE_PERIOD", default_value = "", value_parser = parse_eviction_grace_periods, value_name = "SIGNAL=DURATION,...")]
    pub eviction_soft_grace_period: String,
    /// How long a pressure condition stays on after its thresholds were last met.
    #[arg(long, env = "SKIFF_EVICTION_PRESSURE_TRANSITION_PERIOD", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub eviction_pressure_transition_period: std::time::Duration,
    /// Longest grace period (seconds) of pods evicted for a soft threshold (negative: the pod's own).
    #[arg(
        long,
        env = "SKIFF_EVICTION_MAX_POD_GRACE_PERIOD",
        default_value = "0",
        allow_negative_numbers = true,
        value_name = "SECONDS"
    )]
    pub eviction_max_pod_grace_period: i64,
    /// How much more than a threshold must be free before its pressure ends (e.g. imagefs.available=2Gi).
    #[arg(long, env = "SKIFF_EVICTION_MINIMUM_RECLAIM", default_value = "", value_parser = parse_eviction_minimum_reclaims, value_name = "SIGNAL=VALUE,...")]
    pub eviction_minimum_reclaim: String,
    /// Size at which a container's log file is rotated (a quantity, e.g. 10Mi).
    #[arg(long, env = "SKIFF_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi", value_parser = parse_log_max_size, value_name = "QUANTITY")]
    pub container_log_max_size: u64,
    /// Most log files kept per container, the current one included (at least 2).
    #[arg(long, env = "SKIFF_CONTAINER_LOG_MAX_FILES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..), value_name = "N")]
    pub container_log_max_files: u32,
    /// How long a Node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, env = "SKIFF_NODE_MONITOR_GRACE_PERIOD", default_value = "40s", value_parser = parse_duration, value_name = "DURATION")]
    pub node_monitor_grace_period: std::time::Duration,
    /// How often node agents are scraped for the resource metrics API (`metrics.k8s.io`,
    /// metrics-server's `--metric-resolution`).
    #[arg(long, env = "SKIFF_METRIC_RESOLUTION", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub metric_resolution: std::time::Duration,
    /// The longest lifetime of certificates issued for CertificateSigningRequests.
    #[arg(long, env = "SKIFF_CLUSTER_SIGNING_DURATION", default_value = "8760h", value_parser = parse_duration, value_name = "DURATION")]
    pub cluster_signing_duration: std::time::Duration,
    /// Nodes per second (and zone) tainted for eviction when they fail.
    #[arg(long, env = "SKIFF_NODE_EVICTION_RATE", default_value_t = 0.1, value_parser = parse_rate, value_name = "RATE")]
    pub node_eviction_rate: f64,
    /// An EncryptionConfiguration file (apiserver.config.k8s.io/v1) saying how resources are
    /// encrypted at rest [default: <data-dir>/server/cred/encryption-config.json, generated at
    /// first start: Secrets with aescbc].
    #[arg(long, env = "SKIFF_ENCRYPTION_PROVIDER_CONFIG", value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// An audit Policy file (audit.k8s.io/v1) [default: Metadata for every request].
    #[arg(long, env = "SKIFF_AUDIT_POLICY_FILE", value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events are written as JSON lines ('-' for standard output); no audit without it.
    #[arg(long, env = "SKIFF_AUDIT_LOG_PATH", value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,
    /// Days to keep rotated audit log files (0: no age limit).
    #[arg(long, env = "SKIFF_AUDIT_LOG_MAXAGE", default_value_t = 0, value_name = "DAYS")]
    pub audit_log_maxage: u32,
    /// Rotated audit log files to keep (0: no count limit).
    #[arg(long, env = "SKIFF_AUDIT_LOG_MAXBACKUP", default_value_t = 0, value_name = "N")]
    pub audit_log_maxbackup: u32,
    /// Size in megabytes at which the audit log is rotated (0: never).
    #[arg(long, env = "SKIFF_AUDIT_LOG_MAXSIZE", default_value_t = 0, value_name = "MB")]
    pub audit_log_maxsize: u32,
    /// Static pod manifests the agent runs (a directory, or one file) [default: <data-dir>/agent/pod-manifests].
    #[arg(long, env = "SKIFF_POD_MANIFEST_PATH", value_name = "PATH")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); RUST_LOG overrides it.
    #[arg(long, env = "SKIFF_LOG_LEVEL", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
}

/// Flags of `skiff secrets-encrypt`.
#[derive(Debug, Clone, Args)]
pub struct SecretsEncryptArgs {
    /// Data directory of the server.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR", global = true)]
    pub data_dir: PathBuf,
    /// The server's --encryption-provider-config, if it has one.
    #[arg(long, env = "SKIFF_ENCRYPTION_PROVIDER_CONFIG", value_name = "FILE", global = true)]
    pub encryption_provider_config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: SecretsEncryptCommand,
}

/// `skiff secrets-encrypt` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SecretsEncryptCommand {
    /// Print whether encryption is on, the rotation stage and the keys (the active one starred).
    Status,
    /// Add a new key first; the server (running, or at its next start) re-encrypts every
    /// Secret with it, compacts the store's history, then removes the old keys.
    Rotate,
    /// Re-encrypt every Secret with the file's current first key (after editing the file by
    /// hand), compact the store's history, then remove the other keys.
    Reencrypt,
}

/// Flags of `skiff kubeconfig`.
#[derive(Debug, Clone, Args)]
pub struct KubeconfigArgs {
    /// Data directory of the server whose kubeconfig to print.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// A parsed command, with the config file merged in and every value typed and checked.
#[derive(Debug, Clone)]
pub enum Command {
    /// `skiff server`.
    Server(Box<ServerConfig>),
    /// `skiff kubeconfig`.
    Kubeconfig(KubeconfigArgs),
    /// `skiff secrets-encrypt ...`.
    SecretsEncrypt(SecretsEncryptArgs),
    /// `skiff version`.
    Version,
    /// `skiff bench ...`.
    Bench(BenchCommand),
    /// `skiff images ...`.
    Images(ImagesArgs),
    /// `skiff scheduler`.
    Scheduler(SchedulerArgs),
    /// `skiff shim ...`.
    Shim(ShimArgs),
    /// `skiff pause ...`.
    Pause(PauseArgs),
    /// `skiff exec ...`.
    Exec(ExecArgs),
}

/// Everything `skiff server` needs to know, after precedence and validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Directory holding all state.
    pub data_dir: PathBuf,
    /// Address the API server listens on.
    pub bind_address: IpAddr,
    /// Address other hosts use to reach this server.
    pub advertise_address: Option<IpAddr>,
    /// HTTPS port of the API server.
    pub https_listen_port: u16,
    /// Where the admin kubeconfig is written.
    pub write_kubeconfig: PathBuf,
    /// Mode bits of the written kubeconfig.
    pub write_kubeconfig_mode: u32,
    /// Service cluster IP range.
    pub service_cidr: Cidr,
    /// Pod IP range.
    pub cluster_cidr: Cidr,
    /// Cluster DNS domain (a DNS-1123 subdomain).
    pub cluster_domain: String,
    /// This node's name (a DNS-1123 subdomain).
    pub node_name: String,
    /// Whether the node agent is off.
    pub disable_agent: bool,
    /// Whether the service proxy is off.
    pub disable_proxy: bool,
    /// Whether the cluster DNS server is off.
    pub disable_dns: bool,
    /// Whether NetworkPolicy enforcement is off.
    pub disable_network_policy: bool,
    /// Whether the Ingress controller is off.
    pub disable_ingress: bool,
    /// The Ingress controller's HTTP port.
    pub ingress_http_port: u16,
    /// The Ingress controller's HTTPS port.
    pub ingress_https_port: u16,
    /// The cluster DNS Service's cluster IP.
    pub cluster_dns: Ipv4Addr,
    /// The LoadBalancer address pool, if any.
    pub lb_pool: Option<Cidr>,
    /// Whether the scheduler is off.
    pub disable_scheduler: bool,
    /// The scheduler's configuration file.
    pub scheduler_config: Option<PathBuf>,
    /// The PodSecurity admission configuration file.
    pub pod_security_admission_config_file: Option<PathBuf>,
    /// Registries pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// `--api-audiences` (empty: the issuer).
    pub api_audiences: Vec<String>,
    /// Image GC high threshold, percent.
    pub image_gc_high_threshold: u8,
    /// Image GC low threshold, percent.
    pub image_gc_low_threshold: u8,
    /// Port of the agent's streaming server.
    pub kubelet_port: u16,
    /// Most processes in one pod (not positive: no limit).
    pub pod_max_pids: i64,
    /// `--eviction-hard`, as given (checked).
    pub eviction_hard: String,
    /// `--eviction-soft`, as given (checked).
    pub eviction_soft: String,
    /// `--eviction-soft-grace-period`, as given (checked).
    pub eviction_soft_grace_period: String,
    /// `--eviction-minimum-reclaim`, as given (checked).
    pub eviction_minimum_reclaim: String,
    /// `--eviction-pressure-transition-period`.
    pub eviction_pressure_transition_period: std::time::Duration,
    /// `--eviction-max-pod-grace-period`, seconds.
    pub eviction_max_pod_grace_period: i64,
    /// `--container-log-max-size`, bytes.
    pub container_log_max_size: u64,
    /// `--container-log-max-files`.
    pub container_log_max_files: u32,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: std::time::Duration,
    /// `--metric-resolution`.
    pub metric_resolution: std::time::Duration,
    /// `--node-eviction-rate`, Nodes per second.
    pub node_eviction_rate: f64,
    /// `--cluster-signing-duration`.
    pub cluster_signing_duration: std::time::Duration,
    /// `--encryption-provider-config`, if given.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--audit-policy-file`, if given.
    pub audit_policy_file: Option<PathBuf>,
    /// `--audit-log-path`, if given.
    pub audit_log_path: Option<PathBuf>,
    /// `--audit-log-maxage`, days.
    pub audit_log_maxage: u32,
    /// `--audit-log-maxbackup`.
    pub audit_log_maxbackup: u32,
    /// `--audit-log-maxsize`, megabytes.
    pub audit_log_maxsize: u32,
    /// Where the agent reads static pod manifests.
    pub pod_manifest_path: PathBuf,
    /// Log filter directive.
    pub log_level: String,
}

impl ServerConfig {
    /// The `kubernetes` Service's cluster IP: the first address of the service CIDR.
    pub fn service_ip(&self) -> Ipv4Addr {
        // A prefix is at most 32, so the range holds at least one address; `nth(1)` exists for
        // every prefix up to /31, and a /32 service range is rejected at validation.
        self.service_cidr.nth(1).unwrap_or(self.service_cidr.addr)
    }

    /// The agent's eviction settings.
    pub fn eviction_config(&self) -> Result<skiff_agent::eviction::EvictionConfig, ConfigError> {
        let thresholds = skiff_agent::eviction::thresholds::parse_config(
            &self.eviction_hard,
            &self.eviction_soft,
            &self.eviction_soft_grace_period,
            &self.eviction_minimum_reclaim,
        )
        .map_err(ConfigError::Invalid)?;
        Ok(skiff_agent::eviction::EvictionConfig {
            thresholds,
            pressure_transition_period: self.eviction_pressure_transition_period,
            max_pod_grace_period_seconds: self.eviction_max_pod_grace_period,
        })
    }

    /// The agent's container log rotation.
    pub fn log_rotate_policy(&self) -> skiff_agent::logrotate::LogRotatePolicy {
        skiff_agent::logrotate::LogRotatePolicy {
            max_size: self.container_log_max_size,
            max_files: self.container_log_max_files as usize,
        }
    }

    /// The host clients should use in URLs: the bind address if it is a specific one, otherwise
    /// the advertise address, otherwise loopback.
    pub fn client_host(&self) -> IpAddr {
        if !self.bind_address.is_unspecified() {
            self.bind_address
        } else {
            self.advertise_address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
    }

    /// The API server URL written into kubeconfigs.
    pub fn server_url(&self) -> String {
        match self.client_host() {
            IpAddr::V4(ip) => format!("https://{ip}:{}", self.https_listen_port),
            IpAddr::V6(ip) => format!("https://[{ip}]:{}", self.https_listen_port),
        }
    }

    /// What the serving certificate must cover: this host's names and every address clients
    /// may use (the unspecified bind address excluded).
    pub fn pki_request(&self, hostname: Option<&str>) -> PkiRequest {
        let mut hostnames = Vec::new();
        if let Some(h) = hostname {
            hostnames.push(h.to_ascii_lowercase());
        }
        if !hostnames.contains(&self.node_name) {
            hostnames.push(self.node_name.clone());
        }
        let mut ips = Vec::new();
        for ip in [Some(self.bind_address), self.advertise_address].into_iter().flatten() {
            if !ip.is_unspecified() && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        PkiRequest {
            hostnames,
            ips,
            cluster_domain: self.cluster_domain.clone(),
            service_ip: IpAddr::V4(self.service_ip()),
        }
    }
}

/// Parses a command line (including the program name), merging the config file for `server`.
pub fn parse_args<I, T>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let Some(("server", server_matches)) = matches.subcommand() else {
        return match Cli::from_arg_matches(&matches)?.command {
            CliCommand::Kubeconfig(k) => Ok(Command::Kubeconfig(k)),
            CliCommand::SecretsEncrypt(a) => Ok(Command::SecretsEncrypt(a)),
            CliCommand::Version => Ok(Command::Version),
            CliCommand::Bench(b) => Ok(Command::Bench(b)),
            CliCommand::Images(i) => Ok(Command::Images(i)),
            CliCommand::Scheduler(s) => Ok(Command::Scheduler(s)),
            CliCommand::Shim(s) => Ok(Command::Shim(s)),
            CliCommand::Pause(p) => Ok(Command::Pause(p)),
            CliCommand::Exec(e) => Ok(Command::Exec(e)),
            // `subcommand()` said it is not `server`.
            CliCommand::Server(_) => Err(ConfigError::Invalid("unexpected subcommand".into())),
        };
    };

    let config_path =
        server_matches.get_one::<PathBuf>("config").cloned().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    let explicit = server_matches.value_source("config") != Some(ValueSource::DefaultValue);
    let file = read_config_file(&config_path, explicit)?;

    let config_file = file.as_ref().map(|_| config_path.clone());
    if let Some(file) = file {
        let server_cmd =
            command.find_subcommand("server").ok_or_else(|| ConfigError::Invalid("no server subcommand".into()))?;
        argv.extend(file_overrides(server_cmd, server_matches, &config_path, file)?);
    }

    let matches = command.try_get_matches_from(&argv)?;
    match Cli::from_arg_matches(&matches)?.command {
        CliCommand::Server(args) => {
            Ok(Command::Server(Box::new(ServerConfig::from_args(*args, config_file, read_hostname)?)))
        }
        _ => Err(ConfigError::Invalid("unexpected subcommand".into())),
    }
}

/// One scalar from the config file, kept as the text the user wrote (so `0600` stays `0600`).
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        // Ask for a string: the YAML parser then hands plain scalars over as written.
        d.deserialize_str(V)
    }
}

/// Reads the config file into a key → text map. `None` when the default file does not exist.
fn read_config_file(path: &Path, explicit: bool) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(source) => {
            return Err(ConfigError::ReadFile { path: path.to_owned(), source });
        }
    };
    parse_config_text(path, &text).map(Some)
}

/// Parses config-file text (a YAML mapping of scalars; an empty file is an empty mapping).
fn parse_config_text(path: &Path, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(BTreeMap::new());
    }
    let map: BTreeMap<String, Scalar> = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::ParseFile { path: path.to_owned(), message: e.to_string() })?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Turns config-file entries into extra command-line arguments for flags still at their default.
fn file_overrides(
    server_cmd: &clap::Command,
    matches: &ArgMatches,
    path: &Path,
    file: BTreeMap<String, String>,
) -> Result<Vec<OsString>, ConfigError> {
    let mut extra = Vec::new();
    for (key, value) in file {
        let arg = server_cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config" && key != "help")
            .ok_or_else(|| ConfigError::UnknownKey { path: path.to_owned(), key: key.clone() })?;
        let invalid = |message: String| ConfigError::InvalidValue { path: path.to_owned(), key: key.clone(), message };
        let is_flag = matches!(arg.get_action(), ArgAction::SetTrue);
        if is_flag {
            value.parse::<bool>().map_err(|_| invalid(format!("{value:?} is not true or false")))?;
        } else {
            // Run the flag's own value parser on the value, in a command holding only that flag
            // (and no environment fallback, so only the file's value is judged).
            let probe = arg.clone().env(None::<&'static str>).required(false);
            clap::Command::new("config-file")
                .no_binary_name(true)
                .arg(probe)
                .try_get_matches_from([OsString::from(format!("--{key}={value}"))])
                .map_err(|e| invalid(clap_error_text(&e)))?;
        }
        let id = arg.get_id().as_str();
        let from_default = matches!(matches.value_source(id), None | Some(ValueSource::DefaultValue));
        if !from_default {
            continue;
        }
        if is_flag {
            if value == "true" {
                extra.push(OsString::from(format!("--{key}")));
            }
        } else {
            extra.push(OsString::from(format!("--{key}={value}")));
        }
    }
    Ok(extra)
}

/// The first line of a clap error without its `error: ` prefix.
fn clap_error_text(e: &clap::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// Reads this machine's host name, if it can.
pub fn read_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

impl ServerConfig {
    /// Builds the typed config from parsed flags. `hostname` supplies the default node name.
    pub fn from_args(
        args: ServerArgs,
        config_file: Option<PathBuf>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let node_name = match args.node_name {
            Some(n) => n,
            None => {
                let h = hostname()
                    .ok_or_else(|| ConfigError::Invalid("cannot read the host name; set --node-name".into()))?;
                parse_dns_subdomain(&h).map_err(|e| {
                    ConfigError::Invalid(format!("host name {h:?} is not a valid node name ({e}); set --node-name"))
                })?
            }
        };
        if args.service_cidr.prefix > 30 {
            return Err(ConfigError::Invalid(format!(
                "--service-cidr {} is too small (at most /30)",
                args.service_cidr
            )));
        }
        if args.cluster_cidr.prefix > 24 {
            return Err(ConfigError::Invalid(format!(
                "--cluster-cidr {} is too small (each node needs a /24)",
                args.cluster_cidr
            )));
        }
        if args.service_cidr.overlaps(&args.cluster_cidr) {
            return Err(ConfigError::Invalid(format!(
                "--service-cidr {} overlaps --cluster-cidr {}",
                args.service_cidr, args.cluster_cidr
            )));
        }
        if !args.service_cidr.contains(args.cluster_dns) {
            return Err(ConfigError::Invalid(format!(
                "--cluster-dns {} is not inside --service-cidr {}",
                args.cluster_dns, args.service_cidr
            )));
        }
        if args.image_gc_low_threshold > args.image_gc_high_threshold {
            return Err(ConfigError::Invalid(format!(
                "--image-gc-low-threshold {} must not be greater than --image-gc-high-threshold {}",
                args.image_gc_low_threshold, args.image_gc_high_threshold
            )));
        }
        let pod_manifest_path =
            args.pod_manifest_path.unwrap_or_else(|| args.data_dir.join("agent").join("pod-manifests"));
        let config = ServerConfig {
            config_file,
            pod_manifest_path,
            data_dir: args.data_dir,
            bind_address: args.bind_address,
            advertise_address: args.advertise_address,
            https_listen_port: args.https_listen_port,
            write_kubeconfig: args.write_kubeconfig,
            write_kubeconfig_mode: args.write_kubeconfig_mode,
            service_cidr: args.service_cidr,
            cluster_cidr: args.cluster_cidr,
            cluster_domain: args.cluster_domain,
            node_name,
            disable_agent: args.disable_agent,
            disable_proxy: args.disable_proxy,
            disable_dns: args.disable_dns,
            disable_network_policy: args.disable_network_policy,
            disable_ingress: args.disable_ingress,
            ingress_http_port: args.ingress_http_port,
            ingress_https_port: args.ingress_https_port,
            cluster_dns: args.cluster_dns,
            lb_pool: args.lb_pool,
            disable_scheduler: args.disable_scheduler,
            scheduler_config: args.scheduler_config,
            pod_security_admission_config_file: args.pod_security_admission_config_file,
            insecure_registries: args.insecure_registry,
            api_audiences: args.api_audiences,
            image_gc_high_threshold: args.image_gc_high_threshold,
            image_gc_low_threshold: args.image_gc_low_threshold,
            kubelet_port: args.kubelet_port,
            pod_max_pids: args.pod_max_pids,
            eviction_hard: args.eviction_hard,
            eviction_soft: args.eviction_soft,
            eviction_soft_grace_period: args.eviction_soft_grace_period,
            eviction_minimum_reclaim: args.eviction_minimum_reclaim,
            eviction_pressure_transition_period: args.eviction_pressure_transition_period,
            eviction_max_pod_grace_period: args.eviction_max_pod_grace_period,
            container_log_max_size: args.container_log_max_size,
            container_log_max_files: args.container_log_max_files,
            node_monitor_grace_period: args.node_monitor_grace_period,
            metric_resolution: args.metric_resolution,
            node_eviction_rate: args.node_eviction_rate,
            cluster_signing_duration: args.cluster_signing_duration,
            encryption_provider_config: args.encryption_provider_config,
            audit_policy_file: args.audit_policy_file,
            audit_log_path: args.audit_log_path,
            audit_log_maxage: args.audit_log_maxage,
            audit_log_maxbackup: args.audit_log_maxbackup,
            audit_log_maxsize: args.audit_log_maxsize,
            log_level: args.log_level,
        };
        // Soft thresholds need their grace periods: checked across the flags.
        config.eviction_config()?;
        Ok(config)
    }
}

/// Parses a file mode written in octal, with or without a leading `0` or `0o` (`0600`, `644`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 {
        return Err(format!("{s:?} is not an octal file mode like 0600"));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| format!("{s:?} is not an octal file mode like 0600"))?;
    if mode > 0o7777 {
        return Err(format!("{s:?} is not an octal file mode like 0600"));
    }
    Ok(mode)
}

/// Checks an eviction thresholds flag (`memory.available<100Mi,nodefs.available<10%`).
pub fn parse_eviction_thresholds(s: &str) -> Result<String, String> {
    skiff_agent::eviction::thresholds::parse_thresholds(s).map(|_| s.to_owned())
}

/// Checks `--eviction-soft-grace-period` (`memory.available=1m30s`).
pub fn parse_eviction_grace_periods(s: &str) -> Result<String, String> {
    skiff_agent::eviction::thresholds::parse_grace_periods(s).map(|_| s.to_owned())
}

/// Checks `--eviction-minimum-reclaim` (`memory.available=0Mi`).
pub fn parse_eviction_minimum_reclaims(s: &str) -> Result<String, String> {
    skiff_agent::eviction::thresholds::parse_minimum_reclaims(s).map(|_| s.to_owned())
}

/// Parses a Go duration (`5m`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    skiff_agent::eviction::thresholds::parse_go_duration(s)
}

/// Parses `--node-eviction-rate`: a finite, non-negative number.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r >= 0.0)
        .ok_or_else(|| format!("{s:?} is not a non-negative number"))
}

/// Parses `--container-log-max-size`: a positive quantity of bytes.
pub fn parse_log_max_size(s: &str) -> Result<u64, String> {
    let q = skiff_api::quantity::Quantity::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
    u64::try_from(q.value()).ok().filter(|v| *v > 0).ok_or_else(|| format!("{s:?} must be a positive size"))
}

/// Accepts a lowercase DNS-1123 subdomain (cluster domain, node name).
pub fn parse_dns_subdomain(s: &str) -> Result<String, String> {
    let errs = skiff_api::validation::names::is_dns1123_subdomain(s);
    if errs.is_empty() { Ok(s.to_owned()) } else { Err(errs.join("; ")) }
}

/// An IPv4 network in CIDR notation, e.g. `10.43.0.0/16`. The host bits of `addr` are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/`, a bad address or a bad prefix.
    #[error("{0:?} is not an IPv4 CIDR like 10.43.0.0/16")]
    Syntax(String),
    /// Bits are set after the prefix.
    #[error("{input:?} has host bits set; did you mean {network}?")]
    HostBits {
        /// What was given.
        input: String,
        /// The network it is in.
        network: Cidr,
    },
}

impl Cidr {
    /// Builds a CIDR, checking the prefix and that no host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        if prefix > 32 {
            return Err(CidrError::Syntax(format!("{addr}/{prefix}")));
        }
        let network = Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)), prefix };
        if network.addr != addr {
            return Err(CidrError::HostBits { input: format!("{addr}/{prefix}"), network });
        }
        Ok(network)
    }

    /// How many addresses the range holds (including network and broadcast).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`th address of the range (0 is the network address), if the range has one.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        let n = u32::try_from(n).ok()?;
        Some(Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

/// The netmask of a prefix length (`prefix` ≤ 32).
fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        if prefix > 32 {
            return Err(syntax());
        }
        Cidr::new(addr, prefix).map_err(|e| match e {
            CidrError::HostBits { network, .. } => CidrError::HostBits { input: s.to_owned(), network },
            other => other,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Parses `skiff server <args>` with the given config file text (written to a temp file;
    /// `None` means an empty file).
    fn server(args: &[&str], file: Option<&str>) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, file.unwrap_or("")).unwrap();
        let mut argv = vec!["skiff".to_owned(), "server".to_owned(), format!("--config={}", path.display())];
        argv.push("--node-name=test".to_owned());
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        match parse_args(argv)? {
            Command::Server(c) => Ok(*c),
            other => panic!("not a server command: {other:?}"),
        }
    }

    #[test]
    fn pause_takes_a_directory_unless_it_is_the_pid_namespace_init() {
        let pause = |args: &[&str]| match parse_args(["skiff", "pause"].iter().chain(args).copied()) {
            Ok(Command::Pause(p)) => Ok((p.dir, p.foreground, p.init)),
            Ok(other) => panic!("not pause: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(pause(&["/d"]).unwrap(), (Some(PathBuf::from("/d")), false, false));
        assert_eq!(pause(&["--foreground", "/d"]).unwrap(), (Some(PathBuf::from("/d")), true, false));
        assert_eq!(pause(&["--init"]).unwrap(), (None, false, true));
        assert!(pause(&[]).is_err(), "a holder needs its directory");
        assert!(pause(&["--init", "/d"]).is_err());
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = server(&[], Some("")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/skiff"));
        assert_eq!(c.bind_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.advertise_address, None);
        assert_eq!(c.https_listen_port, 6443);
        assert_eq!(c.write_kubeconfig, PathBuf::from("/etc/skiff/skiff.yaml"));
        assert_eq!(c.write_kubeconfig_mode, 0o600);
        assert_eq!(c.service_cidr.to_string(), "10.43.0.0/16");
        assert_eq!(c.cluster_cidr.to_string(), "10.42.0.0/16");
        assert_eq!(c.cluster_domain, "cluster.local");
        assert!(!c.disable_agent);
        assert_eq!(c.pod_max_pids, -1);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.service_ip(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(c.server_url(), "https://127.0.0.1:6443");
    }

    #[test]
    fn registry_and_image_gc_flags() {
        let c = server(&[], Some("")).unwrap();
        assert!(c.insecure_registries.is_empty());
        assert_eq!((c.image_gc_high_threshold, c.image_gc_low_threshold), (85, 80));
        let c = server(
            &["--insecure-registry", "a:5000", "--insecure-registry=b:80", "--image-gc-high-threshold=90"],
            Some("image-gc-low-threshold: 70\n"),
        )
        .unwrap();
        assert_eq!(c.insecure_registries, ["a:5000", "b:80"]);
        assert_eq!((c.image_gc_high_threshold, c.image_gc_low_threshold), (90, 70));
        let c = server(&[], Some("insecure-registry: r1:5000,r2:5000\n")).unwrap();
        assert_eq!(c.insecure_registries, ["r1:5000", "r2:5000"]);
        assert!(c.api_audiences.is_empty());
        let c = server(&["--api-audiences=https://a.example,api"], None).unwrap();
        assert_eq!(c.api_audiences, ["https://a.example", "api"]);
        assert!(server(&["--image-gc-high-threshold=101"], None).is_err());
        let err = server(&["--image-gc-high-threshold=50"], None).unwrap_err().to_string();
        assert!(err.contains("--image-gc-low-threshold 80 must not be greater"), "{err}");
    }

    #[test]
    fn config_file_overrides_defaults() {
        let file = "data-dir: /srv/skiff\nhttps-listen-port: 7443\nwrite-kubeconfig-mode: 0644\n\
                    disable-agent: true\ncluster-domain: example.test\nadvertise-address: 10.1.2.3\n";
        let c = server(&[], Some(file)).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/skiff"));
        assert_eq!(c.https_listen_port, 7443);
        assert_eq!(c.write_kubeconfig_mode, 0o644);
        assert!(c.disable_agent);
        assert_eq!(c.cluster_domain, "example.test");
        assert_eq!(c.server_url(), "https://10.1.2.3:7443");
    }

    #[test]
    fn pod_manifest_path_defaults_under_the_data_dir() {
        let c = server(&["--data-dir", "/d"], None).unwrap();
        assert_eq!(c.pod_manifest_path, PathBuf::from("/d/agent/pod-manifests"));
        let c = server(&["--pod-manifest-path", "/etc/m"], None).unwrap();
        assert_eq!(c.pod_manifest_path, PathBuf::from("/etc/m"));
        let c = server(&[], Some("pod-manifest-path: /srv/m\n")).unwrap();
        assert_eq!(c.pod_manifest_path, PathBuf::from("/srv/m"));
    }

    #[test]
    fn pod_max_pids_from_flag_or_file() {
        assert_eq!(server(&["--pod-max-pids", "1024"], None).unwrap().pod_max_pids, 1024);
        assert_eq!(server(&["--pod-max-pids=-1"], None).unwrap().pod_max_pids, -1);
        assert_eq!(server(&[], Some("pod-max-pids: 4096\n")).unwrap().pod_max_pids, 4096);
        assert!(server(&[], Some("pod-max-pids: many\n")).is_err());
    }

    #[test]
    fn eviction_and_log_flags() {
        let c = server(&[], None).unwrap();
        let e = c.eviction_config().unwrap();
        assert_eq!(e.thresholds.len(), 4);
        assert_eq!(e.pressure_transition_period, std::time::Duration::from_secs(300));
        assert_eq!(e.max_pod_grace_period_seconds, 0);
        assert_eq!(c.log_rotate_policy(), skiff_agent::logrotate::LogRotatePolicy { max_size: 10 << 20, max_files: 5 });

        let c = server(
            &[
                "--eviction-hard",
                "memory.available<200Gi",
                "--eviction-soft=nodefs.available<20%",
                "--eviction-soft-grace-period=nodefs.available=1m30s",
                "--eviction-pressure-transition-period=30s",
                "--eviction-max-pod-grace-period=-1",
                "--container-log-max-size=2Ki",
                "--container-log-max-files=3",
            ],
            Some("eviction-minimum-reclaim: memory.available=1Gi\n"),
        )
        .unwrap();
        let e = c.eviction_config().unwrap();
        assert_eq!(e.thresholds.len(), 2);
        assert!(e.thresholds[0].is_hard() && e.thresholds[0].min_reclaim.is_some());
        assert_eq!(e.thresholds[1].grace_period, std::time::Duration::from_secs(90));
        assert_eq!(e.pressure_transition_period, std::time::Duration::from_secs(30));
        assert_eq!(e.max_pod_grace_period_seconds, -1);
        assert_eq!(c.log_rotate_policy(), skiff_agent::logrotate::LogRotatePolicy { max_size: 2048, max_files: 3 });
        // An empty --eviction-hard turns hard eviction off.
        assert!(server(&["--eviction-hard="], None).unwrap().eviction_config().unwrap().thresholds.is_empty());

        for bad in [
            &["--eviction-hard", "memory.free<1Gi"][..],
            &["--eviction-hard", "nodefs.available<200%"],
            &["--eviction-soft-grace-period", "memory.available=soon"],
            &["--eviction-pressure-transition-period", "5"],
            &["--container-log-max-size", "0"],
            &["--container-log-max-size", "big"],
            &["--container-log-max-files", "1"],
        ] {
            let err = server(bad, None).unwrap_err();
            assert!(matches!(err, ConfigError::Cli(_)), "{bad:?}: {err}");
        }
        let err = server(&["--eviction-hard", "memory.free<1Gi"], None).unwrap_err().to_string();
        assert!(err.contains("unsupported eviction signal memory.free"), "{err}");
        let err = server(&["--eviction-soft", "memory.available<1Gi"], None).unwrap_err().to_string();
        assert!(
            err.contains("grace period must be specified for the soft eviction threshold memory.available"),
            "{err}"
        );
        let err = server(&[], Some("eviction-hard: pid.available<x\n")).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err}");
    }

    #[test]
    fn command_line_beats_config_file() {
        let file = "https-listen-port: 7443\nlog-level: debug\n";
        let c = server(&["--https-listen-port", "8443"], Some(file)).unwrap();
        assert_eq!(c.https_listen_port, 8443);
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn config_file_false_flag_keeps_default_and_command_line_true_wins() {
        let c = server(&["--disable-agent"], Some("disable-agent: false\n")).unwrap();
        assert!(c.disable_agent);
        let c = server(&[], Some("disable-agent: false\n")).unwrap();
        assert!(!c.disable_agent);
    }

    #[test]
    fn quoted_and_plain_modes_parse_as_octal() {
        assert_eq!(server(&[], Some("write-kubeconfig-mode: \"0640\"\n")).unwrap().write_kubeconfig_mode, 0o640);
        assert_eq!(server(&[], Some("write-kubeconfig-mode: 600\n")).unwrap().write_kubeconfig_mode, 0o600);
        assert_eq!(server(&["--write-kubeconfig-mode", "644"], None).unwrap().write_kubeconfig_mode, 0o644);
    }

    #[test]
    fn unknown_config_key_names_key_and_file() {
        let err = server(&[], Some("data-dir: /x\nhttps-port: 1\n")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{msg}");
        assert!(msg.contains("https-port") && msg.contains("config.yaml"), "{msg}");
    }

    #[test]
    fn config_key_config_is_unknown() {
        let err = server(&[], Some("config: /etc/other.yaml\n")).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn bad_config_value_names_key_and_file() {
        let err = server(&[], Some("https-listen-port: 99999\n")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{msg}");
        assert!(msg.contains("https-listen-port") && msg.contains("config.yaml"), "{msg}");

        let err = server(&[], Some("disable-agent: maybe\n")).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err}");
        let err = server(&[], Some("service-cidr: 10.43.0.1/16\n")).unwrap_err();
        assert!(err.to_string().contains("10.43.0.0/16"), "{err}");
    }

    #[test]
    fn config_file_that_is_not_a_mapping_is_rejected() {
        let err = server(&[], Some("- a\n- b\n")).unwrap_err();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");
        let err = server(&[], Some("data-dir: [a, b]\n")).unwrap_err();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");
    }

    #[test]
    fn explicit_missing_config_file_is_an_error() {
        let argv = ["skiff", "server", "--config", "/nonexistent/skiff.yaml", "--node-name", "n"];
        let err = parse_args(argv).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/skiff.yaml"));
    }

    #[test]
    fn bad_flags_are_cli_errors() {
        for bad in [
            &["--bind-address", "not-an-ip"][..],
            &["--https-listen-port", "70000"],
            &["--write-kubeconfig-mode", "0900"],
            &["--cluster-domain", "Cluster.Local"],
            &["--service-cidr", "10.43.0.0"],
            &["--node-name", "UPPER"],
        ] {
            let err = server(bad, Some("")).unwrap_err();
            assert!(matches!(err, ConfigError::Cli(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn overlapping_cidrs_are_rejected() {
        let err = server(&["--service-cidr", "10.42.128.0/20"], Some("")).unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
    }

    #[test]
    fn node_name_defaults_to_lowercased_hostname() {
        let args = match Cli::try_parse_from(["skiff", "server"]).unwrap().command {
            CliCommand::Server(a) => *a,
            _ => unreachable!(),
        };
        let c = ServerConfig::from_args(args.clone(), None, || Some("myhost".into())).unwrap();
        assert_eq!(c.node_name, "myhost");
        let err = ServerConfig::from_args(args, None, || Some("bad_host".into())).unwrap_err();
        assert!(err.to_string().contains("--node-name"), "{err}");
    }

    #[test]
    fn other_subcommands_parse() {
        assert!(matches!(parse_args(["skiff", "version"]).unwrap(), Command::Version));
        match parse_args(["skiff", "kubeconfig", "--data-dir", "/d"]).unwrap() {
            Command::Kubeconfig(k) => assert_eq!(k.data_dir, PathBuf::from("/d")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bind_address_and_advertise_choose_client_host() {
        let c = server(&["--bind-address", "10.0.0.5", "--advertise-address", "10.9.9.9"], Some("")).unwrap();
        assert_eq!(c.server_url(), "https://10.0.0.5:6443");
        let c = server(&["--bind-address", "::1"], Some("")).unwrap();
        assert_eq!(c.server_url(), "https://[::1]:6443");
        let req = server(&["--advertise-address", "10.9.9.9"], Some("")).unwrap().pki_request(Some("Host1"));
        assert_eq!(req.ips, vec!["10.9.9.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(req.hostnames, vec!["host1".to_owned(), "test".to_owned()]);
    }

    #[test]
    fn cidr_parse_and_arithmetic() {
        let c: Cidr = "10.43.0.0/16".parse().unwrap();
        assert_eq!(c.size(), 65536);
        assert_eq!(c.nth(0), Some(Ipv4Addr::new(10, 43, 0, 0)));
        assert_eq!(c.nth(10), Some(Ipv4Addr::new(10, 43, 0, 10)));
        assert_eq!(c.nth(65535), Some(Ipv4Addr::new(10, 43, 255, 255)));
        assert_eq!(c.nth(65536), None);
        assert!(c.contains(Ipv4Addr::new(10, 43, 200, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 0)));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.size(), 1 << 32);
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(all.nth((1 << 32) - 1), Some(Ipv4Addr::BROADCAST));
        let one: Cidr = "192.168.1.7/32".parse().unwrap();
        assert_eq!((one.size(), one.nth(0), one.nth(1)), (1, Some(Ipv4Addr::new(192, 168, 1, 7)), None));
        for bad in ["10.43.0.0", "10.43.0.0/33", "10.43.0.0/", "10.43.0/16", "10.43.0.0/+8", "x/8", "::/0"] {
            assert!(matches!(bad.parse::<Cidr>(), Err(CidrError::Syntax(_))), "{bad}");
        }
        assert!(matches!("10.43.0.1/16".parse::<Cidr>(), Err(CidrError::HostBits { .. })));
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        for bad in ["", "9", "0x600", "-600", "77777", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
