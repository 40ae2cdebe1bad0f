//! `subPath` and `subPathExpr` mounts, made safe the way the kubelet makes them: the path is
//! validated, `$(VAR)` expanded from the container's environment, missing directories created
//! without following symlinks out of the volume, and the resolved path (symlinks evaluated once,
//! checked to stay inside the volume, then opened component by component without following any
//! link) bind-mounted at `<pod>/volume-subpaths/<volume>/<container>/<index>`, which is what the
//! container gets. A configMap key mounted this way keeps the version it was mounted with, as
//! upstream: later updates only reach new container instances.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path};

use super::mountinfo;

/// Checks a (expanded) subPath as the kubelet does; the messages are the container's
/// `CreateContainerConfigError`.
pub fn validate(sub: &str) -> Result<(), String> {
    if sub.starts_with('/') {
        return Err(format!("error SubPath `{sub}` must not be an absolute path"));
    }
    if sub.split('/').any(|p| p == "..") {
        return Err(format!("unable to provision SubPath `{sub}`: must not contain '..'"));
    }
    Ok(())
}

/// Expands `$(VAR)` in a `subPathExpr` from `env` (`$$` is a literal `$`). Variables that are
/// unset or empty are an error naming them all, sorted, as upstream.
pub fn expand(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut missing: Vec<String> = Vec::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
                Some(v) if !v.is_empty() => out.push_str(v),
                _ => {
                    if !missing.iter().any(|m| m == name) {
                        missing.push(name.to_string());
                    }
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        missing.sort();
        Err(format!("missing value for {}", missing.join(", ")))
    }
}

/// Opens `path` as an `O_PATH` handle without following a final symlink.
fn open_path(path: &Path, directory: bool) -> io::Result<fs::File> {
    let mut flags = nix::libc::O_PATH | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
    if directory {
        flags |= nix::libc::O_DIRECTORY;
    }
    fs::OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// `/proc/self/fd/<fd>`: the path of an open handle (what `openat` on it resolves against).
fn fd_path(file: &fs::File) -> std::path::PathBuf {
    Path::new("/proc/self/fd").join(file.as_raw_fd().to_string())
}

fn normal_parts(rel: &Path) -> io::Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::other(format!("unexpected path component in {}", rel.display()))),
        })
        .collect()
}

/// Opens `rel` below the directory `root`, refusing symlinks at every step.
fn open_beneath(root: &Path, rel: &Path) -> io::Result<fs::File> {
    let mut current = open_path(root, true)?;
    for part in normal_parts(rel)? {
        let next = open_path(&fd_path(&current).join(part), false)?;
        if next.metadata()?.file_type().is_symlink() {
            return Err(io::Error::other(format!("{} is a symlink", part.to_string_lossy())));
        }
        current = next;
    }
    Ok(current)
}

/// Creates the missing directories of `sub` inside `volume` with `volume`'s permission bits,
/// never following a symlink (so nothing is created outside the volume).
pub fn make_dirs(volume: &Path, sub: &str) -> io::Result<()> {
    let perm = fs::metadata(volume)?.mode() & 0o777;
    let mut current = open_path(volume, true)?;
    for part in normal_parts(Path::new(sub))? {
        let candidate = fd_path(&current).join(part);
        let next = match open_path(&candidate, true) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                nix::sys::stat::mkdirat(
                    Some(current.as_raw_fd()),
                    part,
                    nix::sys::stat::Mode::from_bits_truncate(perm),
                )
                .map_err(io::Error::from)?;
                let created = open_path(&candidate, true)?;
                fs::set_permissions(fd_path(&created), fs::Permissions::from_mode(perm))?;
                created
            }
            Err(e) => return Err(e),
        };
        current = next;
    }
    Ok(())
}

/// Bind-mounts `volume/sub` at `target` safely (see the module doc). `target` is replaced if a
/// previous instance left it mounted.
pub fn bind(volume: &Path, sub: &str, target: &Path) -> io::Result<()> {
    let volume_real = fs::canonicalize(volume)?;
    let path_real = fs::canonicalize(volume.join(sub))?;
    let rel = path_real
        .strip_prefix(&volume_real)
        .map_err(|_| io::Error::other(format!("subpath {:?} not within volume path {:?}", path_real, volume_real)))?;
    let handle = open_beneath(&volume_real, rel)?;
    let is_dir = handle.metadata()?.is_dir();
    let entries = mountinfo::read()?;
    for m in mountinfo::under(&entries, target) {
        mountinfo::unmount(&m.mount_point).map_err(io::Error::from)?;
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() != is_dir => {
            if meta.is_dir() {
                fs::remove_dir(target)?;
            } else {
                fs::remove_file(target)?;
            }
        }
        _ => {}
    }
    if is_dir {
        fs::create_dir_all(target)?;
    } else if fs::symlink_metadata(target).is_err() {
        fs::write(target, b"")?;
    }
    mountinfo::bind(&fd_path(&handle), target).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn validates_like_the_kubelet() {
        assert_eq!(validate("a/b"), Ok(()));
        assert_eq!(validate("/etc"), Err("error SubPath `/etc` must not be an absolute path".into()));
        assert_eq!(validate("a/../../b"), Err("unable to provision SubPath `a/../../b`: must not contain '..'".into()));
        assert_eq!(validate("a..b"), Ok(()));
    }

    #[test]
    fn expands_sub_path_expr() {
        let e = env(&[("POD", "web-0"), ("NS", "prod"), ("EMPTY", "")]);
        assert_eq!(expand("logs/$(NS)/$(POD)", &e), Ok("logs/prod/web-0".into()));
        assert_eq!(expand("cost$$5", &e), Ok("cost$5".into()));
        assert_eq!(expand("$(ZED)/$(EMPTY)/$(ALPHA)", &e), Err("missing value for ALPHA, EMPTY, ZED".into()));
        assert_eq!(expand("plain", &e), Ok("plain".into()));
    }

    #[test]
    fn make_dirs_stays_inside_the_volume() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let volume = tmp.path().join("vol");
        fs::create_dir(&volume).expect("mkdir");
        fs::set_permissions(&volume, fs::Permissions::from_mode(0o770)).expect("chmod");
        make_dirs(&volume, "a/b").expect("make");
        assert_eq!(fs::metadata(volume.join("a/b")).expect("meta").mode() & 0o777, 0o770);
        make_dirs(&volume, "a/b").expect("idempotent");
        // A symlink pointing outside is refused, and nothing is created through it.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, volume.join("escape")).expect("symlink");
        assert!(make_dirs(&volume, "escape/x").is_err());
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn open_beneath_refuses_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::create_dir(root.join("d")).expect("mkdir");
        fs::write(root.join("d/f"), b"x").expect("write");
        std::os::unix::fs::symlink("d", root.join("l")).expect("symlink");
        assert!(open_beneath(root, Path::new("d/f")).expect("open").metadata().expect("meta").is_file());
        assert!(open_beneath(root, Path::new("l/f")).is_err());
    }
}
