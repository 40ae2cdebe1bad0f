//! The container shim (`skiff shim <container-dir>`): a small, single-purpose process per
//! container that mounts its overlay root, creates and starts it with libcontainer, copies its
//! output into the CRI log file, reaps it, records how it ended, and cleans up.
//!
//! Why a separate process (DESIGN.md §6): libcontainer forks, which must not happen inside the
//! agent's multi-threaded async runtime, and a container must outlive an agent restart. The shim
//! starts a new session and makes itself a child subreaper, so the container's init is reparented
//! to it whatever happens to the agent.
//!
//! The container directory is the contract with the agent ([`crate::container`]):
//! ```text
//! config.json   OCI runtime spec (written by the agent)
//! shim.json     ShimRequest (written by the agent)
//! started.json  Started, once the process runs (written here)
//! exited.json   Exited, once it has ended or failed to start (written here, last)
//! attach.sock   the attach socket while the container runs ([`crate::attach`]; also takes
//!               the agent's requests to reopen the log after a rotation)
//! rootfs/ upper/ work/   the overlay (mounted and removed here)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::attach::{self, AttachServer, Input};
use crate::exec::receive_fd;
use crate::logs::CriLogWriter;

/// What the agent asks of the shim (`shim.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShimRequest {
    /// libcontainer container id.
    pub id: String,
    /// Image layer directories, top first (empty: an empty root).
    pub lowers: Vec<PathBuf>,
    /// CRI log file of this container instance.
    pub log_path: PathBuf,
    /// libcontainer's state directory (shared by all containers of the node).
    pub state_root: PathBuf,
    /// Keep the container's standard input open for attaching.
    #[serde(default)]
    pub stdin: bool,
    /// Close it after the first attach.
    #[serde(default)]
    pub stdin_once: bool,
    /// The container has a terminal (its spec says so): a console socket receives the master.
    #[serde(default)]
    pub tty: bool,
}

/// Written once the container's process runs (`started.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Host pid of the shim.
    pub shim_pid: i32,
    /// RFC 3339 time the process started.
    pub started_at: String,
}

/// Written when the container has ended or could not start (`exited.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exited {
    /// Exit code (128 + signal when killed by one; 128 when it never started).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// RFC 3339 time it started (absent when it never did).
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339 time it ended.
    pub finished_at: String,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// Why it could not be created or started (then it never ran).
    pub start_error: Option<String>,
}

/// Shim failures that happen before the outcome can be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A file of the container directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `shim.json` is malformed.
    #[error("invalid shim request: {0}")]
    Request(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ShimError + '_ {
    move |source| ShimError::Io { path: path.to_path_buf(), source }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Writes `value` as JSON to `dir/name` atomically (fsynced), so a reader sees all or nothing.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), ShimError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ShimError::Request(e.to_string()))?;
    crate::images::write_atomically(&dir.join(name), &bytes)
        .map_err(|e| ShimError::Io { path: dir.join(name), source: io::Error::other(e.to_string()) })
}

/// Reads `dir/name` as JSON; `None` when it does not exist (yet).
pub fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<Option<T>, ShimError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| ShimError::Request(format!("{name}: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShimError::Io { path, source: e }),
    }
}

/// Runs the shim for the container directory `dir` until the container has ended. The caller
/// (the `skiff shim` command) must be single-threaded when calling this.
pub fn run(dir: &Path) -> Result<(), ShimError> {
    let request: ShimRequest =
        read_json(dir, "shim.json")?.ok_or_else(|| ShimError::Request("shim.json is missing".into()))?;
    // Survive the agent: own session, and adopt the container's init when its parent exits.
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper");
    }
    let rootfs = dir.join("rootfs");
    let outcome = match mount_rootfs(dir, &request.lowers) {
        Ok(()) => run_container(dir, &request),
        Err(e) => failed(format!("cannot mount the root filesystem: {e}")),
    };
    if let Err(e) = nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH) {
        tracing::debug!(error = %e, "unmounting rootfs");
    }
    for sub in ["upper", "work"] {
        let _ = fs::remove_dir_all(dir.join(sub));
    }
    tracing::info!(id = %request.id, exit_code = outcome.exit_code, error = ?outcome.start_error, "container ended");
    write_json(dir, "exited.json", &outcome)
}

fn failed(error: String) -> Exited {
    Exited {
        exit_code: 128,
        signal: None,
        started_at: None,
        finished_at: now(),
        oom_killed: false,
        start_error: Some(error),
    }
}

fn mount_rootfs(dir: &Path, lowers: &[PathBuf]) -> io::Result<()> {
    let (rootfs, upper, work, empty) = (dir.join("rootfs"), dir.join("upper"), dir.join("work"), dir.join("empty"));
    for d in [&rootfs, &upper, &work, &empty] {
        fs::create_dir_all(d)?;
    }
    let lower: Vec<String> = if lowers.is_empty() {
        vec![empty.display().to_string()]
    } else {
        lowers.iter().map(|p| p.display().to_string()).collect()
    };
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    if options.len() >= 4096 {
        return Err(io::Error::other(format!("{} layers are too many for one overlay mount", lowers.len())));
    }
    nix::mount::mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(io::Error::from)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// How the container's standard streams are wired.
enum Streams {
    /// Pipes: output read ends, and the input's write end when it keeps one.
    Pipes { stdout: OwnedFd, stderr: OwnedFd, stdin: Option<OwnedFd> },
    /// A terminal whose master arrives on the console socket.
    Tty { listener: UnixListener },
}

fn run_container(dir: &Path, request: &ShimRequest) -> Exited {
    let log = match CriLogWriter::open(&request.log_path) {
        Ok(log) => Arc::new(Mutex::new(log)),
        Err(e) => return failed(format!("cannot open log file {}: {e}", request.log_path.display())),
    };
    let builder = ContainerBuilder::new(request.id.clone(), SyscallType::default()).with_executor(DefaultExecutor {});
    let (builder, streams) = match wire_streams(dir, request, builder) {
        Ok(wired) => wired,
        Err(e) => return failed(e),
    };
    // libcontainer sets the container's `oomScoreAdj` on the calling process before forking; the
    // shim takes its own back once the container runs, so it is never the OOM killer's choice.
    let own_oom_score_adj = fs::read_to_string("/proc/self/oom_score_adj").ok();
    let built = builder
        .with_root_path(&request.state_root)
        .and_then(|b| b.as_init(dir).with_systemd(false).with_detach(true).build());
    let mut container = match built {
        Ok(c) => c,
        Err(e) => return failed(start_error(&e)),
    };
    let start = container.start();
    if let Some(adj) = &own_oom_score_adj
        && let Err(e) = fs::write("/proc/self/oom_score_adj", adj.trim())
    {
        tracing::warn!(error = %e, "restoring the shim's oom_score_adj");
    }
    if let Err(e) = start {
        let _ = container.delete(true);
        return failed(start_error(&e));
    }
    let Some(pid) = container.pid() else {
        let _ = container.delete(true);
        return failed("the container has no process".into());
    };
    // Output sources, and the input attachments write to.
    let (outputs, input) = match streams {
        Streams::Pipes { stdout, stderr, stdin } => {
            let input = stdin.map(|fd| Input { sink: File::from(fd), pty: None, stdin_once: request.stdin_once });
            (vec![(attach::STDOUT, File::from(stdout)), (attach::STDERR, File::from(stderr))], input)
        }
        Streams::Tty { listener } => match receive_fd(&listener, || None).inspect(|_| {
            let _ = fs::remove_file(dir.join("console.sock"));
        }) {
            Ok(master) => {
                let master = File::from(master);
                let input = match (request.stdin, master.try_clone(), master.try_clone()) {
                    (true, Ok(sink), Ok(pty)) => Some(Input { sink, pty: Some(pty), stdin_once: request.stdin_once }),
                    _ => None,
                };
                (vec![(attach::STDOUT, master)], input)
            }
            Err(e) => {
                tracing::error!(error = %e, "no terminal from the container");
                (Vec::new(), None)
            }
        },
    };
    let server = match AttachServer::start(dir, input) {
        Ok(server) => {
            // Log rotation: the agent renames the file, then asks for a new one here.
            let log = Arc::clone(&log);
            server.set_log_reopener(Box::new(move || log.lock().unwrap_or_else(|p| p.into_inner()).reopen()));
            Some(Arc::new(server))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve the attach socket");
            None
        }
    };
    let started = Started { pid: pid.as_raw(), shim_pid: std::process::id() as i32, started_at: now() };
    if let Err(e) = write_json(dir, "started.json", &started) {
        tracing::error!(error = %e, "cannot record the start");
    }
    let copiers: Vec<_> = outputs
        .into_iter()
        .map(|(kind, source)| {
            let (log, server) = (Arc::clone(&log), server.clone());
            std::thread::spawn(move || copy_output(source, kind, &log, server.as_deref()))
        })
        .collect();
    let status = reap(pid);
    for copier in copiers {
        let _ = copier.join();
    }
    if let Some(server) = &server {
        server.shutdown();
    }
    let _ = fs::remove_file(dir.join(attach::SOCKET));
    let oom_killed = oom_kills(oci_spec::runtime::Spec::load(dir.join("config.json")).ok().as_ref()) > 0;
    if let Err(e) = container.delete(true) {
        tracing::warn!(error = %e, "deleting the container state");
    }
    let (exit_code, signal) = status;
    Exited {
        exit_code,
        signal,
        started_at: Some(started.started_at),
        finished_at: now(),
        oom_killed,
        start_error: None,
    }
}

/// Pipes or a console socket for the container's standard streams, set on `builder`.
fn wire_streams(
    dir: &Path,
    request: &ShimRequest,
    builder: ContainerBuilder,
) -> Result<(ContainerBuilder, Streams), String> {
    if request.tty {
        let handle = File::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        let path = PathBuf::from(format!("/proc/self/fd/{}/console.sock", handle.as_raw_fd()));
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| format!("cannot create the console socket: {e}"))?;
        // libcontainer links the socket into its own directory, which outlives this handle.
        let real = dir.join("console.sock");
        return Ok((builder.with_console_socket(Some(&real)), Streams::Tty { listener }));
    }
    let (Ok((out_r, out_w)), Ok((err_r, err_w))) = (pipe(), pipe()) else {
        return Err("cannot create pipes".into());
    };
    let (stdin, keep) = if request.stdin {
        let (read, write) = pipe().map_err(|e| format!("cannot create pipes: {e}"))?;
        (read, Some(write))
    } else {
        let null = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
        (OwnedFd::from(null), None)
    };
    let builder = builder.with_stdin(stdin).with_stdout(out_w).with_stderr(err_w);
    Ok((builder, Streams::Pipes { stdout: out_r, stderr: err_r, stdin: keep }))
}

/// libcontainer's error chain, shortened to what a user needs (e.g. `executable 'nope' not found
/// in $PATH`).
pub(crate) fn start_error(e: &dyn std::error::Error) -> String {
    let mut deepest = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        deepest = cause.to_string();
        source = cause.source();
    }
    deepest
}

/// Waits for `pid` (reaping every other child that comes our way) and returns its exit code
/// and the signal that killed it.
pub(crate) fn reap(pid: Pid) -> (i32, Option<i32>) {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return (code, None),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return (128 + sig as i32, Some(sig as i32)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "waitpid");
                return (255, None);
            }
        }
    }
}

/// Copies one output stream (a pipe, or a terminal's master) to attached callers as it comes
/// and into the log line by line (a line longer than the log's limit in parts).
fn copy_output(mut source: File, kind: u8, log: &Mutex<CriLogWriter>, server: Option<&AttachServer>) {
    let stream = if kind == attach::STDERR { "stderr" } else { "stdout" };
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::with_capacity(1024);
    let write = |chunk: &[u8]| {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.write_line(stream, chunk) {
            tracing::warn!(error = %e, "writing container log");
        }
    };
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A terminal reports EIO once the container's side is closed.
            Err(_) => break,
        };
        if let Some(server) = server {
            server.broadcast(kind, &buf[..n]);
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            write(&pending[..=end]);
            pending.drain(..=end);
        }
        while pending.len() >= crate::logs::MAX_LINE {
            write(&pending[..crate::logs::MAX_LINE]);
            pending.drain(..crate::logs::MAX_LINE);
        }
    }
    if !pending.is_empty() {
        write(&pending);
    }
}

/// How often the OOM killer struck in the container's cgroup (v2 `memory.events`, v1
/// `memory.oom_control`).
fn oom_kills(spec: Option<&oci_spec::runtime::Spec>) -> u64 {
    let Some(path) = spec.and_then(|s| s.linux().as_ref()).and_then(|l| l.cgroups_path().clone()) else {
        return 0;
    };
    let rel = path.strip_prefix("/").unwrap_or(&path);
    let candidates = [
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
        Path::new("/sys/fs/cgroup/unified").join(rel).join("memory.events"),
        Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.oom_control"),
    ];
    candidates
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()))
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

/// Opens the shim's own log (`shim.log` in the container directory) for appending.
pub fn open_shim_log(dir: &Path) -> Result<File, ShimError> {
    let path = dir.join("shim.log");
    OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_json::<Exited>(dir.path(), "exited.json").expect("read"), None);
        let exited = failed("executable 'nope' not found in $PATH".into());
        write_json(dir.path(), "exited.json", &exited).expect("write");
        assert_eq!(read_json::<Exited>(dir.path(), "exited.json").expect("read"), Some(exited));
    }
}
