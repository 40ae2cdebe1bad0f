//! The `EncryptionConfiguration` file (`apiserver.config.k8s.io/v1`): its shape, parsing with
//! errors in plain words (naming the field as upstream's validation does), the default file
//! generated at first start, and turning it into per-resource transformer chains.
//!
//! What does not live here: the ciphers (`providers`) and the store wrapper (`store`).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::providers::{Algorithm, Chain, Transformer};

/// The `apiVersion` of the file.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The `kind` of the file.
pub const KIND: &str = "EncryptionConfiguration";

/// An invalid configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML/JSON of the expected shape.
    #[error("{path}: cannot parse the encryption configuration: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The file parses but a field is wrong (`field: message`, as upstream's validation).
    #[error("{path}: invalid encryption configuration: {}", .errors.join(", "))]
    Invalid {
        /// The file.
        path: String,
        /// One entry per wrong field.
        errors: Vec<String>,
    },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    /// `apiserver.config.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `EncryptionConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// The rules, the first one naming a resource wins.
    #[serde(default)]
    pub resources: Vec<ResourceConfiguration>,
}

/// Which resources one list of providers applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceConfiguration {
    /// `secrets`, `deployments.apps`, `*.apps`, `*.` (the core group) or `*.*`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Providers in order: the first writes, every one reads.
    #[serde(default)]
    pub providers: Vec<ProviderConfiguration>,
}

/// One provider; exactly one field must be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfiguration {
    /// AES-CBC keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    /// AES-GCM keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    /// XSalsa20-Poly1305 keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    /// No encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfiguration>,
    /// KMS plugins (not supported by skiff: refused with a clear message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

/// The keys of one encrypting provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfiguration {
    /// Keys in order: the first encrypts.
    #[serde(default)]
    pub keys: Vec<Key>,
}

/// A named key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// The name, part of every stored value's prefix.
    #[serde(default)]
    pub name: String,
    /// The key, base64.
    #[serde(default)]
    pub secret: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key {{ name: {:?} }}", self.name)
    }
}

/// The `identity` provider (no settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfiguration {}

impl ProviderConfiguration {
    /// The algorithm and keys of an encrypting provider (`None` for identity).
    pub fn keys(&self) -> Option<(Algorithm, &KeysConfiguration)> {
        if let Some(k) = &self.aescbc {
            Some((Algorithm::AesCbc, k))
        } else if let Some(k) = &self.aesgcm {
            Some((Algorithm::AesGcm, k))
        } else {
            self.secretbox.as_ref().map(|k| (Algorithm::Secretbox, k))
        }
    }

    /// The keys of an encrypting provider, mutably.
    pub fn keys_mut(&mut self) -> Option<&mut KeysConfiguration> {
        if self.aescbc.is_some() {
            self.aescbc.as_mut()
        } else if self.aesgcm.is_some() {
            self.aesgcm.as_mut()
        } else {
            self.secretbox.as_mut()
        }
    }

    fn count(&self) -> usize {
        [
            self.aescbc.is_some(),
            self.aesgcm.is_some(),
            self.secretbox.is_some(),
            self.identity.is_some(),
            self.kms.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count()
    }
}

impl EncryptionConfiguration {
    /// The configuration after a re-encryption: each rule keeps its writing key (the first key
    /// of its first encrypting provider) and its identity providers; every other key goes.
    pub fn only_write_keys(&self) -> Self {
        let mut cfg = self.clone();
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
        cfg
    }
}

/// A random key of `algorithm`'s largest size, base64.
pub fn random_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The file skiff writes at first start: one `aescbc` key for `secrets`, identity as fallback
/// (so Secrets written before encryption was on still read).
pub fn default_configuration(key_name: &str) -> EncryptionConfiguration {
    EncryptionConfiguration {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        resources: vec![ResourceConfiguration {
            resources: vec!["secrets".into()],
            providers: vec![
                ProviderConfiguration {
                    aescbc: Some(KeysConfiguration {
                        keys: vec![Key { name: key_name.into(), secret: random_secret() }],
                    }),
                    ..Default::default()
                },
                ProviderConfiguration { identity: Some(IdentityConfiguration {}), ..Default::default() },
            ],
        }],
    }
}

/// Parses and validates a file's text; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<EncryptionConfiguration, ConfigError> {
    let shown = path.display().to_string();
    let cfg: EncryptionConfiguration =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string() })?;
    let errors = validate(&cfg);
    if errors.is_empty() { Ok(cfg) } else { Err(ConfigError::Invalid { path: shown, errors }) }
}

/// Reads and validates a file.
pub fn read(path: &Path) -> Result<EncryptionConfiguration, ConfigError> {
    parse(path, &String::from_utf8_lossy(&read_bytes(path)?))
}

/// A file's bytes, unparsed (to hash them).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io { path: path.display().to_string(), source })
}

/// Writes `cfg` as JSON to `path` (mode 0600), atomically (temporary file, fsync, rename).
pub fn write(path: &Path, cfg: &EncryptionConfiguration) -> Result<(), ConfigError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| ConfigError::Io { path: path.display().to_string(), source };
    let mut text = serde_json::to_vec_pretty(cfg).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    f.write_all(&text).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_parent(path).map_err(io)
}

/// Makes a rename or removal in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Upstream's validation, one `field: message` per problem.
fn validate(cfg: &EncryptionConfiguration) -> Vec<String> {
    let mut errors = Vec::new();
    if cfg.api_version != API_VERSION {
        errors.push(format!("apiVersion: Unsupported value: {:?}: supported values: {API_VERSION:?}", cfg.api_version));
    }
    if cfg.kind != KIND {
        errors.push(format!("kind: Unsupported value: {:?}: supported values: {KIND:?}", cfg.kind));
    }
    if cfg.resources.is_empty() {
        errors.push("resources: Required value: at least one resource must be specified".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, rc) in cfg.resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        if rc.resources.is_empty() {
            errors.push(format!("{at}.resources: Required value: resource is a required field"));
        }
        for (j, r) in rc.resources.iter().enumerate() {
            if let Err(why) = Matcher::parse(r) {
                errors.push(format!("{at}.resources[{j}]: Invalid value: {r:?}: {why}"));
            } else if seen.contains(&r.as_str()) {
                errors.push(format!("{at}.resources[{j}]: Duplicate value: {r:?}"));
            }
            seen.push(r);
        }
        if rc.providers.is_empty() {
            errors.push(format!("{at}.providers: Required value: at least one provider must be specified"));
        }
        for (j, p) in rc.providers.iter().enumerate() {
            let at = format!("{at}.providers[{j}]");
            match p.count() {
                0 => errors.push(format!("{at}: Invalid value: \"{{}}\": provider does not contain any of the expected providers: KMS, secretbox, aesgcm, aescbc or identity")),
                1 => {}
                _ => errors.push(format!("{at}: Invalid value: \"...\": more than one provider specified in a single element, should split into different list elements")),
            }
            if p.kms.is_some() {
                errors.push(format!("{at}.kms: Forbidden: KMS providers are not supported by skiff"));
            }
            let Some((alg, keys)) = p.keys() else { continue };
            let at = format!("{at}.{}", alg.name());
            if keys.keys.is_empty() {
                errors.push(format!("{at}.keys: Required value: keys (each with name and secret) are required"));
            }
            let mut names: Vec<&str> = Vec::new();
            for (k, key) in keys.keys.iter().enumerate() {
                let at = format!("{at}.keys[{k}]");
                if key.name.is_empty() {
                    errors.push(format!("{at}.name: Required value: key name is required"));
                } else if key.name.contains(':') {
                    errors.push(format!("{at}.name: Invalid value: {:?}: key name must not contain ':'", key.name));
                } else if names.contains(&key.name.as_str()) {
                    errors.push(format!("{at}.name: Duplicate value: {:?}", key.name));
                }
                names.push(&key.name);
                match base64::engine::general_purpose::STANDARD.decode(key.secret.trim()) {
                    _ if key.secret.is_empty() => errors.push(format!("{at}.secret: Required value: secret is required")),
                    Err(_) => errors.push(format!(
                        "{at}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
                    )),
                    Ok(raw) if !alg.key_sizes().contains(&raw.len()) => errors.push(format!(
                        "{at}.secret: Invalid value: \"REDACTED\": secret is not of the expected length, got {}, expected one of {:?}",
                        raw.len(),
                        alg.key_sizes()
                    )),
                    Ok(_) => {}
                }
            }
        }
    }
    errors
}

/// Which store keys one `resources` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The resource (plural), or `*`.
    resource: String,
    /// The API group (`""` for core), or `*`.
    group: String,
}

impl Matcher {
    /// Parses `secrets`, `deployments.apps`, `*.apps`, `*.` or `*.*`.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("resource name must not be empty");
        }
        if s != s.to_ascii_lowercase() {
            return Err("resource name must be lowercase");
        }
        let (resource, group) = s.split_once('.').unwrap_or((s, ""));
        if resource.contains('*') && resource != "*" {
            return Err("use '*.' to match every core resource, '*.<group>' for a group, or '*.*' for all");
        }
        if resource == "*" && !s.contains('.') {
            return Err("use '*.' to match every core resource, '*.<group>' for a group, or '*.*' for all");
        }
        if group.contains('*') && group != "*" {
            return Err("a group wildcard must be the whole group ('*.*')");
        }
        Ok(Self { resource: resource.into(), group: group.into() })
    }

    /// Whether the store key `/registry/<group>/<resource>/...` is named by this entry.
    fn matches(&self, group: &str, resource: &str) -> bool {
        let group = if group == "core" { "" } else { group };
        (self.group == "*" || self.group == group) && (self.resource == "*" || self.resource == resource)
    }
}

/// The transformer chains of a configuration, by resource.
#[derive(Debug, Clone, Default)]
pub struct Transformers {
    rules: Vec<(Matcher, Arc<Chain>)>,
}

impl Transformers {
    /// Builds the chains of a validated configuration.
    pub fn new(cfg: &EncryptionConfiguration) -> Self {
        let mut rules = Vec::new();
        for rc in &cfg.resources {
            let mut chain = Vec::new();
            for p in &rc.providers {
                match p.keys() {
                    Some((alg, keys)) => {
                        for k in &keys.keys {
                            let raw =
                                base64::engine::general_purpose::STANDARD.decode(k.secret.trim()).unwrap_or_default();
                            chain.push(Transformer::key(alg, &k.name, raw));
                        }
                    }
                    None if p.identity.is_some() => chain.push(Transformer::Identity),
                    None => {}
                }
            }
            let chain = Arc::new(Chain::new(chain));
            for r in &rc.resources {
                if let Ok(m) = Matcher::parse(r) {
                    rules.push((m, chain.clone()));
                }
            }
        }
        Self { rules }
    }

    /// The chain of the object stored at `key`, or `None` when values under it are stored
    /// unchanged (no rule names it, or its only provider is identity).
    pub fn chain_for(&self, key: &str) -> Option<&Chain> {
        let rest = key.strip_prefix("/registry/")?;
        let mut parts = rest.splitn(3, '/');
        let group = parts.next()?;
        let resource = parts.next()?;
        parts.next()?;
        let (_, chain) = self.rules.iter().find(|(m, _)| m.matches(group, resource))?;
        let only_identity = chain.transformers().iter().all(|t| matches!(t, Transformer::Identity));
        (!only_identity).then_some(chain.as_ref())
    }

    /// Whether any rule encrypts.
    pub fn is_empty(&self) -> bool {
        self.rules.iter().all(|(_, c)| c.transformers().iter().all(|t| matches!(t, Transformer::Identity)))
    }
}
