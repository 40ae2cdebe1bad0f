//! Running a further process inside a running container (`kubectl exec`, exec probes, exec
//! hooks): the agent's side ([`Runtime::exec_sync`], [`Runtime::exec`]) and the helper's
//! ([`run_helper`]).
//!
//! libcontainer's tenant builder forks, which must never happen inside the agent's async
//! runtime, so every exec runs in its own short-lived helper process (`skiff exec <request>`),
//! which joins the container's namespaces, cgroup, root, user, capabilities and environment
//! (the container's own process spec with other arguments), reaps the process as a child
//! subreaper and records how it ended in a result file. The helper's standard streams are the
//! process's (pipes to the caller); with a TTY, libcontainer sends the pseudo-terminal's master
//! to a console socket the caller listens on, so the caller holds it (and resizes it) directly.
//!
//! What does not live here: the streaming protocols (the agent's streaming server) and the
//! container's own process (the [`crate::shim`]).

use std::fs;
use std::io::{self, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::sys::signal::{Signal, kill};
use serde::{Deserialize, Serialize};

use crate::container::{ContainerState, Runtime};
use crate::shim::{read_json, reap, write_json};

/// How long the helper may take to hand over a terminal.
const TTY_TIMEOUT: Duration = Duration::from_secs(30);

/// Exec failures.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The container does not exist or its process does not run.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The process could not be started in the container (e.g. no such executable).
    #[error("{0}")]
    Start(String),
    /// The command did not finish in time (it was killed).
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    /// A file, pipe, socket or process operation of the caller failed.
    #[error("{0}")]
    Io(String),
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> ExecError + '_ {
    move |e| ExecError::Io(format!("{what}: {e}"))
}

/// What a finished non-interactive command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (128 + signal when a signal ended it).
    pub exit_code: i32,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

/// How an interactive command is run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Give it a pseudo-terminal (stdout and stderr are then one stream, the terminal).
    pub tty: bool,
    /// Give it a standard input the caller writes (otherwise `/dev/null`).
    pub stdin: bool,
}

/// A command running in a container, with the caller's ends of its streams.
#[derive(Debug)]
pub struct ExecProcess {
    helper: Child,
    scratch: tempfile::TempDir,
    /// Write end of its standard input (without a TTY, when asked for).
    pub stdin: Option<OwnedFd>,
    /// Read end of its standard output (without a TTY).
    pub stdout: Option<OwnedFd>,
    /// Read end of its standard error (without a TTY).
    pub stderr: Option<OwnedFd>,
    /// The master of its pseudo-terminal (with a TTY): read its output, write its input,
    /// [`resize`] it.
    pub pty: Option<OwnedFd>,
}

impl ExecProcess {
    /// Waits until the command has ended and returns its exit code. Blocks.
    pub fn wait(mut self) -> Result<i32, ExecError> {
        let status = self.helper.wait().map_err(io_error("waiting for the exec helper"))?;
        outcome(self.scratch.path(), &status)
    }

    /// The helper's process id (for killing it).
    pub fn helper_pid(&self) -> u32 {
        self.helper.id()
    }
}

/// Sets the size of the terminal whose master is `pty`.
pub fn resize(pty: impl AsFd, width: u16, height: u16) -> Result<(), ExecError> {
    let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(pty, size).map_err(|e| ExecError::Io(format!("resizing the terminal: {e}")))
}

/// What the helper is asked to do (its only argument, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelperRequest {
    /// libcontainer container id.
    pub id: String,
    /// The container directory (its `config.json` holds the process spec to start from).
    pub bundle: PathBuf,
    /// libcontainer's state directory.
    pub state_root: PathBuf,
    /// Argument vector of the command.
    pub args: Vec<String>,
    /// Allocate a pseudo-terminal and send its master to `console_socket`.
    pub tty: bool,
    /// Where the caller listens for the terminal's master (with `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_socket: Option<PathBuf>,
    /// Kill the command after this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// A directory of the caller's for the helper's files (process spec, result).
    pub scratch: PathBuf,
}

/// How the command ended (`result.json` in the scratch directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelperResult {
    /// Exit code of the command.
    #[serde(default)]
    pub exit_code: i32,
    /// It was killed at the deadline.
    #[serde(default)]
    pub timed_out: bool,
    /// Why it could not be started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const RESULT: &str = "result.json";

fn outcome(scratch: &Path, status: &std::process::ExitStatus) -> Result<i32, ExecError> {
    let result: Option<HelperResult> = read_json(scratch, RESULT).map_err(|e| ExecError::Io(e.to_string()))?;
    match result {
        Some(HelperResult { error: Some(error), .. }) => Err(ExecError::Start(error)),
        Some(r) => Ok(r.exit_code),
        None => Err(ExecError::Io(format!("the exec helper ended ({status}) without a result"))),
    }
}

impl Runtime {
    fn helper_request(&self, id: &str, args: &[String], tty: bool, scratch: &Path) -> Result<HelperRequest, ExecError> {
        match self.state(id) {
            Ok(ContainerState::Running(_)) => {}
            _ => return Err(ExecError::NotRunning(id.to_string())),
        }
        if args.is_empty() {
            return Err(ExecError::Start("no command given".into()));
        }
        Ok(HelperRequest {
            id: id.to_string(),
            bundle: self.containers.join(id),
            state_root: self.state_root.clone(),
            args: args.to_vec(),
            tty,
            console_socket: tty.then(|| scratch.join("console.sock")),
            timeout_ms: None,
            scratch: scratch.to_path_buf(),
        })
    }

    fn helper_command(&self, request: &HelperRequest) -> Result<Command, ExecError> {
        let json = serde_json::to_string(request).map_err(|e| ExecError::Io(e.to_string()))?;
        let mut command = Command::new(&self.shim_binary);
        command.arg("exec").arg(json);
        Ok(command)
    }

    /// Runs `args` in container `id` without input, collects its output, and returns once it
    /// has ended; it is killed after `timeout` (then [`ExecError::Timeout`]). Blocks.
    pub fn exec_sync(&self, id: &str, args: &[String], timeout: Duration) -> Result<ExecOutput, ExecError> {
        let scratch = scratch_dir()?;
        let mut request = self.helper_request(id, args, false, scratch.path())?;
        request.timeout_ms = Some(timeout.as_millis().max(1) as u64);
        let mut helper = self
            .helper_command(&request)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error("starting the exec helper"))?;
        let readers = [helper.stdout.take().map(OwnedFd::from), helper.stderr.take().map(OwnedFd::from)]
            .map(|fd| std::thread::spawn(move || read_all(fd)));
        let status = helper.wait().map_err(io_error("waiting for the exec helper"));
        let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
        let status = status?;
        let result: Option<HelperResult> =
            read_json(scratch.path(), RESULT).map_err(|e| ExecError::Io(e.to_string()))?;
        match result {
            Some(HelperResult { timed_out: true, .. }) => Err(ExecError::Timeout(timeout)),
            Some(HelperResult { error: Some(error), .. }) => Err(ExecError::Start(error)),
            Some(r) => Ok(ExecOutput { exit_code: r.exit_code, stdout, stderr }),
            None => Err(ExecError::Io(format!("the exec helper ended ({status}) without a result"))),
        }
    }

    /// Starts `args` in container `id` and hands the caller its streams (see [`ExecProcess`]).
    /// Blocks until the command runs (with a TTY, until its terminal is handed over).
    pub fn exec(&self, id: &str, args: &[String], options: &ExecOptions) -> Result<ExecProcess, ExecError> {
        let scratch = scratch_dir()?;
        let request = self.helper_request(id, args, options.tty, scratch.path())?;
        let listener = match &request.console_socket {
            Some(path) => Some(UnixListener::bind(path).map_err(io_error("binding the console socket"))?),
            None => None,
        };
        let mut command = self.helper_command(&request)?;
        if options.tty {
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            command.stdin(if options.stdin { Stdio::piped() } else { Stdio::null() });
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut helper = command.spawn().map_err(io_error("starting the exec helper"))?;
        let mut process = ExecProcess {
            stdin: helper.stdin.take().map(OwnedFd::from),
            stdout: helper.stdout.take().map(OwnedFd::from),
            stderr: helper.stderr.take().map(OwnedFd::from),
            pty: None,
            helper,
            scratch,
        };
        if let Some(listener) = listener {
            match receive_terminal(&listener, &mut process.helper) {
                Ok(pty) => process.pty = Some(pty),
                Err(e) => {
                    // The helper's result says why, if it got that far.
                    let _ = process.helper.kill();
                    let status = process.helper.wait().map_err(io_error("waiting for the exec helper"))?;
                    return Err(match outcome(process.scratch.path(), &status) {
                        Err(start @ ExecError::Start(_)) => start,
                        _ => e,
                    });
                }
            }
        }
        Ok(process)
    }
}

/// A fresh private directory for one exec's files (short, so the socket path fits).
fn scratch_dir() -> Result<tempfile::TempDir, ExecError> {
    tempfile::Builder::new().prefix("skiff-exec-").tempdir().map_err(io_error("creating the exec scratch directory"))
}

fn read_all(fd: Option<OwnedFd>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(fd) = fd {
        let _ = fs::File::from(fd).read_to_end(&mut out);
    }
    out
}

/// Accepts the container's connection on the console socket and receives the terminal's
/// master, giving up when the helper ends first or the deadline passes.
fn receive_terminal(listener: &UnixListener, helper: &mut Child) -> Result<OwnedFd, ExecError> {
    receive_fd(listener, || match helper.try_wait() {
        Ok(Some(_)) => Some("the exec helper ended before handing over a terminal".into()),
        Ok(None) => None,
        Err(e) => Some(format!("exec helper: {e}")),
    })
    .map_err(ExecError::Io)
}

/// Accepts one connection on `listener` and receives the file descriptor it sends (libcontainer
/// sends a terminal's master this way), checking `gave_up` while waiting.
pub(crate) fn receive_fd(
    listener: &UnixListener,
    mut gave_up: impl FnMut() -> Option<String>,
) -> Result<OwnedFd, String> {
    let sys = |e: io::Error| format!("console socket: {e}");
    listener.set_nonblocking(true).map_err(sys)?;
    let deadline = Instant::now() + TTY_TIMEOUT;
    let stream: UnixStream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(sys(e)),
        }
        if let Some(why) = gave_up() {
            return Err(why);
        }
        if Instant::now() >= deadline {
            return Err(format!("no terminal within {TTY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    stream.set_nonblocking(false).map_err(sys)?;
    stream.set_read_timeout(Some(TTY_TIMEOUT)).map_err(sys)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 256];
    rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the terminal: {e}"))?;
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err("the container sent no terminal".into())
}

/// Runs the helper (`skiff exec <request>`): starts the command in the container, waits for
/// it, and writes `result.json`. Must be called while the process is single-threaded.
pub fn run_helper(request: &HelperRequest) -> Result<(), ExecError> {
    let result = match start_and_wait(request) {
        Ok(result) => result,
        Err(error) => HelperResult { error: Some(error), ..Default::default() },
    };
    write_json(&request.scratch, RESULT, &result).map_err(|e| ExecError::Io(e.to_string()))
}

fn start_and_wait(request: &HelperRequest) -> Result<HelperResult, String> {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return Err(format!("cannot become a child subreaper: {e}"));
    }
    let spec = oci_spec::runtime::Spec::load(request.bundle.join("config.json"))
        .map_err(|e| format!("cannot read the container's spec: {e}"))?;
    let mut process = spec.process().clone().ok_or("the container's spec has no process")?;
    process.set_args(Some(request.args.clone()));
    process.set_terminal(Some(request.tty));
    process.set_console_size(None);
    let process_path = request.scratch.join("process.json");
    let json = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
    fs::write(&process_path, json).map_err(|e| format!("{}: {e}", process_path.display()))?;
    let pid = ContainerBuilder::new(request.id.clone(), SyscallType::default())
        .with_executor(DefaultExecutor {})
        .with_root_path(&request.state_root)
        .map(|b| b.with_console_socket(request.console_socket.as_ref()))
        .and_then(|b| b.as_tenant().with_process(Some(&process_path)).with_detach(true).build())
        .map_err(|e| crate::shim::start_error(&e))?;
    // From here on only the command holds the caller's pipes, so they close when it ends.
    if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    if let Some(ms) = request.timeout_ms {
        let timed_out = Arc::clone(&timed_out);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            timed_out.store(true, Ordering::SeqCst);
            let _ = kill(pid, Signal::SIGKILL);
        });
    }
    let (exit_code, _signal) = reap(pid);
    Ok(HelperResult { exit_code, timed_out: timed_out.load(Ordering::SeqCst), error: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_request_round_trips_as_json() {
        let request = HelperRequest {
            id: "u-c-0".into(),
            bundle: "/d/containers/u-c-0".into(),
            state_root: "/d/libcontainer".into(),
            args: vec!["sh".into(), "-c".into(), "echo 'a b'".into()],
            tty: true,
            console_socket: Some("/tmp/x/console.sock".into()),
            timeout_ms: Some(1000),
            scratch: "/tmp/x".into(),
        };
        let json = serde_json::to_string(&request).expect("json");
        assert_eq!(serde_json::from_str::<HelperRequest>(&json).expect("parse"), request);
    }

    #[test]
    fn outcome_reports_start_errors_and_exit_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("true").status().expect("true");
        assert!(matches!(outcome(dir.path(), &status), Err(ExecError::Io(_))));
        write_json(dir.path(), RESULT, &HelperResult { exit_code: 3, ..Default::default() }).expect("write");
        assert_eq!(outcome(dir.path(), &status).expect("code"), 3);
        let failed = HelperResult { error: Some("executable 'nope' not found".into()), ..Default::default() };
        write_json(dir.path(), RESULT, &failed).expect("write");
        assert!(matches!(outcome(dir.path(), &status), Err(ExecError::Start(m)) if m.contains("nope")));
    }
}
