//! hostPath volumes (and PersistentVolumes backed by a host path): the `type` checks of the
//! kubelet with its messages, creating the path for `DirectoryOrCreate` and `FileOrCreate`.
//! An unset type checks nothing; a missing path is then created as a directory when the
//! container is set up, as containerd does.
//!
//! The path itself is bind-mounted into containers as is; nothing is mounted on the host.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// What is at a path, in the kubelet's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

fn file_type(path: &Path) -> Option<FileType> {
    let meta = fs::metadata(path).ok()?;
    let ft = meta.file_type();
    Some(if ft.is_dir() {
        FileType::Directory
    } else if ft.is_file() {
        FileType::File
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::Other
    })
}

fn go_io_error(op: &str, path: &str, e: &io::Error) -> String {
    // Go's *PathError: "open /x: no such file or directory" (without Rust's "(os error 2)").
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_lowercase();
    format!("{op} {path}: {text}")
}

fn expect(path: &str, want: FileType, what: &str) -> Result<(), String> {
    if file_type(Path::new(path)) == Some(want) {
        Ok(())
    } else {
        Err(format!("hostPath type check failed: {path} is not a {what}"))
    }
}

/// Checks (or creates) `path` for hostPath type `kind` (`""` when unset).
pub fn setup(path: &str, kind: &str) -> Result<(), String> {
    if path.split('/').any(|p| p == "..") {
        return Err(format!("invalid HostPath `{path}`: must not contain '..'"));
    }
    let p = Path::new(path);
    let exists = fs::metadata(p).is_ok();
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if !exists => {
            fs::create_dir_all(p).map_err(|e| go_io_error("mkdir", path, &e))?;
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(|e| go_io_error("chmod", path, &e))
        }
        "DirectoryOrCreate" | "Directory" => expect(path, FileType::Directory, "directory"),
        "FileOrCreate" if !exists => {
            // Like the kubelet: the parent directory must already exist.
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(p)
                .map(|_| ())
                .map_err(|e| go_io_error("open", path, &e))?;
            fs::set_permissions(p, fs::Permissions::from_mode(0o644)).map_err(|e| go_io_error("chmod", path, &e))
        }
        "FileOrCreate" | "File" => expect(path, FileType::File, "file"),
        "Socket" => expect(path, FileType::Socket, "socket file"),
        "CharDevice" => expect(path, FileType::CharDevice, "character device"),
        "BlockDevice" => expect(path, FileType::BlockDevice, "block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// Creates a missing unset-type hostPath as a directory (what containerd does for a bind source
/// that does not exist).
pub fn create_missing(path: &Path) -> Result<(), String> {
    if fs::symlink_metadata(path).is_err() {
        fs::create_dir_all(path).map_err(|e| go_io_error("mkdir", &path.to_string_lossy(), &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_checks_speak_like_the_kubelet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_string_lossy().into_owned();
        let file = format!("{dir}/f");
        fs::write(&file, b"x").expect("write");
        let sock = format!("{dir}/s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("socket");

        assert_eq!(setup(&dir, "Directory"), Ok(()));
        assert_eq!(setup(&file, "Directory"), Err(format!("hostPath type check failed: {file} is not a directory")));
        assert_eq!(setup(&dir, "File"), Err(format!("hostPath type check failed: {dir} is not a file")));
        assert_eq!(setup(&file, "FileOrCreate"), Ok(()));
        assert_eq!(setup(&sock, "Socket"), Ok(()));
        assert_eq!(setup(&file, "Socket"), Err(format!("hostPath type check failed: {file} is not a socket file")));
        assert_eq!(setup("/dev/null", "CharDevice"), Ok(()));
        assert_eq!(
            setup(&file, "CharDevice"),
            Err(format!("hostPath type check failed: {file} is not a character device"))
        );
        assert_eq!(
            setup("/dev/null", "BlockDevice"),
            Err("hostPath type check failed: /dev/null is not a block device".to_string())
        );
        let missing = format!("{dir}/missing");
        assert_eq!(
            setup(&missing, "Directory"),
            Err(format!("hostPath type check failed: {missing} is not a directory"))
        );
        assert_eq!(setup(&missing, ""), Ok(()), "unset type checks nothing");
        assert_eq!(setup(&dir, "Weird"), Err("Weird is an invalid volume type".to_string()));
        assert_eq!(setup("/a/../b", ""), Err("invalid HostPath `/a/../b`: must not contain '..'".to_string()));
    }

    #[test]
    fn or_create_types_create_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        assert_eq!(setup(&dir.to_string_lossy(), "DirectoryOrCreate"), Ok(()));
        assert!(dir.is_dir());
        let file = tmp.path().join("a/new");
        assert_eq!(setup(&file.to_string_lossy(), "FileOrCreate"), Ok(()));
        assert!(file.is_file());
        let orphan = tmp.path().join("nope/new");
        let err = setup(&orphan.to_string_lossy(), "FileOrCreate").expect_err("no parent");
        assert_eq!(err, format!("open {}: no such file or directory", orphan.display()));
        let unset = tmp.path().join("c/d");
        create_missing(&unset).expect("create");
        assert!(unset.is_dir());
    }
}
