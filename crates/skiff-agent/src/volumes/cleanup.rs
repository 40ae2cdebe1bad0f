//! Tearing down what a pod leaves on the host: every mount under its directory (tmpfs volumes,
//! shared self-binds, subPath binds) is unmounted, deepest first, and only then is the directory
//! removed. If anything stays mounted the directory is kept: removing files through a leftover
//! bind mount would delete host data.
//!
//! Also the sweep of pod directories whose pod no longer exists (deleted while the agent was
//! down).

use std::fs;
use std::io;
use std::path::Path;

use super::mountinfo;

/// Unmounts everything at or below `dir`.
pub fn unmount_all(dir: &Path) -> Result<(), String> {
    let entries = mountinfo::read().map_err(|e| format!("reading the mount table: {e}"))?;
    let mut failed = Vec::new();
    for m in mountinfo::under(&entries, dir) {
        if let Err(e) = mountinfo::unmount(&m.mount_point)
            && e != nix::errno::Errno::EINVAL
            && e != nix::errno::Errno::ENOENT
        {
            failed.push(format!("{}: {e}", m.mount_point.display()));
        }
    }
    let left = mountinfo::read().map(|e| mountinfo::under(&e, dir).len()).unwrap_or(0);
    if left > 0 {
        failed.push(format!("{left} mounts remain under {}", dir.display()));
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// Unmounts everything under `dir`, then removes it (a missing directory is fine).
pub fn remove_dir(dir: &Path) -> Result<(), String> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    unmount_all(dir)?;
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(format!("removing {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Removes `<agent>/pods/<uid>` for every uid not in `live`.
pub fn remove_orphans(agent_dir: &Path, live: &[String]) {
    let Ok(entries) = fs::read_dir(agent_dir.join("pods")) else { return };
    for entry in entries.flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if live.contains(&uid) {
            continue;
        }
        tracing::info!(pod = %uid, "removing the volumes of a pod that no longer exists");
        if let Err(e) = remove_dir(&entry.path()) {
            tracing::warn!(pod = %uid, error = %e, "removing an orphaned pod directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_plain_directories_and_orphans() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pods = tmp.path().join("pods");
        fs::create_dir_all(pods.join("live/volumes")).expect("mkdir");
        fs::create_dir_all(pods.join("gone/volumes/x")).expect("mkdir");
        remove_orphans(tmp.path(), &["live".to_string()]);
        assert!(pods.join("live").exists() && !pods.join("gone").exists());
        remove_dir(&pods.join("live")).expect("remove");
        assert!(!pods.join("live").exists());
        remove_dir(&pods.join("never")).expect("missing is fine");
    }
}
