//! How the node reaches registries: which hosts speak plain HTTP (`--insecure-registry`), and
//! the small subset of k3s's `registries.yaml` skiff reads from `<data-dir>/agent/registries.yaml`:
//!
//! ```yaml
//! mirrors:
//!   docker.io:                    # a registry as image references name it
//!     endpoint:
//!       - "http://10.0.0.5:5000"  # tried in order, then the registry itself
//! configs:
//!   "10.0.0.5:5000":              # a registry host, or a mirror endpoint's host
//!     auth: {username: u, password: p}
//!     tls: {insecure_skip_verify: true, ca_file: /etc/ssl/my-ca.pem}
//! ```
//!
//! An endpoint's scheme decides the protocol (`http://` = plain HTTP); a host listed as insecure
//! is always reached over plain HTTP. Credentials here are the node's own and are used only when
//! a pod's pull secrets have none for the image (as containerd's registry auth under the
//! kubelet's). Talking to the registry is [`super::pull`]'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `registries.yaml` could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RegistriesError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// One mirror list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Mirror {
    /// Endpoints (`http://host:port` or `https://host`), tried in order.
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Basic credentials of a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryAuthConfig {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// TLS settings of a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryTls {
    /// Accept any certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// A PEM file of extra CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Settings of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryHostConfig {
    /// Its credentials.
    #[serde(default)]
    pub auth: Option<RegistryAuthConfig>,
    /// Its TLS settings.
    #[serde(default)]
    pub tls: Option<RegistryTls>,
}

/// The node's registry settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Registries {
    /// Registry (as references name it) → mirrors.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Registry host → settings.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryHostConfig>,
    /// Hosts (`host:port`) reached over plain HTTP.
    #[serde(skip)]
    pub insecure: Vec<String>,
}

/// One place to pull a registry's images from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
}

impl Registries {
    /// Reads `path` (a missing file means no settings) and adds the `insecure` hosts.
    pub fn load(path: &Path, insecure: &[String]) -> Result<Self, RegistriesError> {
        let mut registries = match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => Self::default(),
            Ok(text) => Self::parse(&text).map_err(|message| RegistriesError { path: path.into(), message })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => return Err(RegistriesError { path: path.into(), message: e.to_string() }),
        };
        registries.insecure.extend(insecure.iter().cloned());
        Ok(registries)
    }

    /// Parses the YAML text of `registries.yaml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let registries: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (name, mirror) in &registries.mirrors {
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint).ok_or_else(|| format!("mirror {name}: invalid endpoint {endpoint:?}"))?;
            }
        }
        Ok(registries)
    }

    /// Where to pull `registry`'s images from, in order: its mirrors, then itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .map(|m| m.endpoint.iter().filter_map(|e| parse_endpoint(e)).collect())
            .unwrap_or_default();
        let own = Endpoint { host: registry.to_string(), plain_http: false };
        if !out.iter().any(|e| e.host == own.host) {
            out.push(own);
        }
        for endpoint in &mut out {
            endpoint.plain_http |= self.insecure.contains(&endpoint.host);
        }
        out
    }

    /// The node's credentials for `host`, if configured.
    pub fn auth(&self, host: &str) -> Option<&RegistryAuthConfig> {
        self.configs.get(host).and_then(|c| c.auth.as_ref())
    }

    /// The TLS settings of `host`, if configured.
    pub fn tls(&self, host: &str) -> Option<&RegistryTls> {
        self.configs.get(host).and_then(|c| c.tls.as_ref())
    }
}

/// `http://host:port[/…]` → plain HTTP, `https://host` or a bare host → HTTPS.
fn parse_endpoint(text: &str) -> Option<Endpoint> {
    let (plain_http, rest) = if let Some(rest) = text.strip_prefix("http://") {
        (true, rest)
    } else {
        (false, text.strip_prefix("https://").unwrap_or(text))
    };
    let host = rest.split('/').next().unwrap_or("");
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| Endpoint { host: host.to_string(), plain_http })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_then_the_registry_itself() {
        let text = r#"
mirrors:
  docker.io:
    endpoint: ["http://10.0.0.5:5000", "https://mirror.example.com/v2"]
configs:
  "10.0.0.5:5000":
    auth: {username: u, password: p}
    tls: {insecure_skip_verify: true}
"#;
        let mut r = Registries::parse(text).expect("parse");
        r.insecure.push("reg.local:5000".into());
        assert_eq!(
            r.endpoints("docker.io"),
            vec![
                Endpoint { host: "10.0.0.5:5000".into(), plain_http: true },
                Endpoint { host: "mirror.example.com".into(), plain_http: false },
                Endpoint { host: "docker.io".into(), plain_http: false },
            ]
        );
        assert_eq!(r.endpoints("reg.local:5000"), vec![Endpoint { host: "reg.local:5000".into(), plain_http: true }]);
        assert_eq!(r.auth("10.0.0.5:5000").map(|a| a.username.as_str()), Some("u"));
        assert!(r.tls("10.0.0.5:5000").is_some_and(|t| t.insecure_skip_verify));
        assert!(r.auth("docker.io").is_none());
        assert!(Registries::parse("mirrors: {x: {endpoint: ['http://']}}").is_err());
    }

    #[test]
    fn missing_file_is_empty_and_flags_add_insecure_hosts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registries::load(&dir.path().join("registries.yaml"), &["h:5000".into()]).expect("load");
        assert_eq!(r.insecure, vec!["h:5000".to_string()]);
        std::fs::write(dir.path().join("bad.yaml"), "mirrors: [").expect("write");
        assert!(Registries::load(&dir.path().join("bad.yaml"), &[]).is_err());
    }
}
