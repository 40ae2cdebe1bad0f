//! The node's image store (`<data-dir>/agent/images`): content-addressed blobs, the list of
//! images with their references, import of tarballs (by the CLI, or dropped into the directory),
//! lookup by reference, removal and garbage collection of unreferenced blobs.
//!
//! Layout:
//! ```text
//! images/
//!   *.tar, *.tar.gz, *.tar.zst   tarballs dropped here are imported automatically
//!   blobs/sha256/<hex>           manifests, configs, layers
//!   images.json                  the image records (atomically replaced, fsynced)
//!   imported.json                dropped tarballs already imported (name, size, mtime)
//!   .lock                        flock held by writers (import, remove, GC)
//! ```
//! Readers never take the lock: `images.json` is replaced by rename, so a read sees either the
//! old or the new list. Writers (possibly another process, e.g. `skiff images import` while the
//! agent runs) serialise on `.lock`. Unpacking layers for containers is [`crate::snapshots`].

mod archive;
pub mod blobs;
pub mod compression;
pub mod gc;
pub mod media_types;
pub mod pull;
pub mod reference;
pub mod registries;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub use archive::host_architecture;
pub use blobs::Blobs;
pub use reference::{InvalidReference, Reference};

/// Image store failures.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The tarball could not be read.
    #[error("not a readable image tarball: {0}")]
    Archive(io::Error),
    /// Content is malformed or not an image.
    #[error("{0}")]
    Invalid(String),
    /// A blob's content does not match its digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was named by.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A blob an image needs is not in the store.
    #[error("missing blob {0}")]
    MissingBlob(String),
    /// No image matches a reference.
    #[error("image {0:?} not found")]
    NotFound(String),
    /// The reference is not a valid image name.
    #[error(transparent)]
    InvalidReference(#[from] InvalidReference),
}

impl ImageError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    /// A failure reading the tarball. tar's messages may quote the bytes it choked on (the
    /// file may be anything, even a secret): keep only the first line, shortened.
    fn archive(source: io::Error) -> Self {
        let text = source.to_string();
        let first = text.lines().next().unwrap_or("");
        let short: String = first.chars().take(120).collect();
        Self::Archive(io::Error::new(source.kind(), short))
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Digest of the (possibly compressed) blob.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// Digest of the manifest (the repo digest reported as `imageID`).
    pub manifest: String,
    /// Digest of the config (the "image id" of `docker images`).
    pub config: String,
    /// Normalised references (`docker.io/library/busybox:latest`), sorted.
    pub references: Vec<String>,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
    /// Total size of manifest, config and layer blobs.
    pub size: u64,
    /// When the image was first imported (seconds since the epoch).
    pub imported: u64,
    /// Digest of the image index (manifest list) the image was pulled through, if any: the
    /// repository digest a multi-platform tag resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

impl ImageRecord {
    /// `repository@digest` for the first reference (what the kubelet reports as `imageID`); the
    /// digest is the index's when the image was pulled through one, as registries name it.
    pub fn image_id(&self) -> String {
        let digest = self.repo_digest();
        match self.references.first().and_then(|r| Reference::parse(r).ok()) {
            Some(r) => format!("{}@{digest}", r.name()),
            None => digest.to_string(),
        }
    }

    /// The digest a registry knows the image by: the index's if it came through one, else the
    /// manifest's.
    pub fn repo_digest(&self) -> &str {
        self.index.as_deref().unwrap_or(&self.manifest)
    }

    /// Whether `digest` names this image (its manifest, its index, or its config).
    pub fn has_digest(&self, digest: &str) -> bool {
        self.manifest == digest || self.config == digest || self.index.as_deref() == Some(digest)
    }
}

/// The parts of an image config a container is built from (OCI image spec `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefaults {
    /// `user[:group]`.
    #[serde(default)]
    pub user: Option<String>,
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Signal that stops the container (e.g. `SIGQUIT`).
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<ContainerDefaults>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Manifest {
    config: ManifestBlob,
    #[serde(default)]
    layers: Vec<ManifestBlob>,
}

#[derive(Deserialize)]
struct ManifestBlob {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Records {
    images: Vec<ImageRecord>,
}

#[derive(Default, Serialize, Deserialize)]
struct Imported {
    /// File name → (size, mtime seconds).
    files: BTreeMap<String, (u64, u64)>,
}

const SMALL_BLOB_LIMIT: u64 = 16 << 20;
const TARBALL_SUFFIXES: [&str; 6] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst"];

/// The image store of one node.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    blobs: Blobs,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ImageError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| ImageError::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| ImageError::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| ImageError::io(path, e.error))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ImageError::io(dir, e))
}

impl ImageStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ImageError> {
        fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
        let blobs = Blobs::open(&dir.join("blobs"))?;
        Ok(Self { dir: dir.to_path_buf(), blobs })
    }

    /// The store's directory (also the drop directory for tarballs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    fn lock(&self) -> Result<Flock<File>, ImageError> {
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io(&path, e))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| ImageError::io(&path, e.into()))
    }

    fn read_json<T: Default + for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, ImageError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(ImageError::io(&path, e)),
        }
    }

    fn write_json(&self, name: &str, value: &impl Serialize) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| ImageError::Invalid(e.to_string()))?;
        write_atomically(&self.dir.join(name), &bytes)
    }

    /// Every image, sorted by first reference.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut images = self.read_json::<Records>("images.json")?.images;
        images.sort_by(|a, b| a.references.first().cmp(&b.references.first()).then(a.manifest.cmp(&b.manifest)));
        Ok(images)
    }

    /// The image `reference` names: by tag, by `name@digest` (manifest digest), or by a bare
    /// manifest or config digest.
    pub fn resolve(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        let images = self.list()?;
        if reference.starts_with("sha256:") {
            return Ok(images.into_iter().find(|i| i.has_digest(reference)));
        }
        let wanted = Reference::parse(reference)?;
        Ok(images.into_iter().find(|image| match &wanted.digest {
            Some(digest) => {
                (image.manifest == *digest || image.index.as_deref() == Some(digest))
                    && image.references.iter().any(|r| Reference::parse(r).is_ok_and(|r| r.name() == wanted.name()))
            }
            None => image.references.contains(&wanted.to_string()),
        }))
    }

    /// The container defaults (entrypoint, cmd, env, …) of `image`.
    pub fn container_defaults(&self, image: &ImageRecord) -> Result<ContainerDefaults, ImageError> {
        let config: ImageConfig = parse(&self.blobs.read_small(&image.config, SMALL_BLOB_LIMIT)?, "image config")?;
        Ok(config.config.unwrap_or_default())
    }

    /// Imports the image tarball at `path`; `progress` is told how many bytes of the file have
    /// been read so far. Returns the images it held.
    pub fn import_file(&self, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<Vec<ImageRecord>, ImageError> {
        let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
        self.import(Progress { inner: file, read: 0, report: progress })
    }

    /// Imports an image tarball from `reader`.
    pub fn import(&self, reader: impl Read) -> Result<Vec<ImageRecord>, ImageError> {
        let _lock = self.lock()?;
        let found = archive::read_archive(reader, &self.blobs);
        let result = found.and_then(|found| self.record(found));
        // Drop what the archive carried besides images (legacy docker `json`/`VERSION` files, or
        // everything after a failure).
        self.collect_garbage_locked()?;
        result
    }

    fn record(&self, found: Vec<archive::FoundImage>) -> Result<Vec<ImageRecord>, ImageError> {
        let mut records = self.read_json::<Records>("images.json")?;
        let mut out = Vec::new();
        for image in found {
            let record = self.build_record(&image.manifest)?;
            let names: Vec<String> = image.names.iter().map(ToString::to_string).collect();
            // A tag points at one image: take it away from any other.
            for other in &mut records.images {
                other.references.retain(|r| !names.contains(r));
            }
            let entry = match records.images.iter_mut().find(|i| i.manifest == record.manifest) {
                Some(existing) => existing,
                None => {
                    records.images.push(record);
                    records.images.last_mut().ok_or_else(|| ImageError::Invalid("empty".into()))?
                }
            };
            for name in names {
                if !entry.references.contains(&name) {
                    entry.references.push(name);
                }
            }
            entry.references.sort();
            tracing::info!(manifest = %entry.manifest, references = ?entry.references, "image imported");
            out.push(entry.clone());
        }
        // Untagged images that lost their last tag to this import stay addressable by digest,
        // as with `docker load`.
        self.write_json("images.json", &records)?;
        Ok(out)
    }

    fn build_record(&self, manifest_digest: &str) -> Result<ImageRecord, ImageError> {
        let manifest: Manifest = parse(&self.blobs.read_small(manifest_digest, SMALL_BLOB_LIMIT)?, "image manifest")?;
        let config: ImageConfig =
            parse(&self.blobs.read_small(&manifest.config.digest, SMALL_BLOB_LIMIT)?, "image config")?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid(format!(
                "image {manifest_digest}: {} layers but {} diff_ids in its config",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut size = self.blobs.size(manifest_digest)? + self.blobs.size(&manifest.config.digest)?;
        let mut layers = Vec::new();
        for (layer, diff_id) in manifest.layers.into_iter().zip(config.rootfs.diff_ids) {
            if !reference::valid_digest(&diff_id) {
                return Err(ImageError::Invalid(format!("invalid diff_id {diff_id:?}")));
            }
            let layer_size =
                self.blobs.size(&layer.digest).map_err(|_| ImageError::MissingBlob(layer.digest.clone()))?;
            size += layer_size;
            layers.push(LayerRecord { digest: layer.digest, media_type: layer.media_type, diff_id, size: layer_size });
        }
        Ok(ImageRecord {
            manifest: manifest_digest.to_string(),
            config: manifest.config.digest,
            references: Vec::new(),
            layers,
            size,
            imported: now(),
            index: None,
        })
    }

    /// The directory pulls download into (`ingest/`): blobs stay there, invisible to garbage
    /// collection, until [`ImageStore::record_pulled`] moves them into the store with their image.
    pub fn ingest_dir(&self) -> Result<PathBuf, ImageError> {
        let dir = self.dir.join("ingest");
        fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        Ok(dir)
    }

    /// Records the image a pull has downloaded: moves its `staged` blobs (verified by the puller
    /// against their digests) into the store, then records manifest `manifest` under `reference`
    /// (the tag, or `name@digest` for a pull by digest), all under the store lock so garbage
    /// collection never sees the blobs without their image. The tag is taken away from any other
    /// image, as a registry's tag names one image. Returns the record.
    pub fn record_pulled(
        &self,
        staged: Vec<blobs::Staged>,
        manifest: &str,
        index: Option<&str>,
        reference: &Reference,
    ) -> Result<ImageRecord, ImageError> {
        let _lock = self.lock()?;
        for blob in staged {
            self.blobs.commit(blob)?;
        }
        let mut records = self.read_json::<Records>("images.json")?;
        let mut record = self.build_record(manifest)?;
        record.index = index.map(str::to_string);
        let name = reference.to_string();
        for other in &mut records.images {
            other.references.retain(|r| *r != name);
        }
        let entry = match records.images.iter_mut().find(|i| i.manifest == record.manifest) {
            Some(existing) => {
                if record.index.is_some() {
                    existing.index = record.index.clone();
                }
                existing
            }
            None => {
                records.images.push(record);
                records.images.last_mut().ok_or_else(|| ImageError::Invalid("empty".into()))?
            }
        };
        if !entry.references.contains(&name) {
            entry.references.push(name);
            entry.references.sort();
        }
        let out = entry.clone();
        self.write_json("images.json", &records)?;
        tracing::info!(manifest = %out.manifest, references = ?out.references, "image pulled");
        Ok(out)
    }

    /// Removes `reference` (a tag, or a digest which removes the whole image). The image goes
    /// once no reference is left; `in_use` (manifest digests of running containers' images)
    /// protects images from disappearing under a container. Returns the references removed.
    pub fn remove(&self, reference: &str, in_use: &HashSet<String>) -> Result<Vec<String>, ImageError> {
        let _lock = self.lock()?;
        let mut records = self.read_json::<Records>("images.json")?;
        let image = self.resolve(reference)?.ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let by_digest = reference.starts_with("sha256:") || reference.contains('@');
        let removed: Vec<String> =
            if by_digest { image.references.clone() } else { vec![Reference::parse(reference)?.to_string()] };
        let Some(pos) = records.images.iter().position(|i| i.manifest == image.manifest) else {
            return Err(ImageError::NotFound(reference.to_string()));
        };
        let entry = &mut records.images[pos];
        entry.references.retain(|r| !removed.contains(r));
        if entry.references.is_empty() || by_digest {
            if in_use.contains(&entry.manifest) {
                return Err(ImageError::Invalid(format!(
                    "image {} is in use by a container; delete the pods using it first",
                    entry.manifest
                )));
            }
            records.images.remove(pos);
        }
        self.write_json("images.json", &records)?;
        self.collect_garbage_locked()?;
        Ok(if removed.is_empty() { vec![image.manifest] } else { removed })
    }

    /// Deletes blobs no image references.
    pub fn collect_garbage(&self) -> Result<usize, ImageError> {
        let _lock = self.lock()?;
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<usize, ImageError> {
        let records = self.read_json::<Records>("images.json")?;
        let live: HashSet<&str> = records
            .images
            .iter()
            .flat_map(|i| {
                [i.manifest.as_str(), i.config.as_str()].into_iter().chain(i.layers.iter().map(|l| l.digest.as_str()))
            })
            .collect();
        let mut removed = 0;
        for digest in self.blobs.list()? {
            if !live.contains(digest.as_str()) {
                self.blobs.remove(&digest)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Imports every tarball in the store directory not imported before (or changed since).
    /// A tarball that fails is logged and retried when it changes. Returns the images imported.
    pub fn import_dropped(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut done = self.read_json::<Imported>("imported.json")?;
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| ImageError::io(&self.dir, e))?;
        let mut changed = false;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !TARBALL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            let stamp = (meta.len(), mtime);
            if done.files.get(&name) == Some(&stamp) {
                continue;
            }
            match self.import_file(&entry.path(), &mut |_| {}) {
                Ok(images) => out.extend(images),
                Err(e) => tracing::warn!(file = %name, error = %e, "could not import dropped image tarball"),
            }
            done.files.insert(name, stamp);
            changed = true;
        }
        if changed {
            self.write_json("imported.json", &done)?;
        }
        Ok(out)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid(format!("{what}: {e}")))
}

/// A reader reporting its progress.
struct Progress<'a, R> {
    inner: R,
    read: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.report)(self.read);
        Ok(n)
    }
}

#[cfg(test)]
pub mod testdata;

#[cfg(test)]
mod tests;
