//! The agent's pods: a watch on the pods bound to this node (`spec.nodeName=<node>`) and the
//! static pods of the pod-manifest path ([`crate::static_pods`]), one [`worker`] task per pod fed
//! with its updates, the static pods' [`mirror`] pods, and cleanup of containers whose pod no
//! longer exists (deleted while the agent was down), with their sandboxes and addresses.
//!
//! Mirror pods from the watch never get a worker: their static pod has one, under the static
//! pod's UID. A static pod's worker gets the static pod with its mirror's status (none while it
//! has no mirror), and only one static pod of a name runs at a time: a changed manifest's new pod
//! starts once the old one has stopped, as upstream.

pub mod convert;
pub mod dns;
pub mod env;
pub mod exits;
pub mod hooks;
pub mod http_get;
pub mod mirror;
pub mod mounts;
pub mod ports;
pub mod probe;
pub mod prober;
pub mod resources;
pub mod security;
pub mod service_env;
pub mod set;
pub mod status;
pub mod timing;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use crate::static_pods::source::{FileSource, StaticPod};
use crate::static_pods::{self, full_name};
use worker::Shared;

/// Static pods start without waiting for the API server's pod list once this long has passed.
const STATIC_START_WAIT: Duration = Duration::from_secs(10);
/// Wait before retrying a failed mirror create or delete.
const MIRROR_RETRY: Duration = Duration::from_secs(10);

/// A running worker.
struct Handle {
    tx: mpsc::Sender<Option<Pod>>,
    /// For static pods: the last pod sent to it, and its full name.
    static_pod: Option<(Pod, String)>,
}

/// Everything the pod source keeps between events.
struct Pods {
    shared: Arc<Shared>,
    /// Workers by pod UID (API pods and static pods).
    workers: HashMap<String, Handle>,
    /// Static pod workers told to stop (full name, UID), until they have.
    stopping: Vec<(String, String, mpsc::Sender<Option<Pod>>)>,
    /// The static pods of the manifest path, by UID.
    statics: BTreeMap<String, StaticPod>,
    files: FileSource,
    /// Mirror pods in the API server, by full name.
    mirrors: HashMap<String, Pod>,
    mirror_client: mirror::MirrorClient,
    /// Mirror work that failed, by full name: not retried before.
    mirror_retry: HashMap<String, Instant>,
    /// Whether the API server's pod list has been read once.
    listed: bool,
    started: Instant,
}

/// Watches this node's pods and static pods and runs their workers until the task is aborted.
pub async fn run(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
    let manifests = shared.cfg.pod_manifest_path.clone();
    if let Err(e) = std::fs::create_dir_all(&manifests) {
        tracing::warn!(path = %manifests.display(), error = %e, "cannot create the pod manifest directory");
    }
    let (wake_tx, mut wake) = mpsc::channel(1);
    tokio::spawn(static_pods::source::watch(manifests, wake_tx));
    let mut pods = Pods {
        mirror_client: mirror::MirrorClient::new(shared.client.clone(), shared.cfg.node_name.clone()),
        shared,
        workers: HashMap::new(),
        stopping: Vec::new(),
        statics: BTreeMap::new(),
        files: FileSource::new(),
        mirrors: HashMap::new(),
        mirror_retry: HashMap::new(),
        listed: false,
        started: Instant::now(),
    };
    pods.read_static_pods().await;
    let mut seen_in_list: Vec<String> = Vec::new();
    let mut mirrors_in_list: Vec<String> = Vec::new();
    let mut stream = watcher::watcher(api, config).boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = stream.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) if static_pods::is_mirror(&pod) => {
                        mirrors_in_list.push(full_name(&pod));
                        pods.mirrors.insert(full_name(&pod), pod);
                    }
                    Ok(Event::Delete(pod)) if static_pods::is_mirror(&pod) => {
                        let name = full_name(&pod);
                        if pods.mirrors.get(&name).is_some_and(|m| m.metadata.uid == pod.metadata.uid) {
                            pods.mirrors.remove(&name);
                        }
                    }
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                        let Some(uid) = pod.metadata.uid.clone() else { continue };
                        seen_in_list.push(uid.clone());
                        pods.dispatch(uid, pod).await;
                    }
                    Ok(Event::Delete(pod)) => {
                        if let Some(h) = pod.metadata.uid.as_ref().and_then(|uid| pods.workers.remove(uid)) {
                            let _ = h.tx.send(None).await;
                        }
                    }
                    Ok(Event::Init) => {
                        seen_in_list.clear();
                        mirrors_in_list.clear();
                    }
                    Ok(Event::InitDone) => {
                        // Pods that vanished while we were not watching.
                        let gone: Vec<String> = pods
                            .workers
                            .iter()
                            .filter(|(uid, h)| h.static_pod.is_none() && !seen_in_list.contains(uid))
                            .map(|(uid, _)| uid.clone())
                            .collect();
                        for uid in gone {
                            if let Some(h) = pods.workers.remove(&uid) {
                                let _ = h.tx.send(None).await;
                            }
                        }
                        pods.mirrors.retain(|name, _| mirrors_in_list.contains(name));
                        pods.listed = true;
                        let mut live = seen_in_list.clone();
                        live.extend(pods.statics.keys().cloned());
                        live.extend(pods.workers.keys().cloned());
                        live.extend(pods.stopping.iter().map(|(_, uid, _)| uid.clone()));
                        remove_orphans(&pods.shared, &live).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
                }
            }
            Some(()) = wake.recv() => pods.read_static_pods().await,
            _ = tick.tick() => {}
        }
        pods.workers.retain(|_, h| !h.tx.is_closed());
        pods.sync_static_pods().await;
        pods.shared.pod_set.retain(|uid| pods.workers.contains_key(uid));
    }
}

impl Pods {
    async fn dispatch(&mut self, uid: String, pod: Pod) {
        self.shared.pod_set.insert(&uid, &pod);
        if let Some(h) = self.workers.get(&uid)
            && h.tx.send(Some(pod.clone())).await.is_ok()
        {
            return;
        }
        let (tx, rx) = mpsc::channel(16);
        self.workers.insert(uid, Handle { tx, static_pod: None });
        tokio::spawn(worker::run(Arc::clone(&self.shared), pod, rx));
    }

    /// Reads the pod-manifest path again and records failures' events.
    async fn read_static_pods(&mut self) {
        let (path, node) = (self.shared.cfg.pod_manifest_path.clone(), self.shared.cfg.node_name.clone());
        let read = tokio::task::spawn_blocking(move || static_pods::source::read(&path, &node)).await;
        let Ok(read) = read else { return };
        let (statics, duplicates) = self.files.update(read);
        self.statics = statics;
        for duplicate in duplicates {
            let reference = static_reference(&duplicate.pod);
            let recorder = &self.shared.recorder;
            worker::publish(recorder, &reference, EventType::Warning, "FailedValidation", duplicate.message).await;
        }
    }

    /// Stops the workers of static pods that are gone, starts those of new ones (once no other
    /// pod of the name runs), passes mirror status changes on, and reconciles the mirrors.
    async fn sync_static_pods(&mut self) {
        self.stopping.retain(|(_, _, tx)| !tx.is_closed());
        let gone: Vec<String> = self
            .workers
            .iter()
            .filter(|(uid, h)| h.static_pod.is_some() && !self.statics.contains_key(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            if let Some(Handle { tx, static_pod: Some((_, name)) }) = self.workers.remove(&uid) {
                tracing::info!(pod = %name, uid = %uid, "static pod removed; stopping it");
                let _ = tx.send(None).await;
                self.stopping.push((name, uid, tx));
            }
        }
        let may_start = self.listed || self.started.elapsed() >= STATIC_START_WAIT;
        let statics: Vec<StaticPod> = self.statics.values().cloned().collect();
        for s in statics {
            let pod = self.worker_pod(&s);
            let name = full_name(&s.pod);
            let taken = self.name_taken(&name);
            match self.workers.get_mut(s.uid()) {
                Some(h) => {
                    let changed = h.static_pod.as_ref().is_none_or(|(last, _)| *last != pod);
                    if changed && h.tx.send(Some(pod.clone())).await.is_ok() {
                        self.shared.pod_set.insert(s.uid(), &pod);
                        h.static_pod = Some((pod, name));
                    }
                }
                None if may_start && !taken => {
                    tracing::info!(pod = %name, uid = %s.uid(), path = %s.path.display(), "starting static pod");
                    let (tx, rx) = mpsc::channel(16);
                    tokio::spawn(worker::run(Arc::clone(&self.shared), pod.clone(), rx));
                    self.shared.pod_set.insert(s.uid(), &pod);
                    self.workers.insert(s.uid().to_string(), Handle { tx, static_pod: Some((pod, name)) });
                }
                None => {}
            }
        }
        if self.listed {
            self.sync_mirrors().await;
        }
    }

    /// Whether a worker of another static pod named `name` still runs or stops.
    fn name_taken(&self, name: &str) -> bool {
        self.stopping.iter().any(|(n, _, _)| n == name)
            || self.workers.values().any(|h| h.static_pod.as_ref().is_some_and(|(_, n)| n == name))
    }

    /// What a static pod's worker runs: the static pod with its mirror's status (the start time
    /// defaulting to when the agent first saw it), or no status while it has no mirror.
    fn worker_pod(&self, s: &StaticPod) -> Pod {
        let mut pod = s.pod.clone();
        let mirror = self.mirrors.get(&full_name(&s.pod)).filter(|m| mirror::is_mirror_of(m, &s.pod));
        pod.status = mirror.map(|m| {
            let mut status = m.status.clone().unwrap_or_else(PodStatus::default);
            // Whole seconds, as `metav1.Time` carries them.
            let seen = jiff::Timestamp::from_second(s.seen.as_second()).unwrap_or(s.seen);
            status.start_time.get_or_insert(Time(seen));
            status
        });
        pod
    }

    /// Creates, replaces and deletes mirror pods as [`mirror::plan`] says.
    async fn sync_mirrors(&mut self) {
        let running: BTreeMap<String, Pod> = self
            .workers
            .iter()
            .filter(|(uid, h)| h.static_pod.is_some() && self.statics.contains_key(*uid))
            .filter_map(|(uid, _)| Some((uid.clone(), self.statics.get(uid)?.pod.clone())))
            .collect();
        let mut known: Vec<String> = self.statics.values().map(|s| full_name(&s.pod)).collect();
        known.extend(self.stopping.iter().map(|(n, _, _)| n.clone()));
        known.extend(self.workers.values().filter_map(|h| h.static_pod.as_ref().map(|(_, n)| n.clone())));
        let now = Instant::now();
        for action in mirror::plan(&running, &self.mirrors, &known) {
            let name = match &action {
                mirror::Action::Create(uid) => running.get(uid).map(full_name).unwrap_or_default(),
                mirror::Action::Delete { namespace, name, .. } => format!("{name}_{namespace}"),
            };
            if self.mirror_retry.get(&name).is_some_and(|t| *t > now) {
                continue;
            }
            let result = match &action {
                mirror::Action::Create(uid) => {
                    let Some(pod) = running.get(uid) else { continue };
                    self.mirror_client.create(pod).await.map(|created| {
                        if let Some(created) = created {
                            tracing::info!(pod = %name, "created mirror pod");
                            self.mirrors.insert(name.clone(), created);
                        }
                    })
                }
                mirror::Action::Delete { namespace, name: pod_name, uid } => {
                    self.mirror_client.delete(namespace, pod_name, uid).await.map(|()| {
                        tracing::info!(pod = %name, uid = %uid, "deleted mirror pod");
                        if self.mirrors.get(&name).is_some_and(|m| m.metadata.uid.as_deref() == Some(uid)) {
                            self.mirrors.remove(&name);
                        }
                    })
                }
            };
            match result {
                Ok(()) => {
                    self.mirror_retry.remove(&name);
                }
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "mirror pod not reconciled; retrying later");
                    self.mirror_retry.insert(name, now + MIRROR_RETRY);
                }
            }
        }
    }
}

/// The object reference events about static pod `pod` name (its own UID, as the kubelet's).
fn static_reference(pod: &Pod) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
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
        // `<uid>-<container>-<attempt>`: an API pod's uid is 36 characters, a static pod's 32.
        if live.iter().any(|l| id.strip_prefix(l.as_str()).is_some_and(|rest| rest.starts_with('-'))) {
            continue;
        }
        let uid = [36, 32].into_iter().find(|&n| id.get(n..n + 1) == Some("-")).and_then(|n| id.get(..n)).unwrap_or("");
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
