//! `skiff bench scheduler`: scheduler_perf-like measurements on simulated nodes.
//!
//! Each run gets a fresh `skiff server --disable-agent --disable-scheduler` (child process),
//! registers N fake Ready nodes (32 cpu, 128 GiB, 110 pods; ten zones; every 20th node tainted
//! NoSchedule), creates the pods of one workload (plain; required anti-affinity within groups
//! of 500 on the hostname; a zone spread constraint with `DoNotSchedule`) and runs
//! `skiff scheduler` as a second child, so its throughput and memory are its own:
//! - backlog runs create every pod first, then start the scheduler, and measure how fast it
//!   binds them (average over the binding period, and per-second samples);
//! - streaming runs start the scheduler first and measure each pod's create → bound latency.
//!
//! Bound pods are marked Running by a stand-in for the kubelet that lives only here (a status
//! patch, no containers). Numbers are JSON lines plus a summary.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use crate::bench::{report, start_server_with};
use crate::config::BenchSchedulerArgs;

const NAMESPACE: &str = "bench";
const ZONES: usize = 10;
/// Pods per anti-affinity group (each group needs that many distinct nodes).
const GROUP: usize = 500;

fn node(i: usize) -> anyhow::Result<Node> {
    let name = format!("sim-{i:05}");
    let mut spec = json!({});
    if i % 20 == 19 {
        spec = json!({"taints": [{"key": "bench/reserved", "value": "true", "effect": "NoSchedule"}]});
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": format!("zone-{}", i % ZONES), "topology.kubernetes.io/region": "region-1"}},
        "spec": spec,
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated"}],
        },
    }))?)
}

fn pod(workload: &str, i: usize) -> anyhow::Result<Pod> {
    let group = format!("g{}", i / GROUP);
    let mut spec = json!({
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
    });
    match workload {
        "plain" => {}
        "anti-affinity" => {
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}});
        }
        "spread" => {
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]);
        }
        other => bail!("unknown workload {other:?} (plain, anti-affinity, spread)"),
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("p-{i:06}"), "labels": {"app": if workload == "spread" { "spread" } else { "bench" }, "group": group}},
        "spec": spec,
    }))?)
}

async fn parallel<F, Fut>(count: usize, workers: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let f = f.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                f(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Creation and binding times of the pods of one run.
#[derive(Default)]
struct Timeline {
    created: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
}

#[derive(serde::Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: WatchPod,
}

#[derive(serde::Deserialize)]
struct WatchPod {
    metadata: WatchMeta,
    #[serde(default)]
    spec: WatchSpec,
    #[serde(default)]
    status: WatchStatus,
}

#[derive(serde::Deserialize)]
struct WatchMeta {
    #[serde(default)]
    name: String,
}

#[derive(serde::Deserialize, Default)]
struct WatchSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct WatchStatus {
    #[serde(default)]
    phase: Option<String>,
}

/// Waits until the ServiceAccount controller has created the namespace's `default` account: pods
/// created before it are refused by the ServiceAccount admission, as upstream.
async fn wait_for_default_service_account(client: &kube::Client) -> anyhow::Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while accounts.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("the ServiceAccount controller did not create {NAMESPACE}/default within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Watches the namespace's pods: records when each is first seen bound and (with `kubelet`)
/// marks bound pods Running, as a kubelet would, without containers.
async fn watch_bindings(client: kube::Client, timeline: Arc<Mutex<Timeline>>, kubelet: bool) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let rv = pods.list_metadata(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
    let uri = format!("/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=3600");
    let body = client.request_stream(http::Request::get(uri).body(Vec::new())?).await?;
    let mut lines = body.lines();
    // The stand-in kubelet works off a queue, so reading the watch (and timing bindings) never
    // waits for its patches.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if kubelet {
        let pods = pods.clone();
        tokio::spawn(async move {
            let marks = Arc::new(Semaphore::new(8));
            while let Some(name) = rx.recv().await {
                let Ok(permit) = marks.clone().acquire_owned().await else { return };
                let pods = pods.clone();
                tokio::spawn(async move {
                    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                    let status = json!({"status": {"phase": "Running", "startTime": now,
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await;
                    drop(permit);
                });
            }
        });
    }
    while let Some(line) = lines.next().await {
        let line = line?;
        let Ok(ev) = serde_json::from_str::<WatchLine>(&line) else { continue };
        if ev.kind == "DELETED" || ev.object.spec.node_name.as_deref().is_none_or(str::is_empty) {
            continue;
        }
        let name = ev.object.metadata.name;
        let first = {
            let mut t = timeline.lock().await;
            if t.bound.contains_key(&name) {
                false
            } else {
                t.bound.insert(name.clone(), Instant::now());
                true
            }
        };
        if first && kubelet && ev.object.status.phase.as_deref() == Some("Pending") {
            let _ = tx.send(name);
        }
    }
    Ok(())
}

/// A `skiff scheduler` child process.
struct ChildScheduler(std::process::Child);

impl ChildScheduler {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the skiff binary")?;
        let log = std::fs::File::create(dir.join("scheduler.log"))?;
        let child = std::process::Command::new(exe)
            .args(["scheduler", "--log-level", "warn", "--kubeconfig"])
            .arg(dir.join("kubeconfig.yaml"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start skiff scheduler")?;
        Ok(Self(child))
    }

    /// (VmRSS, VmHWM) in MB.
    fn memory_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        let field = |f: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for ChildScheduler {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// The outcome of one run.
struct RunResult {
    line: String,
}

async fn run_one(
    args: &BenchSchedulerArgs,
    workload: &str,
    count: usize,
    streaming: bool,
) -> anyhow::Result<RunResult> {
    let dir = std::env::temp_dir().join(format!("skiff-bench-sched-{}-{workload}-{count}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The simulated nodes never renew a Lease: a long grace period keeps them Ready.
    let (server, client) =
        start_server_with(&dir, &["--disable-scheduler", "--node-monitor-grace-period", "24h"]).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    parallel(args.nodes, 32, move |i| {
        let nodes = nodes.clone();
        async move {
            nodes.create(&PostParams::default(), &node(i)?).await?;
            Ok(())
        }
    })
    .await?;
    let nodes_secs = started.elapsed().as_secs_f64();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    wait_for_default_service_account(&client).await?;

    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let watcher = tokio::spawn(watch_bindings(client.clone(), timeline.clone(), !args.no_kubelet));
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let create = |timeline: Arc<Mutex<Timeline>>| {
        let pods = pods.clone();
        let workload = workload.to_string();
        parallel(count, 64, move |i| {
            let pods = pods.clone();
            let timeline = timeline.clone();
            let p = pod(&workload, i);
            async move {
                let p = p?;
                let name = p.metadata.name.clone().unwrap_or_default();
                pods.create(&PostParams::default(), &p).await?;
                timeline.lock().await.created.insert(name, Instant::now());
                Ok(())
            }
        })
    };
    let (scheduler, sched_start, create_secs) = if streaming {
        let s = ChildScheduler::start(&dir)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let t = Instant::now();
        create(timeline.clone()).await?;
        (s, t, t.elapsed().as_secs_f64())
    } else {
        let t = Instant::now();
        create(timeline.clone()).await?;
        let create_secs = t.elapsed().as_secs_f64();
        (ChildScheduler::start(&dir)?, Instant::now(), create_secs)
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last = (0usize, Instant::now());
    loop {
        let bound = timeline.lock().await.bound.len();
        if bound >= count {
            break;
        }
        if bound != last.0 {
            last = (bound, Instant::now());
        }
        if Instant::now() > deadline || last.1.elapsed() > Duration::from_secs(60) {
            eprintln!("run {workload}/{count}: only {bound} of {count} pods bound; see {}", dir.display());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss, hwm) = scheduler.memory_mb();
    let t = timeline.lock().await;
    let mut binds: Vec<Instant> = t.bound.values().copied().collect();
    binds.sort();
    let bound = binds.len();
    let first = binds.first().copied().unwrap_or(sched_start);
    let last_bind = binds.last().copied().unwrap_or(sched_start);
    let span = last_bind.duration_since(first).as_secs_f64().max(1e-3);
    let average = bound as f64 / span;
    let from_start = bound as f64 / last_bind.duration_since(sched_start).as_secs_f64().max(1e-3);
    let mut per_second: Vec<f64> = Vec::new();
    let whole_seconds = span.floor() as usize;
    for s in 0..whole_seconds {
        let lo = first + Duration::from_secs(s as u64);
        let hi = lo + Duration::from_secs(1);
        per_second.push(binds.iter().filter(|b| **b >= lo && **b < hi).count() as f64);
    }
    per_second.sort_by(f64::total_cmp);
    let mut latencies: Vec<f64> = t
        .bound
        .iter()
        .filter_map(|(n, b)| t.created.get(n).map(|c| b.saturating_duration_since(*c).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    drop(t);
    let mode = if streaming { "streaming" } else { "backlog" };
    report(
        "scheduler",
        json!({"workload": workload, "mode": mode, "nodes": args.nodes, "pods": count, "bound": bound,
            "node_registration_s": nodes_secs, "pod_creation_s": create_secs,
            "throughput_avg_per_s": average, "throughput_from_scheduler_start_per_s": from_start,
            "throughput_per_s_p50": percentile(&per_second, 0.5), "throughput_per_s_p99": percentile(&per_second, 0.99),
            "throughput_per_s_min": per_second.first().copied().unwrap_or(average),
            "latency_p50_ms": percentile(&latencies, 0.5), "latency_p99_ms": percentile(&latencies, 0.99),
            "scheduler_rss_mb": rss, "scheduler_peak_rss_mb": hwm, "server_rss_mb": server.rss_mb()}),
    );
    let line = if streaming {
        format!(
            "{workload:>13} {mode:>9} {count:>6} pods: {average:>7.0} pods/s, create→bound p50 {:.0} ms p99 {:.0} ms, scheduler RSS {rss:.0} MB",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        )
    } else {
        format!(
            "{workload:>13} {mode:>9} {count:>6} pods: {average:>7.0} pods/s avg (per-second p50 {:.0}, p99 {:.0}), {from_start:.0}/s from scheduler start, scheduler RSS {rss:.0} MB (peak {hwm:.0})",
            percentile(&per_second, 0.5),
            percentile(&per_second, 0.99)
        )
    };
    watcher.abort();
    drop(scheduler);
    drop(server);
    Ok(RunResult { line })
}

/// The scheduling algorithm alone, in this process: the cache filled with the simulated nodes,
/// then every pod scheduled and assumed in turn on one thread (no API, no binding). This is the
/// scheduler's own cost per pod, the ceiling of what the API path can reach.
fn algorithm_only(args: &BenchSchedulerArgs, workload: &str, count: usize) -> anyhow::Result<String> {
    use skiff_scheduler::cache::Cache;
    use skiff_scheduler::model::{NodeSpec, PodInfo};
    let mut cache = Cache::new();
    for i in 0..args.nodes {
        cache.upsert_node(NodeSpec::new(&node(i)?));
    }
    let mut pods = Vec::with_capacity(count);
    for i in 0..count {
        let mut p = pod(workload, i)?;
        p.metadata.namespace = Some(NAMESPACE.into());
        p.metadata.uid = Some(format!("uid-{i}"));
        pods.push(PodInfo::new(&p));
    }
    let profile = skiff_scheduler::Profile::default_named("default-scheduler");
    let objects = skiff_scheduler::objects::Objects::default();
    let nominator = skiff_scheduler::nominator::Nominator::default();
    let mut algorithm = skiff_scheduler::schedule::Algorithm::new(0);
    let mut per_pod: Vec<f64> = Vec::with_capacity(count);
    let started = Instant::now();
    let mut failed = 0usize;
    for mut p in pods {
        let t = Instant::now();
        match algorithm.schedule(&p, &mut cache, &profile, &objects, &nominator) {
            Ok(placement) => {
                p.node_name = placement.node;
                cache.add_pod(Arc::new(p), true);
            }
            Err(_) => failed += 1,
        }
        per_pod.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let secs = started.elapsed().as_secs_f64();
    per_pod.sort_by(f64::total_cmp);
    let rate = count as f64 / secs;
    report(
        "scheduler_algorithm",
        json!({"workload": workload, "nodes": args.nodes, "pods": count, "unschedulable": failed, "pods_per_s": rate,
            "per_pod_p50_us": percentile(&per_pod, 0.5), "per_pod_p99_us": percentile(&per_pod, 0.99)}),
    );
    Ok(format!(
        "{workload:>13} algorithm {count:>6} pods: {rate:>7.0} pods/s on one thread, per pod p50 {:.0} µs p99 {:.0} µs{}",
        percentile(&per_pod, 0.5),
        percentile(&per_pod, 0.99),
        if failed > 0 { format!(", {failed} unschedulable") } else { String::new() }
    ))
}

/// Runs the scheduler benchmark.
pub async fn run(args: BenchSchedulerArgs) -> anyhow::Result<()> {
    let mut summary = Vec::new();
    if args.algorithm_only {
        for workload in &args.workloads {
            for &count in &args.pods {
                summary.push(algorithm_only(&args, workload, count)?);
            }
        }
        eprintln!("\nsummary ({} simulated nodes)", args.nodes);
        for line in summary {
            eprintln!("  {line}");
        }
        return Ok(());
    }
    for workload in &args.workloads {
        for &count in &args.pods {
            summary.push(run_one(&args, workload, count, false).await?.line);
        }
        if let Some(&count) = args.pods.iter().min().filter(|_| !args.no_streaming) {
            summary.push(run_one(&args, workload, count, true).await?.line);
        }
    }
    eprintln!("\nsummary ({} simulated nodes)", args.nodes);
    for line in summary {
        eprintln!("  {line}");
    }
    Ok(())
}
