//! The `skiff` command: parses arguments and dispatches to the library.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use skiff::config::{Command, ConfigError, ServerConfig, parse_args, read_hostname};
use skiff::kubeconfig::{self, Kubeconfig};
use skiff::pki::Pki;
use tracing_subscriber::EnvFilter;

/// mimalloc for the control plane, the C library's malloc for the per-pod helpers.
#[global_allocator]
static ALLOCATOR: skiff::allocator::RoleAllocator = skiff::allocator::RoleAllocator::new();

fn main() -> std::process::ExitCode {
    let command = match parse_args(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Version => {
            print!("{}", skiff::version_text());
            Ok(())
        }
        Command::Kubeconfig(args) => {
            kubeconfig::read_from_data_dir(&args.data_dir).map(|yaml| print!("{yaml}")).map_err(anyhow::Error::from)
        }
        Command::Server(cfg) => server(*cfg),
        Command::SecretsEncrypt(args) => skiff::secrets_encrypt::run(args, &mut std::io::stdout().lock()),
        Command::Images(args) => skiff::images::run(args, &mut std::io::stdout().lock()),
        Command::Scheduler(args) => init_tracing(&args.log_level).and_then(|()| {
            tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(skiff::scheduler::run(args)))
        }),
        Command::Shim(args) => shim(args),
        Command::Pause(args) => pause(args),
        Command::Exec(args) => exec(args),
        Command::Bench(skiff::config::BenchCommand::Api(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench::run_api(args))),
        Command::Bench(skiff::config::BenchCommand::Apply(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench::run_apply(args))),
        Command::Bench(skiff::config::BenchCommand::Scheduler(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench_scheduler::run(args))),
        Command::Bench(skiff::config::BenchCommand::Dns(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench_net::run_dns(args))),
        Command::Bench(skiff::config::BenchCommand::Deployment(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench_workloads::run(args))),
        Command::Bench(skiff::config::BenchCommand::Proxy(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(skiff::bench_net::run_proxy(args))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `skiff server`: logging, data dir, PKI, kubeconfig, then the server itself.
fn server(cfg: ServerConfig) -> anyhow::Result<()> {
    init_tracing(&cfg.log_level)?;
    if let Some(file) = &cfg.config_file {
        tracing::info!(file = %file.display(), "read config file");
    }
    skiff::fsutil::ensure_dir(&cfg.data_dir, 0o700)
        .with_context(|| format!("failed to create data dir {}", cfg.data_dir.display()))?;

    let pki = Pki::load_or_create(&cfg.data_dir, &cfg.pki_request(read_hostname().as_deref()))
        .context("failed to set up certificates")?;
    let changes = pki.changes();
    if changes.ca_created {
        tracing::info!(dir = %pki.tls_dir().display(), "generated cluster CA");
    }
    if changes.serving_issued {
        tracing::info!("issued API server certificate");
    }
    if changes.admin_issued {
        tracing::info!("issued admin client certificate");
    }

    let yaml = Kubeconfig::admin(&cfg.server_url(), &pki).to_yaml()?;
    kubeconfig::write(&kubeconfig::data_dir_copy(&cfg.data_dir), &yaml, 0o600)?;
    kubeconfig::write(&cfg.write_kubeconfig, &yaml, cfg.write_kubeconfig_mode)?;
    tracing::info!(path = %cfg.write_kubeconfig.display(), "wrote admin kubeconfig");

    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(skiff::server::run_server(cfg, pki))
}

/// `skiff shim DIR`: launches `skiff shim --foreground DIR` detached (its parent exits at once,
/// so it is adopted by init; for running a shim by hand); `--foreground` runs the shim itself
/// (what the agent spawns). Both run before any thread exists, as libcontainer's forks require.
fn shim(args: skiff::config::ShimArgs) -> anyhow::Result<()> {
    if !args.foreground {
        return launch_detached("shim", &args.dir);
    }
    init_tracing("info")?;
    skiff_runtime::shim::run(&args.dir).map_err(anyhow::Error::from)
}

/// `skiff pause DIR`: launches `skiff pause --foreground DIR` detached, like `skiff shim`;
/// `--foreground` holds the pod's namespaces (it must stay single-threaded until they are
/// unshared); `--init` is PID 1 of a shared PID namespace.
fn pause(args: skiff::config::PauseArgs) -> anyhow::Result<()> {
    if args.init {
        init_tracing("info")?;
        return skiff_runtime::sandbox::run_init().map_err(anyhow::Error::from);
    }
    let dir = args.dir.context("the sandbox directory is missing")?;
    if !args.foreground {
        return launch_detached("pause", &dir);
    }
    init_tracing("info")?;
    skiff_runtime::sandbox::run_holder(&dir, || skiff_net::netlink::loopback_up().map_err(|e| e.to_string()))
        .map_err(anyhow::Error::from)
}

/// `skiff exec REQUEST`: runs one command in a running container for the agent (see
/// `skiff_runtime::exec`). No logging: its standard streams are the command's.
fn exec(args: skiff::config::ExecArgs) -> anyhow::Result<()> {
    let request: skiff_runtime::exec::HelperRequest =
        serde_json::from_str(&args.request).context("invalid exec request")?;
    skiff_runtime::exec::run_helper(&request).map_err(anyhow::Error::from)
}

/// Starts `skiff SUBCOMMAND --foreground DIR` without waiting for it: once this process exits,
/// the child is adopted by init and outlives the agent that asked for it.
fn launch_detached(subcommand: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the skiff binary")?;
    std::process::Command::new(exe)
        .arg(subcommand)
        .arg("--foreground")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot launch skiff {subcommand}"))?;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` if set, else by `--log-level`.
fn init_tracing(level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(&v).with_context(|| format!("invalid RUST_LOG {v:?}"))?,
        _ => EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("failed to set up logging: {e}"))
}
