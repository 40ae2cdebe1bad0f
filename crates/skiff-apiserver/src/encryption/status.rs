//! What `skiff secrets-encrypt status` shows: the stage of a key rotation, the re-encryption's
//! progress and whether the running server uses the configuration file as it is now.
//!
//! The server writes a small JSON file beside the configuration (`<config>.status`) at each
//! change ([`ServerStatus`]); the CLI, another process, reads it together with the file and the
//! marker and renders [`render`]. Nothing secret is in it (hashes and counts only).
//!
//! What does not live here: deciding the stages (`rotation`) and the file itself (`config`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use skiff_store::Revision;

use super::config::{self, Transformers};
use super::{EncryptionError, marker_path};

/// The stage of a key rotation, named as k3s's `secrets-encrypt status` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No rotation has run.
    #[default]
    Start,
    /// A re-encryption is asked for (the marker exists) and no server runs it yet.
    ReencryptRequest,
    /// The server is re-writing values, compacting history or dropping the old keys.
    ReencryptActive,
    /// The last re-encryption finished: old keys dropped, history compacted.
    ReencryptFinished,
}

impl Stage {
    /// The name `status` prints.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Start => "start",
            Stage::ReencryptRequest => "reencrypt_request",
            Stage::ReencryptActive => "reencrypt_active",
            Stage::ReencryptFinished => "reencrypt_finished",
        }
    }
}

/// How far a re-encryption got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Stored values of encrypted resources looked at.
    pub scanned: u64,
    /// Of those, values re-written with the current key.
    pub rewritten: u64,
    /// Set while history up to this revision is being compacted (after the re-write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacting_to: Option<Revision>,
}

/// What the running server reports, in `<config>.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The server's process id.
    pub pid: u32,
    /// The rotation stage as the server sees it.
    pub stage: Stage,
    /// The hash ([`content_hash`]) of the configuration the server encrypts with.
    pub config_hash: String,
    /// Why the file as it is now was refused (the server kept its previous configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// The key the current (or last) re-encryption writes with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_key: Option<String>,
    /// The current (or last) re-encryption's progress.
    #[serde(default)]
    pub progress: Progress,
    /// Why the last re-encryption attempt failed (it is retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reencrypt_error: Option<String>,
    /// The revision up to which the last finished re-encryption compacted history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_revision: Option<Revision>,
}

/// The server's status file beside the configuration file.
pub fn status_path(config_path: &Path) -> PathBuf {
    let mut name = config_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".status");
    config_path.with_file_name(name)
}

/// `sha256:<hex>` of a configuration file's bytes.
pub fn content_hash(text: &[u8]) -> String {
    let digest = sha2::Sha256::digest(text);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl ServerStatus {
    /// Reads the status file, `None` when absent or unreadable (an old or foreign file).
    pub fn read(config_path: &Path) -> Option<Self> {
        let text = std::fs::read(status_path(config_path)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Replaces the status file (temporary file, then rename; no fsync: it is informative).
    pub fn write(&self, config_path: &Path) -> std::io::Result<()> {
        let path = status_path(config_path);
        let tmp = path.with_extension("tmp");
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }
}

/// Whether process `pid` exists.
fn process_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// The stage to show: the marker decides whether a re-encryption is pending, the running
/// server's report whether it is under way.
fn shown_stage(marker: bool, server: Option<&ServerStatus>) -> Stage {
    let running = server.filter(|s| process_alive(s.pid));
    match (marker, running.map(|s| s.stage)) {
        (true, Some(Stage::ReencryptActive)) => Stage::ReencryptActive,
        (true, _) => Stage::ReencryptRequest,
        (false, _) => match server.map(|s| s.stage) {
            Some(Stage::ReencryptFinished) => Stage::ReencryptFinished,
            _ => Stage::Start,
        },
    }
}

/// The text of `skiff secrets-encrypt status`; a file that does not parse is shown with its
/// error (and whether the server refused it), not refused here.
pub fn render(config_path: &Path) -> Result<String, EncryptionError> {
    let text = config::read_bytes(config_path)?;
    let parsed = config::parse(config_path, &String::from_utf8_lossy(&text));
    let server = ServerStatus::read(config_path);
    let stage = shown_stage(marker_path(config_path).exists(), server.as_ref());
    let encryption = match &parsed {
        Ok(cfg) if Transformers::new(cfg).is_empty() => "Disabled",
        Ok(_) => "Enabled",
        Err(_) => "Unknown (invalid file)",
    };
    let mut out = format!("Encryption Status: {encryption}\nCurrent Rotation Stage: {}\n", stage.name());
    if let Some(s) = &server {
        out.push_str(&progress_line(s, stage));
        if let Some(e) = &s.reencrypt_error {
            out.push_str(&format!("Re-encryption Error: {e} (retried)\n"));
        }
    }
    out.push_str(&format!("Server Configuration: {}\n", server_configuration(server.as_ref(), &content_hash(&text))));
    out.push_str(&format!("Configuration: {}\n", config_path.display()));
    match parsed {
        Ok(cfg) => out.push_str(&key_table(&cfg)),
        Err(e) => out.push_str(&format!("Configuration Error: {e}\n")),
    }
    Ok(out)
}

/// The re-encryption's progress at `stage`, or nothing.
fn progress_line(s: &ServerStatus, stage: Stage) -> String {
    let p = s.progress;
    let key = s.new_key.as_deref().unwrap_or("-");
    match stage {
        Stage::ReencryptActive => {
            let compacting =
                p.compacting_to.map(|rev| format!("; compacting history up to revision {rev}")).unwrap_or_default();
            format!(
                "Re-encryption: {} values scanned, {} re-written with key {key}{compacting}\n",
                p.scanned, p.rewritten
            )
        }
        Stage::ReencryptFinished => format!(
            "Re-encryption: finished, {} values re-written with key {key}, history compacted up to revision {}\n",
            p.rewritten,
            s.compacted_revision.unwrap_or_default()
        ),
        Stage::ReencryptRequest if !process_alive(s.pid) => {
            "Re-encryption: pending; the server runs it when it (re)starts\n".into()
        }
        _ => String::new(),
    }
}

/// The keys of every rule, the writing one starred (k3s's table).
fn key_table(cfg: &config::EncryptionConfiguration) -> String {
    let mut out = String::from("\nActive  Key Type   Name       Resources\n------  --------   ----       ---------\n");
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
    out
}

/// Whether the server encrypts with the file as it is (`file_hash`).
fn server_configuration(server: Option<&ServerStatus>, file_hash: &str) -> String {
    let Some(s) = server else { return "no report (the server has not run with this file)".into() };
    let state = if !process_alive(s.pid) { " (server not running)" } else { "" };
    match &s.reload_error {
        Some(e) => format!("refused the file as it is, using the previous one{state}: {e}"),
        None if s.config_hash == file_hash => format!("in use{state}"),
        None => format!("not reloaded yet (the server checks the file every few seconds){state}"),
    }
}
