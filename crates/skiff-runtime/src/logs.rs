//! Container logs in the CRI format kubelets write (`<RFC3339Nano time> <stream> <P|F> <text>`),
//! one file per container instance under `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`.
//!
//! Lines longer than [`MAX_LINE`] are split into partial (`P`) records followed by a final (`F`)
//! one, as the CRI specifies. The writer can reopen its path (the CRI's `ReopenContainerLog`),
//! so a log renamed away by rotation is continued in a new file: every record goes to exactly
//! one of the two. Rotating and reading logs back for `kubectl logs` are the agent's jobs.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Longest record written; longer lines are split into partial records.
pub const MAX_LINE: usize = 16 * 1024;

/// Appends CRI records to a log file.
pub struct CriLogWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl CriLogWriter {
    /// Opens (creating, with its directory) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self { path: path.to_path_buf(), out: BufWriter::new(open_append(path)?) })
    }

    /// Opens the path again (creating it): after a rotation renamed the file away, the records
    /// that follow go to a new file. On failure the old file keeps receiving them.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let file = open_append(&self.path)?;
        self.out = BufWriter::new(file);
        Ok(())
    }

    /// Writes one chunk of `stream` (`stdout` or `stderr`): a whole line (ending in `\n`) becomes
    /// an `F` record, anything else a `P` record. Flushed at once, so readers see it.
    pub fn write_line(&mut self, stream: &str, chunk: &[u8]) -> io::Result<()> {
        let (text, tag) = match chunk.strip_suffix(b"\n") {
            Some(text) => (text, "F"),
            None => (chunk, "P"),
        };
        let time = jiff::Timestamp::now();
        write!(self.out, "{time:.9} {stream} {tag} ")?;
        self.out.write_all(text)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cri_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c/0.log");
        let mut log = CriLogWriter::open(&path).expect("open");
        log.write_line("stdout", b"hello\n").expect("write");
        log.write_line("stderr", b"part").expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let fields: Vec<&str> = lines[0].splitn(4, ' ').collect();
        assert!(fields[0].parse::<jiff::Timestamp>().is_ok(), "{}", fields[0]);
        assert_eq!(fields[0].len(), "2016-10-06T00:17:09.669794202Z".len());
        assert_eq!(&fields[1..], ["stdout", "F", "hello"]);
        assert!(lines[1].ends_with(" stderr P part"));
    }

    #[test]
    fn reopening_continues_in_a_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut log = CriLogWriter::open(&path).expect("open");
        log.write_line("stdout", b"one\n").expect("write");
        let rotated = dir.path().join("0.log.20240101-000000");
        std::fs::rename(&path, &rotated).expect("rename");
        log.write_line("stdout", b"two\n").expect("write");
        log.reopen().expect("reopen");
        log.write_line("stdout", b"three\n").expect("write");
        let old = std::fs::read_to_string(&rotated).expect("old");
        let new = std::fs::read_to_string(&path).expect("new");
        assert!(old.contains(" F one\n") && old.contains(" F two\n") && !old.contains("three"), "{old}");
        assert_eq!(new.lines().count(), 1);
        assert!(new.ends_with(" F three\n"), "{new}");
    }
}
