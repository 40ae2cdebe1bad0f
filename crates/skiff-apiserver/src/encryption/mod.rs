//! Encryption at rest: values of the configured resources (Secrets by default) are stored
//! encrypted, as upstream's apiserver does with an `EncryptionConfiguration` file.
//!
//! - `config`: the file, its validation, the default generated at first start;
//! - `providers`: the ciphers and upstream's stored layout (`k8s:enc:<provider>:v1:<key>:`);
//! - `store`: [`EncryptedStore`], the [`Store`] wrapper the API server runs over, so handlers and
//!   the watch caches only ever see plain JSON; its chains can be swapped while it runs;
//! - `rotation`: [`Rotator`], the server's background task that reloads a changed file and
//!   finishes a requested re-encryption (re-write, compact history, drop the old keys);
//! - `reencrypt`: one re-encryption pass over the store;
//! - `status`: what the server reports and `skiff secrets-encrypt status` prints;
//! - here: [`open`] (load or generate the file, wrap the store) and the CLI's [`rotate`] and
//!   [`request_reencrypt`].
//!
//! Key rotation (k3s-like, without a restart): [`rotate`] puts a new key first in the file, keeps
//! the old ones after it and leaves a marker file beside it. The running server's [`Rotator`]
//! picks up the new file within seconds, then (seeing the marker) re-writes every value not
//! written with the new key, compacts history, drops every other key from the file and removes
//! the marker. A server that was not running does the same as soon as it starts.

pub mod config;
pub mod providers;
pub mod reencrypt;
pub mod rotation;
pub mod status;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skiff_store::{Store, StoreError};

pub use config::{ConfigError, EncryptionConfiguration, Transformers};
pub use providers::{Algorithm, Chain, Transformer};
pub use rotation::Rotator;
pub use store::EncryptedStore;

/// Why encryption could not be set up or rotated.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Re-encrypting stored values failed.
    #[error("cannot re-encrypt stored values: {0}")]
    Store(#[from] StoreError),
    /// The marker file could not be written or removed.
    #[error("{path}: {source}")]
    Marker {
        /// The marker.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `rotate` on a file none of whose rules encrypts.
    #[error("{0}: no resource is encrypted by a key-based provider first; nothing to rotate")]
    NothingToRotate(String),
    /// `rotate` or `reencrypt` while an earlier request is not finished.
    #[error(
        "{0} exists: a re-encryption is still pending; wait until `skiff secrets-encrypt status` says reencrypt_finished"
    )]
    Pending(String),
}

/// Where the encryption configuration comes from.
#[derive(Debug, Clone)]
pub struct EncryptionSettings {
    /// The file.
    pub config_path: PathBuf,
    /// Whether to write the default file when it does not exist (the default path); a file given
    /// with `--encryption-provider-config` must exist.
    pub generate: bool,
}

/// The file skiff generates: `<data-dir>/server/cred/encryption-config.json`.
pub fn default_config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("cred").join("encryption-config.json")
}

/// The marker of a pending re-encryption, beside the configuration file.
pub fn marker_path(config_path: &Path) -> PathBuf {
    let mut name = config_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".reencrypt");
    config_path.with_file_name(name)
}

/// A key name unique to this moment (`aescbckey-20261126T160203Z`).
fn key_name(alg: Algorithm) -> String {
    format!("{}key-{}", alg.name(), jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"))
}

/// Loads (or first writes) the configuration and wraps `store`; the returned [`Rotator`] (to be
/// spawned) reloads the file when it changes and finishes a pending rotation.
pub fn open(
    store: Arc<dyn Store>,
    settings: &EncryptionSettings,
) -> Result<(Arc<EncryptedStore>, Rotator), EncryptionError> {
    let path = &settings.config_path;
    if settings.generate && !path.exists() {
        config::write(path, &config::default_configuration(&key_name(Algorithm::AesCbc)))?;
        tracing::info!(path = %path.display(), "generated the encryption configuration");
    }
    let text = config::read_bytes(path)?;
    let cfg = config::parse(path, &String::from_utf8_lossy(&text))?;
    let wrapped = Arc::new(EncryptedStore::new(store, Transformers::new(&cfg)));
    let rotator = Rotator::new(wrapped.clone(), path.clone(), cfg, status::content_hash(&text));
    Ok((wrapped, rotator))
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new key's name.
    pub new_key: String,
    /// The marker that makes the server re-encrypt.
    pub marker: PathBuf,
}

/// Puts a new key first in every rule whose first provider encrypts, and leaves the marker that
/// makes the server re-encrypt with it and drop the old keys. Refused while a re-encryption is
/// pending (the old keys are still needed).
pub fn rotate(config_path: &Path) -> Result<Rotation, EncryptionError> {
    refuse_if_pending(config_path)?;
    let mut cfg = config::read(config_path)?;
    let mut new_key = None;
    for rc in &mut cfg.resources {
        let Some(first) = rc.providers.first_mut() else { continue };
        let Some((alg, _)) = first.keys() else { continue };
        let mut name = key_name(alg);
        if let Some(keys) = first.keys_mut() {
            let base = name.clone();
            let mut n = 1;
            while keys.keys.iter().any(|k| k.name == name) {
                n += 1;
                name = format!("{base}-{n}");
            }
            keys.keys.insert(0, config::Key { name: name.clone(), secret: config::random_secret() });
        }
        new_key = Some(name);
    }
    let Some(new_key) = new_key else {
        return Err(EncryptionError::NothingToRotate(config_path.display().to_string()));
    };
    config::write(config_path, &cfg)?;
    let marker = write_marker(config_path, &new_key)?;
    Ok(Rotation { new_key, marker })
}

/// Asks the server to re-encrypt every value with the file's current first key and then drop the
/// other keys (after the file was edited by hand); returns that key's name.
pub fn request_reencrypt(config_path: &Path) -> Result<String, EncryptionError> {
    refuse_if_pending(config_path)?;
    let cfg = config::read(config_path)?;
    let first_key = cfg
        .resources
        .iter()
        .find_map(|rc| rc.providers.first()?.keys()?.1.keys.first().map(|k| k.name.clone()))
        .ok_or_else(|| EncryptionError::NothingToRotate(config_path.display().to_string()))?;
    write_marker(config_path, &first_key)?;
    Ok(first_key)
}

/// Refuses a new request while the marker of an earlier one exists.
fn refuse_if_pending(config_path: &Path) -> Result<(), EncryptionError> {
    let marker = marker_path(config_path);
    if marker.exists() {
        return Err(EncryptionError::Pending(marker.display().to_string()));
    }
    Ok(())
}

/// Writes the marker naming the key values are re-encrypted with.
fn write_marker(config_path: &Path, key: &str) -> Result<PathBuf, EncryptionError> {
    let marker = marker_path(config_path);
    std::fs::write(&marker, format!("{key}\n"))
        .and_then(|()| config::sync_parent(&marker))
        .map_err(|source| EncryptionError::Marker { path: marker.display().to_string(), source })?;
    Ok(marker)
}

/// The text of `skiff secrets-encrypt status`.
pub fn status(config_path: &Path) -> Result<String, EncryptionError> {
    status::render(config_path)
}

#[cfg(test)]
mod tests;
