//! Where the agent keeps its client certificate: one file, `kubelet-client-current.pem` (the
//! kubelet's name), holding the certificate then its key, mode 0600 in a 0700 directory, replaced
//! atomically (temp file, fsync, rename, directory fsync) so a crash leaves the old pair or the
//! new one, never half of either.
//!
//! What does not live here: deciding whether a stored pair may still be used (the caller checks
//! validity and issuer), the rotation itself ([`super::manager`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::CertificateError;
use super::identity::ClientIdentity;

/// The file name of the current pair.
pub const CURRENT: &str = "kubelet-client-current.pem";

/// The directory holding the agent's client certificate.
#[derive(Debug, Clone)]
pub struct CertificateStore {
    dir: PathBuf,
}

impl CertificateStore {
    /// A store in `dir` (`<data-dir>/agent/pki`), created on the first save.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The path of the current pair.
    pub fn path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// The stored pair, `None` when there is none.
    pub fn load(&self) -> Result<Option<ClientIdentity>, CertificateError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CertificateError::Io { path, source }),
        };
        let (cert_pem, key_pem) = split_pem(&text).ok_or_else(|| {
            CertificateError::Invalid(format!("{}: no private key after the certificate", path.display()))
        })?;
        ClientIdentity::from_pem(cert_pem, key_pem)
            .map(Some)
            .map_err(|e| CertificateError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Replaces the stored pair with `identity`, durably.
    pub fn save(&self, identity: &ClientIdentity) -> Result<(), CertificateError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CertificateError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&self.dir))?;
        let mut data = identity.cert_pem.clone();
        if !data.ends_with('\n') {
            data.push('\n');
        }
        data.push_str(&identity.key_pem);
        write_durably(&self.dir, CURRENT, data.as_bytes()).map_err(io_err(&self.path()))
    }
}

/// Splits a stored file into its certificate part and its key part (which starts at the first
/// `-----BEGIN … PRIVATE KEY-----` line).
fn split_pem(text: &str) -> Option<(&str, &str)> {
    let start = text
        .match_indices("-----BEGIN ")
        .map(|(i, _)| i)
        .find(|&i| text[i..].lines().next().is_some_and(|line| line.trim_end().ends_with("PRIVATE KEY-----")))?;
    Some(text.split_at(start))
}

/// Writes `data` to `dir/name` through a temp file with mode 0600, fsyncs it, renames it over
/// the old file and fsyncs the directory.
fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temp file is garbage once the write failed.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::certificate::identity::tests::identity;

    #[test]
    fn a_saved_pair_loads_back_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertificateStore::new(dir.path().join("pki"));
        assert!(store.load().unwrap().is_none());
        store.save(&identity("system:node:a")).unwrap();
        store.save(&identity("system:node:b")).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.common_name, "system:node:b");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&dir.path().join("pki")), 0o700);
        assert_eq!(fs::read_dir(dir.path().join("pki")).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn a_file_without_its_key_or_with_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertificateStore::new(dir.path());
        let id = identity("system:node:a");
        fs::write(store.path(), &id.cert_pem).unwrap();
        assert!(matches!(store.load(), Err(CertificateError::Invalid(_))));
        let other = identity("system:node:a");
        fs::write(store.path(), format!("{}{}", id.cert_pem, other.key_pem)).unwrap();
        assert!(matches!(store.load(), Err(CertificateError::Invalid(_))));
    }
}
