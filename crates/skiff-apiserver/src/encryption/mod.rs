//! Encryption at rest: values of the configured resources (Secrets by default) are stored
//! encrypted, as upstream's apiserver does with an `EncryptionConfiguration` file.
//!
//! - `config`: the file, its validation, the default generated at first start;
//! - `providers`: the ciphers and upstream's stored layout (`k8s:enc:<provider>:v1:<key>:`);
//! - `store`: [`EncryptedStore`], the [`Store`] wrapper the API server runs over, so handlers and
//!   the watch caches only ever see plain JSON;
//! - here: [`open`] (load or generate the file, wrap the store, finish a pending rotation) and
//!   [`rotate`] / [`status`] behind `skiff secrets-encrypt`.
//!
//! Key rotation (k3s-like, in one command and one restart): [`rotate`] puts a new key first in
//! the file, keeps the old ones after it and leaves a marker file beside it. At the next start,
//! [`open`] sees the marker, re-writes every stored value of the configured resources that was
//! not written with the first key (so it is now encrypted with the new key), then drops every
//! other key from the file and removes the marker. Older revisions kept in the store's history
//! (until compaction) stay encrypted with the keys of their time.

pub mod config;
pub mod providers;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skiff_store::{RangeRequest, Store, StoreError, WriteOp};

pub use config::{ConfigError, EncryptionConfiguration, Transformers};
pub use providers::{Algorithm, Chain, Transformer};
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

/// Loads (or first writes) the configuration, wraps `store`, and finishes a pending rotation.
pub async fn open(
    store: Arc<dyn Store>,
    settings: &EncryptionSettings,
) -> Result<Arc<EncryptedStore>, EncryptionError> {
    let path = &settings.config_path;
    if settings.generate && !path.exists() {
        config::write(path, &config::default_configuration(&key_name(Algorithm::AesCbc)))?;
        tracing::info!(path = %path.display(), "generated the encryption configuration");
    }
    let cfg = config::read(path)?;
    let wrapped = Arc::new(EncryptedStore::new(store, Transformers::new(&cfg)));
    let marker = marker_path(path);
    if marker.exists() {
        let rewritten = reencrypt(&wrapped).await?;
        let mut kept = cfg.clone();
        keep_only_write_keys(&mut kept);
        config::write(path, &kept)?;
        std::fs::remove_file(&marker)
            .map_err(|source| EncryptionError::Marker { path: marker.display().to_string(), source })?;
        tracing::info!(rewritten, path = %path.display(), "re-encrypted stored values with the new key; old keys removed");
    }
    Ok(wrapped)
}

/// Re-writes every stored value of a configured resource that the first key did not write;
/// returns how many.
pub async fn reencrypt(store: &EncryptedStore) -> Result<usize, StoreError> {
    let mut rewritten = 0;
    let mut start_after = None;
    loop {
        let page = store
            .inner()
            .range(RangeRequest {
                prefix: "/registry/".into(),
                start_after: start_after.clone(),
                revision: None,
                limit: Some(500),
            })
            .await?;
        for kv in &page.kvs {
            let Some(chain) = store.transformers().chain_for(&kv.key) else { continue };
            let plain = chain
                .from_storage(&kv.value, kv.key.as_bytes())
                .map_err(|e| StoreError::Corrupt { what: kv.key.clone(), detail: e.to_string() })?;
            if !plain.stale {
                continue;
            }
            let op =
                WriteOp::Update { key: kv.key.clone(), value: plain.value.into(), expected: Some(kv.mod_revision) };
            match store.write(op).await {
                Ok(_) => rewritten += 1,
                // Changed meanwhile: the new value was written with the current key.
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more || start_after.is_none() {
            return Ok(rewritten);
        }
    }
}

/// After re-encryption: each rule keeps its writing key and its identity providers.
fn keep_only_write_keys(cfg: &mut EncryptionConfiguration) {
    for rc in &mut cfg.resources {
        let mut first = true;
        rc.providers.retain_mut(|p| {
            let Some(keys) = p.keys_mut() else { return true };
            if !first {
                return false;
            }
            first = false;
            keys.keys.truncate(1);
            true
        });
    }
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new key's name.
    pub new_key: String,
    /// The marker that makes the next start re-encrypt.
    pub marker: PathBuf,
}

/// Puts a new key first in every rule whose first provider encrypts, and leaves the marker that
/// makes the next start re-encrypt and drop the old keys.
pub fn rotate(config_path: &Path) -> Result<Rotation, EncryptionError> {
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
    let marker = marker_path(config_path);
    std::fs::write(&marker, format!("{new_key}\n"))
        .map_err(|source| EncryptionError::Marker { path: marker.display().to_string(), source })?;
    Ok(Rotation { new_key, marker })
}

/// The text of `skiff secrets-encrypt status`.
pub fn status(config_path: &Path) -> Result<String, EncryptionError> {
    let cfg = config::read(config_path)?;
    let encrypted = !Transformers::new(&cfg).is_empty();
    let stage =
        if marker_path(config_path).exists() { "reencrypt_request (pending a server restart)" } else { "start" };
    let mut out = format!(
        "Encryption Status: {}\nCurrent Rotation Stage: {stage}\nConfiguration: {}\n\nActive  Key Type   Name       Resources\n------  --------   ----       ---------\n",
        if encrypted { "Enabled" } else { "Disabled" },
        config_path.display()
    );
    for rc in &cfg.resources {
        let mut active = true;
        for p in &rc.providers {
            let (kind, names): (&str, Vec<&str>) = match p.keys() {
                Some((alg, keys)) => (alg.display(), keys.keys.iter().map(|k| k.name.as_str()).collect()),
                None => ("IDENTITY", vec!["-"]),
            };
            for name in names {
                out.push_str(&format!(
                    "{:<7} {kind:<10} {name:<10} {}\n",
                    if active { " *" } else { "" },
                    rc.resources.join(",")
                ));
                active = false;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
