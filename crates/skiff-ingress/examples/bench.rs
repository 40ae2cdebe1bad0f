//! The ingress benchmark: requests per second and latency (p50, p99) of HTTP/1.1 keep-alive
//! requests sent straight to a backend and through the Ingress controller's proxy to the same
//! backend.
//!
//! `cargo run --release -p skiff-ingress --example bench -- [connections] [seconds]`
//! (defaults 16 and 5).
//! Backend, proxy and load generator run in this process on loopback (the proxy is the
//! real `skiff_ingress` listener and pooled client; the routing table is set by hand), so the
//! difference is the proxy's cost on the same cores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BODY: &[u8] = b"<html><body>hello from the backend</body></html>\n";

async fn backend() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    Ok(addr)
}

async fn proxy(to: SocketAddr) -> Result<SocketAddr> {
    use skiff_ingress::table::{Backend, PathKind, PathRule, Table, TableHandle, Target};
    let mut table = Table::default();
    let b = Arc::new(Backend::new("bench/web:80".into(), vec![to]));
    table.host_rules("web.example").push(PathRule {
        path: "/".into(),
        kind: PathKind::Prefix,
        target: Target::Backend(b.clone()),
    });
    table.backends = [(b.id, b)].into();
    let handle = TableHandle::default();
    handle.store(table);
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(skiff_ingress::listen::serve_http(l, Arc::new(skiff_ingress::proxy::Proxy::new(handle)), 80));
    Ok(addr)
}

/// One keep-alive connection sending requests back to back until `until`; the latencies in µs.
async fn client(addr: SocketAddr, until: Instant) -> Result<Vec<u32>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut lat = Vec::new();
    while Instant::now() < until {
        let req = hyper::Request::get("/").header("host", "web.example").body(Empty::<Bytes>::new())?;
        let t = Instant::now();
        let resp = send.send_request(req).await?;
        if resp.status() != 200 {
            return Err(format!("status {}", resp.status()).into());
        }
        resp.into_body().collect().await?;
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    Ok(lat)
}

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(addr: SocketAddr, connections: usize, seconds: u64) -> Result<Run> {
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(client(addr, until))).collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    if all.is_empty() {
        return Err("no request completed".into());
    }
    let pct = |p: f64| f64::from(all[((all.len() as f64 * p) as usize).min(all.len() - 1)]) / 1000.0;
    Ok(Run { rps: all.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) })
}

struct Args {
    connections: usize,
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let args = Args {
        connections: argv.next().map(|a| a.parse()).transpose()?.unwrap_or(16),
        seconds: argv.next().map(|a| a.parse()).transpose()?.unwrap_or(5),
    };
    let direct = backend().await?;
    let via = proxy(direct).await?;
    // Warm up both paths (connection pool, page cache of the allocator).
    measure(via, args.connections, 1).await?;
    println!(
        "ingress bench: {} keep-alive connections, {} s per run, {}-byte responses, {} cores",
        args.connections,
        args.seconds,
        BODY.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (name, addr) in [("direct to the backend", direct), ("through the ingress proxy", via)] {
        let r = measure(addr, args.connections, args.seconds).await?;
        println!("{name:>26}: {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms", r.rps, r.p50_ms, r.p99_ms);
    }
    Ok(())
}
