//! The agent's pods: a watch on the pods bound to this node (`spec.nodeName=<node>`), one
//! [`worker`] task per pod fed with its updates, and cleanup of containers whose pod no longer
//! exists (deleted while the agent was down), with their sandboxes and addresses.

pub mod convert;
pub mod dns;
pub mod env;
pub mod hooks;
pub mod mounts;
pub mod ports;
pub mod probe;
pub mod prober;
pub mod resources;
pub mod security;
pub mod service_env;
pub mod status;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use worker::Shared;

/// Watches this node's pods and runs their workers until the task is aborted.
pub async fn run(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
    let mut workers: HashMap<String, mpsc::Sender<Option<Pod>>> = HashMap::new();
    let mut seen_in_list: Vec<String> = Vec::new();
    let mut stream = watcher::watcher(api, config).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                let Some(uid) = pod.metadata.uid.clone() else { continue };
                seen_in_list.push(uid.clone());
                dispatch(&shared, &mut workers, uid, pod).await;
            }
            Ok(Event::Delete(pod)) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|uid| workers.remove(uid)) {
                    let _ = tx.send(None).await;
                }
            }
            Ok(Event::Init) => seen_in_list.clear(),
            Ok(Event::InitDone) => {
                // Pods that vanished while we were not watching.
                let gone: Vec<String> = workers.keys().filter(|uid| !seen_in_list.contains(uid)).cloned().collect();
                for uid in gone {
                    if let Some(tx) = workers.remove(&uid) {
                        let _ = tx.send(None).await;
                    }
                }
                remove_orphans(&shared, &seen_in_list).await;
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
        workers.retain(|_, tx| !tx.is_closed());
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::Sender<Option<Pod>>>,
    uid: String,
    pod: Pod,
) {
    if let Some(tx) = workers.get(&uid)
        && tx.send(Some(pod.clone())).await.is_ok()
    {
        return;
    }
    let (tx, rx) = mpsc::channel(16);
    workers.insert(uid, tx);
    tokio::spawn(worker::run(Arc::clone(shared), pod, rx));
}

/// Stops and removes containers, sandboxes and pod addresses whose pod uid is not among `live`
/// (pods deleted while the agent was down).
async fn remove_orphans(shared: &Arc<Shared>, live: &[String]) {
    let runtime = Arc::clone(&shared.runtime);
    let network = Arc::clone(&shared.network);
    let live: Vec<String> = live.to_vec();
    let agent_dir = shared.cfg.agent_dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        remove_orphan_containers(&runtime, &live, &agent_dir);
        for id in runtime.list_sandboxes().unwrap_or_default().into_iter().filter(|id| !live.contains(id)) {
            tracing::info!(sandbox = %id, "removing the sandbox of a pod that no longer exists");
            if let Err(e) = runtime.stop_sandbox(&id) {
                tracing::warn!(sandbox = %id, error = %e, "removing an orphaned sandbox");
            }
            resources::remove_pod_cgroup(&id);
        }
        match network.gc(live.iter().map(String::as_str)) {
            Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "released addresses of deleted pods"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "releasing addresses of deleted pods"),
        }
        // Pods that never got a container can still have volumes mounted.
        crate::volumes::cleanup::remove_orphans(&agent_dir, &live);
    })
    .await;
}

fn remove_orphan_containers(runtime: &skiff_runtime::container::Runtime, live: &[String], agent_dir: &std::path::Path) {
    for id in runtime.list().unwrap_or_default() {
        // `<uid>-<container>-<attempt>`: a uid is 36 characters.
        let uid = id.get(..36).unwrap_or("");
        if live.iter().any(|l| l == uid) {
            continue;
        }
        tracing::info!(container = %id, "removing the container of a pod that no longer exists");
        let _ = runtime.signal(&id, nix::sys::signal::Signal::SIGKILL);
        for _ in 0..100 {
            if !matches!(runtime.state(&id), Ok(skiff_runtime::container::ContainerState::Running(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = runtime.remove(&id);
        mounts::remove_pod_dir(&agent_dir.join("pods").join(uid));
        resources::remove_pod_cgroup(uid);
    }
}
