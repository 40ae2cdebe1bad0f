//! `skiff bench api`: starts `skiff server` as a child process in a temporary data dir and
//! measures the API the way clients use it: pod creates at several concurrencies, creates at a
//! fixed rate, GET, LIST of many pods, watch fan-out, and the server's resident memory.
//!
//! Numbers are printed as JSON lines (one per measurement) followed by a plain summary. The
//! client runs on the same machine, so it competes with the server for CPU.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio::sync::Mutex;

use crate::config::BenchApiArgs;

const NAMESPACE: &str = "bench";

/// Latency samples in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[idx.min(self.0.len() - 1)] as f64 / 1000.0
    }
}

/// A `skiff server` child process, stopped and its directory removed on drop.
pub(crate) struct ChildServer {
    child: std::process::Child,
    dir: PathBuf,
}

impl ChildServer {
    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the child, MB.
    pub(crate) fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

async fn start_server(dir: &Path) -> anyhow::Result<(ChildServer, kube::Client)> {
    start_server_with(dir, &[]).await
}

/// Starts `skiff server --disable-agent` with `extra` flags in `dir`; returns it and a client.
pub(crate) async fn start_server_with(dir: &Path, extra: &[&str]) -> anyhow::Result<(ChildServer, kube::Client)> {
    let port = free_port()?;
    let kubeconfig = dir.join("kubeconfig.yaml");
    let exe = std::env::current_exe().context("cannot find the skiff binary")?;
    let log = std::fs::File::create(dir.join("server.log"))?;
    // An empty config file keeps a host's /etc/skiff/config.yaml out of the measurement.
    std::fs::write(dir.join("none.yaml"), "")?;
    let child = std::process::Command::new(exe)
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1", "--log-level", "warn"])
        .args(extra)
        .arg("--config")
        .arg(dir.join("none.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start skiff server")?;
    let server = ChildServer { child, dir: dir.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut server = server;
    loop {
        if Instant::now() > deadline || matches!(server.child.try_wait(), Ok(Some(_))) {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            bail!("the server did not become ready:\n{log}");
        }
        if let Ok(kc) = Kubeconfig::read_from(&kubeconfig) {
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
            let client = kube::Client::try_from(config)?;
            let ready = client.request_text(http::Request::get("/readyz").body(Vec::new())?).await;
            if ready.is_ok() {
                return Ok((server, client));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .unwrap_or_default()
}

/// Prints one JSON line for measurement `name`.
pub(crate) fn report(name: &str, value: serde_json::Value) {
    let mut line = json!({"bench": name});
    if let (Some(l), Some(v)) = (line.as_object_mut(), value.as_object()) {
        l.extend(v.clone());
    }
    println!("{line}");
}

async fn creates(pods: &Api<Pod>, prefix: &str, total: usize, concurrency: usize) -> anyhow::Result<(f64, Samples)> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let started = Instant::now();
    let per = total.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let pods = pods.clone();
        let samples = samples.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut local = Samples::default();
            for i in 0..per {
                let t = Instant::now();
                pods.create(&PostParams::default(), &pod(&format!("{prefix}-{w}-{i}"))).await?;
                local.push(t.elapsed());
            }
            samples.lock().await.0.extend(local.0);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = Arc::try_unwrap(samples).map(Mutex::into_inner).unwrap_or_default();
    Ok((samples.0.len() as f64 / elapsed, samples))
}

/// Runs the API benchmark.
pub async fn run_api(args: BenchApiArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("skiff-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (server, client) = start_server(&dir).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = server.rss_mb();
    report("rss_idle", json!({"rss_mb": idle_rss}));

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

    let mut created = 0usize;
    let mut summary = Vec::new();
    for concurrency in [1usize, 16, 64] {
        let total = if concurrency == 1 { args.creates.min(1000) } else { args.creates };
        let (rate, mut s) = creates(&pods, &format!("c{concurrency}"), total, concurrency).await?;
        created += s.0.len();
        let (p50, p99) = (s.percentile(0.5), s.percentile(0.99));
        report(
            "pod_create",
            json!({"clients": concurrency, "count": s.0.len(), "per_sec": rate, "p50_ms": p50, "p99_ms": p99}),
        );
        summary.push(format!("pod create, {concurrency:>2} clients: {rate:>7.0}/s  p50 {p50:.2} ms  p99 {p99:.2} ms"));
    }

    // Creates paced at 1,000/s for 3 s: latency under a steady load.
    let paced = Arc::new(Mutex::new(Samples::default()));
    let mut handles = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    for i in 0..3000 {
        ticker.tick().await;
        let pods = pods.clone();
        let paced = paced.clone();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = pods.create(&PostParams::default(), &pod(&format!("paced-{i}"))).await;
            paced.lock().await.push(t.elapsed());
            r.map(|_| ())
        }));
    }
    for h in handles {
        h.await??;
    }
    created += 3000;
    let mut paced = Arc::try_unwrap(paced).map(Mutex::into_inner).unwrap_or_default();
    let (p50, p99) = (paced.percentile(0.5), paced.percentile(0.99));
    report("pod_create_paced", json!({"rate_per_sec": 1000, "count": 3000, "p50_ms": p50, "p99_ms": p99}));
    summary.push(format!("pod create at 1000/s: p50 {p50:.2} ms  p99 {p99:.2} ms"));

    if created < args.pods {
        creates(&pods, "fill", args.pods - created, 64).await?;
        created = args.pods;
    }

    // Names the 64-client run created: c64-<worker>-<i> for i < per64.
    let per64 = args.creates.div_ceil(64).max(1);
    let mut gets = Samples::default();
    for i in 0..2000 {
        let t = Instant::now();
        pods.get(&format!("c64-{}-{}", i % 64, (i / 64) % per64)).await?;
        gets.push(t.elapsed());
    }
    let (p50, p99) = (gets.percentile(0.5), gets.percentile(0.99));
    report("pod_get", json!({"count": 2000, "p50_ms": p50, "p99_ms": p99}));
    summary.push(format!("pod get: p50 {p50:.2} ms  p99 {p99:.2} ms"));

    let mut lists = Samples::default();
    let mut bytes = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let body = client
            .request_text(http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/pods")).body(Vec::new())?)
            .await?;
        lists.push(t.elapsed());
        bytes = body.len();
    }
    let (p50, p99) = (lists.percentile(0.5), lists.percentile(0.99));
    report("pod_list", json!({"pods": created, "bytes": bytes, "p50_ms": p50, "p99_ms": p99}));
    summary.push(format!("list {created} pods ({:.1} MB): p50 {p50:.1} ms  p99 {p99:.1} ms", bytes as f64 / 1e6));

    let rss = server.rss_mb();
    report("rss_with_pods", json!({"pods": created, "rss_mb": rss}));

    // Watch fan-out: every watcher sees every new pod; latency from the create call's start.
    let list = pods.list_metadata(&kube::api::ListParams::default().limit(1)).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let starts: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let delivery = Arc::new(Mutex::new(Samples::default()));
    let events_wanted = 20usize;
    let mut watchers = Vec::new();
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..args.watchers {
        let connected = connected.clone();
        let client = client.clone();
        let rv = rv.clone();
        let starts = starts.clone();
        let delivery = delivery.clone();
        watchers.push(tokio::spawn(async move {
            // Raw lines, matched by name: the client must not be the bottleneck it measures.
            let uri = format!("/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=120");
            let body = client.request_stream(http::Request::get(uri).body(Vec::new())?).await?;
            // Headers arrive after the server subscribed this watch.
            connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut lines = body.lines();
            let mut seen = 0;
            while let Some(line) = lines.next().await {
                let line = line?;
                let now = Instant::now();
                let Some(at) = line.find("\"name\":\"fanout-") else { continue };
                let rest = &line[at + 8..];
                let name = rest.split('"').next().unwrap_or_default();
                if let Some(t) = starts.lock().await.get(name) {
                    delivery.lock().await.push(now.duration_since(*t));
                    seen += 1;
                }
                if seen >= events_wanted {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(std::sync::atomic::Ordering::SeqCst) < args.watchers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..events_wanted {
        let name = format!("fanout-{i}");
        starts.lock().await.insert(name.clone(), Instant::now());
        pods.create(&PostParams::default(), &pod(&name)).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for w in watchers {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, w).await;
    }
    let mut delivery = Arc::try_unwrap(delivery).map(Mutex::into_inner).unwrap_or_default();
    let delivered = delivery.0.len();
    let (p50, p99) = (delivery.percentile(0.5), delivery.percentile(0.99));
    report(
        "watch_fanout",
        json!({"watchers": args.watchers, "events": events_wanted, "delivered": delivered, "p50_ms": p50, "p99_ms": p99}),
    );
    summary.push(format!(
        "watch fan-out to {} watchers: {delivered} deliveries, p50 {p50:.1} ms  p99 {p99:.1} ms",
        args.watchers
    ));
    summary.push(format!("server RSS: idle {idle_rss:.1} MB, with {created} pods {rss:.1} MB"));
    drop(server);
    eprintln!("\nsummary");
    for line in summary {
        eprintln!("  {line}");
    }
    Ok(())
}

/// Objects of the 50-object manifest: 25 ConfigMaps and 25 Deployments, with `tag` in each.
fn manifest_objects(tag: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for i in 0..25 {
        out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": NAMESPACE},
            "data": {"tag": tag, "index": i.to_string()}}));
        out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("dep-{i}"), "namespace": NAMESPACE},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("dep-{i}")}},
                     "template": {"metadata": {"labels": {"app": format!("dep-{i}")}},
                                  "spec": {"containers": [{"name": "main", "image": format!("busybox:{tag}"),
                                                           "env": [{"name": "TAG", "value": tag}]}]}}}}));
    }
    out
}

fn wide_deployment(tag: &str) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = (0..20)
        .map(|c| {
            json!({"name": format!("c{c}"), "image": format!("busybox:{tag}"), "ports": [{"containerPort": 8000 + c}],
                        "env": [{"name": "N", "value": c.to_string()}]})
        })
        .collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wide", "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "wide"}},
                 "template": {"metadata": {"labels": {"app": "wide"}}, "spec": {"containers": containers}}}})
}

async fn server_side_apply(client: &kube::Client, obj: &serde_json::Value) -> anyhow::Result<Duration> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let path = match kind {
        "ConfigMap" => format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{name}"),
        _ => format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"),
    };
    let req = http::Request::patch(format!("{path}?fieldManager=bench&force=true"))
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(obj)?)?;
    let t = Instant::now();
    client.request_text(req).await?;
    Ok(t.elapsed())
}

/// Runs the apply benchmark.
pub async fn run_apply(args: crate::config::BenchApplyArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("skiff-bench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (server, client) = start_server(&dir).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    let mut summary = Vec::new();

    // Server-side apply of the 50-object manifest: a changed tag every round (round 0 creates).
    let mut per_object = Samples::default();
    let mut round_secs = Vec::new();
    for round in 0..args.rounds {
        let started = Instant::now();
        for obj in manifest_objects(&format!("r{round}")) {
            per_object.push(server_side_apply(&client, &obj).await?);
        }
        round_secs.push(started.elapsed().as_secs_f64());
    }
    let mean = round_secs.iter().sum::<f64>() / round_secs.len().max(1) as f64;
    let (p50, p99) = (per_object.percentile(0.5), per_object.percentile(0.99));
    report(
        "apply_server_side_manifest",
        json!({"objects": 50, "rounds": args.rounds, "mean_round_ms": mean * 1000.0,
        "objects_per_sec": 50.0 / mean, "p50_ms": p50, "p99_ms": p99}),
    );
    summary
        .push(format!("server-side apply, 50 objects: {:.0} objects/s, p50 {p50:.2} ms, p99 {p99:.2} ms", 50.0 / mean));

    // Server-side apply of a 20-container Deployment, alternating images.
    let mut wide = Samples::default();
    for round in 0..args.rounds.max(10) * 5 {
        wide.push(server_side_apply(&client, &wide_deployment(&format!("t{}", round % 2))).await?);
    }
    let (p50, p99) = (wide.percentile(0.5), wide.percentile(0.99));
    report(
        "apply_server_side_wide_deployment",
        json!({"containers": 20, "count": wide.0.len(), "p50_ms": p50, "p99_ms": p99}),
    );
    summary.push(format!("server-side apply, 20-container Deployment: p50 {p50:.2} ms, p99 {p99:.2} ms"));

    // Client-side apply through kubectl (three-way merge, strategic merge patch), if available.
    let kubeconfig = dir.join("kubeconfig.yaml");
    let kubectl_ok = std::process::Command::new(&args.kubectl).arg("version").arg("--client").output().is_ok();
    if kubectl_ok {
        let file = dir.join("manifest.json");
        let mut kubectl_secs = Vec::new();
        for round in 0..5 {
            let items = manifest_objects(&format!("k{round}"));
            std::fs::write(&file, serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items}))?)?;
            let started = Instant::now();
            let out = std::process::Command::new(&args.kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["apply", "-f"])
                .arg(&file)
                .output()?;
            if !out.status.success() {
                bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            kubectl_secs.push(started.elapsed().as_secs_f64());
        }
        let mean = kubectl_secs.iter().sum::<f64>() / kubectl_secs.len() as f64;
        report(
            "apply_client_side_manifest",
            json!({"objects": 50, "rounds": 5, "mean_round_ms": mean * 1000.0,
            "objects_per_sec": 50.0 / mean}),
        );
        summary.push(format!(
            "client-side kubectl apply, 50 objects: {:.0} ms per apply ({:.0} objects/s, kubectl process included)",
            mean * 1000.0,
            50.0 / mean
        ));
    }
    drop(server);
    eprintln!("\nsummary");
    for line in summary {
        eprintln!("  {line}");
    }
    Ok(())
}
