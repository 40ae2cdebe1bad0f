//! `skiff scheduler`: the scheduler on its own, against the API server a kubeconfig names (as
//! kube-scheduler runs next to kube-apiserver). Several can run at once; the Lease elects the
//! one that schedules. Also where `skiff server` reads `--scheduler-config`.

use std::path::Path;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::SchedulerArgs;

/// Scheduler options from an optional `KubeSchedulerConfiguration` file.
pub fn options(config: Option<&Path>) -> anyhow::Result<skiff_scheduler::SchedulerOptions> {
    let Some(path) = config else { return Ok(skiff_scheduler::SchedulerOptions::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut opts, election) = skiff_scheduler::config::parse(&text)
        .with_context(|| format!("invalid scheduler configuration {}", path.display()))?;
    opts.leader_election = election;
    Ok(opts)
}

/// Runs the scheduler until SIGTERM or SIGINT, then releases its lease.
pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("cannot read the kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("invalid kubeconfig")?;
    let client = skiff_controllers::http2::client(config).context("cannot build an API client")?;
    let mut opts = options(args.scheduler_config.as_deref())?;
    opts.identity = crate::config::read_hostname().unwrap_or_else(|| "skiff".to_string());
    let scheduler = skiff_scheduler::start(client, opts);
    tracing::info!("scheduler started");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    scheduler.shutdown().await;
    Ok(())
}
