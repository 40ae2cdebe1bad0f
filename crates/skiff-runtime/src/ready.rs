//! The "I have recorded my outcome" signal of the processes the runtime launches (the shim and
//! the sandbox holder), so the agent blocks on a pipe instead of polling their directory.
//!
//! The launcher's standard output is the write end of a pipe ([`ReadyPipe`]); the daemonised
//! process inherits it and, once its state file (`started.json`, `exited.json`, `sandbox.json`,
//! `failed.json`) is in place, writes one byte and points its standard output at `/dev/null`
//! ([`report`]). The agent wakes on that byte, or on end-of-file if the process died first, and
//! then reads the state file as before. The state files stay the contract: the pipe only says
//! when to look, so a restarted agent (which has no pipe) loses nothing.
//!
//! What does not live here: the state files and what they mean ([`crate::shim`],
//! [`crate::sandbox`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How long one wait may last before the caller looks at the state files anyway (a process
/// that forked before reporting may keep the pipe open after it is gone).
const SLICE: Duration = Duration::from_millis(50);

/// What a wait on the pipe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The process reported: its state file is in place.
    Reported,
    /// Every writer is gone without a report: the process died (or never started).
    Closed,
    /// Nothing yet.
    Nothing,
}

/// The agent's end of the signal.
#[derive(Debug)]
pub(crate) struct ReadyPipe {
    read: File,
    reported: bool,
}

impl ReadyPipe {
    /// A new pipe: the read end stays here, the write end becomes the launcher's standard output.
    pub(crate) fn new() -> io::Result<(Self, Stdio)> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok((Self { read: File::from(read), reported: false }, Stdio::from(write)))
    }

    /// Waits up to `deadline` (and at most a short slice) for the report.
    pub(crate) fn wait(&mut self, deadline: Instant) -> Seen {
        if self.reported {
            return Seen::Reported;
        }
        let left = deadline.saturating_duration_since(Instant::now()).min(SLICE);
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Seen::Nothing,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Seen::Nothing,
            // Cannot wait on the pipe: let the caller poll the state files at the slice's pace.
            Err(_) => {
                std::thread::sleep(left);
                return Seen::Nothing;
            }
        }
        let mut byte = [0u8; 1];
        match self.read.read(&mut byte) {
            Ok(0) => Seen::Closed,
            Ok(_) => {
                self.reported = true;
                Seen::Reported
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Seen::Nothing,
            Err(_) => Seen::Closed,
        }
    }
}

/// Tells the agent (if it launched this process with a [`ReadyPipe`]) that the state file is in
/// place, then lets go of the pipe. Harmless when standard output is anything else: a byte
/// goes to the log, and the agent may be gone (the write then fails with `EPIPE`, ignored).
pub fn report() {
    let mut out = io::stdout().lock();
    let _ = out.write_all(b"r");
    let _ = out.flush();
    match File::options().write(true).open("/dev/null") {
        Ok(null) => {
            let null = OwnedFd::from(null);
            if let Err(e) = nix::unistd::dup2(null.as_raw_fd(), io::stdout().as_raw_fd()) {
                tracing::debug!(error = %e, "releasing the ready pipe");
            }
        }
        Err(e) => tracing::debug!(error = %e, "opening /dev/null"),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_report_wakes_the_waiter_and_a_dead_writer_closes() {
        let (mut pipe, stdout) = ReadyPipe::new().expect("pipe");
        let mut child = Command::new("sh").args(["-c", "printf r; sleep 0.1"]).stdout(stdout).spawn().expect("sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Seen::Nothing;
        while seen == Seen::Nothing && Instant::now() < deadline {
            seen = pipe.wait(deadline);
        }
        assert_eq!(seen, Seen::Reported);
        child.wait().expect("wait");

        let (mut pipe, stdout) = ReadyPipe::new().expect("pipe");
        let mut child = Command::new("true").stdout(stdout).spawn().expect("true");
        child.wait().expect("wait");
        let mut seen = Seen::Nothing;
        while seen == Seen::Nothing && Instant::now() < deadline {
            seen = pipe.wait(deadline);
        }
        assert_eq!(seen, Seen::Closed, "a writer that ends without a report closes the pipe");
    }

    #[test]
    fn nothing_within_the_deadline() {
        let (mut pipe, _stdout) = ReadyPipe::new().expect("pipe");
        let t0 = Instant::now();
        assert_eq!(pipe.wait(Instant::now() + Duration::from_millis(20)), Seen::Nothing);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
