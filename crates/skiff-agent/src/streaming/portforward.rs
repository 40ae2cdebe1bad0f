//! `/portForward/{ns}/{pod}`: TCP connections to a pod's ports, made inside the pod's network
//! namespace, over SPDY (`portforward.k8s.io`: per connection an `error` and a `data` stream
//! with headers `port` and `requestid`), SPDY tunnelled in WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl 1.30+), or WebSocket channels (`v4.channel.k8s.io`,
//! the Python client: port i on data channel 2i and error channel 2i+1, each announced by the
//! port number, little-endian).
//!
//! Connecting happens on a dedicated short-lived thread that `setns`es into the pod's network
//! namespace ([`dial`]); no thread of the async runtime ever changes namespace.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::remotecommand::{is_spdy, spdy_accept};
use super::server::{self, Body, Streaming};
use super::spdy::session::{Session, Stream};
use super::ws::{self, Incoming as WsIncoming};

/// The SPDY subprotocol of port-forward.
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol carrying a SPDY port-forward connection.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// WebSocket channel subprotocols served.
pub const WS_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "portforward.k8s.io"];
/// How long a connection attempt may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect: the pod's network namespace (or the host's), and names for messages.
#[derive(Debug, Clone)]
struct Target {
    netns: Option<PathBuf>,
    uid: String,
}

/// Serves a port-forward request.
pub async fn serve(ctx: Arc<Streaming>, ns: &str, pod: &str, req: Request<Incoming>) -> Response<Body> {
    let pod = match server::find_pod(&ctx, ns, pod).await {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let uid = crate::static_pods::runtime_uid(&pod);
    let netns = {
        let (runtime, uid) = (Arc::clone(&ctx.runtime), uid.clone());
        tokio::task::spawn_blocking(move || super::pod_netns(&runtime, &uid)).await.ok().flatten()
    };
    // Only a pod on the host's network is reached in the host's namespace; any other pod needs
    // its sandbox (never fall back to the host's localhost for it).
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    if netns.is_none() && !host_network {
        return server::status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pod {:?} has no running sandbox to forward ports into", pod.metadata.name.unwrap_or_default()),
        );
    }
    let target = Target { netns, uid };
    let headers = req.headers().clone();
    if ws::is_websocket(&headers) {
        let offered = ws::offered_protocols(&headers);
        if offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
            tokio::spawn(async move {
                match hyper::upgrade::on(req).await {
                    Ok(upgraded) => {
                        let session = Session::start(ws::tunnel(ws::socket(upgraded).await));
                        spdy_session(session, target).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
                }
            });
            return ws::accept(&headers, Some(TUNNEL_PROTOCOL));
        }
        let protocol = offered.iter().find(|p| WS_PROTOCOLS.contains(&p.as_str())).cloned();
        if protocol.is_none() && !offered.is_empty() {
            return ws::unsupported(&offered, WS_PROTOCOLS);
        }
        let ports = match ports(req.uri().query().unwrap_or("")) {
            Ok(p) => p,
            Err(e) => return server::status(StatusCode::BAD_REQUEST, "BadRequest", e),
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => websocket_session(ws::socket(upgraded).await, ports, target).await,
                Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
            }
        });
        return ws::accept(&headers, protocol.as_deref());
    }
    if is_spdy(&headers) {
        let offered: Vec<String> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect();
        if !offered.iter().any(|p| p == SPDY_PROTOCOL) {
            return ws::unsupported(&offered, &[SPDY_PROTOCOL]);
        }
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => spdy_session(Session::start(TokioIo::new(upgraded)), target).await,
                Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
            }
        });
        return spdy_accept(SPDY_PROTOCOL);
    }
    server::text(StatusCode::BAD_REQUEST, "Upgrade request required")
}

/// The ports of a WebSocket request (`port`, repeated or comma-separated, as the kubelet reads).
pub fn ports(query: &str) -> Result<Vec<u16>, String> {
    let pairs = server::query_pairs(query);
    let values: Vec<&str> = pairs.iter().filter(|(k, _)| k == "port").map(|(_, v)| v.as_str()).collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(format!("unable to parse {p:?} as a port")),
            }
        }
    }
    Ok(ports)
}

/// Connects to `localhost:port` in `netns` (the host's when `None`) from a dedicated thread.
pub async fn dial(netns: Option<PathBuf>, port: u16) -> io::Result<TcpStream> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new().name("portforward-dial".into()).spawn(move || {
        let result = (|| {
            if let Some(path) = &netns {
                let file = std::fs::File::open(path)?;
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            }
            let v4 = std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), DIAL_TIMEOUT);
            match v4 {
                Ok(s) => Ok(s),
                Err(e4) => {
                    std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), DIAL_TIMEOUT)
                        .map_err(|e6| io::Error::new(e4.kind(), format!("IPv4: {e4}, IPv6: {e6}")))
                }
            }
        })();
        let _ = tx.send(result);
    })?;
    let stream = rx.await.map_err(|_| io::Error::other("the dialing thread ended"))??;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

fn dial_error(target: &Target, port: u16, e: &io::Error) -> String {
    let ns = target.netns.as_ref().map_or_else(|| "host".to_string(), |p| p.display().to_string());
    format!(
        "error forwarding port {port} to pod {}, uid : failed to connect to localhost:{port} inside namespace {ns:?}: {e}",
        target.uid
    )
}

async fn spdy_session(mut session: Session, target: Target) {
    let mut pairs: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(stream) = session.streams.recv().await {
        let request = stream.header("requestid").unwrap_or("").to_string();
        let entry = pairs.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => entry.0 = Some(stream),
            Some("data") => entry.1 = Some(stream),
            other => {
                tracing::debug!(streamtype = ?other, "ignoring an unexpected port-forward stream");
                continue;
            }
        }
        if entry.0.is_some()
            && entry.1.is_some()
            && let Some((Some(error), Some(data))) = pairs.remove(&request)
        {
            tokio::spawn(forward_spdy(error, data, target.clone()));
        }
    }
}

async fn forward_spdy(error: Stream, data: Stream, target: Target) {
    let port = match data.header("port").and_then(|p| p.parse::<u16>().ok()) {
        Some(p) => p,
        None => {
            let message = format!("invalid port header {:?}", data.header("port"));
            error.writer.write(Bytes::from(message)).await;
            error.writer.close().await;
            data.writer.close().await;
            return;
        }
    };
    match dial(target.netns.clone(), port).await {
        Ok(tcp) => {
            let Stream { data: from_client, writer, .. } = data;
            let (to_client_tx, to_client_rx) = mpsc::channel::<Bytes>(16);
            let pump = tokio::spawn(async move {
                let mut rx = to_client_rx;
                while let Some(chunk) = rx.recv().await {
                    if !writer.write(chunk).await {
                        break;
                    }
                }
                writer.close().await;
            });
            splice(tcp, from_client, to_client_tx).await;
            let _ = pump.await;
            error.writer.close().await;
        }
        Err(e) => {
            error.writer.write(Bytes::from(dial_error(&target, port, &e))).await;
            error.writer.close().await;
            data.writer.close().await;
        }
    }
}

/// Copies between a TCP connection and a client channel pair until both directions end.
async fn splice(tcp: TcpStream, mut from_client: mpsc::Receiver<Bytes>, to_client: mpsc::Sender<Bytes>) {
    let (mut read, mut write) = tcp.into_split();
    let upstream = async move {
        while let Some(chunk) = from_client.recv().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    // The client's side may stay open after the pod's closed: the connection is over then.
    tokio::select! {
        _ = downstream => {}
        _ = async { upstream.await; std::future::pending::<()>().await } => {}
    }
}

async fn websocket_session(socket: ws::Socket, ports: Vec<u16>, target: Target) {
    let (mut incoming, out) = ws::channels(socket, false);
    let mut to_pod: HashMap<u8, mpsc::Sender<Bytes>> = HashMap::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data_ch, error_ch] {
            let _ = out.send(ws::channel_message(ch, &port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        to_pod.insert(data_ch, tx);
        let (out, target) = (out.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            match dial(target.netns.clone(), port).await {
                Ok(tcp) => {
                    let (back_tx, mut back_rx) = mpsc::channel::<Bytes>(16);
                    let sender = {
                        let out = out.clone();
                        tokio::spawn(async move {
                            while let Some(chunk) = back_rx.recv().await {
                                if out.send(ws::channel_message(data_ch, &chunk)).await.is_err() {
                                    break;
                                }
                            }
                        })
                    };
                    splice(tcp, rx, back_tx).await;
                    let _ = sender.await;
                }
                Err(e) => {
                    let _ = out.send(ws::channel_message(error_ch, dial_error(&target, port, &e).as_bytes())).await;
                }
            }
        }));
    }
    drop(out);
    let reader = tokio::spawn(async move {
        while let Some(message) = incoming.recv().await {
            match message {
                WsIncoming::Data(ch, data) => {
                    if let Some(tx) = to_pod.get(&ch)
                        && tx.send(data).await.is_err()
                    {
                        to_pod.remove(&ch);
                    }
                }
                WsIncoming::Close(ch) => {
                    to_pod.remove(&ch);
                }
            }
        }
    });
    for t in tasks {
        let _ = t.await;
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_as_the_kubelet_does() {
        assert_eq!(ports("port=8080&port=80,9090"), Ok(vec![8080, 80, 9090]));
        assert!(ports("").is_err());
        assert!(ports("port=").is_err());
        assert!(ports("port=http").is_err());
    }

    #[tokio::test]
    async fn dials_in_the_host_namespace_without_a_sandbox() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        let stream = dial(None, port).await.expect("dial");
        assert_eq!(stream.peer_addr().expect("peer").port(), port);
        accept.await.expect("join").expect("accept");
    }
}
