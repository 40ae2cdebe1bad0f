//! Container log rotation, as the kubelet's container log manager does it. Every 10 s, for each
//! running container whose CRI log (`/var/log/pods/…/<container>/<n>.log`) reached
//! `--container-log-max-size`:
//!
//! 1. files left by an interrupted rotation go (`.tmp`, and uncompressed copies of `.gz` ones);
//! 2. the oldest rotated files go until `--container-log-max-files` − 2 are left (with the
//!    current file and the one rotated now, that makes the maximum);
//! 3. the rotated files left are compressed (`<n>.log.<time>.gz`);
//! 4. the current file is renamed `<n>.log.<YYYYMMDD-hhmmss>` (local time) and the shim is asked
//!    to reopen its log (`skiff_runtime::attach`), so it continues in a new `<n>.log`; if it
//!    cannot, the file is renamed back and the next pass tries again.
//!
//! The newest rotated file stays uncompressed: the shim may still have been writing to it until
//! it reopened, and readers following the log finish it. What does not live here: writing logs
//! (the shim) and reading them back (`streaming::logs`, which follows across a rotation).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_runtime::container::{ContainerState, Runtime};

/// How often logs are checked.
pub const MONITOR_PERIOD: Duration = Duration::from_secs(10);
/// Suffix of compressed logs.
const COMPRESS_SUFFIX: &str = ".gz";
/// Suffix of a compression in progress.
const TMP_SUFFIX: &str = ".tmp";

/// When logs rotate and how many files a container keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotatePolicy {
    /// Size in bytes at which the current file is rotated.
    pub max_size: u64,
    /// Most files per container log, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for LogRotatePolicy {
    /// The kubelet's defaults: 10Mi, 5 files.
    fn default() -> Self {
        Self { max_size: 10 << 20, max_files: 5 }
    }
}

impl LogRotatePolicy {
    /// Checks the values as the kubelet does.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_files < 2 {
            return Err(format!("invalid container log max files {}, must be > 1", self.max_files));
        }
        if self.max_size == 0 {
            return Err("container log max size must be positive".into());
        }
        Ok(())
    }
}

/// The rotated files of `log` (`<log>.*`), sorted oldest first.
pub fn rotated_files(log: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let prefix = format!("{name}.");
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(suffix))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether a rotated file is still of use: not a temporary file, and not an uncompressed file
/// whose compressed copy exists.
fn in_use(path: &Path, all: &[PathBuf]) -> bool {
    if has_suffix(path, TMP_SUFFIX) {
        return false;
    }
    has_suffix(path, COMPRESS_SUFFIX) || !all.contains(&with_suffix(path, COMPRESS_SUFFIX))
}

/// Compresses `path` to `path.gz` (written as `path.tmp` first, as upstream) and removes it.
fn compress(path: &Path) -> io::Result<()> {
    let tmp = with_suffix(path, TMP_SUFFIX);
    let result = (|| {
        let mut input = fs::File::open(path)?;
        let output = fs::File::create(&tmp)?;
        let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()?;
        fs::rename(&tmp, with_suffix(path, COMPRESS_SUFFIX))?;
        fs::remove_file(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Rotates `log` if it reached the policy's size (see the module doc), with `reopen` asking the
/// writer for a new file and `stamp` the rotated file's time suffix. Returns whether it rotated.
pub fn rotate_if_needed(
    log: &Path,
    policy: &LogRotatePolicy,
    stamp: &str,
    reopen: &dyn Fn() -> io::Result<()>,
) -> io::Result<bool> {
    let size = match fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Lost (an earlier rotation whose reopen failed after the rename back failed too).
            reopen()?;
            fs::metadata(log)?.len()
        }
        Err(e) => return Err(e),
    };
    if size < policy.max_size {
        return Ok(false);
    }
    let rotated = with_suffix(log, &format!(".{stamp}"));
    if rotated.exists() || with_suffix(&rotated, COMPRESS_SUFFIX).exists() {
        // Rotated within this second already: the next pass does it.
        return Ok(false);
    }
    let all = rotated_files(log);
    let mut kept = Vec::new();
    for path in all.iter() {
        if in_use(path, &all) {
            kept.push(path.clone());
        } else {
            fs::remove_file(path)?;
        }
    }
    // The current file and the one rotated now count too.
    let excess = kept.len().saturating_sub(policy.max_files.saturating_sub(2));
    for path in kept.drain(..excess) {
        fs::remove_file(path)?;
    }
    for path in kept.iter().filter(|p| !has_suffix(p, COMPRESS_SUFFIX)) {
        compress(path)?;
    }
    fs::rename(log, &rotated)?;
    if let Err(e) = reopen() {
        if let Err(back) = fs::rename(&rotated, log) {
            tracing::error!(log = %log.display(), error = %back, "renaming a rotated log back failed");
        }
        return Err(e);
    }
    Ok(true)
}

/// The rotated files' time suffix for now, in local time (`20060102-150405`).
fn stamp_now() -> String {
    jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// One pass over the running containers of `runtime`. Blocking.
pub fn rotate_all(runtime: &Runtime, policy: &LogRotatePolicy) {
    for id in runtime.list().unwrap_or_default() {
        if !matches!(runtime.state(&id), Ok(ContainerState::Running(_))) {
            continue;
        }
        let Ok(Some(log)) = runtime.log_path(&id) else { continue };
        match rotate_if_needed(&log, policy, &stamp_now(), &|| runtime.reopen_log(&id)) {
            Ok(true) => tracing::debug!(container = %id, log = %log.display(), "rotated container log"),
            Ok(false) => {}
            Err(e) => tracing::warn!(container = %id, log = %log.display(), error = %e, "rotating container log"),
        }
    }
}

/// Runs the rotation loop until the task is aborted.
pub async fn run(runtime: Arc<Runtime>, policy: LogRotatePolicy) {
    loop {
        tokio::time::sleep(MONITOR_PERIOD).await;
        let runtime = Arc::clone(&runtime);
        if let Err(e) = tokio::task::spawn_blocking(move || rotate_all(&runtime, &policy)).await {
            tracing::warn!(error = %e, "container log rotation task");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Read;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn rotates_compresses_and_bounds_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let policy = LogRotatePolicy { max_size: 10, max_files: 3 };
        let reopened = Cell::new(0);
        let reopen = || {
            reopened.set(reopened.get() + 1);
            fs::write(&log, "")
        };
        fs::write(&log, "short\n").expect("write");
        assert!(!rotate_if_needed(&log, &policy, "20240101-000000", &reopen).expect("small"));
        assert_eq!(reopened.get(), 0);

        for (i, stamp) in ["20240101-000001", "20240101-000002", "20240101-000003"].into_iter().enumerate() {
            fs::write(&log, format!("a line long enough {i}\n")).expect("write");
            assert!(rotate_if_needed(&log, &policy, stamp, &reopen).expect("rotate"));
        }
        assert_eq!(reopened.get(), 3);
        // max 3 files: the current one, the newest rotated (plain) and one compressed.
        assert_eq!(names(dir.path()), ["0.log", "0.log.20240101-000002.gz", "0.log.20240101-000003"]);
        let mut text = String::new();
        let gz = fs::File::open(dir.path().join("0.log.20240101-000002.gz")).expect("gz");
        flate2::read::GzDecoder::new(gz).read_to_string(&mut text).expect("gunzip");
        assert_eq!(text, "a line long enough 1\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("0.log.20240101-000003")).expect("plain"),
            "a line long enough 2\n"
        );
    }

    #[test]
    fn leftovers_go_and_a_failed_reopen_renames_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("1.log");
        for leftover in ["1.log.20240101-000000.tmp", "1.log.20240101-000001", "1.log.20240101-000001.gz"] {
            fs::write(dir.path().join(leftover), "x").expect("write");
        }
        fs::write(dir.path().join("10.log"), "another container's log").expect("write");
        fs::write(&log, "0123456789abcdef\n").expect("write");
        let policy = LogRotatePolicy { max_size: 10, max_files: 5 };
        let err = rotate_if_needed(&log, &policy, "20240101-000002", &|| Err(io::Error::other("shim gone")))
            .expect_err("reopen fails");
        assert_eq!(err.to_string(), "shim gone");
        assert_eq!(names(dir.path()), ["1.log", "1.log.20240101-000001.gz", "10.log"]);
        assert_eq!(fs::read_to_string(&log).expect("back"), "0123456789abcdef\n");
    }

    #[test]
    fn same_second_rotations_wait_and_lost_files_are_reopened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let policy = LogRotatePolicy { max_size: 1, max_files: 2 };
        let reopen = || fs::write(&log, "");
        fs::write(&log, "x\n").expect("write");
        assert!(rotate_if_needed(&log, &policy, "20240101-000000", &reopen).expect("rotate"));
        fs::write(&log, "y\n").expect("write");
        assert!(!rotate_if_needed(&log, &policy, "20240101-000000", &reopen).expect("same second"));
        // max 2: the previous rotation is dropped before the next.
        assert!(rotate_if_needed(&log, &policy, "20240101-000001", &reopen).expect("rotate"));
        assert_eq!(names(dir.path()), ["0.log", "0.log.20240101-000001"]);
        fs::remove_file(&log).expect("remove");
        assert!(!rotate_if_needed(&log, &policy, "20240101-000002", &reopen).expect("reopened"));
        assert!(log.exists());
    }

    #[test]
    fn policy_validation() {
        assert!(LogRotatePolicy::default().validate().is_ok());
        assert!(LogRotatePolicy { max_size: 1, max_files: 1 }.validate().is_err());
        assert!(LogRotatePolicy { max_size: 0, max_files: 2 }.validate().is_err());
    }
}
