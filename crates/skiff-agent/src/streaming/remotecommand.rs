//! `/exec/{ns}/{pod}/{container}` and `/attach/…`: the kubelet's remote command protocol over
//! SPDY/3.1 (`v4.channel.k8s.io`: streams typed by the `streamtype` header) or WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`: channels 0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize). Both end with the command's `Status` on the error stream: `Success`, or
//! `NonZeroExitCode` with an `ExitCode` cause, or an internal error.
//!
//! The transports build one [`Io`] (the client's streams as channels); [`run_exec`] and
//! [`run_attach`] work on it without knowing the transport.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::exec::{ExecError, ExecOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::server::{self, Body, Streaming, full};
use super::spdy::session::Session;
use super::ws::{self, Incoming as WsIncoming};

/// How long the client may take to open every stream it announced.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The SPDY subprotocol served.
pub const SPDY_PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];
/// The WebSocket subprotocols served, best first.
pub const WS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Which remote command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Run a new process in the container.
    Exec,
    /// Attach to the container's own process.
    Attach,
}

/// What the client asked for (the kubelet's query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The command (exec).
    pub command: Vec<String>,
    /// Standard input is sent.
    pub stdin: bool,
    /// Standard output is wanted.
    pub stdout: bool,
    /// Standard error is wanted (never with a TTY: it is the terminal then).
    pub stderr: bool,
    /// A terminal.
    pub tty: bool,
}

impl Options {
    /// Reads the options from the query.
    pub fn from_query(query: &str) -> Self {
        let pairs = server::query_pairs(query);
        let tty = server::flag(&pairs, "tty");
        Self {
            command: pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect(),
            stdin: server::flag(&pairs, "input"),
            stdout: server::flag(&pairs, "output"),
            stderr: server::flag(&pairs, "error") && !tty,
            tty,
        }
    }
}

/// The client's streams, transport-free.
#[derive(Debug, Default)]
pub struct Io {
    /// What the client types; ends when it closes its input.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// Standard output (the terminal with a TTY).
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// Standard error.
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Terminal sizes (width, height) as the client resizes.
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// It could not be run (the whole message, e.g. `error executing command in container: …`).
    Failed(String),
}

/// The `Status` the error stream carries for `outcome` (v4 and later).
pub fn status_json(outcome: &Outcome, command: &[String]) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: command '{}' exited with {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(error) => {
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {error}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": error}]},
                "code": 500,
            })
        }
    }
}

/// Serves an exec or attach request: checks it, then upgrades to SPDY or WebSocket.
pub async fn serve(
    ctx: Arc<Streaming>,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let options = Options::from_query(req.uri().query().unwrap_or(""));
    if !options.stdin && !options.stdout && !options.stderr {
        return server::status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    if kind == Kind::Exec && options.command.is_empty() {
        return server::status(StatusCode::BAD_REQUEST, "BadRequest", "you must specify at least one command");
    }
    let target = match server::find_container(&ctx, ns, pod, container).await {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let id = target.attempt.map(|a| target.instance(a)).unwrap_or_default();
    let runtime = Arc::clone(&ctx.runtime);
    let state = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || runtime.state(&id).ok()).await.ok().flatten()
    };
    if !matches!(state, Some(ContainerState::Running(_))) {
        return server::text(StatusCode::NOT_FOUND, format!("container not found ({container:?})"));
    }
    let runner = Runner { runtime: Arc::clone(&ctx.runtime), id, kind, options: options.clone() };
    upgrade(req, options, runner)
}

/// What runs once the streams are there.
struct Runner {
    runtime: Arc<Runtime>,
    id: String,
    kind: Kind,
    options: Options,
}

impl Runner {
    async fn run(self, io: Io) -> Outcome {
        match self.kind {
            Kind::Exec => run_exec(self.runtime, self.id, self.options.command, self.options.tty, io).await,
            Kind::Attach => run_attach(self.runtime, self.id, io).await,
        }
    }
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Whether the request asks for SPDY/3.1.
pub fn is_spdy(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// The `101` answer to a SPDY upgrade with `protocol`.
pub fn spdy_accept(protocol: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, http::HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = http::HeaderValue::from_str(protocol) {
        h.insert("X-Stream-Protocol-Version", v);
    }
    resp
}

fn upgrade(req: Request<Incoming>, options: Options, runner: Runner) -> Response<Body> {
    let headers = req.headers().clone();
    if ws::is_websocket(&headers) {
        let offered = ws::offered_protocols(&headers);
        let Some(protocol) = offered.iter().find(|p| WS_PROTOCOLS.contains(&p.as_str())).cloned() else {
            return ws::unsupported(&offered, WS_PROTOCOLS);
        };
        let v5 = protocol == "v5.channel.k8s.io";
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => websocket_session(ws::socket(upgraded).await, v5, options, runner).await,
                Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
            }
        });
        return ws::accept(&headers, Some(&protocol));
    }
    if is_spdy(&headers) {
        let offered = header_values(&headers, "x-stream-protocol-version");
        let Some(protocol) = offered.iter().find(|p| SPDY_PROTOCOLS.contains(&p.as_str())).cloned() else {
            return ws::unsupported(&offered, SPDY_PROTOCOLS);
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => spdy_session(Session::start(TokioIo::new(upgraded)), options, runner).await,
                Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
            }
        });
        return spdy_accept(&protocol);
    }
    server::text(StatusCode::BAD_REQUEST, "Upgrade request required")
}

/// Pumps `rx` to a sink until `rx` ends, then runs `done`.
fn pump<F, Fut>(mut rx: mpsc::Receiver<Bytes>, send: F) -> JoinHandle<()>
where
    F: Fn(Bytes) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if !send(data).await {
                break;
            }
        }
    })
}

/// Terminal sizes from a stream of concatenated JSON objects `{"Width":w,"Height":h}`.
#[derive(Debug, Default)]
pub struct SizeDecoder {
    buf: BytesMut,
}

impl SizeDecoder {
    /// Feeds bytes; returns the sizes now complete.
    pub fn feed(&mut self, data: &[u8]) -> Vec<(u16, u16)> {
        self.buf.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        loop {
            match iter.next() {
                Some(Ok(v)) => {
                    consumed = iter.byte_offset();
                    let dim = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| n.min(u16::MAX as u64) as u16);
                    if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                        sizes.push((w, h));
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    consumed = self.buf.len();
                    break;
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        let _ = self.buf.split_to(consumed);
        sizes
    }
}

async fn spdy_session(mut session: Session, options: Options, runner: Runner) {
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let complete = |e: &Option<_>, i: &Option<_>, o: &Option<_>, r: &Option<_>, s: &Option<_>| {
        e.is_some()
            && (i.is_some() || !options.stdin)
            && (o.is_some() || !options.stdout)
            && (r.is_some() || !options.stderr)
            && (s.is_some() || !options.tty)
    };
    let collect = async {
        while !complete(&error, &stdin, &stdout, &stderr, &resize) {
            let Some(stream) = session.streams.recv().await else { return false };
            match stream.header("streamtype") {
                Some("error") => error = Some(stream),
                Some("stdin") => stdin = Some(stream),
                Some("stdout") => stdout = Some(stream),
                Some("stderr") => stderr = Some(stream),
                Some("resize") => resize = Some(stream),
                other => tracing::debug!(streamtype = ?other, "ignoring an unexpected stream"),
            }
        }
        true
    };
    match tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracing::debug!("timed out waiting for the client's streams");
            return;
        }
    }
    let Some(error) = error else { return };
    let mut io = Io { stdin: stdin.map(|s| s.data), ..Default::default() };
    let mut pumps = Vec::new();
    for (stream, slot) in [(stdout, &mut io.stdout), (stderr, &mut io.stderr)] {
        if let Some(stream) = stream {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            *slot = Some(tx);
            let writer = stream.writer.clone();
            let closer = stream.writer;
            pumps.push(tokio::spawn(async move {
                pump(rx, move |data| {
                    let writer = writer.clone();
                    async move { writer.write(data).await }
                })
                .await
                .ok();
                closer.close().await;
            }));
        }
    }
    if let Some(mut stream) = resize {
        let (tx, rx) = mpsc::channel(8);
        io.resize = Some(rx);
        tokio::spawn(async move {
            let mut decoder = SizeDecoder::default();
            while let Some(data) = stream.data.recv().await {
                for size in decoder.feed(&data) {
                    if tx.send(size).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    let command = runner.options.command.clone();
    let outcome = runner.run(io).await;
    for p in pumps {
        let _ = p.await;
    }
    error.writer.write(Bytes::from(status_json(&outcome, &command).to_string())).await;
    error.writer.close().await;
}

async fn websocket_session(socket: ws::Socket, v5: bool, options: Options, runner: Runner) {
    let (mut incoming, out) = ws::channels(socket, v5);
    // The kubelet's greeting: an empty message on the lowest channel it writes.
    let first = if options.stdout {
        1
    } else if options.stderr {
        2
    } else {
        3
    };
    let _ = out.send(ws::channel_message(first, &[])).await;
    let mut io = Io::default();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(64);
    if options.stdin {
        io.stdin = Some(stdin_rx);
    }
    let (resize_tx, resize_rx) = mpsc::channel(8);
    if options.tty {
        io.resize = Some(resize_rx);
    }
    tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        let mut sizes = SizeDecoder::default();
        while let Some(message) = incoming.recv().await {
            match message {
                WsIncoming::Data(0, data) => {
                    if let Some(tx) = &stdin
                        && tx.send(data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                WsIncoming::Close(0) => stdin = None,
                WsIncoming::Data(4, data) => {
                    for size in sizes.feed(&data) {
                        let _ = resize_tx.send(size).await;
                    }
                }
                _ => {}
            }
        }
    });
    let mut pumps = Vec::new();
    for (channel, wanted, slot) in [(1u8, options.stdout, &mut io.stdout), (2u8, options.stderr, &mut io.stderr)] {
        if wanted {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            *slot = Some(tx);
            let out = out.clone();
            pumps.push(pump(rx, move |data| {
                let out = out.clone();
                async move { out.send(ws::channel_message(channel, &data)).await.is_ok() }
            }));
        }
    }
    let command = runner.options.command.clone();
    let outcome = runner.run(io).await;
    for p in pumps {
        let _ = p.await;
    }
    let _ = out.send(ws::channel_message(3, status_json(&outcome, &command).to_string().as_bytes())).await;
}

/// Copies a blocking file descriptor into `sink` until it ends (EOF, or EIO from a terminal
/// whose other side closed).
fn read_into(fd: OwnedFd, sink: Option<mpsc::Sender<Bytes>>) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::from(fd);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if let Some(sink) = &sink
                        && sink.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err()
                    {
                        // The client went away: keep draining so the command never blocks.
                        continue;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
}

/// Copies `source` into a blocking file descriptor until either ends.
fn write_from(fd: OwnedFd, mut source: mpsc::Receiver<Bytes>) {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::from(fd);
        while let Some(data) = source.blocking_recv() {
            if file.write_all(&data).is_err() {
                return;
            }
        }
    });
}

/// Runs `command` in container `id` with the client's streams and returns how it ended, once
/// its output has been passed on.
pub async fn run_exec(runtime: Arc<Runtime>, id: String, command: Vec<String>, tty: bool, io: Io) -> Outcome {
    match exec_inner(runtime, id, command, tty, io).await {
        Outcome::Failed(e) => Outcome::Failed(format!("error executing command in container: {e}")),
        done => done,
    }
}

async fn recv_or_wait<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Attaches the client's streams to container `id`'s own process (through the shim's attach
/// socket) until the container ends or the client goes away.
pub async fn run_attach(runtime: Arc<Runtime>, id: String, io: Io) -> Outcome {
    use skiff_runtime::attach::{CLOSE_STDIN, RESIZE, STDERR, STDIN, STDOUT, frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connected = tokio::task::spawn_blocking(move || runtime.attach(&id)).await;
    let stream = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Outcome::Failed(format!("error attaching to container: {e}")),
        Err(e) => return Outcome::Failed(format!("error attaching to container: {e}")),
    };
    let stream = match stream.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(stream)) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("error attaching to container: {e}")),
    };
    let (mut read, mut write) = stream.into_split();
    let Io { mut stdin, stdout, stderr, mut resize } = io;
    let input = tokio::spawn(async move {
        loop {
            // A new size goes before input that may depend on it.
            tokio::select! {
                biased;
                size = recv_or_wait(&mut resize), if resize.is_some() => match size {
                    Some((w, h)) => {
                        let payload = [w.to_be_bytes(), h.to_be_bytes()].concat();
                        if write.write_all(&frame(RESIZE, &payload)).await.is_err() {
                            return;
                        }
                    }
                    None => resize = None,
                },
                data = recv_or_wait(&mut stdin), if stdin.is_some() => match data {
                    Some(data) => {
                        if write.write_all(&frame(STDIN, &data)).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        stdin = None;
                        let _ = write.write_all(&frame(CLOSE_STDIN, &[])).await;
                    }
                },
                else => std::future::pending::<()>().await,
            }
        }
    });
    let mut head = [0u8; 5];
    while read.read_exact(&mut head).await.is_ok() {
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len.min(1 << 20)];
        if read.read_exact(&mut payload).await.is_err() {
            break;
        }
        let sink = match head[0] {
            STDOUT => stdout.as_ref(),
            STDERR => stderr.as_ref().or(stdout.as_ref()),
            _ => None,
        };
        if let Some(sink) = sink
            && sink.send(Bytes::from(payload)).await.is_err()
        {
            break;
        }
    }
    input.abort();
    Outcome::Exited(0)
}

async fn exec_inner(runtime: Arc<Runtime>, id: String, command: Vec<String>, tty: bool, io: Io) -> Outcome {
    let options = ExecOptions { tty, stdin: io.stdin.is_some() };
    let started = tokio::task::spawn_blocking(move || runtime.exec(&id, &command, &options)).await;
    let mut process = match started {
        Ok(Ok(p)) => p,
        Ok(Err(ExecError::Start(e) | ExecError::Io(e))) => return Outcome::Failed(e),
        Ok(Err(e)) => return Outcome::Failed(e.to_string()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let mut readers = Vec::new();
    if let Some(pty) = process.pty.take() {
        let clone = |fd: &OwnedFd| fd.try_clone().map_err(|e| Outcome::Failed(format!("terminal: {e}")));
        let (reader, writer) = match (clone(&pty), clone(&pty)) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        readers.push(read_into(reader, io.stdout));
        if let Some(stdin) = io.stdin {
            write_from(writer, stdin);
        }
        if let Some(mut resize) = io.resize {
            tokio::spawn(async move {
                while let Some((w, h)) = resize.recv().await {
                    if let Err(e) = skiff_runtime::exec::resize(&pty, w, h) {
                        tracing::debug!(error = %e, "resizing a terminal");
                    }
                }
            });
        }
    } else {
        if let Some(fd) = process.stdout.take() {
            readers.push(read_into(fd, io.stdout));
        }
        if let Some(fd) = process.stderr.take() {
            readers.push(read_into(fd, io.stderr));
        }
        if let (Some(fd), Some(stdin)) = (process.stdin.take(), io.stdin) {
            write_from(fd, stdin);
        }
    }
    let code = tokio::task::spawn_blocking(move || process.wait()).await;
    for r in readers {
        let _ = r.await;
    }
    match code {
        Ok(Ok(code)) => Outcome::Exited(code),
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_kubelet_parameters() {
        let o = Options::from_query("command=ls&command=-l&input=1&output=1&error=1&tty=1");
        assert_eq!(o.command, ["ls", "-l"]);
        assert!(o.stdin && o.stdout && o.tty);
        assert!(!o.stderr, "a terminal carries standard error");
    }

    #[test]
    fn statuses_match_the_kubelet() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(status_json(&Outcome::Exited(0), &cmd), json!({"metadata": {}, "status": "Success"}));
        let failed = status_json(&Outcome::Exited(3), &cmd);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
        let internal = status_json(&Outcome::Failed("no such file".into()), &cmd);
        assert_eq!(internal["reason"], "InternalError");
        assert_eq!(internal["code"], 500);
    }

    #[test]
    fn sizes_decode_across_chunks() {
        let mut d = SizeDecoder::default();
        assert_eq!(d.feed(br#"{"Width":80,"#), vec![]);
        assert_eq!(d.feed(br#""Height":24}{"Width":100,"Height":40}"#), vec![(80, 24), (100, 40)]);
        assert_eq!(d.feed(b"\n"), vec![]);
    }
}
