//! `skiff server`: start the components and run until SIGTERM or SIGINT.

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::ServerConfig;
use crate::pki::Pki;

/// Runs the server until a termination signal, then shuts down and returns.
///
/// The caller has already created the data dir, the PKI and the kubeconfig.
pub async fn run_server(cfg: ServerConfig, pki: Pki) -> anyhow::Result<()> {
    // TODO(integrator): start skiff_apiserver here (TLS from `pki.serving()`, client CA
    // `pki.ca_cert_pem()`, admin token `pki.admin_token()`, listening on
    // `cfg.bind_address:cfg.https_listen_port`), then the controllers and, unless
    // `cfg.disable_agent`, the node agent; stop them in reverse order on shutdown.
    tracing::info!(
        data_dir = %cfg.data_dir.display(),
        tls_dir = %pki.tls_dir().display(),
        node = %cfg.node_name,
        agent = !cfg.disable_agent,
        "server starting"
    );
    let mut term =
        signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut int =
        signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    // Handlers first, banner second: whoever waits for the banner may signal right away.
    eprintln!("{}", startup_message(&cfg));
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    Ok(())
}

/// The plain-words banner printed once the server is up.
pub fn startup_message(cfg: &ServerConfig) -> String {
    let kubeconfig = cfg.write_kubeconfig.display();
    format!(
        "skiff is running. API server: {}  Kubeconfig: {kubeconfig}  Try: kubectl --kubeconfig {kubeconfig} get nodes",
        cfg.server_url()
    )
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
        let Command::Server(cfg) = parse_args(argv).unwrap() else {
            panic!("not server")
        };
        assert_eq!(
            startup_message(&cfg),
            "skiff is running. API server: https://10.1.1.1:6443  Kubeconfig: /tmp/k.yaml  \
             Try: kubectl --kubeconfig /tmp/k.yaml get nodes"
        );
    }
}
