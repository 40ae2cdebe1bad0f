//! `skiff bench deployment`: the controller manager at scale on simulated nodes (issue 6).
//!
//! A fresh `skiff server --disable-agent` (child process, with its scheduler and controllers)
//! gets N fake Ready nodes; one Deployment of R replicas is created and timed until every pod
//! exists, is bound and the Deployment reports them available; then its image is changed and the
//! rolling update timed to completion; then the server's CPU is sampled while idle with those
//! objects. A stand-in kubelet that lives only here marks bound pods Running and Ready and
//! finishes the deletion of terminating pods (status patches and deletes, no containers).
//! Numbers are JSON lines plus a summary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use crate::bench::{report, start_server_with};
use crate::config::BenchDeploymentArgs;

const NAMESPACE: &str = "bench";
const NAME: &str = "web";

/// When each pod was first seen and first seen bound.
#[derive(Default)]
struct Timeline {
    seen: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
}

fn node(i: usize) -> anyhow::Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("sim-{i:05}"), "labels": {"kubernetes.io/hostname": format!("sim-{i:05}")}},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated"}],
        }
    }))?)
}

fn deployment(replicas: usize, image: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    }))?)
}

/// The stand-in kubelet and the timeline: watches the namespace's pods, records them, marks bound
/// pods Running and Ready, and deletes terminating pods for good.
async fn simulate_kubelet(client: kube::Client, timeline: Arc<Mutex<Timeline>>) {
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let writes = Arc::new(Semaphore::new(16));
    let mut events = std::pin::pin!(watcher::watcher(pods.clone(), watcher::Config::default()));
    while let Some(ev) = events.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        let pending = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Pending");
        let deleting = pod.metadata.deletion_timestamp.is_some();
        {
            let mut t = timeline.lock().await;
            let now = Instant::now();
            t.seen.entry(name.clone()).or_insert(now);
            if bound {
                t.bound.entry(name.clone()).or_insert(now);
            }
        }
        if !(deleting || (bound && pending)) {
            continue;
        }
        let Ok(permit) = writes.clone().acquire_owned().await else { return };
        let pods = pods.clone();
        tokio::spawn(async move {
            if deleting {
                let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
            } else {
                let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let status = json!({"status": {"phase": "Running", "startTime": now, "podIP": "10.99.0.1",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await;
            }
            drop(permit);
        });
    }
}

/// Polls until `done` holds for the Deployment, or fails after `timeout`.
async fn wait_deployment(
    api: &Api<Deployment>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Deployment) -> bool,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(d) = api.get(NAME).await
            && done(&d)
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_count(
    timeline: &Mutex<Timeline>,
    want: usize,
    timeout: Duration,
    bound: bool,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let t = timeline.lock().await;
            let map = if bound { &t.bound } else { &t.seen };
            if map.len() >= want {
                return Ok(map.values().copied().max().unwrap_or_else(Instant::now));
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {want} pods to be {}", if bound { "bound" } else { "created" });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_counts(d: &Deployment) -> (i32, i32, i32, i64) {
    let s = d.status.clone().unwrap_or_default();
    (
        s.updated_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.replicas.unwrap_or(0),
        s.observed_generation.unwrap_or(0),
    )
}

/// Runs the benchmark.
pub async fn run(args: BenchDeploymentArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("skiff-bench-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The simulated nodes never renew a Lease: keep them Ready (as `bench scheduler` does).
    let (server, client) = start_server_with(&dir, &["--node-monitor-grace-period", "24h"]).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..args.nodes {
        nodes.create(&PostParams::default(), &node(i)?).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    // Let the namespace's ServiceAccount appear and the node informers settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let kubelet = tokio::spawn(simulate_kubelet(client.clone(), timeline.clone()));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let replicas = args.replicas;
    let want = i32::try_from(replicas)?;
    let timeout = Duration::from_secs(args.timeout_secs);

    let start = Instant::now();
    deployments.create(&PostParams::default(), &deployment(replicas, "registry.example/app:v1")?).await?;
    let created = wait_count(&timeline, replicas, timeout, false).await?;
    let bound = wait_count(&timeline, replicas, timeout, true).await?;
    let available = wait_deployment(&deployments, timeout, "all replicas available", |d| {
        let (updated, avail, total, _) = status_counts(d);
        updated == want && avail == want && total == want
    })
    .await?;
    let secs = |t: Instant, from: Instant| t.duration_since(from).as_secs_f64();
    report(
        "deployment-create",
        json!({"nodes": args.nodes, "replicas": replicas, "all_created_s": secs(created, start),
            "all_bound_s": secs(bound, start), "all_available_s": secs(available, start)}),
    );

    let generation = deployments.get(NAME).await?.metadata.generation.unwrap_or(0) + 1;
    let update = Instant::now();
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.example/app:v2"}]}}}});
    deployments.patch(NAME, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    let rolled = wait_deployment(&deployments, timeout, "the rolling update", |d| {
        let (updated, avail, total, observed) = status_counts(d);
        observed >= generation && updated == want && avail == want && total == want
    })
    .await?;
    let pods_after = timeline.lock().await.seen.len();
    report(
        "deployment-rolling-update",
        json!({"replicas": replicas, "rollout_s": secs(rolled, update), "pods_created_in_all": pods_after}),
    );

    // Idle: let the last writes settle, then sample the server's CPU time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    kubelet.abort();
    let pid = server.pid();
    let before = cpu_seconds(pid);
    let window = Duration::from_secs(args.idle_window_secs);
    tokio::time::sleep(window).await;
    let idle_percent = (cpu_seconds(pid) - before) / window.as_secs_f64() * 100.0;
    report(
        "deployment-idle",
        json!({"pods": replicas, "window_s": window.as_secs(), "server_cpu_percent_of_core": idle_percent,
            "server_rss_mb": server.rss_mb()}),
    );
    eprintln!(
        "\n{replicas} replicas on {} simulated nodes: all created {:.2} s, bound {:.2} s, available {:.2} s; \
         rolling update {:.2} s; idle server CPU {idle_percent:.2} % of a core over {} s, RSS {:.0} MB",
        args.nodes,
        secs(created, start),
        secs(bound, start),
        secs(available, start),
        secs(rolled, update),
        window.as_secs(),
        server.rss_mb()
    );
    drop(server);
    Ok(())
}
