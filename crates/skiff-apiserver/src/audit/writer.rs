//! The audit log file: JSON lines appended by one thread, off the request path, with
//! lumberjack-style rotation as upstream's `--audit-log-max*` flags (size in megabytes, rotated
//! files named `<name>-<timestamp>.<ext>`, at most `maxbackup` kept, none older than `maxage`
//! days).
//!
//! What does not live here: deciding what to log (`policy`, the `audit` module).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Rotation settings (0 disables each limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file would exceed this many megabytes.
    pub max_size_mb: u32,
    /// Rotated files kept.
    pub max_backups: u32,
    /// Days rotated files are kept.
    pub max_age_days: u32,
}

/// An append-only log file that rotates itself (or standard output for `-`).
pub struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    size: u64,
}

impl LogFile {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let mut log = Self { path: path.to_path_buf(), rotation, file: None, size: 0 };
        if !log.is_stdout() {
            log.open_file()?;
        }
        Ok(log)
    }

    fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    fn open_file(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Appends one line (rotating first when it would not fit).
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.is_stdout() {
            let mut out = std::io::stdout().lock();
            out.write_all(line)?;
            return out.write_all(b"\n");
        }
        let max = u64::from(self.rotation.max_size_mb) * 1024 * 1024;
        if max > 0 && self.size > 0 && self.size + line.len() as u64 + 1 > max {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.open_file()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(line)?;
            f.write_all(b"\n")?;
            self.size += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => std::io::stdout().flush(),
        }
    }

    /// Moves the current file aside under a timestamped name and removes old backups.
    pub fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let (stem, ext) = self.name_parts();
        let stamp = jiff::Timestamp::now().strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string();
        let mut backup = self.path.with_file_name(format!("{stem}-{stamp}{ext}"));
        let mut n = 1;
        while backup.exists() {
            n += 1;
            backup = self.path.with_file_name(format!("{stem}-{stamp}-{n}{ext}"));
        }
        std::fs::rename(&self.path, &backup)?;
        self.open_file()?;
        self.remove_old_backups()
    }

    /// `("audit", ".log")` for `audit.log`.
    fn name_parts(&self) -> (String, String) {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name, String::new()),
        }
    }

    /// The rotated files of this log, newest first.
    pub fn backups(&self) -> std::io::Result<Vec<PathBuf>> {
        let (stem, ext) = self.name_parts();
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let prefix = format!("{stem}-");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(&ext) && entry.path() != self.path {
                found.push(entry.path());
            }
        }
        // The timestamp in the name sorts chronologically.
        found.sort();
        found.reverse();
        Ok(found)
    }

    fn remove_old_backups(&self) -> std::io::Result<()> {
        let backups = self.backups()?;
        let max_age = Duration::from_secs(u64::from(self.rotation.max_age_days) * 86_400);
        for (i, path) in backups.iter().enumerate() {
            let too_many = self.rotation.max_backups > 0 && i >= self.rotation.max_backups as usize;
            let too_old = self.rotation.max_age_days > 0
                && std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > max_age);
            if too_many || too_old {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rotates_at_the_size_limit_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = LogFile::open(&path, Rotation { max_size_mb: 1, max_backups: 2, max_age_days: 0 }).unwrap();
        let line = vec![b'x'; 300 * 1024];
        for _ in 0..10 {
            log.write_line(&line).unwrap();
        }
        log.flush().unwrap();
        let backups = log.backups().unwrap();
        assert_eq!(backups.len(), 2, "{backups:?}");
        for b in &backups {
            let name = b.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("audit-") && name.ends_with(".log"), "{name}");
            assert!(std::fs::metadata(b).unwrap().len() <= 1024 * 1024);
        }
        // 10 lines of 300 KiB: three per file; the current file holds the last one.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 300 * 1024 + 1);
    }

    #[test]
    fn no_rotation_without_a_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = LogFile::open(&path, Rotation::default()).unwrap();
        for _ in 0..100 {
            log.write_line(b"{}").unwrap();
        }
        assert!(log.backups().unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 100);
    }
}
