//! The background task that keeps encryption at rest in step with its configuration file while
//! the server runs (upstream's `--encryption-provider-config-automatic-reload`, k3s's
//! `secrets-encrypt rotate`/`reencrypt`).
//!
//! Every [`POLL_INTERVAL`] the file's content hash is compared with the one in use. A changed
//! file that parses and validates replaces the chains ([`EncryptedStore::swap`]); one that does
//! not is refused with a logged error and a status line, and the chains in use stay.
//!
//! When the re-encryption marker exists, four stages run in order, each durable before the next:
//! 1. every stale value is written again with the first key (`reencrypt`);
//! 2. the store's history is compacted up to the revision then reached, so no older version
//!    under an old key remains (watches from before it get 410 Gone, as after any compaction);
//! 3. the file is replaced (atomically) by one with only the writing keys, and used;
//! 4. the marker is removed.
//!
//! A crash at any point leaves the old keys in the file until 1 and 2 are durable and the marker
//! until 3 is, so every value stays readable and the next start runs the stages again (each is
//! idempotent). A server that was down during `rotate` thus finishes at its next start.
//!
//! What does not live here: the pass itself (`reencrypt`) and the status file (`status`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_store::Store;
use tokio::time::Instant;

use super::config::{self, ConfigError, EncryptionConfiguration, Transformers};
use super::reencrypt::reencrypt;
use super::status::{Progress, ServerStatus, Stage, content_hash};
use super::store::EncryptedStore;
use super::{EncryptionError, marker_path};

/// How often the file and the marker are checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long a failed re-encryption waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Watches the configuration file and runs pending re-encryptions for one [`EncryptedStore`].
pub struct Rotator {
    store: Arc<EncryptedStore>,
    config_path: PathBuf,
    /// The configuration the store's chains come from.
    config: EncryptionConfiguration,
    /// Its file's [`content_hash`].
    in_use: String,
    /// What was last refused (a file's hash, or the read error), logged once.
    refused: Option<String>,
    /// What `<config>.status` says.
    status: ServerStatus,
    /// No re-encryption is tried before this, after a failure.
    retry_at: Option<Instant>,
}

impl Rotator {
    /// A rotator for `store`, whose chains come from `config` (the file at `config_path` whose
    /// content hash is `hash`). A finished rotation reported by an earlier run stays reported.
    pub fn new(
        store: Arc<EncryptedStore>,
        config_path: PathBuf,
        config: EncryptionConfiguration,
        hash: String,
    ) -> Self {
        let earlier = ServerStatus::read(&config_path).filter(|s| s.stage == Stage::ReencryptFinished);
        let status = ServerStatus {
            pid: std::process::id(),
            config_hash: hash.clone(),
            reload_error: None,
            reencrypt_error: None,
            ..earlier.unwrap_or_default()
        };
        let rotator = Self { store, config_path, config, in_use: hash, refused: None, status, retry_at: None };
        rotator.publish();
        rotator
    }

    /// What the rotator reports.
    pub fn status(&self) -> &ServerStatus {
        &self.status
    }

    /// Checks now, then every [`POLL_INTERVAL`], until the task is aborted.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.check().await;
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
    }

    /// Reloads a changed file, then runs a pending re-encryption to its end.
    pub async fn check(&mut self) {
        if !self.reload().await {
            return;
        }
        let marker = marker_path(&self.config_path);
        if !marker.exists() || self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        match self.finish_rotation(&marker).await {
            Ok(()) => self.retry_at = None,
            Err(e) => {
                tracing::error!(error = %e, "re-encryption failed; the old keys stay, retrying in {RETRY_AFTER:?}");
                self.status.reencrypt_error = Some(e.to_string());
                self.publish();
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Uses the file if it changed and is valid; whether the chains in use are the file's.
    async fn reload(&mut self) -> bool {
        let text = match std::fs::read(&self.config_path) {
            Ok(text) => text,
            Err(source) => {
                let e = ConfigError::Io { path: self.config_path.display().to_string(), source };
                self.refuse(e.to_string(), e);
                return false;
            }
        };
        let hash = content_hash(&text);
        if hash == self.in_use {
            if self.refused.take().is_some() {
                self.status.reload_error = None;
                self.publish();
            }
            return true;
        }
        if self.refused.as_ref() == Some(&hash) {
            return false;
        }
        match config::parse(&self.config_path, &String::from_utf8_lossy(&text)) {
            Ok(cfg) => {
                self.store.swap(Transformers::new(&cfg)).await;
                tracing::info!(path = %self.config_path.display(), %hash, "encryption configuration reloaded");
                self.config = cfg;
                self.in_use = hash.clone();
                self.refused = None;
                self.status.config_hash = hash;
                self.status.reload_error = None;
                self.publish();
                true
            }
            Err(e) => {
                self.refuse(hash, e);
                false
            }
        }
    }

    /// Reports `e` (once per `what`); the chains in use stay.
    fn refuse(&mut self, what: String, e: ConfigError) {
        if self.refused.as_ref() != Some(&what) {
            tracing::error!(error = %e, "refused the encryption configuration file; the previous configuration stays in use");
            self.refused = Some(what);
            self.status.reload_error = Some(e.to_string());
            self.publish();
        }
    }

    /// Runs the four stages (see the module doc) for the configuration in use.
    async fn finish_rotation(&mut self, marker: &Path) -> Result<(), EncryptionError> {
        let started_with = self.in_use.clone();
        let new_key = std::fs::read_to_string(marker).map(|s| s.trim().to_string()).unwrap_or_default();
        tracing::info!(key = %new_key, "re-encrypting stored values with the first key");
        self.status.stage = Stage::ReencryptActive;
        self.status.new_key = Some(new_key);
        self.status.progress = Progress::default();
        self.status.reencrypt_error = None;
        self.status.compacted_revision = None;
        self.publish();

        // 1.
        let (status, path) = (&mut self.status, &self.config_path);
        let progress = reencrypt(&self.store, |p| {
            status.progress = p;
            publish(status, path);
        })
        .await?;
        // A file edited meanwhile (another key put first by hand) starts over once reloaded.
        if !self.reload().await || self.in_use != started_with {
            return Ok(());
        }

        // 2.
        let revision = self.store.current_revision().await?;
        self.status.progress.compacting_to = Some(revision);
        self.publish();
        self.store.compact(revision).await?;

        // 3.
        config::write(&self.config_path, &self.config.only_write_keys())?;
        self.reload().await;

        // 4.
        std::fs::remove_file(marker)
            .and_then(|()| config::sync_parent(marker))
            .map_err(|source| EncryptionError::Marker { path: marker.display().to_string(), source })?;
        self.status.stage = Stage::ReencryptFinished;
        self.status.progress.compacting_to = None;
        self.status.compacted_revision = Some(revision);
        self.publish();
        tracing::info!(
            scanned = progress.scanned,
            rewritten = progress.rewritten,
            revision,
            "re-encryption finished: history compacted, old keys removed"
        );
        Ok(())
    }

    fn publish(&self) {
        publish(&self.status, &self.config_path);
    }
}

/// Writes `status` beside the file at `config_path`; a failure is only logged.
fn publish(status: &ServerStatus, config_path: &Path) {
    if let Err(e) = status.write(config_path) {
        tracing::warn!(error = %e, path = %config_path.display(), "cannot write the encryption status file");
    }
}
