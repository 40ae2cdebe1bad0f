//! Attaching to a container's own process (`kubectl attach`, `kubectl run -it`): the shim keeps
//! the container's standard input (a pipe, or the pseudo-terminal's master with `tty`) and serves
//! an attach socket (`attach.sock` in the container directory, mode 0600) where callers receive
//! the container's output as it is written and send input and terminal sizes.
//!
//! The socket carries frames `[kind: u8][length: u32 big-endian][payload]`: [`STDOUT`] and
//! [`STDERR`] from the shim; [`STDIN`], [`CLOSE_STDIN`] and [`RESIZE`] (width and height as two
//! big-endian u16) from the caller. With `stdinOnce`, the container's input is closed when the
//! first attached caller closes it or goes away (a terminal gets end-of-file, `^D`).
//!
//! The same socket takes one control request, the CRI's `ReopenContainerLog`: a caller sending
//! [`REOPEN_LOG`] gets [`LOG_REOPENED`] back (empty on success, the error otherwise) once the
//! shim writes to a freshly opened log file; such a caller is not an attachment (it never
//! closes a `stdinOnce` input).
//!
//! Socket paths are addressed through `/proc/self/fd/<dir fd>/attach.sock`, so a long container
//! directory never exceeds the 108 bytes a socket address holds.
//!
//! What does not live here: the container's output to the CRI log ([`crate::shim`]) and the
//! streaming protocols (the agent's streaming server).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::container::Runtime;

/// Input for the container (caller → shim).
pub const STDIN: u8 = 0;
/// Standard output (shim → caller); with a terminal, everything it prints.
pub const STDOUT: u8 = 1;
/// Standard error (shim → caller).
pub const STDERR: u8 = 2;
/// The caller closed its input (caller → shim).
pub const CLOSE_STDIN: u8 = 3;
/// New terminal size (caller → shim).
pub const RESIZE: u8 = 4;
/// Reopen the container's log file (caller → shim).
pub const REOPEN_LOG: u8 = 5;
/// The log was reopened; the payload is the error if it was not (shim → caller).
pub const LOG_REOPENED: u8 = 6;
/// The socket's name in the container directory.
pub const SOCKET: &str = "attach.sock";
/// Largest frame payload accepted.
const MAX_FRAME: usize = 1 << 20;
/// A caller that does not take output for this long is dropped (the container never waits).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Encodes one frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one frame; `None` at a clean end of the stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("attach frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// `/proc/self/fd/<fd>/<name>` for a directory held open as `dir`.
fn short_path(dir: &File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// The container's input as the shim holds it.
pub struct Input {
    /// Where input goes (the pipe's write end, or the terminal's master).
    pub sink: File,
    /// The terminal's master, for resizing.
    pub pty: Option<File>,
    /// Close the input when the first caller is done with it.
    pub stdin_once: bool,
}

/// Reopens the container's log file.
pub type LogReopener = Box<dyn Fn() -> io::Result<()> + Send + Sync>;

struct Shared {
    clients: Mutex<Vec<UnixStream>>,
    input: Mutex<Option<Input>>,
    reopen: Mutex<Option<LogReopener>>,
}

/// The shim's attach socket.
pub struct AttachServer {
    shared: Arc<Shared>,
}

impl AttachServer {
    /// Listens on `dir/attach.sock` and serves callers on a thread. `input` is the container's
    /// standard input, if it has one.
    pub fn start(dir: &Path, input: Option<Input>) -> io::Result<Self> {
        let handle = File::open(dir)?;
        let path = short_path(&handle, SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(dir.join(SOCKET), std::fs::Permissions::from_mode(0o600))?;
        let shared =
            Arc::new(Shared { clients: Mutex::new(Vec::new()), input: Mutex::new(input), reopen: Mutex::new(None) });
        let accepting = listener;
        let for_thread = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in accepting.incoming() {
                let Ok(client) = client else { return };
                let _ = client.set_write_timeout(Some(WRITE_TIMEOUT));
                if let Ok(writer) = client.try_clone() {
                    lock(&for_thread.clients).push(writer);
                }
                let shared = Arc::clone(&for_thread);
                std::thread::spawn(move || serve_client(client, &shared));
            }
        });
        Ok(Self { shared })
    }

    /// Sets what a [`REOPEN_LOG`] request runs.
    pub fn set_log_reopener(&self, reopen: LogReopener) {
        *lock(&self.shared.reopen) = Some(reopen);
    }

    /// Sends container output to every attached caller (dropping those that do not keep up).
    pub fn broadcast(&self, kind: u8, data: &[u8]) {
        let frame = frame(kind, data);
        lock(&self.shared.clients).retain_mut(|c| c.write_all(&frame).is_ok());
    }

    /// Ends every attachment (the container has ended).
    pub fn shutdown(&self) {
        for c in lock(&self.shared.clients).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        lock(&self.shared.input).take();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve_client(mut client: UnixStream, shared: &Shared) {
    loop {
        match read_frame(&mut client) {
            Ok(Some((STDIN, data))) => {
                if let Some(input) = lock(&shared.input).as_mut()
                    && input.sink.write_all(&data).is_err()
                {
                    tracing::debug!("writing to the container's input failed");
                }
            }
            Ok(Some((RESIZE, size))) if size.len() == 4 => {
                let (w, h) = (u16::from_be_bytes([size[0], size[1]]), u16::from_be_bytes([size[2], size[3]]));
                if let Some(pty) = lock(&shared.input).as_ref().and_then(|i| i.pty.as_ref())
                    && let Err(e) = crate::exec::resize(pty, w, h)
                {
                    tracing::debug!(error = %e, "resizing the container's terminal");
                }
            }
            Ok(Some((REOPEN_LOG, _))) => {
                let result = match lock(&shared.reopen).as_ref() {
                    Some(reopen) => reopen().map_err(|e| e.to_string()),
                    None => Err("the container's log cannot be reopened".to_string()),
                };
                let reply = frame(LOG_REOPENED, result.err().unwrap_or_default().as_bytes());
                // Under the clients' lock, so the reply never lands inside a broadcast frame.
                let _clients = lock(&shared.clients);
                let _ = client.write_all(&reply);
                // A control request, not an attachment: the input is left alone.
                return;
            }
            Ok(Some((CLOSE_STDIN, _))) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    let mut input = lock(&shared.input);
    if input.as_ref().is_some_and(|i| i.stdin_once)
        && let Some(mut done) = input.take()
        && done.pty.is_some()
    {
        // A terminal is never closed under the process: it gets end-of-file instead.
        let _ = done.sink.write_all(&[0x04]);
    }
}

/// How long a log reopen may take.
const REOPEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Runtime {
    /// Connects to the attach socket of container `id` (see the module doc). Blocks briefly.
    pub fn attach(&self, id: &str) -> io::Result<UnixStream> {
        if !crate::container::valid_id(id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid container id {id:?}")));
        }
        let dir = File::open(self.containers.join(id))?;
        UnixStream::connect(short_path(&dir, SOCKET))
    }

    /// Asks the shim of running container `id` to reopen its log file and waits until it has
    /// (the CRI's `ReopenContainerLog`). Blocking.
    pub fn reopen_log(&self, id: &str) -> io::Result<()> {
        let mut socket = self.attach(id)?;
        socket.set_read_timeout(Some(REOPEN_TIMEOUT))?;
        socket.write_all(&frame(REOPEN_LOG, &[]))?;
        loop {
            match read_frame(&mut socket)? {
                Some((LOG_REOPENED, error)) if error.is_empty() => return Ok(()),
                Some((LOG_REOPENED, error)) => {
                    return Err(io::Error::other(String::from_utf8_lossy(&error).into_owned()));
                }
                // Output broadcast to every caller meanwhile.
                Some(_) => {}
                None => return Err(io::Error::other("the shim closed the connection without reopening the log")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut wire = frame(STDOUT, b"hello");
        wire.extend(frame(RESIZE, &[0, 80, 0, 24]));
        let mut r = &wire[..];
        assert_eq!(read_frame(&mut r).expect("frame"), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r).expect("frame"), Some((RESIZE, vec![0, 80, 0, 24])));
        assert_eq!(read_frame(&mut r).expect("end"), None);
    }

    #[test]
    fn callers_get_output_and_feed_input_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let input = Input { sink: File::from(write_end), pty: None, stdin_once: true };
        let server = AttachServer::start(dir.path(), Some(input)).expect("start");
        let handle = File::open(dir.path()).expect("dir");
        let mut client = UnixStream::connect(short_path(&handle, SOCKET)).expect("connect");
        // The server registers the caller on its own thread.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&server.shared.clients).is_empty() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        server.broadcast(STDOUT, b"out");
        assert_eq!(read_frame(&mut client).expect("frame"), Some((STDOUT, b"out".to_vec())));
        client.write_all(&frame(STDIN, b"typed")).expect("write");
        client.write_all(&frame(CLOSE_STDIN, &[])).expect("close");
        // stdinOnce: the pipe closes after the first caller, so the reader sees the end.
        let mut got = String::new();
        File::from(read_end).read_to_string(&mut got).expect("read");
        assert_eq!(got, "typed");
        server.shutdown();
        assert_eq!(read_frame(&mut client).expect("end"), None);
    }

    #[test]
    fn reopen_requests_are_answered_and_leave_the_input_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let input = Input { sink: File::from(write_end), pty: None, stdin_once: true };
        let server = AttachServer::start(dir.path(), Some(input)).expect("start");
        let handle = File::open(dir.path()).expect("dir");
        let request = |server_reply: &mut dyn FnMut() -> Vec<u8>| {
            let mut client = UnixStream::connect(short_path(&handle, SOCKET)).expect("connect");
            client.write_all(&frame(REOPEN_LOG, &[])).expect("request");
            let reply = read_frame(&mut client).expect("reply");
            assert_eq!(reply, Some((LOG_REOPENED, server_reply())));
        };
        request(&mut || b"the container's log cannot be reopened".to_vec());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        server.set_log_reopener(Box::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }));
        request(&mut Vec::new);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The stdinOnce input is still open: a real attachment can still use it.
        let mut client = UnixStream::connect(short_path(&handle, SOCKET)).expect("connect");
        client.write_all(&frame(STDIN, b"still open")).expect("write");
        client.write_all(&frame(CLOSE_STDIN, &[])).expect("close");
        let mut got = String::new();
        File::from(read_end).read_to_string(&mut got).expect("read");
        assert_eq!(got, "still open");
        server.shutdown();
    }
}
