//! `skiff secrets-encrypt status|rotate|reencrypt`: the k3s-like front of encryption at rest over
//! the configuration file the server uses. The logic (file, rotation, the server's re-encryption)
//! lives in `skiff_apiserver::encryption`; this module only picks the file and prints.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use skiff_apiserver::encryption;

use crate::config::{SecretsEncryptArgs, SecretsEncryptCommand};

/// The configuration file `args` designate.
fn config_path(args: &SecretsEncryptArgs) -> PathBuf {
    args.encryption_provider_config.clone().unwrap_or_else(|| encryption::default_config_path(&args.data_dir))
}

/// Runs one `skiff secrets-encrypt` subcommand, printing to `out`.
pub fn run(args: SecretsEncryptArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let path = config_path(&args);
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: start the server once (it generates the file) or pass --encryption-provider-config",
            path.display()
        );
    }
    match args.command {
        SecretsEncryptCommand::Status => {
            write!(out, "{}", encryption::status(&path)?)?;
        }
        SecretsEncryptCommand::Rotate => {
            let rotation = encryption::rotate(&path).context("cannot rotate the encryption key")?;
            writeln!(
                out,
                "added key {} to {}; the server re-encrypts every Secret with it within seconds (or at its next start), then removes the old keys; `skiff secrets-encrypt status` shows the progress",
                rotation.new_key,
                path.display()
            )?;
        }
        SecretsEncryptCommand::Reencrypt => {
            let key = encryption::request_reencrypt(&path).context("cannot request a re-encryption")?;
            writeln!(
                out,
                "requested a re-encryption with key {key}; the server runs it within seconds (or at its next start), then removes the other keys; `skiff secrets-encrypt status` shows the progress"
            )?;
        }
    }
    Ok(())
}
