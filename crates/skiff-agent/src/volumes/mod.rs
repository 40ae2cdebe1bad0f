//! Pod volumes, the way the kubelet's volume manager handles them: before a pod's containers
//! are created its volumes are set up under `<agent>/pods/<uid>/volumes/` (emptyDir on disk or
//! tmpfs, hostPath checks, configMap/secret/downwardAPI/projected files written by the atomic
//! writer, PersistentVolumeClaims resolved to their hostPath or local volume); a volume that
//! cannot be set up keeps the pod in `ContainerCreating` with a `FailedMount` event worded as
//! upstream, and the pod starts once it can. Projected files are refreshed on every worker pass
//! from watched ConfigMaps and Secrets ([`objects`]) and the latest pod (labels, annotations),
//! so updates reach running containers within a second or two. Disk emptyDirs over their
//! `sizeLimit` get the pod evicted. Everything is unmounted and removed with the pod
//! ([`cleanup`]). Deleted local-path PersistentVolumes of this node get their directories
//! removed ([`local_path`]).
//!
//! One module per volume type plus the shared pieces (atomic writer, ownership, subPath,
//! mount table). What does not live here: the `/etc` files of a pod (`pods::mounts`), running
//! containers (the worker), and the container runtime's own mounts.

pub mod atomic_writer;
pub mod cleanup;
pub mod config_map;
pub mod container;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod layout;
pub mod local_path;
pub mod mounted_claims;
pub mod mountinfo;
pub mod objects;
pub mod ownership;
pub mod projected;
pub mod pvc;
pub mod secret;
pub mod subpath;
pub mod token_manager;

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};

use atomic_writer::Payload;
use downward_api::Allocatable;
use layout::Plugin;
use objects::ObjectCache;

use crate::AgentConfig;

/// How often a still-failing volume's `FailedMount` event is repeated.
const REPEAT_EVENT: Duration = Duration::from_secs(60);
/// How long a claim that could not be resolved waits before it is read again.
const CLAIM_RETRY: Duration = Duration::from_secs(2);
/// How often disk emptyDirs with a `sizeLimit` are measured.
const USAGE_INTERVAL: Duration = Duration::from_secs(5);

/// A volume set up on the host, ready to be bind-mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    /// The host path.
    pub path: PathBuf,
    /// Always mounted read-only (configMap, secret, downwardAPI, projected, read-only claims).
    pub read_only: bool,
    /// Lives in the pod's directory (so the agent may make it a shared mount).
    pub managed: bool,
    /// An unset-type hostPath: created as a directory if missing when a container mounts it.
    pub create_if_missing: bool,
}

/// What a pass over a pod's volumes found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VolumeReport {
    /// Every volume the pod's containers mount has been set up (at least once).
    pub ready: bool,
    /// `FailedMount` event messages to publish now.
    pub events: Vec<String>,
}

#[derive(Debug, Clone)]
struct Reported {
    message: String,
    at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SourceRef {
    ConfigMap(String),
    Secret(String),
}

/// One pod's volume state.
#[derive(Debug, Default)]
struct PodVolumes {
    mounted: HashMap<String, HostVolume>,
    /// Hash of the payload last written, per projected volume.
    written: HashMap<String, u64>,
    /// Failures already reported as events, by volume (`""`: the claims summary).
    reported: HashMap<String, Reported>,
    /// The ConfigMaps and Secrets this pod holds watches on.
    sources: Option<Vec<SourceRef>>,
    /// Claims that failed: not read again before the instant, last error.
    claims: HashMap<String, (Instant, String)>,
}

/// A disk emptyDir with a `sizeLimit`.
#[derive(Debug, Clone)]
struct SizeLimit {
    volume: String,
    path: PathBuf,
    bytes: u64,
    written: String,
}

/// The node's volume manager, shared by every pod worker.
pub struct VolumeManager {
    client: kube::Client,
    agent_dir: PathBuf,
    node: Allocatable,
    config_maps: ObjectCache<ConfigMap>,
    secrets: ObjectCache<Secret>,
    tokens: token_manager::TokenManager,
    pods: Mutex<HashMap<String, Arc<tokio::sync::Mutex<PodVolumes>>>>,
    limits: Mutex<HashMap<String, Vec<SizeLimit>>>,
    evictions: Mutex<HashMap<String, String>>,
    claims_set_up: mounted_claims::MountedClaims,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn hash_payload(payload: &Payload) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

/// Runs blocking filesystem work off the async threads; a panic becomes an error, never a crash.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(format!("volume setup task failed: {e}")))
}

fn set_up_failed(volume: &str, error: &str) -> String {
    format!("MountVolume.SetUp failed for volume {volume:?} : {error}")
}

impl VolumeManager {
    /// A manager for the agent configured by `cfg`.
    pub fn new(client: kube::Client, cfg: &AgentConfig) -> Arc<Self> {
        let host = crate::sysinfo::HostInfo::gather(&cfg.agent_dir).ok();
        let node = Allocatable {
            milli_cpu: host
                .as_ref()
                .map_or(1000, |h| h.cpus as i64 * 1000)
                .saturating_sub(cfg.reserved_milli_cpu as i64),
            memory: host.as_ref().map_or(0, |h| h.memory_bytes.saturating_sub(cfg.reserved_memory) as i64),
            ephemeral_storage: host.as_ref().map_or(0, |h| h.storage_bytes as i64),
        };
        Arc::new(Self {
            config_maps: ObjectCache::new(client.clone(), "configmap"),
            secrets: ObjectCache::new(client.clone(), "secret"),
            tokens: token_manager::TokenManager::new(client.clone()),
            client,
            agent_dir: cfg.agent_dir.clone(),
            node,
            pods: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            evictions: Mutex::new(HashMap::new()),
            claims_set_up: mounted_claims::MountedClaims::default(),
        })
    }

    /// The claim volumes set up so far (shared: it follows later set-ups and releases).
    pub fn mounted_claims(&self) -> mounted_claims::MountedClaims {
        self.claims_set_up.clone()
    }

    fn state(&self, uid: &str) -> Arc<tokio::sync::Mutex<PodVolumes>> {
        Arc::clone(locked(&self.pods).entry(uid.to_string()).or_default())
    }

    /// `<agent>/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        layout::pod_dir(&self.agent_dir, uid)
    }

    /// Number of ConfigMaps and Secrets watched for the node's pods.
    pub fn watched_sources(&self) -> usize {
        self.config_maps.watched() + self.secrets.watched()
    }

    fn register_sources(&self, pod: &Pod) -> Vec<SourceRef> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut refs = BTreeSet::new();
        for v in layout::used_volumes(pod) {
            if let Some(cm) = &v.config_map {
                refs.insert((0, cm.name.clone()));
            }
            if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                refs.insert((1, name));
            }
            for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(cm) = &s.config_map {
                    refs.insert((0, cm.name.clone()));
                }
                if let Some(sec) = &s.secret {
                    refs.insert((1, sec.name.clone()));
                }
            }
        }
        refs.into_iter()
            .map(|(kind, name)| {
                if kind == 0 {
                    self.config_maps.register(&ns, &name);
                    SourceRef::ConfigMap(name)
                } else {
                    self.secrets.register(&ns, &name);
                    SourceRef::Secret(name)
                }
            })
            .collect()
    }

    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<Arc<ConfigMap>>, String> {
        self.config_maps.get(ns, name).await
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Arc<Secret>>, String> {
        self.secrets.get(ns, name).await
    }

    /// The files of a configMap, secret, downwardAPI or projected volume.
    async fn projection(&self, pod: &Pod, volume: &Volume) -> Result<Payload, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if let Some(src) = &volume.config_map {
            let optional = src.optional.unwrap_or(false);
            let cm = self.config_map(ns, &src.name).await?;
            if cm.is_none() && !optional {
                return Err(format!("configmap {:?} not found", src.name));
            }
            return config_map::payload(src.items.as_deref(), cm.as_deref(), src.default_mode, optional);
        }
        if let Some(src) = &volume.secret {
            let optional = src.optional.unwrap_or(false);
            let name = src.secret_name.clone().unwrap_or_default();
            let secret = self.secret(ns, &name).await?;
            if secret.is_none() && !optional {
                return Err(format!("secret {name:?} not found"));
            }
            return secret::payload(src.items.as_deref(), secret.as_deref(), src.default_mode, optional);
        }
        if let Some(src) = &volume.downward_api {
            return downward_api::payload(src.items.as_deref().unwrap_or_default(), pod, src.default_mode, &self.node);
        }
        if let Some(src) = &volume.projected {
            let mut fetched = projected::Fetched { config_maps: Vec::new(), secrets: Vec::new(), tokens: Vec::new() };
            for s in src.sources.iter().flatten() {
                if let Some(cm) = &s.config_map {
                    fetched.config_maps.push(self.config_map(ns, &cm.name).await);
                }
                if let Some(sec) = &s.secret {
                    fetched.secrets.push(self.secret(ns, &sec.name).await);
                }
                if let Some(t) = &s.service_account_token {
                    let lifetime = t.expiration_seconds.unwrap_or(3600);
                    fetched.tokens.push(self.tokens.token(pod, t.audience.as_deref(), lifetime).await);
                }
            }
            return projected::payload(src, pod, &fetched, &self.node);
        }
        Ok(Payload::new())
    }

    /// Writes a projected volume's files (setting up its scratch directory first).
    async fn write_projection(
        &self,
        pod: &Pod,
        volume: &Volume,
        plugin: Plugin,
        payload: Payload,
    ) -> Result<(), String> {
        let dir = layout::volume_dir(&self.pod_dir(&uid_of(pod)), plugin, &volume.name);
        // Secrets, downward API and projected files live in memory, configMaps on disk.
        let memory = plugin != Plugin::ConfigMap;
        let size = empty_dir::tmpfs_size(self.node.memory.max(0) as u64, pod, None);
        let nested = layout::nested_mount_points(pod, &volume.name);
        let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.fs_group);
        blocking(move || {
            if memory {
                empty_dir::setup_tmpfs(&dir, size)?;
            } else {
                empty_dir::setup_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            for n in &nested {
                std::fs::create_dir_all(dir.join(n))
                    .map_err(|e| format!("unable to create nested volume mountpoints: {e}"))?;
            }
            let perms = |root: &Path| ownership::apply(root, fs_group, true, None);
            atomic_writer::write(&dir, &payload, &perms).map(|_| ()).map_err(|e| e.to_string())
        })
        .await
    }

    async fn set_up_empty_dir(&self, pod: &Pod, volume: &Volume) -> Result<HostVolume, String> {
        let uid = uid_of(pod);
        let dir = layout::volume_dir(&self.pod_dir(&uid), Plugin::EmptyDir, &volume.name);
        let src = volume.empty_dir.clone().unwrap_or_default();
        let limit = src.size_limit.as_ref().map(|q| q.0.clone());
        let medium = src.medium.clone().unwrap_or_default();
        let size = empty_dir::tmpfs_size(self.node.memory.max(0) as u64, pod, limit.as_deref());
        let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.fs_group);
        let path = dir.clone();
        blocking(move || {
            match medium.as_str() {
                "" => empty_dir::setup_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?,
                "Memory" => empty_dir::setup_tmpfs(&path, size)?,
                other => return Err(format!("unknown storage medium {other:?}")),
            }
            ownership::apply(&path, fs_group, false, None).map_err(|e| format!("setting ownership: {e}"))
        })
        .await?;
        if src.medium.as_deref().unwrap_or("").is_empty()
            && let Some(written) = limit
            && let Ok(q) = skiff_api::quantity::Quantity::parse(&written)
            && q.value() > 0
        {
            let entry = SizeLimit { volume: volume.name.clone(), path: dir.clone(), bytes: q.value() as u64, written };
            let mut limits = locked(&self.limits);
            let list = limits.entry(uid).or_default();
            list.retain(|l| l.volume != entry.volume);
            list.push(entry);
        }
        Ok(HostVolume { path: dir, read_only: false, managed: true, create_if_missing: false })
    }

    async fn set_up_host_path(&self, volume: &Volume) -> Result<HostVolume, String> {
        let src = volume.host_path.clone().unwrap_or_default();
        let kind = src.type_.clone().unwrap_or_default();
        let path = src.path.clone();
        blocking(move || host_path::setup(&path, &kind)).await?;
        Ok(HostVolume {
            path: PathBuf::from(&src.path),
            read_only: false,
            managed: false,
            create_if_missing: src.type_.as_deref().unwrap_or("").is_empty(),
        })
    }

    /// Sets up a claim's volume; errors are complete event messages.
    async fn set_up_claim(&self, pod: &Pod, bound: pvc::Bound, read_only: bool) -> Result<HostVolume, String> {
        let spec_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let fs_group = spec_sc.and_then(|s| s.fs_group);
        let policy = spec_sc.and_then(|s| s.fs_group_change_policy.clone());
        let b = bound.clone();
        blocking(move || match &b.host_path_type {
            Some(kind) => host_path::setup(&b.path, kind).map_err(|e| set_up_failed(&b.pv_name, &e)),
            None => {
                if std::fs::metadata(&b.path).is_err() {
                    return Err(format!(
                        "MountVolume.NewMounter initialization failed for volume {:?} : path {:?} does not exist",
                        b.pv_name, b.path
                    ));
                }
                if read_only {
                    return Ok(());
                }
                ownership::apply(Path::new(&b.path), fs_group, false, policy.as_deref())
                    .map_err(|e| set_up_failed(&b.pv_name, &e.to_string()))
            }
        })
        .await?;
        Ok(HostVolume {
            path: PathBuf::from(&bound.path),
            read_only,
            managed: false,
            create_if_missing: bound.host_path_type.as_deref() == Some(""),
        })
    }

    /// Sets up what is missing of `pod`'s volumes and refreshes its projected files. Cheap when
    /// nothing changed; the worker calls it on every pass.
    pub async fn sync(&self, pod: &Pod) -> VolumeReport {
        let uid = uid_of(pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let state = self.state(&uid);
        let mut st = state.lock().await;
        if st.sources.is_none() {
            st.sources = Some(self.register_sources(pod));
        }
        // Failures of this pass: (volume, event message).
        let mut failures: Vec<(String, String)> = Vec::new();
        let mut claim_failures: Vec<(String, String)> = Vec::new();
        let used = layout::used_volumes(pod);
        for volume in &used {
            let name = volume.name.clone();
            let plugin = Plugin::of(volume);
            if !plugin.is_projection() && st.mounted.contains_key(&name) {
                continue;
            }
            match plugin {
                Plugin::EmptyDir => match self.set_up_empty_dir(pod, volume).await {
                    Ok(hv) => {
                        st.mounted.insert(name, hv);
                    }
                    Err(e) => failures.push((name.clone(), set_up_failed(&name, &e))),
                },
                Plugin::HostPath => match self.set_up_host_path(volume).await {
                    Ok(hv) => {
                        st.mounted.insert(name, hv);
                    }
                    Err(e) => failures.push((name.clone(), set_up_failed(&name, &e))),
                },
                Plugin::Claim => {
                    let src = volume.persistent_volume_claim.clone().unwrap_or_default();
                    if let Some((not_before, error)) = st.claims.get(&name)
                        && Instant::now() < *not_before
                    {
                        claim_failures.push((name, error.clone()));
                        continue;
                    }
                    match pvc::resolve(&self.client, &ns, &src.claim_name).await {
                        Err(e) => {
                            st.claims.insert(name.clone(), (Instant::now() + CLAIM_RETRY, e.clone()));
                            claim_failures.push((name, e));
                        }
                        Ok(bound) => {
                            st.claims.remove(&name);
                            match self.set_up_claim(pod, bound, src.read_only.unwrap_or(false)).await {
                                Ok(hv) => {
                                    let claim = mounted_claims::MountedClaim {
                                        volume: name.clone(),
                                        claim: src.claim_name.clone(),
                                        namespace: ns.clone(),
                                        path: hv.path.clone(),
                                    };
                                    self.claims_set_up.record(&uid, claim);
                                    st.mounted.insert(name, hv);
                                }
                                Err(message) => failures.push((name, message)),
                            }
                        }
                    }
                }
                Plugin::ConfigMap | Plugin::Secret | Plugin::DownwardApi | Plugin::Projected => {
                    let dir = layout::volume_dir(&self.pod_dir(&uid), plugin, &name);
                    let payload = match self.projection(pod, volume).await {
                        Ok(p) => p,
                        Err(e) => {
                            // A volume a previous agent wrote stays usable (the kubelet
                            // reconstructs it the same way); it is refreshed once it can be.
                            if !st.mounted.contains_key(&name) && atomic_writer::has_data(&dir) {
                                st.mounted.insert(name.clone(), projection_volume(dir));
                            }
                            failures.push((name.clone(), set_up_failed(&name, &e)));
                            continue;
                        }
                    };
                    let hash = hash_payload(&payload);
                    if st.mounted.contains_key(&name) && st.written.get(&name) == Some(&hash) {
                        continue;
                    }
                    match self.write_projection(pod, volume, plugin, payload).await {
                        Ok(()) => {
                            st.written.insert(name.clone(), hash);
                            st.mounted.insert(name, projection_volume(dir));
                        }
                        Err(e) => failures.push((name.clone(), set_up_failed(&name, &e))),
                    }
                }
                Plugin::Unsupported => failures.push((
                    name.clone(),
                    set_up_failed(&name, "this volume type is not supported by skiff's agent yet"),
                )),
            }
        }
        let ready = used.iter().all(|v| st.mounted.contains_key(&v.name));
        if !claim_failures.is_empty() {
            let mut unmounted: Vec<&str> =
                used.iter().filter(|v| !st.mounted.contains_key(&v.name)).map(|v| v.name.as_str()).collect();
            unmounted.sort();
            let mut claims: Vec<&str> = claim_failures.iter().map(|(n, _)| n.as_str()).collect();
            claims.sort();
            let errors: Vec<&str> = claim_failures.iter().map(|(_, e)| e.as_str()).collect();
            failures.push((
                String::new(),
                format!(
                    "Unable to attach or mount volumes: unmounted volumes=[{}], unattached volumes=[], failed to process volumes=[{}]: {}",
                    unmounted.join(" "),
                    claims.join(" "),
                    errors.join("; ")
                ),
            ));
        }
        let events = report_new(&mut st.reported, failures);
        VolumeReport { ready, events }
    }

    /// The message to evict `uid` with, once one of its emptyDirs went over its `sizeLimit`.
    pub fn eviction(&self, uid: &str) -> Option<String> {
        locked(&self.evictions).get(uid).cloned()
    }

    /// Unmounts and removes the volumes of a pod whose containers are gone but which stays (an
    /// evicted pod), so the space is freed.
    pub async fn release(&self, uid: &str) {
        let state = self.state(uid);
        let mut st = state.lock().await;
        st.mounted.clear();
        st.written.clear();
        self.claims_set_up.forget(uid);
        locked(&self.limits).remove(uid);
        let pod_dir = self.pod_dir(uid);
        let result = blocking(move || {
            cleanup::remove_dir(&pod_dir.join("volume-subpaths"))?;
            cleanup::remove_dir(&pod_dir.join("volumes"))
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(pod = %uid, error = %e, "releasing the volumes of a pod");
        }
    }

    /// Forgets a pod whose directory is gone: stops watching its sources.
    pub async fn forget(&self, pod: &Pod) {
        let uid = uid_of(pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let state = locked(&self.pods).remove(&uid);
        locked(&self.limits).remove(&uid);
        locked(&self.evictions).remove(&uid);
        self.claims_set_up.forget(&uid);
        self.tokens.forget_pod(&uid);
        if let Some(state) = state {
            let st = state.lock().await;
            for source in st.sources.iter().flatten() {
                match source {
                    SourceRef::ConfigMap(name) => self.config_maps.release(&ns, name),
                    SourceRef::Secret(name) => self.secrets.release(&ns, name),
                }
            }
        }
    }

    /// Measures disk emptyDirs with a `sizeLimit` every few seconds and marks pods whose usage
    /// exceeds it for eviction (with the kubelet's message). Runs until aborted.
    pub async fn monitor(self: Arc<Self>) {
        loop {
            tokio::time::sleep(USAGE_INTERVAL).await;
            let limits: Vec<(String, Vec<SizeLimit>)> =
                locked(&self.limits).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let over = tokio::task::spawn_blocking(move || {
                let mut over = Vec::new();
                for (uid, list) in limits {
                    for l in list {
                        match empty_dir::disk_usage(&l.path) {
                            Ok(used) if used > l.bytes => {
                                over.push((
                                    uid,
                                    format!(
                                        "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                                        l.volume, l.written
                                    ),
                                ));
                                break;
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!(path = %l.path.display(), error = %e, "measuring an emptyDir"),
                        }
                    }
                }
                over
            })
            .await
            .unwrap_or_default();
            let mut evictions = locked(&self.evictions);
            for (uid, message) in over {
                evictions.entry(uid).or_insert(message);
            }
        }
    }
}

fn projection_volume(dir: PathBuf) -> HostVolume {
    HostVolume { path: dir, read_only: true, managed: true, create_if_missing: false }
}

/// Which failures to publish now: new or changed ones, and old ones again after a while.
/// Volumes that no longer fail are forgotten.
fn report_new(reported: &mut HashMap<String, Reported>, failures: Vec<(String, String)>) -> Vec<String> {
    let now = Instant::now();
    reported.retain(|k, _| failures.iter().any(|(v, _)| v == k));
    let mut events = Vec::new();
    for (volume, message) in failures {
        let due = match reported.get(&volume) {
            Some(r) => r.message != message || now.duration_since(r.at) >= REPEAT_EVENT,
            None => true,
        };
        if due {
            reported.insert(volume, Reported { message: message.clone(), at: now });
            events.push(message);
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_until_they_change() {
        let mut reported = HashMap::new();
        let f = |m: &str| vec![("cfg".to_string(), m.to_string())];
        assert_eq!(report_new(&mut reported, f("a")), ["a"]);
        assert!(report_new(&mut reported, f("a")).is_empty());
        assert_eq!(report_new(&mut reported, f("b")), ["b"]);
        assert!(report_new(&mut reported, vec![]).is_empty());
        assert_eq!(report_new(&mut reported, f("b")), ["b"], "a failure that went away and came back is new");
        assert_eq!(
            set_up_failed("cfg", "configmap \"y\" not found"),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"y\" not found"
        );
    }
}
