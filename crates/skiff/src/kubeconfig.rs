//! The admin kubeconfig: rendering it, writing it, and reading back the server's copy.
//!
//! `skiff server` writes the kubeconfig twice: to `--write-kubeconfig` (for the user, with
//! `--write-kubeconfig-mode`) and to `<data-dir>/server/kubeconfig.yaml` (0600), which is what
//! `skiff kubeconfig --data-dir D` prints — the data dir alone does not say which address and port
//! the server was last started with.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::pki::Pki;

/// Name of the cluster entry.
pub const CLUSTER_NAME: &str = "skiff";
/// Name of the user entry.
pub const USER_NAME: &str = "skiff-admin";
/// Name of the context entry (and the current context).
pub const CONTEXT_NAME: &str = "default";

/// Errors from writing or reading a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Rendering the YAML failed.
    #[error("failed to render kubeconfig: {0}")]
    Render(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `skiff kubeconfig` found no kubeconfig in the data dir.
    #[error("no kubeconfig at {0}; has `skiff server` been started with this --data-dir?")]
    NotFound(PathBuf),
}

/// A kubeconfig file (the subset skiff writes), in the field names kubectl expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Config`.
    pub kind: String,
    /// Clusters by name.
    pub clusters: Vec<NamedCluster>,
    /// Users by name.
    pub users: Vec<NamedUser>,
    /// Contexts by name.
    pub contexts: Vec<NamedContext>,
    /// The context kubectl uses.
    #[serde(rename = "current-context")]
    pub current_context: String,
}

/// A named cluster entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Entry name.
    pub name: String,
    /// The cluster.
    pub cluster: ClusterEntry,
}

/// Where the API server is and which CA to trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    /// `https://host:port`.
    pub server: String,
    /// Base64 of the CA certificate PEM.
    #[serde(rename = "certificate-authority-data")]
    pub certificate_authority_data: String,
}

/// A named user entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// Entry name.
    pub name: String,
    /// The credentials.
    pub user: UserEntry,
}

/// Client certificate credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Base64 of the client certificate PEM.
    #[serde(rename = "client-certificate-data")]
    pub client_certificate_data: String,
    /// Base64 of the client key PEM.
    #[serde(rename = "client-key-data")]
    pub client_key_data: String,
}

/// A named context entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// Entry name.
    pub name: String,
    /// The context.
    pub context: ContextEntry,
}

/// A cluster/user pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// Cluster entry name.
    pub cluster: String,
    /// User entry name.
    pub user: String,
}

impl Kubeconfig {
    /// The admin kubeconfig for the API server at `server_url`.
    pub fn admin(server_url: &str, pki: &Pki) -> Kubeconfig {
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: CLUSTER_NAME.into(),
                cluster: ClusterEntry {
                    server: server_url.into(),
                    certificate_authority_data: BASE64.encode(pki.ca_cert_pem()),
                },
            }],
            users: vec![NamedUser {
                name: USER_NAME.into(),
                user: UserEntry {
                    client_certificate_data: BASE64.encode(&pki.admin().cert_pem),
                    client_key_data: BASE64.encode(&pki.admin().key_pem),
                },
            }],
            contexts: vec![NamedContext {
                name: CONTEXT_NAME.into(),
                context: ContextEntry { cluster: CLUSTER_NAME.into(), user: USER_NAME.into() },
            }],
            current_context: CONTEXT_NAME.into(),
        }
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        serde_saphyr::to_string(self).map_err(|e| KubeconfigError::Render(e.to_string()))
    }
}

/// Where the server keeps its own copy of the admin kubeconfig.
pub fn data_dir_copy(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("kubeconfig.yaml")
}

/// Writes `yaml` to `path` atomically with `mode`, creating missing parent directories.
pub fn write(path: &Path, yaml: &str, mode: u32) -> Result<(), KubeconfigError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| KubeconfigError::Io { path: parent.to_owned(), source })?;
    }
    write_atomic(path, yaml.as_bytes(), mode).map_err(|source| KubeconfigError::Io { path: path.to_owned(), source })
}

/// Reads the server's copy of the admin kubeconfig from a data dir (`skiff kubeconfig`).
pub fn read_from_data_dir(data_dir: &Path) -> Result<String, KubeconfigError> {
    let path = data_dir_copy(data_dir);
    std::fs::read_to_string(&path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            KubeconfigError::NotFound(path.clone())
        } else {
            KubeconfigError::Io { path: path.clone(), source }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki::PkiRequest;
    use std::os::unix::fs::PermissionsExt;

    fn pki(dir: &Path) -> Pki {
        let req = PkiRequest {
            hostnames: vec![],
            ips: vec![],
            cluster_domain: "cluster.local".into(),
            service_ip: "10.43.0.1".parse().unwrap(),
        };
        Pki::load_or_create(dir, &req).unwrap()
    }

    #[test]
    fn rendered_yaml_parses_back_with_expected_fields() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let yaml = Kubeconfig::admin("https://10.0.0.2:6443", &pki).to_yaml().unwrap();

        let parsed: Kubeconfig = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(parsed, Kubeconfig::admin("https://10.0.0.2:6443", &pki));
        assert_eq!(parsed.current_context, "default");
        assert_eq!(parsed.clusters[0].cluster.server, "https://10.0.0.2:6443");
        let ca = BASE64.decode(&parsed.clusters[0].cluster.certificate_authority_data).unwrap();
        assert_eq!(String::from_utf8(ca).unwrap(), pki.ca_cert_pem());
        let key = BASE64.decode(&parsed.users[0].user.client_key_data).unwrap();
        assert_eq!(String::from_utf8(key).unwrap(), pki.admin().key_pem);

        // The raw text uses kubectl's field names.
        for field in [
            "apiVersion: v1",
            "kind: Config",
            "current-context: default",
            "certificate-authority-data:",
            "client-certificate-data:",
            "client-key-data:",
            "server: https://10.0.0.2:6443",
        ] {
            assert!(yaml.contains(field), "missing {field:?} in\n{yaml}");
        }
    }

    #[test]
    fn write_applies_mode_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/skiff/skiff.yaml");
        write(&path, "a: b\n", 0o644).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o644);
        write(&path, "a: c\n", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: c\n");
    }

    #[test]
    fn read_from_data_dir_explains_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_from_data_dir(dir.path()).unwrap_err();
        assert!(matches!(err, KubeconfigError::NotFound(_)), "{err}");
        write(&data_dir_copy(dir.path()), "x: y\n", 0o600).unwrap();
        assert_eq!(read_from_data_dir(dir.path()).unwrap(), "x: y\n");
    }
}
