//! `skiff bench dns` and `skiff bench proxy`: the cluster DNS's queries per second, measured by
//! a load generator in this process against a DNS server in a child process, and the service
//! proxy's rule sync time (render + `nft -f`) for many Services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{BenchDnsArgs, BenchProxyArgs};

fn services(n: usize) -> anyhow::Result<Vec<Service>> {
    (0..n)
        .map(|i| {
            let ip = format!("10.43.{}.{}", (i + 20) / 250, (i + 20) % 250 + 1);
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }))
            .context("service")
        })
        .collect()
}

fn slices(n: usize, endpoints: usize) -> anyhow::Result<Vec<EndpointSlice>> {
    (0..n)
        .map(|i| {
            let eps: Vec<serde_json::Value> = (0..endpoints)
                .map(|e| {
                    let k = i * endpoints + e;
                    serde_json::json!({"addresses": [format!("10.42.{}.{}", k / 250, k % 250 + 1)], "nodeName": "n1"})
                })
                .collect();
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("svc-{i}-x"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4", "endpoints": eps,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }))
            .context("slice")
        })
        .collect()
}

/// Serves a synthetic zone of `args.services` Services on `listen` until killed.
async fn serve(listen: SocketAddr, n: usize) -> anyhow::Result<()> {
    let cfg = skiff_dns::zone::ZoneConfig {
        domain: "cluster.local".into(),
        dns_ip: "10.43.0.10".parse()?,
        reverse_ranges: vec!["10.43.0.0/16".parse()?, "10.42.0.0/16".parse()?],
    };
    let svcs = services(n)?;
    let zone = skiff_dns::zone::Zone::build(&cfg, &svcs, [], [], 1);
    let handle = Arc::new(skiff_dns::server::ZoneHandle::default());
    handle.swap(zone);
    let (udp, _tcp) = skiff_dns::server::bind(listen).await?;
    let forwarder = Arc::new(skiff_dns::forward::Forwarder::new(Vec::new()));
    skiff_dns::server::serve_udp(udp, handle, forwarder, 2);
    eprintln!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut p = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    p[..2].copy_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&skiff_dns::wire::name(name));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p
}

/// `skiff bench dns`.
pub async fn run_dns(args: BenchDnsArgs) -> anyhow::Result<()> {
    if let Some(listen) = args.serve {
        return serve(listen, args.services).await;
    }
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "dns", "--serve", &addr.to_string(), "--services", &args.services.to_string()])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    {
        use tokio::io::AsyncBufReadExt as _;
        let stderr = child.stderr.take().context("child stderr")?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Some(line) = lines.next_line().await? {
            if line == "ready" {
                break;
            }
        }
    }
    let answered = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (answered, n, window) = (answered.clone(), args.services, args.window);
        tasks.push(tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            socket.connect(addr).await?;
            let names: Vec<String> =
                (0..64).map(|i| format!("svc-{}.default.svc.cluster.local", (c * 64 + i) % n.max(1))).collect();
            let packets: Vec<Vec<u8>> = names.iter().enumerate().map(|(i, n)| query(i as u16, n)).collect();
            let mut buf = [0u8; 1500];
            let mut next = 0usize;
            for _ in 0..window {
                socket.send(&packets[next % packets.len()]).await?;
                next += 1;
            }
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await {
                    Ok(Ok(_)) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => return Err(anyhow::Error::from(e)),
                    Err(_) => {} // lost: refill below
                }
                socket.send(&packets[next % packets.len()]).await?;
                next += 1;
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    let qps = answered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "dns", "services": args.services, "clients": args.clients, "window": args.window,
                           "seconds": args.seconds, "answered": answered.load(Ordering::Relaxed), "qps": qps.round()})
    );
    let _ = child.kill().await;
    Ok(())
}

/// `skiff bench proxy`: renders and applies the rules of `services` × `endpoints` (run it in a
/// scratch network namespace: `ip netns add b && ip netns exec b skiff bench proxy`).
pub async fn run_proxy(args: BenchProxyArgs) -> anyhow::Result<()> {
    let svcs = services(args.services)?;
    let mut sl = slices(args.services, args.endpoints)?;
    let cfg = skiff_net::proxy::render::RenderConfig { cluster_cidr: Some("10.42.0.0/16".parse()?) };
    let t = Instant::now();
    let ports = skiff_net::proxy::model::service_ports(&svcs, &sl, "n1");
    let first = skiff_net::proxy::render::Ruleset::render(&ports, &cfg);
    let render = t.elapsed();
    let script = first.script(None);
    let t = Instant::now();
    skiff_net::nat::nft(&script)?;
    let full = t.elapsed();
    // One endpoint of one Service goes away: the next sync.
    sl[0].endpoints.pop();
    let t = Instant::now();
    let ports = skiff_net::proxy::model::service_ports(&svcs, &sl, "n1");
    let second = skiff_net::proxy::render::Ruleset::render(&ports, &cfg);
    let script2 = second.script(Some(&first));
    skiff_net::nat::nft(&script2)?;
    let update = t.elapsed();
    println!(
        "{}",
        serde_json::json!({"bench": "proxy", "services": args.services, "endpoints": args.endpoints,
                           "rules": first.rule_count(), "script_bytes": script.len(),
                           "render_ms": render.as_millis(), "first_sync_ms": full.as_millis(),
                           "update_sync_ms": update.as_millis()})
    );
    skiff_net::nat::nft(&format!("delete table ip {}\n", skiff_net::proxy::render::TABLE))?;
    Ok(())
}
