//! The host's mount table as the agent needs it: `/proc/self/mountinfo` parsed into entries, and
//! the mount syscalls the volume code makes (tmpfs, bind, propagation, unmount).
//!
//! The agent never changes namespace, so its own mountinfo is the host's (the server's) mount
//! namespace. What lives elsewhere: deciding *what* to mount (the volume modules).

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`tmpfs`, `ext4`, …).
    pub fs_type: String,
    /// What is mounted (`/dev/vda1`, `tmpfs`).
    pub source: String,
    /// Per-mount options (`rw,relatime`).
    pub options: String,
    /// Superblock options (`rw,size=1024k`).
    pub super_options: String,
    /// Optional fields (`shared:1`, `master:2`).
    pub optional: Vec<String>,
}

impl MountEntry {
    /// Whether the mount is in a shared peer group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }

    /// Whether the mount receives propagation from a master.
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("master:"))
    }
}

/// Undoes the octal escapes (`\040` for a space) of a mountinfo path.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..=i + 3].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 || fields.len() < sep + 4 {
                return None;
            }
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(fields[4])),
                options: fields[5].to_string(),
                optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
                fs_type: fields[sep + 1].to_string(),
                source: unescape(fields[sep + 2]),
                super_options: fields[sep + 3].to_string(),
            })
        })
        .collect()
}

/// The agent's (the host's) mount table.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse(&t))
}

/// `path` with symlinks resolved, as the mount table names it (unchanged if it does not exist).
pub fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The entries mounted at `path` or below it, deepest first (the order to unmount them in).
/// `path` is resolved first: a mount missed because of a symlink in the path would let a
/// recursive removal reach through it.
pub fn under(entries: &[MountEntry], path: &Path) -> Vec<MountEntry> {
    let path = real(path);
    let path = path.as_path();
    let mut found: Vec<MountEntry> = entries.iter().filter(|e| e.mount_point.starts_with(path)).cloned().collect();
    // Later lines are mounted on top of earlier ones; unmount them first.
    found.reverse();
    found.sort_by_key(|e| std::cmp::Reverse(e.mount_point.components().count()));
    found
}

/// The mount `path` lives on (the entry with the longest mount point containing it; the last
/// one when mounts are stacked). `path` must be canonical.
pub fn containing<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.components().count())
        .and_then(|best| {
            entries.iter().rev().find(|e| e.mount_point == best.mount_point && path.starts_with(&e.mount_point))
        })
}

/// The topmost entry mounted exactly at `path` (resolved first), if any.
pub fn at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let path = real(path);
    entries.iter().rev().find(|e| e.mount_point == path)
}

/// Mounts a tmpfs at `dir` with `options` (`size=…`); retried without `noswap` on kernels that
/// refuse it.
pub fn mount_tmpfs(dir: &Path, options: &[String]) -> nix::Result<()> {
    let data = options.join(",");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    match nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(data.as_str())) {
        Err(nix::errno::Errno::EINVAL) if options.iter().any(|o| o == "noswap") => {
            let data: Vec<&str> = options.iter().filter(|o| *o != "noswap").map(String::as_str).collect();
            nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(data.join(",").as_str()))
        }
        other => other,
    }
}

/// Bind-mounts `source` onto `target` (not recursive).
pub fn bind(source: &Path, target: &Path) -> nix::Result<()> {
    nix::mount::mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
}

/// Makes the mount at `dir` shared (bind-mounting `dir` onto itself first if it is not a mount
/// point), so mounts under it propagate to and from containers.
pub fn ensure_shared(dir: &Path) -> nix::Result<()> {
    let entries = read().map_err(|_| nix::errno::Errno::EIO)?;
    match at(&entries, dir) {
        Some(e) if e.is_shared() => return Ok(()),
        Some(_) => {}
        None => bind(dir, dir)?,
    }
    nix::mount::mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>)
}

/// Unmounts `path`, lazily if it is busy.
pub fn unmount(path: &Path) -> nix::Result<()> {
    match nix::mount::umount2(path, MntFlags::empty()) {
        Err(nix::errno::Errno::EBUSY) => nix::mount::umount2(path, MntFlags::MNT_DETACH),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/vda rw
90 27 0:50 / /var/lib/skiff/pods/u1/volumes/kubernetes.io~secret/a\\040b rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=1024k
91 27 8:1 /data /var/lib/skiff/pods/u1/volume-subpaths/v/c/0 rw,relatime master:3 - ext4 /dev/vda rw
92 90 0:51 / /var/lib/skiff/pods/u1/volumes/kubernetes.io~secret/a\\040b rw - tmpfs tmpfs rw,size=2048k
";

    #[test]
    fn parses_mountinfo_lines() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 5);
        assert!(entries[0].is_shared() && !entries[0].is_slave());
        assert_eq!(entries[2].mount_point, Path::new("/var/lib/skiff/pods/u1/volumes/kubernetes.io~secret/a b"));
        assert_eq!((entries[2].fs_type.as_str(), entries[2].super_options.as_str()), ("tmpfs", "rw,size=1024k"));
        assert_eq!((entries[1].source.as_str(), entries[2].source.as_str()), ("/dev/vda", "tmpfs"));
        assert!(entries[3].is_slave());
        assert_eq!(parse("garbage\n1 2 3\n"), vec![]);
    }

    #[test]
    fn finds_mounts_under_and_containing_a_path() {
        let entries = parse(SAMPLE);
        let pod = Path::new("/var/lib/skiff/pods/u1");
        let under = under(&entries, pod);
        assert_eq!(under.len(), 3);
        // Deepest first; the stacked tmpfs (line 92) before the one below it.
        assert!(under[0].mount_point.ends_with("volume-subpaths/v/c/0"));
        assert_eq!(under[1].super_options, "rw,size=2048k");
        assert_eq!(under[2].super_options, "rw,size=1024k");
        assert!(super::under(&entries, Path::new("/var/lib/skiff/pods/u")).is_empty());
        let on = containing(&entries, Path::new("/var/lib/skiff/pods/u1/volumes/kubernetes.io~secret/a b/x"))
            .expect("containing mount");
        assert_eq!(on.super_options, "rw,size=2048k");
        assert_eq!(containing(&entries, Path::new("/etc/passwd")).map(|e| e.fs_type.as_str()), Some("ext4"));
        assert!(at(&entries, Path::new("/proc")).is_some() && at(&entries, Path::new("/etc")).is_none());
    }

    #[test]
    fn paths_are_resolved_before_matching() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real_dir = tmp.path().join("real");
        std::fs::create_dir(&real_dir).expect("mkdir");
        std::os::unix::fs::symlink(&real_dir, tmp.path().join("link")).expect("symlink");
        let canonical = std::fs::canonicalize(&real_dir).expect("canonical");
        let line = format!("90 27 0:50 / {}/pods/x rw - tmpfs tmpfs rw\n", canonical.display());
        let entries = parse(&line);
        assert_eq!(under(&entries, &tmp.path().join("link")).len(), 1);
        assert!(at(&entries, &tmp.path().join("link/pods/x")).is_none(), "the mount point itself does not exist");
    }
}
