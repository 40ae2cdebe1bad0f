//! Layer snapshots (`<data-dir>/agent/snapshots/<diff-id hex>/`): each image layer unpacked once
//! into its own directory, with OCI whiteouts turned into overlayfs whiteouts, so that a
//! container's root is an overlay of its image's snapshots plus its own upper directory.
//!
//! A snapshot is unpacked into a temporary directory and renamed into place when complete (its
//! uncompressed digest verified against the image config's `diff_id`), so a crash never leaves a
//! half-unpacked layer that looks finished, and concurrent preparers of one layer do not clash.
//! Within the process, one preparer unpacks a layer while the others wait for it (a hundred pods
//! of a new image must not unpack it a hundred times).
//! Mounting the overlay belongs to the container code, not here.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::images::blobs::{Blobs, HashingReader};
use crate::images::{ImageError, ImageRecord, compression};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The snapshot directory of one node.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    /// Layers being unpacked by this process (their diff ids), and who waits for them.
    unpacking: Arc<(Mutex<HashSet<String>>, Condvar)>,
}

impl Snapshots {
    /// Opens (creating) the snapshot directory `dir`, removing leftovers of interrupted unpacks.
    pub fn open(dir: &Path) -> Result<Self, ImageError> {
        fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
        for entry in fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(Self { dir: dir.to_path_buf(), unpacking: Arc::default() })
    }

    /// The directory of the layer with uncompressed digest `diff_id`.
    pub fn path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        if !crate::images::reference::valid_digest(diff_id) {
            return Err(ImageError::Invalid(format!("not a sha256 digest: {diff_id:?}")));
        }
        Ok(self.dir.join(&diff_id["sha256:".len()..]))
    }

    /// Unpacks every layer of `image` not unpacked yet and returns the layer directories, top
    /// layer first (the order of overlayfs `lowerdir`).
    pub fn prepare(&self, blobs: &Blobs, image: &ImageRecord) -> Result<Vec<PathBuf>, ImageError> {
        let mut dirs = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let path = self.path(&layer.diff_id)?;
            if !path.is_dir() && self.claim(&layer.diff_id, &path) {
                let unpacked = blobs.open_blob(&layer.digest).and_then(|b| self.unpack(b, &layer.diff_id, &path));
                self.release(&layer.diff_id);
                unpacked?;
            }
            dirs.push(path);
        }
        dirs.reverse();
        Ok(dirs)
    }

    /// Whether this caller should unpack layer `diff_id` into `path`: false once someone else
    /// has (waiting while another caller of this process is at it).
    fn claim(&self, diff_id: &str, path: &Path) -> bool {
        let (lock, done) = &*self.unpacking;
        let mut busy = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while busy.contains(diff_id) {
            busy = done.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
        if path.is_dir() {
            return false;
        }
        busy.insert(diff_id.to_string());
        true
    }

    /// The unpacking of `diff_id` by this caller is over (done or failed).
    fn release(&self, diff_id: &str) {
        let (lock, done) = &*self.unpacking;
        lock.lock().unwrap_or_else(PoisonError::into_inner).remove(diff_id);
        done.notify_all();
    }

    fn unpack(&self, blob: impl Read, diff_id: &str, dest: &Path) -> Result<(), ImageError> {
        let tmp =
            tempfile::Builder::new().prefix(".tmp").tempdir_in(&self.dir).map_err(|e| ImageError::io(&self.dir, e))?;
        let mut hashing = HashingReader::new(compression::decompress(blob)?);
        unpack_layer(&mut hashing, tmp.path())?;
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| ImageError::io(dest, e))?;
        let (actual, _) = hashing.finish();
        if actual != diff_id {
            return Err(ImageError::DigestMismatch { expected: diff_id.to_string(), actual });
        }
        fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| ImageError::io(tmp.path(), e))?;
        let tmp = tmp.keep();
        match fs::rename(&tmp, dest) {
            Ok(()) => Ok(()),
            // Someone else finished the same layer first.
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(ImageError::io(dest, e))
            }
        }
    }

    /// Removes the snapshots whose diff id is not in `keep`; returns how many went.
    pub fn remove_unused(&self, keep: &HashSet<String>) -> Result<usize, ImageError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(|e| ImageError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| ImageError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || keep.contains(&format!("sha256:{name}")) {
                continue;
            }
            fs::remove_dir_all(entry.path()).map_err(|e| ImageError::io(&entry.path(), e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// `error: cause: cause…` (tar hides the real cause of an unpack failure in the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Unpacks one layer tar into `dest`, keeping owners, modes and xattrs and turning `.wh.` files
/// into overlayfs whiteouts.
fn unpack_layer(reader: impl Read, dest: &Path) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let bad = |e: io::Error| ImageError::Invalid(format!("unpacking layer: {}", error_chain(&e)));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(ImageError::Invalid(format!("layer path {} leaves the layer", path.display())));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&parent).map_err(|e| ImageError::io(&parent, e))?;
            if name == OPAQUE_MARKER {
                xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(|e| ImageError::io(&parent, e))?;
            } else {
                let target = parent.join(hidden);
                let _ = fs::remove_file(&target);
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| ImageError::io(&target, e.into()))?;
            }
            continue;
        }
        entry.unpack_in(dest).map_err(bad)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ImageStore;
    use crate::images::testdata::{Entry, layer, oci_layout};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    #[test]
    fn unpacks_layers_once_with_whiteouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(&dir.path().join("images")).expect("store");
        let snaps = Snapshots::open(&dir.path().join("snapshots")).expect("snapshots");
        let base = layer(&[
            Entry::Dir("etc"),
            Entry::File("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644),
            Entry::Dir("data"),
            Entry::File("data/old", b"old", 0o600),
            Entry::File("gone", b"x", 0o644),
        ]);
        let mut top_entries = vec![Entry::File("bin-hello", b"#!/bin/sh\necho hi\n", 0o755)];
        if is_root() {
            top_entries.push(Entry::File("data/.wh..wh..opq", b"", 0o644));
            top_entries.push(Entry::File(".wh.gone", b"", 0o644));
        }
        let top = layer(&top_entries);
        let (tarball, _) = oci_layout("test/img:1", &[base, top], &["sh"]);
        let image = store.import(&tarball[..]).expect("import").remove(0);
        let dirs = snaps.prepare(store.blobs(), &image).expect("prepare");
        assert_eq!(dirs.len(), 2);
        let (top_dir, base_dir) = (&dirs[0], &dirs[1]);
        assert_eq!(fs::read(base_dir.join("etc/passwd")).expect("read"), b"root:x:0:0::/:/bin/sh\n");
        assert_eq!(fs::metadata(base_dir.join("data/old")).expect("meta").mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(top_dir.join("bin-hello")).expect("meta").mode() & 0o777, 0o755);
        if is_root() {
            let wh = fs::metadata(top_dir.join("gone")).expect("whiteout");
            assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
            assert_eq!(xattr::get(top_dir.join("data"), "trusted.overlay.opaque").expect("xattr"), Some(b"y".to_vec()));
            assert!(!top_dir.join("data/.wh..wh..opq").exists());
        }
        // Prepared again: nothing is unpacked twice (the marker file we add survives).
        fs::write(base_dir.join("marker"), b"m").expect("marker");
        assert_eq!(snaps.prepare(store.blobs(), &image).expect("again"), dirs);
        assert!(base_dir.join("marker").exists());
        // Unused snapshots go.
        let keep: HashSet<String> = [image.layers[0].diff_id.clone()].into();
        assert_eq!(snaps.remove_unused(&keep).expect("gc"), 1);
        assert!(base_dir.exists() && !top_dir.exists());
    }

    #[test]
    fn concurrent_preparers_of_a_layer_unpack_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snaps = Snapshots::open(dir.path()).expect("snapshots");
        let id = format!("sha256:{}", "c".repeat(64));
        let path = snaps.path(&id).expect("path");
        assert!(snaps.claim(&id, &path), "the first preparer unpacks");
        let (other, other_id, other_path) = (snaps.clone(), id.clone(), path.clone());
        let waiter = std::thread::spawn(move || other.claim(&other_id, &other_path));
        // The layer is complete when the first preparer lets go: the waiter does not unpack.
        fs::create_dir(&path).expect("unpacked");
        snaps.release(&id);
        assert!(!waiter.join().expect("join"));
        // A failed unpack leaves the layer to the next preparer.
        let failed = format!("sha256:{}", "d".repeat(64));
        let failed_path = snaps.path(&failed).expect("path");
        assert!(snaps.claim(&failed, &failed_path));
        snaps.release(&failed);
        assert!(snaps.claim(&failed, &failed_path));
    }

    #[test]
    fn refuses_a_layer_whose_digest_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snaps = Snapshots::open(dir.path()).expect("snapshots");
        let data = layer(&[Entry::File("a", b"a", 0o644)]);
        let wrong = format!("sha256:{}", "b".repeat(64));
        let dest = snaps.path(&wrong).expect("path");
        assert!(matches!(snaps.unpack(&data[..], &wrong, &dest), Err(ImageError::DigestMismatch { .. })));
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0, "no temporary directory left");
    }
}
