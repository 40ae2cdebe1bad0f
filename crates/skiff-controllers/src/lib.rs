//! skiff's controllers. Each runs as a kube-rs reconcile loop against the API server over HTTPS,
//! exactly like a third-party controller: none of them touches the store.
//!
//! Present: the namespace controller ([`namespace`]), the node IPAM controller ([`nodeipam`]),
//! the condition taints of the node lifecycle controller ([`nodelifecycle`]), and the controller
//! manager's controllers ([`manager`]: ReplicaSet and ReplicationController
//! ([`replicaset`]), Deployment ([`deployment`]), DaemonSet ([`daemonset`]), the garbage collector ([`gc`]), Endpoints
//! ([`endpoints`]) and EndpointSlices ([`endpointslice`]), Job ([`job`]) with TTL-after-finished
//! ([`ttlafterfinished`]), CronJob ([`cronjob`], schedules in [`cron`]), HorizontalPodAutoscaler ([`hpa`]), the PodDisruptionBudget status ([`disruption`]), node health and `NoExecute` taints ([`nodehealth`]) with taint-based eviction ([`tainteviction`]), ServiceAccounts ([`serviceaccount`]), StatefulSet ([`statefulset`])
//! and the root CA publisher ([`rootca`]), and storage ([`volume`]: the PersistentVolume binder,
//! the protection finalizers and the local-path provisioner), and the CSR controllers
//! ([`certificates`])), which share informers
//! ([`informer`]), work queues ([`queue`]) and expectations ([`expectations`]) and run only
//! while this process holds the `kube-system/kube-controller-manager` Lease ([`leader`]). The
//! built-in LoadBalancer ([`servicelb`]) is started on its own by the server.

pub mod apierr;
pub mod certificates;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod http2;
pub mod informer;
pub mod intstr;
pub mod job;
pub mod leader;
pub mod manager;
pub mod namespace;
pub mod nodehealth;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod resourcequota;
pub mod rootca;
pub mod selector;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod volume;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How the controllers reach the API server.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://host:port`.
    pub server_url: String,
    /// Cluster CA (PEM).
    pub ca_pem: String,
    /// How the client proves who it is.
    pub credentials: Credentials,
}

/// A client's credentials towards the API server.
#[derive(Clone)]
pub enum Credentials {
    /// A bearer token (the admin token; tests).
    Token(String),
    /// A client certificate signed by the cluster CA (CN = user, O = groups): each in-process
    /// component has its own.
    Certificate {
        /// Certificate, PEM.
        cert_pem: String,
        /// Private key, PEM.
        key_pem: String,
    },
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientConfig {{ server_url: {:?} }}", self.server_url)
    }
}

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The generated kubeconfig was rejected.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The client could not be built.
    #[error("cannot build an API client: {0}")]
    Client(#[from] kube::Error),
}

/// Builds a kube client from `cfg`.
pub async fn client(cfg: &ClientConfig) -> Result<kube::Client, ClientError> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let ca = b64(&cfg.ca_pem);
    let user = match &cfg.credentials {
        Credentials::Token(token) => format!("token: {token}"),
        Credentials::Certificate { cert_pem, key_pem } => {
            format!("client-certificate-data: {}\n    client-key-data: {}", b64(cert_pem), b64(key_pem))
        }
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: controllers\n  user:\n    {user}\ncontexts:\n- name: default\n  context:\n    cluster: skiff\n    user: controllers\ncurrent-context: default\n",
        cfg.server_url
    );
    let kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(|e| ClientError::Config(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| ClientError::Config(e.to_string()))?;
    Ok(http2::client(config)?)
}

/// Handles of the running controllers.
pub struct Controllers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Controllers {
    /// Stops every controller.
    pub fn abort(&self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Starts every controller in the background; they retry until the API server answers.
/// `identity` names this process in leader election (stable across its restarts).
/// `local_path` configures the built-in local-path provisioner.
/// `health` sets node health monitoring (grace period, eviction rate). `signing` is what the CSR
/// signers sign with: they run under the controller manager's Lease like the other controllers
/// (the CA key is in every process that can lead: only `skiff server` runs the manager).
pub fn start(
    cfg: ClientConfig,
    ipam: nodeipam::NodeIpamConfig,
    identity: String,
    local_path: volume::localpath::LocalPathConfig,
    health: nodehealth::NodeHealthConfig,
    signing: certificates::CertificatesConfig,
) -> Controllers {
    let task = tokio::spawn(async move {
        loop {
            match client(&cfg).await {
                Ok(c) => {
                    let manager = manager::run(
                        c.clone(),
                        cfg.clone(),
                        identity.clone(),
                        local_path.clone(),
                        health,
                        signing.clone(),
                    );
                    futures::join!(
                        namespace::run(c.clone()),
                        nodeipam::run(c.clone(), ipam),
                        nodelifecycle::run(c),
                        manager
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controllers cannot reach the API server yet");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    Controllers { tasks: vec![task] }
}
