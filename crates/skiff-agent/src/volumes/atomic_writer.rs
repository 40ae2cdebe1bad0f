//! The kubelet's atomic writer: projects a set of files into a volume directory so that readers
//! only ever see a complete old or a complete new version.
//!
//! Layout of a target directory:
//!
//! ```text
//! <dir>/..2026_01_31_12_00_00.123456789/   the real files, one directory per version
//! <dir>/..data -> ..2026_01_31_12_00_00.123456789
//! <dir>/key    -> ..data/key               one symlink per top-level name of the payload
//! ```
//!
//! A write creates a new timestamped directory, points `..data_tmp` at it and renames it over
//! `..data` (atomic), adds symlinks for new top-level names, removes those that left the payload
//! and finally the previous version. Names starting with `..` are reserved. What does not live
//! here: where payloads come from (the volume modules) and ownership (`ownership`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_FILE_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// One file of a payload.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileProjection {
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

impl fmt::Debug for FileProjection {
    // Payloads carry Secret data: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileProjection {{ {} bytes, mode {:o} }}", self.data.len(), self.mode)
    }
}

/// Files by path relative to the volume (`a`, `dir/b`).
pub type Payload = BTreeMap<String, FileProjection>;

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A payload path is not acceptable (upstream's wording).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A filesystem operation failed.
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

fn io_err(what: impl fmt::Display, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let context = format!("{what} {}", path.display());
    move |e| WriteError::Io(context, e)
}

/// Checks one payload path as upstream does and returns it cleaned (`a//b/./c` → `a/b/c`).
pub fn clean_path(path: &str) -> Result<String, WriteError> {
    if path.is_empty() {
        return Err(WriteError::InvalidPath(format!("must not be empty: {path:?}")));
    }
    if path.starts_with('/') {
        return Err(WriteError::InvalidPath(format!("must be relative path: {path}")));
    }
    if path.len() > MAX_PATH {
        return Err(WriteError::InvalidPath(format!("must be less than or equal to {MAX_PATH} characters")));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(WriteError::InvalidPath(format!("must not contain '..': {path}")));
        }
        if item.len() > MAX_FILE_NAME {
            return Err(WriteError::InvalidPath(format!(
                "filenames must be less than or equal to {MAX_FILE_NAME} characters"
            )));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(WriteError::InvalidPath(format!("must not start with '..': {path}")));
    }
    let cleaned: Vec<&str> = Path::new(path)
        .components()
        .filter_map(|c| if let Component::Normal(n) = c { n.to_str() } else { None })
        .collect();
    Ok(cleaned.join("/"))
}

/// Every path of the payload and all their parent directories (`a/b/c` → `a`, `a/b`, `a/b/c`).
fn payload_paths(payload: &Payload) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for file in payload.keys() {
        let mut acc = String::new();
        for part in file.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            paths.insert(acc.clone());
        }
    }
    paths
}

/// Relative paths of everything below `dir` (files and directories), without following links.
fn existing_paths(dir: &Path) -> io::Result<BTreeSet<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().into_owned());
            }
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    match walk(dir, dir, &mut out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        other => other.map(|()| out),
    }
}

/// Whether any file of `payload` differs from (or is missing in) the version in `old`.
fn differs(payload: &Payload, old: &Path) -> io::Result<bool> {
    for (path, file) in payload {
        match fs::read(old.join(path)) {
            Ok(current) if current == file.data => {}
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn random_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish() as u32
}

/// Creates `..<UTC timestamp>.<random>` in `target` with mode 0755.
fn new_version_dir(target: &Path) -> Result<PathBuf, WriteError> {
    let stamp = jiff::Timestamp::now().strftime("..%Y_%m_%d_%H_%M_%S.").to_string();
    loop {
        let dir = target.join(format!("{stamp}{}", random_suffix()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", &dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating", &dir)(e)),
        }
    }
}

fn write_files(payload: &Payload, dir: &Path) -> Result<(), WriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        fs::write(&full, &file.data).map_err(io_err("writing", &full))?;
        // Set the mode explicitly: the umask must not change it.
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode)).map_err(io_err("chmod", &full))?;
    }
    Ok(())
}

/// Projects `payload` into `target` (which must exist). `set_perms` runs on the whole volume
/// after the new version is written and before it becomes visible (fsGroup ownership). Returns
/// whether anything changed.
pub fn write(
    target: &Path,
    payload: &Payload,
    set_perms: &dyn Fn(&Path) -> io::Result<()>,
) -> Result<bool, WriteError> {
    let mut clean = Payload::new();
    for (path, file) in payload {
        clean.insert(clean_path(path)?, file.clone());
    }
    let data_dir = target.join(DATA_DIR);
    let old_version = match fs::read_link(&data_dir) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading", &data_dir)(e)),
    };
    let wanted = payload_paths(&clean);
    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_version {
        let old_dir = target.join(old);
        to_remove = existing_paths(&old_dir).map_err(io_err("walking", &old_dir))?;
        to_remove.retain(|p| !wanted.contains(p));
        if !differs(&clean, &old_dir).map_err(io_err("reading", &old_dir))? && to_remove.is_empty() {
            return Ok(false);
        }
    }
    let version = new_version_dir(target)?;
    let result = (|| {
        write_files(&clean, &version)?;
        set_perms(target).map_err(io_err("setting permissions of", target))?;
        let tmp = target.join(NEW_DATA_DIR);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("removing", &tmp)(e)),
            _ => {}
        }
        let name = version.file_name().map(PathBuf::from).unwrap_or_default();
        std::os::unix::fs::symlink(&name, &tmp).map_err(io_err("linking", &tmp))?;
        fs::rename(&tmp, &data_dir).map_err(io_err("renaming", &tmp))
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&version);
        return Err(e);
    }
    // User-visible names: one symlink per top-level component, through `..data`.
    for top in clean.keys().filter_map(|p| p.split('/').next()).collect::<BTreeSet<_>>() {
        let visible = target.join(top);
        if fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &visible).map_err(io_err("linking", &visible))?;
        }
    }
    for gone in to_remove.iter().filter(|p| !p.contains('/')) {
        let visible = target.join(gone);
        if let Err(e) = fs::remove_file(&visible)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(io_err("removing", &visible)(e));
        }
    }
    if let Some(old) = old_version {
        let old_dir = target.join(old);
        fs::remove_dir_all(&old_dir).map_err(io_err("removing", &old_dir))?;
    }
    Ok(true)
}

/// Whether `target` holds a version written by [`write`] (a volume a previous agent set up).
pub fn has_data(target: &Path) -> bool {
    fs::read_link(target.join(DATA_DIR)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection { data: data.as_bytes().to_vec(), mode }
    }

    fn no_perms(_: &Path) -> io::Result<()> {
        Ok(())
    }

    fn versions(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_the_kubelet_layout_and_swaps_versions() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let payload: Payload =
            [("a".to_string(), file("one", 0o644)), ("sub/b".to_string(), file("two", 0o400))].into();
        assert!(write(dir, &payload, &no_perms).expect("write"));
        let first = versions(dir);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with(&jiff::Timestamp::now().strftime("..%Y_").to_string()), "{first:?}");
        assert_eq!(fs::read_link(dir.join("..data")).expect("..data"), Path::new(&first[0]));
        assert_eq!(fs::read_link(dir.join("a")).expect("a"), Path::new("..data/a"));
        assert_eq!(fs::read_link(dir.join("sub")).expect("sub"), Path::new("..data/sub"));
        assert_eq!(fs::read_to_string(dir.join("sub/b")).expect("read"), "two");
        assert_eq!(fs::metadata(dir.join("sub/b")).expect("meta").mode() & 0o7777, 0o400);
        assert_eq!(fs::metadata(dir.join(&first[0])).expect("meta").mode() & 0o7777, 0o755);

        // The same payload again changes nothing.
        assert!(!write(dir, &payload, &no_perms).expect("write"));
        assert_eq!(versions(dir), first);

        // A new version: `a` changes, `sub` goes away, `c` appears; the old version is removed.
        let payload: Payload = [("a".to_string(), file("uno", 0o644)), ("c".to_string(), file("3", 0o600))].into();
        assert!(write(dir, &payload, &no_perms).expect("write"));
        let second = versions(dir);
        assert_eq!(second.len(), 1);
        assert_ne!(second, first);
        assert_eq!(fs::read_to_string(dir.join("a")).expect("read"), "uno");
        assert_eq!(fs::read_to_string(dir.join("c")).expect("read"), "3");
        assert!(fs::symlink_metadata(dir.join("sub")).is_err(), "stale user-visible link removed");
        assert!(!dir.join("..data_tmp").exists());
    }

    #[test]
    fn removing_only_a_key_still_writes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let both: Payload = [("a".to_string(), file("1", 0o644)), ("b".to_string(), file("2", 0o644))].into();
        write(dir, &both, &no_perms).expect("write");
        let only_a: Payload = [("a".to_string(), file("1", 0o644))].into();
        assert!(write(dir, &only_a, &no_perms).expect("write"));
        assert!(fs::symlink_metadata(dir.join("b")).is_err());
        // An empty payload (optional object missing) is a valid version.
        assert!(write(dir, &Payload::new(), &no_perms).expect("write"));
        assert!(has_data(dir) && fs::symlink_metadata(dir.join("a")).is_err());
    }

    #[test]
    fn rejects_paths_like_upstream() {
        assert_eq!(clean_path("a//b/./c").expect("clean"), "a/b/c");
        let msg = |p: &str| clean_path(p).expect_err("invalid").to_string();
        assert_eq!(msg("/etc/x"), "invalid path: must be relative path: /etc/x");
        assert_eq!(msg("a/../b"), "invalid path: must not contain '..': a/../b");
        assert_eq!(msg("..data"), "invalid path: must not start with '..': ..data");
        assert_eq!(msg(""), "invalid path: must not be empty: \"\"");
        let tmp = tempfile::tempdir().expect("tempdir");
        let bad: Payload = [("../x".to_string(), file("1", 0o644))].into();
        assert!(write(tmp.path(), &bad, &no_perms).is_err());
        assert!(versions(tmp.path()).is_empty(), "nothing written for an invalid payload");
    }

    #[test]
    fn a_failing_permission_hook_leaves_the_old_version() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let v1: Payload = [("a".to_string(), file("1", 0o644))].into();
        write(dir, &v1, &no_perms).expect("write");
        let before = versions(dir);
        let v2: Payload = [("a".to_string(), file("2", 0o644))].into();
        let fail = |_: &Path| Err(io::Error::other("no"));
        assert!(write(dir, &v2, &fail).is_err());
        assert_eq!(versions(dir), before);
        assert_eq!(fs::read_to_string(dir.join("a")).expect("read"), "1");
    }

    #[test]
    fn debug_never_shows_content() {
        let f = file("s3cr3t", 0o400);
        assert!(!format!("{f:?}").contains("s3cr3t"));
    }
}
