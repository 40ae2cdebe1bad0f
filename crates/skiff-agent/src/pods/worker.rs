//! One pod's worker: brings the pod's containers to what its spec asks (init containers in order,
//! then the app containers, restarted per `restartPolicy` with the kubelet's back-off), reports
//! the pod's status, and on deletion stops everything within the grace period and completes the
//! deletion.
//!
//! Container instances are named `<pod uid>-<container>-<attempt>` in the runtime, so a restarted
//! agent re-adopts them from the runtime's directory instead of starting them again. The pod's
//! sandbox (the holder of its network, IPC and UTS namespaces) is named by the pod UID and
//! connected to the pod network before any container starts; if it dies (a reboot, a killed
//! holder) the containers left in it are killed and everything starts again in a new one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use nix::sys::signal::Signal;
use skiff_net::PodNetwork;
use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::sandbox::{SandboxConfig, SandboxError, SandboxState, SandboxStatus};
use tokio::sync::{Notify, mpsc};

use super::convert;
use super::env;
use super::hooks;
use super::probe::Target;
use super::prober::{Kind, ProbeState, Prober};
use super::status::{self, ContainerView, Waiting};
use super::{ports, resources, security};
use crate::AgentConfig;

/// Kubelet back-off: 10 s doubling to 5 min, reset after 10 min of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How soon a worker looks again while something is on its way (a start, a pull, a back-off,
/// a sandbox or volume not ready yet).
const POLL: Duration = Duration::from_millis(500);
/// How often a settled worker looks at its pod when nothing wakes it (container and sandbox
/// exits, pod updates and probe results do; this catches the rest, e.g. updated ConfigMaps).
const SAFETY_POLL: Duration = Duration::from_secs(5);

/// What the worker knows about one container of the pod.
#[derive(Debug, Default, Clone)]
pub struct Track {
    /// Attempt of the current instance (= restartCount).
    pub attempt: u32,
    /// Whether an instance exists for `attempt`.
    pub created: bool,
    /// Why it is not running, when it cannot be started.
    pub waiting: Option<Waiting>,
    /// Back-off before the next start.
    pub backoff: Duration,
    /// Not before this instant.
    pub next_start: Option<Instant>,
    /// `imageID` of the image it runs.
    pub image_id: String,
}

/// Shared by every worker.
pub struct Shared {
    /// API client.
    pub client: kube::Client,
    /// The runtime.
    pub runtime: Arc<Runtime>,
    /// Agent configuration.
    pub cfg: AgentConfig,
    /// The node's pod network.
    pub network: Arc<PodNetwork>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Pod volumes.
    pub volumes: Arc<crate::volumes::VolumeManager>,
    /// The image manager (pulls, pull policy, image use).
    pub images: Arc<crate::images::ImageManager>,
    /// The eviction manager (admission under pressure, pods to evict).
    pub eviction: Arc<crate::eviction::EvictionManager>,
    /// The pods with a worker (read by the stats endpoints).
    pub pod_set: super::set::PodSet,
    /// What the workers started, for the kubelet's `/metrics`.
    pub activity: Arc<crate::stats::activity::Activity>,
}

/// Runtime id of a container instance.
pub fn instance_id(uid: &str, name: &str, attempt: u32) -> String {
    format!("{uid}-{name}-{attempt}")
}

/// The prober of a running container instance (aborted when dropped).
struct ProbeHandle {
    attempt: u32,
    state: Arc<Mutex<ProbeState>>,
    task: tokio::task::JoinHandle<()>,
    /// The instance is being killed after a failed liveness or startup probe.
    killing: bool,
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Worker {
    shared: Arc<Shared>,
    pod: Pod,
    uid: String,
    tracks: HashMap<String, Track>,
    last_status: Option<serde_json::Value>,
    /// The pod's running sandbox.
    sandbox: Option<SandboxState>,
    /// The pod's IP (the node's with `hostNetwork`), once its sandbox is connected.
    pod_ip: Option<String>,
    /// Why the last attempt to create the sandbox failed (to report each cause once).
    sandbox_error: Option<String>,
    /// Whether the sandbox of a finished pod is gone.
    sandbox_released: bool,
    /// Probers of the running containers that have probes, by container name.
    probers: HashMap<String, ProbeHandle>,
    /// Woken when a probe result changes.
    probe_changed: Arc<Notify>,
    /// Why the agent failed the pod as a whole (reason, message): `DeadlineExceeded`, `Evicted`.
    failure: Option<(String, String)>,
    /// The `DisruptionTarget` condition of a pod evicted for node pressure.
    disruption: Option<serde_json::Value>,
    /// Passed the eviction manager's admission (or was running before this worker).
    admitted: bool,
    /// Where the pod's start-up time goes (debug logs).
    timing: Mutex<super::timing::StartTiming>,
    /// The processes whose exit wakes the worker (shims of running containers, the sandbox).
    exits: super::exits::ExitWatch,
    /// The last pass left something on its way: look again after [`POLL`], not [`SAFETY_POLL`].
    retry_soon: bool,
    /// When the worker got the pod, while a pod that was pending then has not been reported
    /// `Running` yet (for the start-up histogram).
    pending_since: Option<Instant>,
}

/// Runs the worker of one pod until the pod is gone from the node.
pub async fn run(shared: Arc<Shared>, pod: Pod, mut updates: mpsc::Receiver<Option<Pod>>) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut worker = Worker {
        shared,
        pod,
        uid,
        tracks: HashMap::new(),
        last_status: None,
        sandbox: None,
        pod_ip: None,
        sandbox_error: None,
        sandbox_released: false,
        probers: HashMap::new(),
        probe_changed: Arc::new(Notify::new()),
        failure: None,
        disruption: None,
        admitted: false,
        timing: Mutex::new(super::timing::StartTiming::start()),
        exits: super::exits::ExitWatch::default(),
        retry_soon: true,
        pending_since: Some(Instant::now()),
    };
    worker.adopt().await;
    worker.lap("adopt");
    let phase = worker.pod.status.as_ref().and_then(|s| s.phase.as_deref());
    worker.admitted = !worker.tracks.is_empty() || !matches!(phase, None | Some("Pending"));
    if worker.admitted {
        worker.pending_since = None;
    }
    let mut deleted = false;
    loop {
        if deleted || worker.pod.metadata.deletion_timestamp.is_some() {
            worker.terminate(deleted).await;
            return;
        }
        worker.sync().await;
        tokio::select! {
            update = updates.recv() => match update {
                Some(Some(pod)) => {
                    // A static pod's mirror changed (or was recreated): report to it again.
                    if crate::static_pods::is_static(&pod) && pod.status != worker.pod.status {
                        worker.last_status = None;
                    }
                    worker.pod = pod;
                }
                Some(None) => deleted = true,
                // The agent is stopping: leave the containers running for the next agent.
                None => return,
            },
            _ = tokio::time::sleep(if worker.retry_soon { POLL } else { SAFETY_POLL }) => {}
            _ = worker.probe_changed.notified() => {}
            _ = worker.exits.next() => {}
        }
    }
}

/// Whether container `name` of `pod` is an init container or an app container.
fn container_type(pod: &Pod, name: &str) -> crate::stats::activity::ContainerType {
    use crate::stats::activity::ContainerType;
    let init = all_containers(pod).any(|(c, init)| init && c.name == name);
    if init { ContainerType::InitContainer } else { ContainerType::Container }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten().map(|c| (c, true));
    let app = spec.map(|s| s.containers.as_slice()).unwrap_or_default().iter().map(|c| (c, false));
    init.chain(app)
}

impl Worker {
    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.shared.client.clone(), self.pod.metadata.namespace.as_deref().unwrap_or("default"))
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    /// Charges the time since the last lap to start-up step `step` ([`super::timing`]).
    fn lap(&self, step: &'static str) {
        self.timing.lock().unwrap_or_else(|p| p.into_inner()).lap(step);
    }

    /// Picks up instances a previous agent run created.
    async fn adopt(&mut self) {
        let runtime = Arc::clone(&self.shared.runtime);
        let ids =
            tokio::task::spawn_blocking(move || runtime.list()).await.ok().and_then(Result::ok).unwrap_or_default();
        let names: Vec<String> = all_containers(&self.pod).map(|(c, _)| c.name.clone()).collect();
        for name in names {
            let prefix = format!("{}-{name}-", self.uid);
            let attempt = ids.iter().filter_map(|id| id.strip_prefix(&prefix)?.parse::<u32>().ok()).max();
            if let Some(attempt) = attempt {
                tracing::info!(pod = %self.name(), container = %name, attempt, "re-adopted container");
                let image = all_containers(&self.pod).find(|(c, _)| c.name == name).and_then(|(c, _)| c.image.clone());
                let image_id = image
                    .and_then(|i| self.shared.runtime.images().resolve(&i).ok().flatten())
                    .map(|i| i.image_id())
                    .unwrap_or_default();
                self.tracks.insert(name, Track { attempt, created: true, image_id, ..Default::default() });
            }
        }
    }

    fn host_network(&self) -> bool {
        self.pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
    }

    fn sandbox_config(&self) -> SandboxConfig {
        let spec = self.pod.spec.as_ref();
        let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| spec.and_then(f).unwrap_or(false);
        SandboxConfig {
            hostname: super::mounts::pod_hostname(&self.pod),
            share_pid_namespace: flag(|s| s.share_process_namespace),
            host_network: flag(|s| s.host_network),
            host_ipc: flag(|s| s.host_ipc),
            host_pid: flag(|s| s.host_pid),
            cgroup_parent: Some(resources::pod_cgroup(&self.pod)),
        }
    }

    /// Makes sure the pod's sandbox runs and is connected to the pod network, creating it (again)
    /// when needed; false while it cannot (the cause is reported as an event).
    async fn ensure_sandbox(&mut self) -> bool {
        let runtime = Arc::clone(&self.shared.runtime);
        let uid = self.uid.clone();
        let status = tokio::task::spawn_blocking(move || runtime.sandbox_state(&uid)).await;
        match status {
            Ok(Ok(SandboxStatus::Ready(state))) => {
                let netns = state.net.clone();
                self.sandbox = Some(state);
                if self.pod_ip.is_none() {
                    // Adopted from an earlier agent run: its address is in the IPAM state.
                    let network = Arc::clone(&self.shared.network);
                    let uid = self.uid.clone();
                    let held = tokio::task::spawn_blocking(move || network.get(&uid)).await.ok().and_then(Result::ok);
                    self.pod_ip = match (self.host_network(), held.flatten(), netns) {
                        (true, _, _) => Some(self.shared.cfg.node_ip.to_string()),
                        (false, Some(ip), _) => Some(ip.address.to_string()),
                        (false, None, Some(netns)) => match self.connect(netns).await {
                            Ok(ip) => Some(ip),
                            Err(e) => return self.sandbox_failed(e).await,
                        },
                        (false, None, None) => None,
                    };
                }
                return true;
            }
            Ok(Ok(SandboxStatus::NotReady(_))) => {
                self.event(
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                )
                .await;
                self.kill_containers().await;
                self.release_sandbox().await;
            }
            Ok(Err(SandboxError::NotFound(_))) => {}
            Ok(Err(e)) => return self.sandbox_failed(e.to_string()).await,
            Err(e) => return self.sandbox_failed(e.to_string()).await,
        }
        self.sandbox = None;
        let runtime = Arc::clone(&self.shared.runtime);
        let (uid, config) = (self.uid.clone(), self.sandbox_config());
        let (pod, cfg) = (self.pod.clone(), self.shared.cfg.clone());
        self.shared.activity.pod_starting();
        let started = tokio::task::spawn_blocking(move || {
            resources::ensure_pod_cgroup(&pod, &cfg).map_err(|e| SandboxError::Io(e.to_string()))?;
            runtime.start_sandbox(&uid, &config)
        })
        .await;
        self.lap("sandbox");
        if !matches!(started, Ok(Ok(_))) {
            self.shared.activity.pod_start_failed();
        }
        let state = match started {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                let message = e.to_string();
                self.release_sandbox().await;
                return self.sandbox_failed(message).await;
            }
            Err(e) => return self.sandbox_failed(e.to_string()).await,
        };
        self.pod_ip = match (self.host_network(), state.net.clone()) {
            (true, _) => Some(self.shared.cfg.node_ip.to_string()),
            (false, Some(netns)) => match self.connect(netns).await {
                Ok(ip) => Some(ip),
                Err(e) => {
                    self.release_sandbox().await;
                    return self.sandbox_failed(e).await;
                }
            },
            (false, None) => None,
        };
        self.lap("network");
        self.sandbox = Some(state);
        self.sandbox_error = None;
        self.report_missing_cluster_dns().await;
        true
    }

    /// At each new sandbox, as the kubelet when it builds the sandbox's DNS configuration: a pod
    /// wanting the cluster DNS on a node without one gets `MissingClusterDNS` events (on the
    /// Node and on the pod) and the node's resolvers.
    async fn report_missing_cluster_dns(&self) {
        let cluster_dns = self.cluster_dns();
        if !super::dns::missing_cluster_dns(&self.pod, &cluster_dns) {
            return;
        }
        // The kubelet's node reference: the node name as uid.
        let node = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.shared.cfg.node_name.clone()),
            uid: Some(self.shared.cfg.node_name.clone()),
            ..Default::default()
        };
        let note = super::dns::MISSING_CLUSTER_DNS.to_string();
        publish(&self.shared.recorder, &node, EventType::Warning, "MissingClusterDNS", note).await;
        let note = format!("pod: {:?}. {}", self.pod_ref(), super::dns::MISSING_CLUSTER_DNS);
        self.event(EventType::Warning, "MissingClusterDNS", note).await;
    }

    /// The cluster DNS pods are pointed at (none with `--disable-dns`).
    fn cluster_dns(&self) -> super::dns::ClusterDns {
        super::dns::ClusterDns { server: self.shared.cfg.cluster_dns, domain: self.shared.cfg.cluster_domain.clone() }
    }

    /// Connects the sandbox's network namespace to the pod network and maps its hostPorts;
    /// returns the pod's address.
    async fn connect(&self, netns: PathBuf) -> Result<String, String> {
        let network = Arc::clone(&self.shared.network);
        let (uid, host_ports) = (self.uid.clone(), ports::host_ports(&self.pod));
        let connected =
            move || network.setup(&uid, &netns).and_then(|ip| network.set_host_ports(&uid, &host_ports).map(|()| ip));
        match tokio::task::spawn_blocking(connected).await {
            Ok(Ok(ip)) => Ok(ip.address.to_string()),
            Ok(Err(e)) => Err(format!("failed to set up the pod network: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn sandbox_failed(&mut self, error: String) -> bool {
        if self.sandbox_error.as_deref() != Some(error.as_str()) {
            let note = format!("Failed to create pod sandbox: {error}");
            self.event(EventType::Warning, "FailedCreatePodSandBox", note).await;
            self.sandbox_error = Some(error);
        }
        false
    }

    /// Disconnects the pod from the network and stops its sandbox. Idempotent.
    async fn release_sandbox(&mut self) {
        self.sandbox = None;
        let (runtime, network, uid) =
            (Arc::clone(&self.shared.runtime), Arc::clone(&self.shared.network), self.uid.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = network.teardown(&uid) {
                tracing::warn!(pod = %uid, error = %e, "tearing down the pod network");
            }
            if let Err(e) = runtime.stop_sandbox(&uid) {
                tracing::warn!(pod = %uid, error = %e, "stopping the sandbox");
            }
        })
        .await;
    }

    /// Kills (SIGKILL) every running container of the pod and waits for them to end.
    async fn kill_containers(&mut self) {
        let ids: Vec<String> =
            self.tracks.iter().filter(|(_, t)| t.created).map(|(n, t)| instance_id(&self.uid, n, t.attempt)).collect();
        let runtime = Arc::clone(&self.shared.runtime);
        let _ = tokio::task::spawn_blocking(move || stop_instances(&runtime, &ids, Duration::ZERO)).await;
    }

    async fn state_of(&self, name: &str) -> Option<ContainerState> {
        let track = self.tracks.get(name)?;
        if !track.created {
            return None;
        }
        let id = instance_id(&self.uid, name, track.attempt);
        let runtime = Arc::clone(&self.shared.runtime);
        tokio::task::spawn_blocking(move || runtime.state(&id).ok()).await.ok().flatten()
    }

    fn reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: self.pod.metadata.name.clone(),
            namespace: self.pod.metadata.namespace.clone(),
            uid: self.pod.metadata.uid.clone(),
            ..Default::default()
        }
    }

    async fn event(&self, kind: EventType, reason: &str, note: String) {
        publish(&self.shared.recorder, &self.reference(), kind, reason, note).await;
    }

    /// One pass: start what should run, then report the status.
    async fn sync(&mut self) {
        // The deadline is checked on every pass.
        self.retry_soon = self.pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).is_some();
        // A pod that reached a terminal phase never runs again (even if its containers are gone).
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // Its containers stay (for logs); its sandbox, address and volumes go.
            if !self.sandbox_released {
                self.release_sandbox().await;
                self.shared.volumes.release(&self.uid).await;
                self.sandbox_released = true;
            }
            return;
        }
        if self.failure.is_some() {
            self.report().await;
            return;
        }
        // The kubelet's admission: a pod asking for sysctls it does not allow never runs.
        if let Err(message) = security::admit_sysctls(&self.pod) {
            self.reject(security::SYSCTL_FORBIDDEN, message).await;
            return;
        }
        // The eviction manager's admission, once, for pods new to the node; then its evictions.
        if !self.admitted {
            if let Err(message) = self.shared.eviction.admit(&self.pod) {
                self.reject(crate::eviction::REASON, message).await;
                return;
            }
            self.admitted = true;
        }
        if let Some(mut eviction) = self.shared.eviction.take(&self.uid) {
            self.evict(eviction.message.clone(), eviction.grace, eviction.disruption_condition).await;
            eviction.finished();
            return;
        }
        if let Some(message) = self.shared.volumes.eviction(&self.uid) {
            self.evict(message, Duration::ZERO, false).await;
            return;
        }
        if self.deadline_exceeded() {
            self.fail_for_deadline().await;
            return;
        }
        // As the kubelet: volumes first (FailedMount until they are set up), then the sandbox.
        self.lap("wait");
        let volumes = self.shared.volumes.sync(&self.pod).await;
        self.lap("volumes");
        for message in volumes.events {
            self.event(EventType::Warning, "FailedMount", message).await;
        }
        if !volumes.ready || !self.ensure_sandbox().await {
            self.retry_soon = true;
            self.report().await;
            return;
        }
        self.lap("sandbox");
        let policy = self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        let containers: Vec<(Container, bool)> = all_containers(&self.pod).map(|(c, i)| (c.clone(), i)).collect();
        let mut init_done = true;
        for (container, is_init) in &containers {
            // Each init container waits for the previous ones; app containers for all of them.
            if !init_done {
                break;
            }
            let sidecar = *is_init && container.restart_policy.as_deref() == Some("Always");
            let state = self.state_of(&container.name).await;
            self.lap("state");
            let wants_start = match &state {
                None => true,
                Some(ContainerState::Running(_)) => false,
                Some(ContainerState::Exited(e)) => {
                    let ok = e.exit_code == 0 && e.start_error.is_none();
                    if *is_init && !sidecar {
                        !ok && policy != "Never"
                    } else {
                        match policy.as_str() {
                            _ if sidecar => true,
                            "Always" => true,
                            "OnFailure" => !ok,
                            _ => false,
                        }
                    }
                }
                Some(ContainerState::Lost) => policy != "Never" || *is_init,
            };
            if *is_init && !sidecar {
                let succeeded =
                    matches!(&state, Some(ContainerState::Exited(e)) if e.exit_code == 0 && e.start_error.is_none());
                if !succeeded {
                    init_done = false;
                }
            }
            if *is_init && sidecar && !matches!(state, Some(ContainerState::Running(_))) {
                init_done = false;
            }
            self.manage_probes(container, *is_init && !sidecar, state.as_ref()).await;
            if wants_start {
                self.retry_soon = true;
                self.start(container, state.as_ref()).await;
            }
        }
        self.report().await;
    }

    /// Whether the pod ran longer than its `activeDeadlineSeconds` (counted from `startTime`).
    fn deadline_exceeded(&self) -> bool {
        let Some(deadline) = self.pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) else { return false };
        let Some(start) = self.pod.status.as_ref().and_then(|s| s.start_time.as_ref()) else { return false };
        let ran = jiff::Timestamp::now().duration_since(start.0).as_secs();
        ran >= deadline
    }

    /// Kills the pod's containers and marks it Failed with `DeadlineExceeded`, as upstream.
    async fn fail_for_deadline(&mut self) {
        let message = "Pod was active on the node longer than the specified deadline";
        self.event(EventType::Warning, "DeadlineExceeded", message.into()).await;
        let ids: Vec<String> =
            self.tracks.iter().filter(|(_, t)| t.created).map(|(n, t)| instance_id(&self.uid, n, t.attempt)).collect();
        let (runtime, grace) = (Arc::clone(&self.shared.runtime), Duration::from_secs(self.grace_seconds()));
        self.probers.clear();
        let _ = tokio::task::spawn_blocking(move || stop_instances(&runtime, &ids, grace)).await;
        self.failure = Some(("DeadlineExceeded".into(), message.into()));
        self.report().await;
    }

    /// Runs the probes of a running instance of `container` (none for plain init containers),
    /// stops them when it ends, and kills it when liveness or startup failed.
    async fn manage_probes(&mut self, container: &Container, plain_init: bool, state: Option<&ContainerState>) {
        let name = &container.name;
        let has_probes = container.startup_probe.is_some()
            || container.liveness_probe.is_some()
            || container.readiness_probe.is_some();
        let Some(ContainerState::Running(running)) = state.filter(|_| has_probes && !plain_init) else {
            self.probers.remove(name);
            return;
        };
        let attempt = self.tracks.get(name).map_or(0, |t| t.attempt);
        if self.probers.get(name).is_none_or(|h| h.attempt != attempt) {
            let started = running.started_at.parse::<jiff::Timestamp>().ok();
            let running_for = started
                .and_then(|t| jiff::Timestamp::now().duration_since(t).try_into().ok())
                .unwrap_or(Duration::ZERO);
            let state = Arc::new(Mutex::new(Prober::initial(
                container.startup_probe.is_some(),
                container.readiness_probe.is_some(),
            )));
            let prober = Prober {
                startup: container.startup_probe.clone(),
                liveness: container.liveness_probe.clone(),
                readiness: container.readiness_probe.clone(),
                target: self.target(container, attempt),
                state: Arc::clone(&state),
                changed: Arc::clone(&self.probe_changed),
                events: self.probe_event_sink(),
                running_for,
            };
            let task = tokio::spawn(prober.run());
            self.probers.insert(name.clone(), ProbeHandle { attempt, state, task, killing: false });
        }
        let Some(handle) = self.probers.get_mut(name) else { return };
        let failed = handle.state.lock().ok().and_then(|s| s.failed);
        let Some(kind) = failed.filter(|_| !handle.killing) else { return };
        handle.killing = true;
        let probe = if kind == Kind::Startup { &container.startup_probe } else { &container.liveness_probe };
        let grace = probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds)
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(1) as u64;
        let what = kind.label().to_ascii_lowercase();
        self.event(EventType::Normal, "Killing", format!("Container {name} failed {what} probe, will be restarted"))
            .await;
        let runtime = Arc::clone(&self.shared.runtime);
        let ids = vec![instance_id(&self.uid, name, attempt)];
        let (target, grace) = (self.target(container, attempt), Duration::from_secs(grace));
        let (reference, recorder, pod_ref) = (self.reference(), self.shared.recorder.clone(), self.pod_ref());
        let activity = Arc::clone(&self.shared.activity);
        // In the background: the worker keeps reporting while the hook and the grace period run.
        tokio::spawn(async move {
            let left = run_pre_stop(&target, grace, &pod_ref, (&recorder, &reference), &activity).await;
            let _ = tokio::task::spawn_blocking(move || stop_instances(&runtime, &ids, left)).await;
        });
    }

    /// What probes and hooks of instance `attempt` of `container` run against.
    fn target(&self, container: &Container, attempt: u32) -> Target {
        Target {
            runtime: Arc::clone(&self.shared.runtime),
            instance: instance_id(&self.uid, &container.name, attempt),
            container: container.clone(),
            pod_ip: self.pod_ip.clone().unwrap_or_else(|| self.shared.cfg.node_ip.to_string()),
        }
    }

    /// `<name>_<namespace>(<uid>)`, as the kubelet names a pod in messages.
    fn pod_ref(&self) -> String {
        format!("{}_{}({})", self.name(), self.pod.metadata.namespace.as_deref().unwrap_or(""), self.uid)
    }

    /// Runs `container`'s preStop hook (if any) against instance `attempt`, within `grace`;
    /// returns how much of the grace period is left (at least 2 s after a hook, as upstream).
    async fn pre_stop(&self, container: &Container, attempt: u32, grace: Duration) -> Duration {
        let target = self.target(container, attempt);
        let events = (&self.shared.recorder, &self.reference());
        run_pre_stop(&target, grace, &self.pod_ref(), events, &self.shared.activity).await
    }

    /// Publishes probe failures and warnings (`Unhealthy`, `ProbeWarning`) as events on the pod.
    fn probe_event_sink(&self) -> super::prober::EventSink {
        let recorder = self.shared.recorder.clone();
        let reference = self.reference();
        Arc::new(move |reason: &'static str, note: String| {
            let (recorder, reference) = (recorder.clone(), reference.clone());
            tokio::spawn(async move {
                publish(&recorder, &reference, EventType::Warning, reason, note).await;
            });
        })
    }

    /// Fails the pod at admission, as the kubelet's `rejectPod`: phase `Failed` with the reason,
    /// and a warning event. Once.
    async fn reject(&mut self, reason: &str, message: String) {
        let status =
            serde_json::json!({"phase": "Failed", "reason": reason, "message": format!("Pod was rejected: {message}")});
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        self.event(EventType::Warning, reason, message).await;
        let patch = serde_json::json!({"status": status});
        match self.api().patch_status(self.name(), &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => self.last_status = Some(status),
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "status update failed"),
        }
    }

    /// Starts one container, or restarts it (honouring back-off) when `previous` is the state of
    /// its last instance.
    async fn start(&mut self, container: &Container, previous: Option<&ContainerState>) {
        let pod_ref = format!("{}_{}({})", self.name(), self.pod.metadata.namespace.as_deref().unwrap_or(""), self.uid);
        let track = self.tracks.entry(container.name.clone()).or_default();
        let now = Instant::now();
        if let Some(previous) = previous {
            if track.next_start.is_none() {
                // Just noticed the exit: schedule the restart after the back-off.
                let ran_long = matches!(previous, ContainerState::Exited(e) if run_time(e) >= BACKOFF_RESET);
                // The first restart is immediate, then 10 s doubling to 5 min (reset by a long run).
                track.backoff = if ran_long || track.attempt == 0 {
                    Duration::ZERO
                } else if track.backoff.is_zero() {
                    BACKOFF_INITIAL
                } else {
                    (track.backoff * 2).min(BACKOFF_MAX)
                };
                track.next_start = Some(now + track.backoff);
            }
            if track.next_start.is_some_and(|t| t > now) {
                let message = format!(
                    "back-off {} restarting failed container={} pod={pod_ref}",
                    fmt_duration(track.backoff),
                    container.name,
                );
                let first = track.waiting.as_ref().is_none_or(|w| w.reason != "CrashLoopBackOff");
                track.waiting = Some(Waiting { reason: "CrashLoopBackOff".into(), message: message.clone() });
                if first {
                    self.event(EventType::Warning, "BackOff", "Back-off restarting failed container".into()).await;
                }
                return;
            }
            track.attempt += 1;
            track.created = false;
            track.next_start = None;
        }
        let attempt = self.tracks.get(&container.name).map_or(0, |t| t.attempt);
        match self.create(container, attempt).await {
            Ok(image_id) => {
                if attempt >= 2 {
                    // Keep the previous instance (for `lastState` and `logs --previous`), no older.
                    let old = instance_id(&self.uid, &container.name, attempt - 2);
                    let runtime = Arc::clone(&self.shared.runtime);
                    let _ = tokio::task::spawn_blocking(move || runtime.remove(&old)).await;
                }
                let track = self.tracks.entry(container.name.clone()).or_default();
                track.created = true;
                track.waiting = None;
                track.image_id = image_id;
            }
            // A pull goes on in the background: the container keeps the state it has.
            Err(waiting) if waiting.reason == crate::images::PULL_PENDING => {}
            Err(waiting) => {
                let track = self.tracks.entry(container.name.clone()).or_default();
                let changed = track.waiting.as_ref() != Some(&waiting);
                track.waiting = Some(waiting.clone());
                // Image failures have their events from the image manager.
                if changed && !crate::images::IMAGE_REASONS.contains(&waiting.reason.as_str()) {
                    self.event(EventType::Warning, "Failed", format!("Error: {}", waiting.message)).await;
                }
            }
        }
    }

    /// Creates and starts instance `attempt` of `container`; returns the image id.
    async fn create(&self, container: &Container, attempt: u32) -> Result<String, Waiting> {
        let runtime = Arc::clone(&self.shared.runtime);
        let image = match self.shared.images.ensure(&self.pod, container).await {
            crate::images::Ensure::Ready(image) => *image,
            crate::images::Ensure::Pending => {
                return Err(Waiting { reason: crate::images::PULL_PENDING.into(), message: String::new() });
            }
            crate::images::Ensure::Failed(waiting) => return Err(waiting),
        };
        self.lap("image");
        let defaults = runtime
            .images()
            .container_defaults(&image)
            .map_err(|e| Waiting { reason: "CreateContainerConfigError".into(), message: e.to_string() })?;
        let env = env::resolve(&self.shared.client, &self.pod, container, &defaults, &self.shared.cfg)
            .await
            .map_err(|message| Waiting { reason: "CreateContainerConfigError".into(), message })?;
        let volume_mounts = self
            .shared
            .volumes
            .container_mounts(&self.pod, container, &env)
            .await
            .map_err(|e| Waiting { reason: e.reason.into(), message: e.message })?;
        let mut config = convert::container_config(container, &defaults, env, &self.pod, &|_| None)
            .map_err(|e| Waiting { reason: "CreateContainerConfigError".into(), message: e.0 })?;
        let seccomp_dir = self.shared.cfg.agent_dir.join("seccomp");
        config.seccomp =
            security::seccomp_filter(&self.pod, container, config.privileged, &config.capabilities, &seccomp_dir)?;
        let oom_score_adj = resources::oom_score_adj(&self.pod, container, self.shared.cfg.node_memory_bytes());
        config.oom_score_adj = Some(skiff_runtime::spec::grantable_oom_score_adj(oom_score_adj));
        let pod_dir = self.shared.cfg.agent_dir.join("pods").join(&self.uid);
        // The pod as it will be reported: `/etc/hosts` carries its address.
        let mut pod = self.pod.clone();
        pod.status.get_or_insert_default().pod_ip = self.pod_ip.clone();
        let host_resolv =
            super::dns::HostResolv::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        let resolv = super::dns::resolv_conf(&pod, &host_resolv, &self.cluster_dns());
        config.rootfs_propagation = crate::volumes::container::rootfs_propagation(&volume_mounts);
        config.mounts = super::mounts::container_mounts(&pod, container, &pod_dir, attempt, volume_mounts, &resolv)
            .map_err(|message| Waiting { reason: "CreateContainerConfigError".into(), message })?;
        let sandbox = self.sandbox.as_ref().ok_or_else(|| Waiting {
            reason: "ContainerCreating".into(),
            message: "the pod's sandbox is not ready".into(),
        })?;
        config.namespaces = sandbox.container_namespaces();
        config.hostname = sandbox.uts.is_some().then(|| super::mounts::pod_hostname(&self.pod));
        config.cgroups_path = Some(format!("{}/{}", resources::pod_cgroup(&self.pod), container.name));
        let log_path = self.log_path(&container.name, attempt);
        let id = instance_id(&self.uid, &container.name, attempt);
        let image_id = image.image_id();
        self.lap("prepare");
        self.event(EventType::Normal, "Created", format!("Created container {}", container.name)).await;
        self.lap("events");
        self.shared.activity.container_starting(container_type(&self.pod, &container.name));
        let started = tokio::task::spawn_blocking(move || runtime.start(&id, Some(&image), &config, &log_path))
            .await
            .map_err(|e| Waiting { reason: "RunContainerError".into(), message: e.to_string() })?;
        self.lap("start");
        match started {
            Ok(ContainerState::Exited(skiff_runtime::shim::Exited { start_error: Some(error), .. })) => {
                // The instance exists (terminated with StartError); report it like the kubelet.
                self.event(EventType::Warning, "Failed", format!("Error: {error}")).await;
                Ok(image_id)
            }
            Ok(_) => {
                self.event(EventType::Normal, "Started", format!("Started container {}", container.name)).await;
                self.lap("events");
                self.post_start(container, attempt).await;
                Ok(image_id)
            }
            Err(e) => Err(Waiting { reason: "RunContainerError".into(), message: e.to_string() }),
        }
    }

    /// Runs `container`'s postStart hook right after the start; a failure kills the instance
    /// (which is then restarted per the restart policy), as upstream.
    async fn post_start(&self, container: &Container, attempt: u32) {
        let Some(hook) = container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return };
        let grace = Duration::from_secs(self.grace_seconds());
        let e = match hooks::run(hook, &self.target(container, attempt), grace).await {
            Ok(ran) => {
                let events = (&self.shared.recorder, &self.reference());
                return report_fallback(events, &self.shared.activity, ran).await;
            }
            Err(e) => e,
        };
        let note = hooks::failure_message(hook, &container.name, &self.pod_ref(), &e);
        self.event(EventType::Warning, "FailedPostStartHook", note).await;
        self.event(EventType::Normal, "Killing", format!("FailedPostStartHook: stopping container {}", container.name))
            .await;
        let runtime = Arc::clone(&self.shared.runtime);
        let ids = vec![instance_id(&self.uid, &container.name, attempt)];
        let _ = tokio::task::spawn_blocking(move || stop_instances(&runtime, &ids, grace)).await;
    }

    /// The pod's `terminationGracePeriodSeconds` (30 by default).
    fn grace_seconds(&self) -> u64 {
        self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).max(0) as u64
    }

    /// `/var/log/pods/<ns>_<name>_<uid>`: the pod's logs, removed with the pod.
    fn pod_log_dir(&self) -> PathBuf {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        self.shared.cfg.log_dir.join(format!("{ns}_{}_{}", self.name(), self.uid))
    }

    fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        self.pod_log_dir().join(container).join(format!("{attempt}.log"))
    }

    async fn views(&self) -> Vec<ContainerView> {
        let mut views = Vec::new();
        for (container, is_init) in all_containers(&self.pod) {
            let track = self.tracks.get(&container.name).cloned().unwrap_or_default();
            let state = self.state_of(&container.name).await;
            let previous = if track.attempt > 0 {
                let id = instance_id(&self.uid, &container.name, track.attempt - 1);
                let runtime = Arc::clone(&self.shared.runtime);
                tokio::task::spawn_blocking(move || runtime.state(&id).ok()).await.ok().flatten()
            } else {
                None
            };
            let running = matches!(state, Some(ContainerState::Running(_)));
            let probes = self
                .probers
                .get(&container.name)
                .filter(|h| h.attempt == track.attempt)
                .and_then(|h| h.state.lock().ok().map(|s| s.clone()))
                .unwrap_or_else(|| {
                    Prober::initial(container.startup_probe.is_some(), container.readiness_probe.is_some())
                });
            let plain_init = is_init && container.restart_policy.as_deref() != Some("Always");
            views.push(ContainerView {
                ready: running && (plain_init || probes.ready),
                started: running && (plain_init || probes.started),
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                image_id: track.image_id.clone(),
                container_id: track
                    .created
                    .then(|| format!("skiff://{}", instance_id(&self.uid, &container.name, track.attempt))),
                init: is_init,
                sidecar: is_init && container.restart_policy.as_deref() == Some("Always"),
                restart_count: track.attempt,
                state,
                previous,
                waiting: track.waiting.clone(),
            });
        }
        views
    }

    async fn report(&mut self) {
        // A static pod's status goes to its mirror pod, once it has one.
        if crate::static_pods::is_static(&self.pod) && self.pod.status.is_none() {
            return;
        }
        self.lap("sync");
        let views = self.views().await;
        self.lap("views");
        self.watch_exits(&views);
        let status = status::pod_status(
            &self.pod,
            &views,
            &self.shared.cfg.node_ip.to_string(),
            self.pod_ip.as_deref(),
            self.sandbox.is_some(),
        );
        let mut status = status;
        if let Some((reason, message)) = &self.failure {
            status["phase"] = serde_json::json!("Failed");
            status["reason"] = serde_json::json!(reason);
            status["message"] = serde_json::json!(message);
        }
        if let (Some(condition), Some(conditions)) = (&self.disruption, status["conditions"].as_array_mut()) {
            conditions.push(condition.clone());
        }
        if let Some(previous) = &self.last_status {
            status::carry_transitions(&mut status, previous);
        }
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let patch = serde_json::json!({"status": status});
        let patched = self.api().patch_status(self.name(), &PatchParams::default(), &Patch::Strategic(&patch)).await;
        self.lap("status");
        match patched {
            Ok(_) => {
                if status["phase"] == "Running" {
                    let pod = format!("{}/{}", self.pod.metadata.namespace.as_deref().unwrap_or(""), self.name());
                    self.timing.lock().unwrap_or_else(|p| p.into_inner()).finish(&pod);
                    if let Some(since) = self.pending_since.take() {
                        self.shared.activity.pod_started(since.elapsed());
                    }
                }
                self.last_status = Some(status);
            }
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "status update failed"),
        }
    }

    /// Watches the processes whose end the worker must notice at once: the shims of the running
    /// containers (a shim exits once its container's end is recorded) and the sandbox's.
    fn watch_exits(&mut self, views: &[ContainerView]) {
        let mut pids: Vec<i32> = views
            .iter()
            .filter_map(|v| match &v.state {
                Some(ContainerState::Running(started)) => Some(started.shim_pid),
                _ => None,
            })
            .collect();
        if let Some(sandbox) = &self.sandbox {
            pids.extend(std::iter::once(sandbox.pid).chain(sandbox.init_pid));
        }
        self.exits.retain(&pids);
        for pid in pids {
            self.exits.watch(pid);
        }
    }

    /// Evicts the pod (node pressure, or an emptyDir over its `sizeLimit`), as the kubelet's
    /// eviction manager does: `Evicted` event, containers stopped within `grace` (preStop hooks
    /// first; killed at once for zero), volumes released, status `Failed` with reason `Evicted` (and the
    /// `DisruptionTarget` condition for node pressure). The pod object stays until deleted.
    async fn evict(&mut self, message: String, grace: Duration, disruption: bool) {
        self.event(EventType::Warning, "Evicted", message.clone()).await;
        if grace.is_zero() {
            self.probers.clear();
            self.kill_containers().await;
        } else {
            // As the kubelet's kill with a grace override: preStop hooks run within it.
            self.stop_running(grace).await;
        }
        self.shared.volumes.release(&self.uid).await;
        if disruption {
            self.disruption = Some(crate::eviction::disruption_condition(&message));
        }
        self.failure = Some(("Evicted".into(), message));
        self.report().await;
    }

    /// Stops the running containers as the kubelet kills a pod: a `Killing` event for each, their
    /// preStop hooks side by side within `grace`, then SIGTERM with what is left of it and SIGKILL
    /// after. Probes stop first.
    async fn stop_running(&mut self, grace: Duration) {
        let names: Vec<String> = self.tracks.keys().cloned().collect();
        let mut running = Vec::new();
        for name in &names {
            if let Some(ContainerState::Running(_)) = self.state_of(name).await {
                running.push(name.clone());
                self.event(EventType::Normal, "Killing", format!("Stopping container {name}")).await;
            }
        }
        let containers: Vec<(Container, u32)> = all_containers(&self.pod)
            .filter(|(c, _)| running.contains(&c.name))
            .map(|(c, _)| (c.clone(), self.tracks[&c.name].attempt))
            .collect();
        let hooks = containers.iter().map(|(c, attempt)| self.pre_stop(c, *attempt, grace));
        let left = futures::future::join_all(hooks).await.into_iter().min().unwrap_or(grace);
        self.probers.clear();
        let runtime = Arc::clone(&self.shared.runtime);
        let ids: Vec<String> = running.iter().map(|n| instance_id(&self.uid, n, self.tracks[n].attempt)).collect();
        let _ = tokio::task::spawn_blocking(move || stop_instances(&runtime, &ids, left)).await;
    }

    /// Stops every container (preStop hooks, SIGTERM, then SIGKILL after the grace period),
    /// removes them, and completes the deletion (unless the pod is already gone from the API).
    async fn terminate(&mut self, already_gone: bool) {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0) as u64;
        self.stop_running(Duration::from_secs(grace)).await;
        let runtime = Arc::clone(&self.shared.runtime);
        let uid = self.uid.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in runtime.list().unwrap_or_default().iter().filter(|id| id.starts_with(&format!("{uid}-"))) {
                if let Err(e) = runtime.remove(id) {
                    tracing::warn!(container = %id, error = %e, "removing container");
                }
            }
        })
        .await;
        self.release_sandbox().await;
        super::mounts::remove_pod_dir(&self.shared.cfg.agent_dir.join("pods").join(&self.uid));
        self.shared.volumes.forget(&self.pod).await;
        super::mounts::remove_pod_dir(&self.pod_log_dir());
        self.shared.images.forget_pod(&self.uid);
        let uid = self.uid.clone();
        let _ = tokio::task::spawn_blocking(move || resources::remove_pod_cgroup(&uid)).await;
        if already_gone {
            return;
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match self.api().delete(self.name(), &params).await {
            Ok(_) => tracing::info!(pod = %self.name(), "pod deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "completing the deletion failed"),
        }
    }
}

/// Records an event about the pod `reference`: queued, published in the background in order
/// ([`crate::events`]; failures are only logged: events are best effort).
pub(crate) async fn publish(
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    kind: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event { type_: kind, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
    crate::events::emit(recorder, reference, ev);
}

/// Runs the preStop hook of `target`'s container (if any) within `grace`, reporting a failure
/// as `FailedPreStopHook`; returns how much of the grace period is left (at least 2 s after a
/// hook, as upstream).
async fn run_pre_stop(
    target: &Target,
    grace: Duration,
    pod_ref: &str,
    (recorder, reference): (&Recorder, &k8s_openapi::api::core::v1::ObjectReference),
    activity: &crate::stats::activity::Activity,
) -> Duration {
    let Some(hook) = target.container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else { return grace };
    let t0 = Instant::now();
    match hooks::run(hook, target, grace).await {
        Ok(ran) => report_fallback((recorder, reference), activity, ran).await,
        Err(e) => {
            let note = hooks::failure_message(hook, &target.container.name, pod_ref, &e);
            publish(recorder, reference, EventType::Warning, "FailedPreStopHook", note).await;
        }
    }
    grace.saturating_sub(t0.elapsed()).max(Duration::from_secs(2))
}

/// A hook that had to fall back from HTTPS to HTTP gets a `LifecycleHTTPFallback` warning (sent
/// with `events`: the recorder and the pod) and is counted in `activity`.
async fn report_fallback(
    (recorder, reference): (&Recorder, &k8s_openapi::api::core::v1::ObjectReference),
    activity: &crate::stats::activity::Activity,
    ran: hooks::Ran,
) {
    if let hooks::Ran::HttpFallback { host } = ran {
        activity.hook_fell_back();
        let note = hooks::Ran::fallback_message(&host);
        publish(recorder, reference, EventType::Warning, "LifecycleHTTPFallback", note).await;
    }
}

/// Stops container instances `ids`: SIGTERM, up to `grace` for them to end, then SIGKILL and up
/// to 10 s more. Blocking.
fn stop_instances(runtime: &Runtime, ids: &[String], grace: Duration) {
    let running = |id: &String| matches!(runtime.state(id), Ok(ContainerState::Running(_)));
    if !grace.is_zero() {
        for id in ids {
            let _ = runtime.signal(id, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && ids.iter().any(running) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for id in ids.iter().filter(|id| running(id)) {
        let _ = runtime.signal(id, Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && ids.iter().any(running) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long an ended instance ran.
fn run_time(e: &skiff_runtime::shim::Exited) -> Duration {
    let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
    match (e.started_at.as_deref().and_then(parse), parse(&e.finished_at)) {
        (Some(start), Some(end)) => end.duration_since(start).try_into().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}
