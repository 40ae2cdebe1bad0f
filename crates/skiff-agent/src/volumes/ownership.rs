//! Volume ownership for `securityContext.fsGroup`, as the kubelet applies it: every file and
//! directory of the volume gets the group, files gain `g+rw` (`g+r` on read-only volumes such
//! as configMap and secret), directories also `g+x` and setgid, so files created later inherit
//! the group. `fsGroupChangePolicy: OnRootMismatch` skips the walk when the volume root already
//! has the group and those bits.
//!
//! Which volumes get ownership applied is the volume modules' decision, not this module's.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW: u32 = 0o660;
const RO: u32 = 0o440;
const EXEC: u32 = 0o110;
const SETGID: u32 = 0o2000;

fn required_bits(read_only: bool, dir: bool) -> u32 {
    let base = if read_only { RO } else { RW };
    if dir { base | EXEC | SETGID } else { base }
}

/// Whether the walk can be skipped under `OnRootMismatch`: the root has the group, the
/// permission bits the walk would add, and setgid.
fn root_matches(root: &Path, gid: u32, read_only: bool) -> bool {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {
            let want = required_bits(read_only, true);
            meta.gid() == gid && meta.mode() & want == want
        }
        _ => false,
    }
}

fn change(path: &Path, meta: &fs::Metadata, gid: u32, read_only: bool) {
    if let Err(e) = nix::unistd::fchownat(
        None,
        path,
        None,
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        tracing::warn!(path = %path.display(), error = %e, "changing the group of a volume file");
    }
    // A symlink's mode means nothing, and chmod would follow it to its target.
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = (meta.mode() & 0o7777) | required_bits(read_only, meta.is_dir());
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "changing the mode of a volume file");
    }
}

fn walk(path: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), gid, read_only)?;
        }
    }
    // Children first, then the directory itself (as upstream's walk).
    change(path, &meta, gid, read_only);
    Ok(())
}

/// Applies `fs_group` to everything under `dir`. `policy` is `fsGroupChangePolicy`
/// (`OnRootMismatch` or `Always`; unset means `Always`). Nothing happens without an fsGroup.
pub fn apply(dir: &Path, fs_group: Option<i64>, read_only: bool, policy: Option<&str>) -> io::Result<()> {
    let Some(gid) = fs_group.and_then(|g| u32::try_from(g).ok()) else { return Ok(()) };
    if policy == Some("OnRootMismatch") && root_matches(dir, gid, read_only) {
        return Ok(());
    }
    walk(dir, gid, read_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("meta").mode() & 0o7777
    }

    #[test]
    fn adds_group_bits_like_the_kubelet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("vol");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::write(root.join("sub/f"), b"x").expect("write");
        fs::set_permissions(root.join("sub/f"), fs::Permissions::from_mode(0o400)).expect("chmod");
        std::os::unix::fs::symlink("sub/f", root.join("link")).expect("symlink");
        // Our own group: chown to it needs no privilege.
        let gid = nix::unistd::getgid().as_raw();
        apply(&root, Some(gid.into()), false, None).expect("apply");
        assert_eq!(mode(&root.join("sub/f")), 0o660);
        assert_eq!(mode(&root.join("sub")), 0o2770);
        assert_eq!(mode(&root), 0o2775);
        assert_eq!(fs::metadata(root.join("sub/f")).expect("meta").gid(), gid);

        // Read-only volumes only gain g+r; the symlink's target keeps its own mode.
        fs::set_permissions(root.join("sub/f"), fs::Permissions::from_mode(0o400)).expect("chmod");
        apply(&root, Some(gid.into()), true, None).expect("apply");
        assert_eq!(mode(&root.join("sub/f")), 0o440);
    }

    #[test]
    fn on_root_mismatch_skips_a_matching_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("vol");
        fs::create_dir(&root).expect("mkdir");
        fs::write(root.join("f"), b"x").expect("write");
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o2775)).expect("chmod");
        let gid = nix::unistd::getgid().as_raw();
        apply(&root, Some(gid.into()), false, Some("OnRootMismatch")).expect("apply");
        assert_eq!(mode(&root.join("f")), 0o600, "root matched: no walk");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        apply(&root, Some(gid.into()), false, Some("OnRootMismatch")).expect("apply");
        assert_eq!(mode(&root.join("f")), 0o660, "root mismatched: walked");
        // No fsGroup, no change.
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o600)).expect("chmod");
        apply(&root, None, false, None).expect("apply");
        assert_eq!(mode(&root.join("f")), 0o600);
    }
}
