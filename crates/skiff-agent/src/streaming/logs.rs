//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's CRI log file read back as the
//! kubelet does, with `follow`, `previous`, `sinceSeconds`/`sinceTime`, `timestamps`,
//! `tailLines` and `limitBytes`, streamed as `text/plain` and flushed record by record.
//!
//! The files are written by the shim (`skiff_runtime::logs`); what lives here is reading them
//! back: [`LogOptions`], [`render`] of records, [`tail_offset`], and the follow loop. As the
//! kubelet, only the current file is read (rotated ones are not); a follower whose file is
//! rotated away finishes it and goes on with the new one once the shim has reopened it
//! ([`crate::logrotate`]), so it sees every record exactly once.

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use skiff_runtime::container::ContainerState;
use tokio::sync::mpsc;

use super::server::{self, Body, Streaming};

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// What part of the log to return, and how (upstream `PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container ends.
    pub follow: bool,
    /// The previous instance of the container.
    pub previous: bool,
    /// Only records at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Prefix each record with its time.
    pub timestamps: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Reads the options from the query (the kubelet's parameter names, which the API server
    /// passes on unchanged).
    pub fn from_query(query: &str, now: jiff::Timestamp) -> Result<Self, String> {
        let pairs = server::query_pairs(query);
        let number = |name: &str| -> Result<Option<i64>, String> {
            server::param(&pairs, name)
                .map(|v| v.parse::<i64>().map_err(|_| format!("{name}: invalid value {v:?}")))
                .transpose()
        };
        let mut since = None;
        if let Some(seconds) = number("sinceSeconds")? {
            since = now.checked_sub(jiff::SignedDuration::from_secs(seconds)).ok();
        }
        if let Some(time) = server::param(&pairs, "sinceTime") {
            since = Some(time.parse().map_err(|e| format!("sinceTime: invalid value {time:?}: {e}"))?);
        }
        Ok(Self {
            follow: server::flag(&pairs, "follow"),
            previous: server::flag(&pairs, "previous"),
            since,
            timestamps: server::flag(&pairs, "timestamps"),
            tail_lines: number("tailLines")?.map(|n| n.max(0) as u64),
            limit_bytes: number("limitBytes")?.map(|n| n.max(0) as u64),
        })
    }
}

/// Renders one CRI record (`<time> <stream> <P|F> <text>`, without its newline) as the client
/// sees it; `None` for a malformed record or one before `since`.
pub fn render(record: &[u8], options: &LogOptions) -> Option<Vec<u8>> {
    let mut fields = record.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let _stream = fields.next()?;
    let tag = fields.next()?;
    let text = fields.next().unwrap_or_default();
    let time: jiff::Timestamp = time.parse().ok()?;
    if options.since.is_some_and(|since| time < since) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + 40);
    if options.timestamps {
        // RFC 3339 with nanoseconds, trailing zeros trimmed (Go's time.RFC3339Nano).
        out.extend_from_slice(format!("{time} ").as_bytes());
    }
    out.extend_from_slice(text);
    if tag != b"P" {
        out.push(b'\n');
    }
    Some(out)
}

/// Offset of the start of the last `n` lines of `data`.
pub fn tail_offset(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut seen = 0;
    // A trailing newline ends the last line rather than starting a new one.
    let end = if data.ends_with(b"\n") { data.len() - 1 } else { data.len() };
    for (i, b) in data[..end].iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Serves the log request.
pub async fn serve(ctx: Arc<Streaming>, ns: &str, pod: &str, container: &str, query: &str) -> Response<Body> {
    let options = match LogOptions::from_query(query, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return server::status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let target = match server::find_container(&ctx, ns, pod, container).await {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let attempt = match (target.attempt, options.previous) {
        (Some(a), true) if a > 0 => Some(a - 1),
        (_, true) => None,
        (a, false) => a,
    };
    let Some(attempt) = attempt else {
        let message = if options.previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            let reason = waiting_reason(&target.pod, container);
            format!("container {container:?} in pod {pod:?} is waiting to start: {reason}")
        };
        return server::status(StatusCode::BAD_REQUEST, "BadRequest", message);
    };
    let path: PathBuf =
        ctx.log_dir.join(format!("{ns}_{pod}_{}", target.uid)).join(container).join(format!("{attempt}.log"));
    let id = target.instance(attempt);
    let runtime = Arc::clone(&ctx.runtime);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::task::spawn_blocking(move || {
        let running = || matches!(runtime.state(&id), Ok(ContainerState::Running(_)));
        if let Err(e) = stream_file(&path, &options, running, &tx) {
            tracing::debug!(path = %path.display(), error = %e, "reading a container log");
        }
    });
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    }));
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

fn waiting_reason(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> String {
    let status = pod.status.as_ref();
    status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()))
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_else(|| "ContainerCreating".into())
}

/// Sends the selected records of `path` to `tx`; with `follow`, keeps reading until
/// `running` says the container has ended (or the receiver is gone).
fn stream_file(
    path: &Path,
    options: &LogOptions,
    running: impl Fn() -> bool,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        // A container that never wrote anything may have no file yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !options.follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            while running() && !path.exists() {
                std::thread::sleep(FOLLOW_POLL);
            }
            File::open(path)?
        }
        Err(e) => return Err(e),
    };
    let mut pending = Vec::new();
    file.read_to_end(&mut pending)?;
    if let Some(n) = options.tail_lines {
        let start = tail_offset(&pending, n);
        pending.drain(..start);
    }
    let mut budget = options.limit_bytes.unwrap_or(u64::MAX);
    let mut emit = |pending: &mut Vec<u8>| -> bool {
        let Some(last) = pending.iter().rposition(|b| *b == b'\n') else { return true };
        let mut out = Vec::new();
        for record in pending[..last].split(|b| *b == b'\n') {
            if let Some(rendered) = render(record, options) {
                out.extend_from_slice(&rendered);
            }
        }
        pending.drain(..=last);
        if out.len() as u64 > budget {
            out.truncate(budget as usize);
        }
        budget -= out.len() as u64;
        (out.is_empty() || tx.blocking_send(Bytes::from(out)).is_ok()) && budget > 0
    };
    if !emit(&mut pending) || !options.follow {
        return Ok(());
    }
    let mut offset = file.stream_position()?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            offset += n as u64;
            pending.extend_from_slice(&buf[..n]);
            if !emit(&mut pending) {
                return Ok(());
            }
            continue;
        }
        if tx.is_closed() {
            return Ok(());
        }
        if let Some(next) = reopened(&file, path) {
            // Rotated, and the writer has moved to the new file: finish the old one first.
            let mut rest = Vec::new();
            file.read_to_end(&mut rest)?;
            pending.extend_from_slice(&rest);
            if !emit(&mut pending) {
                return Ok(());
            }
            (file, offset) = (next, 0);
            continue;
        }
        if !running() {
            // The shim writes the last records before the container counts as ended.
            file.seek(SeekFrom::Start(offset))?;
            let mut rest = Vec::new();
            file.read_to_end(&mut rest)?;
            pending.extend_from_slice(&rest);
            emit(&mut pending);
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The file now at `path` when it is not `file` any more (a rotation renamed `file` away and
/// the writer created a new one).
fn reopened(file: &File, path: &Path) -> Option<File> {
    let (open, current) = (file.metadata().ok()?, std::fs::metadata(path).ok()?);
    if (open.dev(), open.ino()) == (current.dev(), current.ino()) {
        return None;
    }
    File::open(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2024-05-01T10:00:00.100000000Z stdout F one\n\
                       2024-05-01T10:00:01.000000000Z stderr F two\n\
                       2024-05-01T10:00:02.500000000Z stdout P thr\n\
                       2024-05-01T10:00:02.600000000Z stdout F ee\n";

    fn read(options: &LogOptions) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).expect("write");
        let (tx, mut rx) = mpsc::channel(16);
        stream_file(&path, options, || false, &tx).expect("read");
        drop(tx);
        let mut out = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn renders_records_as_the_kubelet_does() {
        assert_eq!(read(&LogOptions::default()), "one\ntwo\nthree\n");
        let stamped = read(&LogOptions { timestamps: true, ..Default::default() });
        assert_eq!(
            stamped,
            "2024-05-01T10:00:00.1Z one\n2024-05-01T10:00:01Z two\n2024-05-01T10:00:02.5Z thr2024-05-01T10:00:02.6Z ee\n"
        );
        assert_eq!(read(&LogOptions { tail_lines: Some(2), ..Default::default() }), "three\n");
        assert_eq!(read(&LogOptions { tail_lines: Some(3), ..Default::default() }), "two\nthree\n");
        assert_eq!(read(&LogOptions { tail_lines: Some(0), ..Default::default() }), "");
        assert_eq!(read(&LogOptions { tail_lines: Some(10), ..Default::default() }), "one\ntwo\nthree\n");
        assert_eq!(read(&LogOptions { limit_bytes: Some(6), ..Default::default() }), "one\ntw");
        let since = "2024-05-01T10:00:01Z".parse().ok();
        assert_eq!(read(&LogOptions { since, ..Default::default() }), "two\nthree\n");
    }

    #[test]
    fn options_come_from_the_query() {
        let now: jiff::Timestamp = "2024-05-01T10:00:10Z".parse().expect("time");
        let o = LogOptions::from_query("follow=true&tailLines=5&sinceSeconds=4&timestamps=true&limitBytes=9", now)
            .expect("options");
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(9)));
        assert_eq!(o.since, "2024-05-01T10:00:06Z".parse().ok());
        let o = LogOptions::from_query("previous=1&sinceTime=2024-05-01T09%3A00%3A00Z", now).expect("options");
        assert!(o.previous);
        assert_eq!(o.since, "2024-05-01T09:00:00Z".parse().ok());
        assert!(LogOptions::from_query("tailLines=x", now).is_err());
    }

    #[test]
    fn follow_stops_when_the_container_has_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).expect("write");
        let (tx, mut rx) = mpsc::channel(16);
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
                std::io::Write::write_all(&mut f, b"2024-05-01T10:00:03Z stdout F four\n").expect("append");
            })
        };
        let started = std::time::Instant::now();
        let running = || started.elapsed() < Duration::from_millis(600);
        stream_file(&path, &LogOptions { follow: true, ..Default::default() }, running, &tx).expect("follow");
        writer.join().expect("writer");
        drop(tx);
        let mut out = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn follow_goes_on_across_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let record = |n: u32| format!("2024-05-01T10:00:00Z stdout F line {n}\n");
        std::fs::write(&path, record(0)).expect("write");
        let (tx, mut rx) = mpsc::channel(64);
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                let append = |p: &Path, n: u32| {
                    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(p).expect("open");
                    std::io::Write::write_all(&mut f, record(n).as_bytes()).expect("append");
                };
                std::thread::sleep(Duration::from_millis(250));
                append(&path, 1);
                // Rotation: renamed away, written a little more (before the reopen), then anew.
                let rotated = path.with_extension("log.20240501-100000");
                std::fs::rename(&path, &rotated).expect("rename");
                append(&rotated, 2);
                std::thread::sleep(Duration::from_millis(250));
                append(&path, 3);
                std::thread::sleep(Duration::from_millis(250));
                append(&path, 4);
            })
        };
        let started = std::time::Instant::now();
        let running = || started.elapsed() < Duration::from_millis(1500);
        stream_file(&path, &LogOptions { follow: true, ..Default::default() }, running, &tx).expect("follow");
        writer.join().expect("writer");
        drop(tx);
        let mut out = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(String::from_utf8_lossy(&out), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    }
}
