//! Container logs in the CRI format kubelets write (`<RFC3339Nano time> <stream> <P|F> <text>`),
//! one file per container instance under `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`.
//!
//! Lines longer than [`MAX_LINE`] are split into partial (`P`) records followed by a final (`F`)
//! one, as the CRI specifies. Reading logs back for `kubectl logs` is the agent's job.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Longest record written; longer lines are split into partial records.
pub const MAX_LINE: usize = 16 * 1024;

/// Appends CRI records to a log file.
pub struct CriLogWriter {
    out: BufWriter<File>,
}

impl CriLogWriter {
    /// Opens (creating, with its directory) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { out: BufWriter::new(file) })
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
}
