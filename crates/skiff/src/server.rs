//! `skiff server`: start the components and run until SIGTERM or SIGINT.

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use skiff_apiserver::alloc::Ipv4Cidr;
use skiff_apiserver::{ApiConfig, ServerOptions, StaticToken, TlsMaterial};
use skiff_store::{RedbConfig, RedbStore, Store};

use crate::config::ServerConfig;
use crate::pki::Pki;

/// The audit settings of `cfg`: none without `--audit-log-path`; the documented default policy
/// without `--audit-policy-file`.
fn audit_options(cfg: &ServerConfig) -> anyhow::Result<Option<skiff_apiserver::audit::AuditOptions>> {
    let Some(log_path) = cfg.audit_log_path.clone() else { return Ok(None) };
    let policy = match &cfg.audit_policy_file {
        Some(path) => skiff_apiserver::audit::Policy::read(path)?,
        None => skiff_apiserver::audit::Policy::default_policy(),
    };
    let rotation = skiff_apiserver::audit::Rotation {
        max_size_mb: cfg.audit_log_maxsize,
        max_backups: cfg.audit_log_maxbackup,
        max_age_days: cfg.audit_log_maxage,
    };
    Ok(Some(skiff_apiserver::audit::AuditOptions { policy, log_path, rotation }))
}

/// Runs the server until a termination signal, then shuts down and returns.
///
/// The caller has already created the data dir, the PKI and the kubeconfig.
pub async fn run_server(cfg: ServerConfig, pki: Pki) -> anyhow::Result<()> {
    // Install the handlers first so a signal during startup still shuts down cleanly.
    let mut term = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    if !cfg.disable_agent {
        crate::cgroupfs::ensure_mounted();
    }

    let db_dir = cfg.data_dir.join("server").join("db");
    crate::fsutil::ensure_dir(&db_dir, 0o700).with_context(|| format!("failed to create {}", db_dir.display()))?;
    let db_path = db_dir.join("state.redb");
    let store = RedbStore::open(RedbConfig::new(&db_path))
        .with_context(|| format!("failed to open the store at {}", db_path.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    let encryption = skiff_apiserver::encryption::EncryptionSettings {
        config_path: cfg
            .encryption_provider_config
            .clone()
            .unwrap_or_else(|| skiff_apiserver::encryption::default_config_path(&cfg.data_dir)),
        generate: cfg.encryption_provider_config.is_none(),
    };
    let (store, rotator) =
        skiff_apiserver::encryption::open(store, &encryption).context("failed to set up encryption at rest")?;
    let encryption_rotation = rotator.spawn();

    let service_cidr = Ipv4Cidr { addr: cfg.service_cidr.addr, prefix: cfg.service_cidr.prefix };
    let advertise = cfg.advertise_address.unwrap_or_else(|| cfg.client_host());
    let opts = ServerOptions {
        bind: SocketAddr::new(cfg.bind_address, cfg.https_listen_port),
        tls: TlsMaterial {
            cert_pem: pki.serving().cert_pem.clone(),
            key_pem: pki.serving().key_pem.clone(),
            client_ca_pem: pki.ca_cert_pem().to_string(),
        },
        api: ApiConfig {
            service_cidr,
            node_port_range: (30000, 32767),
            cluster_domain: cfg.cluster_domain.clone(),
            advertise_address: advertise,
            port: cfg.https_listen_port,
            pod_security: pod_security_config(cfg.pod_security_admission_config_file.as_deref())?,
        },
        kubelet_client: {
            let pair = pki
                .issue_client_cert(skiff_agent::streaming::KUBELET_CLIENT_CN, &["system:masters"])
                .context("cannot issue the API server's kubelet client certificate")?;
            Some(skiff_apiserver::nodeproxy::KubeletClientTls {
                cert_pem: pair.cert_pem,
                key_pem: pair.key_pem,
                ca_pem: pki.ca_cert_pem().to_string(),
            })
        },
        audit: audit_options(&cfg)?,
        tokens: vec![StaticToken {
            token: pki.admin_token().to_string(),
            user: "system:admin".into(),
            groups: vec!["system:masters".into()],
        }],
        service_account_key_pem: Some(pki.service_account_key_pem().to_string()),
        service_account_admission: true,
        api_audiences: cfg.api_audiences.clone(),
        metric_resolution: cfg.metric_resolution,
    };
    let server = skiff_apiserver::start(store, opts).await.context("failed to start the API server")?;
    tracing::info!(address = %server.local_addr, node = %cfg.node_name, agent = !cfg.disable_agent, "API server ready");

    let server_url = format!("https://{}", loopback_addr(server.local_addr));
    let identity_cfg = |user: &str, groups: &[&str]| crate::identities::client_config(&pki, &server_url, user, groups);
    let client_cfg = identity_cfg(crate::identities::CONTROLLER_MANAGER, &[])?;
    let ipam = skiff_controllers::nodeipam::NodeIpamConfig {
        cluster_network: cfg.cluster_cidr.addr,
        cluster_prefix: cfg.cluster_cidr.prefix,
        node_prefix: 24,
    };
    let identity = leader_identity(&cfg.node_name, &cfg.data_dir);
    let local_path = skiff_controllers::volume::localpath::LocalPathConfig { dir: cfg.data_dir.join("storage") };
    let health = skiff_controllers::nodehealth::NodeHealthConfig {
        grace_period: cfg.node_monitor_grace_period,
        eviction_rate: cfg.node_eviction_rate,
    };
    // The CA key stays in this process: the CSR signers run under the controller manager's
    // Lease, and the agent's first certificate is signed with the same authority.
    let signing = skiff_controllers::certificates::CertificatesConfig {
        ca_cert_pem: pki.ca().cert_pem.clone(),
        ca_key_pem: pki.ca().key_pem.clone(),
        signing_duration: cfg.cluster_signing_duration,
    };
    let controllers =
        skiff_controllers::start(client_cfg.clone(), ipam, identity.clone(), local_path, health, signing.clone());
    let scheduler = if cfg.disable_scheduler {
        None
    } else {
        let sched_cfg = identity_cfg(crate::identities::SCHEDULER, &[])?;
        let client = skiff_controllers::client(&sched_cfg).await.context("cannot build the scheduler's API client")?;
        let mut opts = crate::scheduler::options(cfg.scheduler_config.as_deref())?;
        opts.identity = identity;
        Some(skiff_scheduler::start(client, opts))
    };
    let mut node_tasks = Vec::new();
    let agent = if cfg.disable_agent {
        None
    } else {
        let (client, rotation) =
            crate::identities::agent_client(&pki, &signing, &server_url, &cfg.data_dir, &cfg.node_name)?;
        node_tasks.push(tokio::spawn(skiff_agent::certificate::manager::run(rotation)));
        let agent_cfg = skiff_agent::AgentConfig {
            node_name: cfg.node_name.clone(),
            node_ip: advertise,
            agent_dir: cfg.data_dir.join("agent"),
            log_dir: "/var/log/pods".into(),
            labels: Default::default(),
            // Set by the server (crate::noderole): NodeRestriction forbids the node itself.
            control_plane: false,
            max_pods: 110,
            reserved_milli_cpu: 0,
            reserved_memory: 0,
            cluster_dns: (!cfg.disable_dns).then_some(IpAddr::V4(cfg.cluster_dns)),
            cluster_domain: cfg.cluster_domain.clone(),
            insecure_registries: cfg.insecure_registries.clone(),
            image_gc: skiff_runtime::images::gc::GcPolicy {
                high_threshold_percent: cfg.image_gc_high_threshold,
                low_threshold_percent: cfg.image_gc_low_threshold,
                min_age: std::time::Duration::ZERO,
            },
            kubelet_port: cfg.kubelet_port,
            streaming_tls: Some(streaming_tls(&pki, &cfg, advertise)?),
            pod_pids_limit: cfg.pod_max_pids,
            eviction: cfg.eviction_config()?,
            container_logs: cfg.log_rotate_policy(),
            pod_manifest_path: cfg.pod_manifest_path.clone(),
        };
        let exe = std::env::current_exe().context("cannot find the skiff binary for the container shims")?;
        Some(skiff_agent::start(client, agent_cfg, exe).context("cannot start the node agent")?)
    };
    if !cfg.disable_agent {
        let client =
            skiff_controllers::client(&client_cfg).await.context("cannot build the node labeler's API client")?;
        node_tasks.push(tokio::spawn(crate::noderole::run(client, cfg.node_name.clone())));
    }
    {
        let lb_client_cfg = identity_cfg(crate::identities::SERVICELB, &[])?;
        let client =
            skiff_controllers::client(&lb_client_cfg).await.context("cannot build the servicelb API client")?;
        let lb_cfg = skiff_controllers::servicelb::ServiceLbConfig { pool: cfg.lb_pool.map(|p| (p.addr, p.prefix)) };
        node_tasks.push(tokio::spawn(skiff_controllers::servicelb::run(client, lb_cfg)));
    }
    if !cfg.disable_agent && !cfg.disable_proxy {
        let proxy_client_cfg = identity_cfg(crate::identities::PROXY, &[])?;
        let client =
            skiff_controllers::client(&proxy_client_cfg).await.context("cannot build the proxy's API client")?;
        let cidr = skiff_net::Ipv4Net::new(cfg.cluster_cidr.addr, cfg.cluster_cidr.prefix).ok();
        let proxy_cfg = skiff_net::proxy::ProxyConfig::new(cfg.node_name.clone(), cidr);
        node_tasks.push(tokio::spawn(skiff_net::proxy::run(client, proxy_cfg)));
    }
    if !cfg.disable_agent && !cfg.disable_network_policy {
        let netpol_client_cfg = identity_cfg(crate::identities::NETPOL, &[])?;
        let client = skiff_controllers::client(&netpol_client_cfg)
            .await
            .context("cannot build the network policy controller's API client")?;
        let netpol_cfg = skiff_net::netpol::NetpolConfig::new(cfg.node_name.clone());
        node_tasks.push(tokio::spawn(skiff_net::netpol::run(client, netpol_cfg)));
    }
    if !cfg.disable_agent && !cfg.disable_dns {
        let dns_client_cfg = identity_cfg(crate::identities::DNS, &[])?;
        let client =
            skiff_controllers::client(&dns_client_cfg).await.context("cannot build the DNS server's API client")?;
        let ranges = [cfg.service_cidr, cfg.cluster_cidr]
            .iter()
            .filter_map(|c| skiff_net::Ipv4Net::new(c.addr, c.prefix).ok())
            .collect();
        let dns_cfg = skiff_dns::DnsConfig {
            domain: cfg.cluster_domain.clone(),
            listen: SocketAddr::new(advertise, 53),
            service_ip: cfg.cluster_dns,
            node_name: cfg.node_name.clone(),
            reverse_ranges: ranges,
            resolv_conf: "/etc/resolv.conf".into(),
            workers: 2,
        };
        node_tasks.push(tokio::spawn(async move {
            if let Err(e) = skiff_dns::run(client, dns_cfg).await {
                tracing::error!(error = %e, "the cluster DNS server is not running");
            }
        }));
    }
    if !cfg.disable_agent && !cfg.disable_ingress {
        let ingress_client_cfg = identity_cfg(crate::identities::INGRESS, &[])?;
        let client = skiff_controllers::client(&ingress_client_cfg)
            .await
            .context("cannot build the Ingress controller's API client")?;
        let ingress_cfg = skiff_ingress::IngressConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: cfg.ingress_http_port,
            https_port: cfg.ingress_https_port,
        };
        node_tasks.push(tokio::spawn(async move {
            if let Err(e) = skiff_ingress::run(client, ingress_cfg).await {
                tracing::error!(error = %e, "the Ingress controller is not running");
            }
        }));
    }
    eprintln!("{}", startup_message(&cfg));

    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    controllers.abort();
    node_tasks.iter().for_each(|t| t.abort());
    encryption_rotation.abort();
    if let Some(s) = scheduler {
        s.shutdown().await;
    }
    if let Some(agent) = &agent {
        agent.abort();
    }
    server.shutdown().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The agent's streaming server certificate: the node's names and addresses, signed by the
/// cluster CA (the API server verifies it when it proxies logs, exec and port-forward).
fn streaming_tls(
    pki: &Pki,
    cfg: &ServerConfig,
    advertise: IpAddr,
) -> anyhow::Result<skiff_agent::streaming::StreamingTls> {
    let mut dns = vec![cfg.node_name.clone(), "localhost".to_string()];
    if let Some(host) = crate::config::read_hostname() {
        dns.push(host.to_ascii_lowercase());
    }
    dns.dedup();
    let ips = [advertise, IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let pair = pki
        .issue_serving_cert(&cfg.node_name, &dns, &ips)
        .context("cannot issue the node agent's serving certificate")?;
    Ok(skiff_agent::streaming::StreamingTls {
        cert_pem: pair.cert_pem,
        key_pem: pair.key_pem,
        client_ca_pem: pki.ca_cert_pem().to_string(),
    })
}

/// The PodSecurity admission configuration: the file's, else upstream's defaults.
fn pod_security_config(
    file: Option<&std::path::Path>,
) -> anyhow::Result<skiff_apiserver::admission::podsecurity::Config> {
    let Some(file) = file else { return Ok(Default::default()) };
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    skiff_apiserver::admission::podsecurity::Config::parse(&text).with_context(|| format!("in {}", file.display()))
}

/// The address in-process clients use: loopback when the server listens on every interface.
fn loopback_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// The plain-words banner printed once the server is up.
pub fn startup_message(cfg: &ServerConfig) -> String {
    let kubeconfig = cfg.write_kubeconfig.display();
    format!(
        "skiff is running. API server: {}  Kubeconfig: {kubeconfig}  Try: kubectl --kubeconfig {kubeconfig} get nodes",
        cfg.server_url()
    )
}

/// This server's identity in leader election: `<node>_<hash of the data dir>`, stable across
/// restarts of the same server (so a restart takes its own lease back at once) and distinct for
/// servers sharing a node name.
fn leader_identity(node: &str, data_dir: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    format!("{node}_{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{Command, parse_args};

    #[test]
    fn startup_message_names_url_and_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_file = dir.path().join("c.yaml");
        std::fs::write(&cfg_file, "").unwrap();
        let argv = [
            "skiff",
            "server",
            "--config",
            cfg_file.to_str().unwrap(),
            "--node-name",
            "n1",
            "--advertise-address",
            "10.1.1.1",
            "--write-kubeconfig",
            "/tmp/k.yaml",
        ];
        let Command::Server(cfg) = parse_args(argv).unwrap() else { panic!("not server") };
        assert_eq!(
            startup_message(&cfg),
            "skiff is running. API server: https://10.1.1.1:6443  Kubeconfig: /tmp/k.yaml  \
             Try: kubectl --kubeconfig /tmp/k.yaml get nodes"
        );
    }
}
