//! The content-addressed blob directory (`blobs/sha256/<hex>`): writing a stream under its
//! sha256 digest (hashed while copied, fsynced, then renamed into place so a crash never leaves a
//! partial blob under a digest), opening and deleting blobs.
//!
//! What blobs mean (manifests, configs, layers) is decided by the image store, not here.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;

/// A blob downloaded (and verified) outside the store, waiting to be moved in by
/// [`Blobs::commit`].
#[derive(Debug)]
pub struct Staged {
    /// Its `sha256:` digest, already checked against its content.
    pub digest: String,
    /// The file holding it.
    pub file: tempfile::TempPath,
}

/// A directory of blobs named by their sha256 digest.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

/// Hex-encodes bytes (lowercase).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), len: 0 }
    }

    /// The `sha256:<hex>` digest and length of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex(&self.hasher.finalize())), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl Blobs {
    /// Opens (creating) the blob directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, ImageError> {
        let dir = dir.join("sha256");
        fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        Ok(Self { dir })
    }

    /// The file of `digest` (which must be a valid `sha256:` digest).
    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        if !super::reference::valid_digest(digest) {
            return Err(ImageError::Invalid(format!("not a sha256 digest: {digest:?}")));
        }
        Ok(self.dir.join(&digest["sha256:".len()..]))
    }

    /// Whether the blob `digest` is present.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Copies `reader` into the store and returns its digest and size. With `expected`, a stream
    /// whose digest differs is discarded with [`ImageError::DigestMismatch`].
    pub fn write(&self, reader: impl Read, expected: Option<&str>) -> Result<(String, u64), ImageError> {
        let tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| ImageError::io(&self.dir, e))?;
        let mut hashing = HashingReader::new(reader);
        {
            let mut out = io::BufWriter::with_capacity(1 << 20, tmp.as_file());
            io::copy(&mut hashing, &mut out).map_err(|e| ImageError::io(tmp.path(), e))?;
            out.flush().map_err(|e| ImageError::io(tmp.path(), e))?;
        }
        let (digest, size) = hashing.finish();
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ImageError::DigestMismatch { expected: expected.to_string(), actual: digest });
        }
        let dest = self.path(&digest)?;
        if !dest.exists() {
            tmp.as_file().sync_all().map_err(|e| ImageError::io(tmp.path(), e))?;
            tmp.persist(&dest).map_err(|e| ImageError::io(&dest, e.error))?;
        }
        Ok((digest, size))
    }

    /// Moves a staged blob into place (fsynced first; a blob already present is kept and the
    /// staged copy dropped).
    pub fn commit(&self, staged: Staged) -> Result<(), ImageError> {
        let dest = self.path(&staged.digest)?;
        if dest.exists() {
            return Ok(());
        }
        File::open(&staged.file).and_then(|f| f.sync_all()).map_err(|e| ImageError::io(&staged.file, e))?;
        match fs::rename(&staged.file, &dest) {
            Ok(()) => Ok(()),
            // Across file systems (an unusual layout): copy under the digest instead.
            Err(_) => {
                let file = File::open(&staged.file).map_err(|e| ImageError::io(&staged.file, e))?;
                self.write(file, Some(&staged.digest)).map(|_| ())
            }
        }
    }

    /// Stores `bytes` and returns their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<String, ImageError> {
        Ok(self.write(bytes, None)?.0)
    }

    /// Opens the blob `digest`.
    pub fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::MissingBlob(digest.to_string()),
            _ => ImageError::io(&path, e),
        })
    }

    /// Reads a small blob (a manifest or config) fully, refusing anything over `limit` bytes.
    pub fn read_small(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| ImageError::io(&self.dir, e))?;
        if bytes.len() as u64 > limit {
            return Err(ImageError::Invalid(format!("blob {digest} is larger than {limit} bytes")));
        }
        Ok(bytes)
    }

    /// Every digest present.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| ImageError::io(&self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io(&self.dir, e))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if super::reference::valid_digest(&digest) {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Size in bytes of the blob `digest`.
    pub fn size(&self, digest: &str) -> Result<u64, ImageError> {
        let path = self.path(digest)?;
        Ok(fs::metadata(&path).map_err(|e| ImageError::io(&path, e))?.len())
    }

    /// Deletes the blob `digest` (absent is fine).
    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        let path = self.path(digest)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_digest_and_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let (digest, size) = blobs.write(&b"hello"[..], None).expect("write");
        assert_eq!(digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(size, 5);
        assert!(blobs.contains(&digest));
        assert_eq!(blobs.read_small(&digest, 10).expect("read"), b"hello");
        assert!(blobs.read_small(&digest, 4).is_err());
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(blobs.write(&b"other"[..], Some(&wrong)), Err(ImageError::DigestMismatch { .. })));
        assert_eq!(blobs.list().expect("list"), vec![digest.clone()]);
        blobs.remove(&digest).expect("remove");
        assert!(!blobs.contains(&digest));
        assert!(blobs.path("sha256:../../etc").is_err());
    }
}
