//! Taking a [`Snapshot`]: the pods the pod workers run ([`PodSet`]), each one's cgroup and its
//! running containers' cgroups (`<pod cgroup>/<name>`, as the workers create them), network
//! namespace, volumes, writable layers and logs, and the node's totals; then the CPU rates
//! since the previous snapshot that asked for them. Also what the kubelet's `/metrics` measures
//! at each scrape: pods with a sandbox, containers by state, mounted claims.
//!
//! What does not live here: the file formats ([`super::cgroup`], [`super::netdev`],
//! [`super::node`]), rendering ([`super::prometheus`], [`super::summary`], [`super::cadvisor`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use skiff_runtime::cgroups::Layout;
use skiff_runtime::container::Runtime;

use super::activity::Activity;
use super::cgroup::CgroupStats;
use super::kubelet::{ClaimVolume, ContainerStates, KubeletMetrics};
use super::rates::CpuRates;
use super::{
    ContainerUsage, CpuUsage, FsUsage, NodeUsage, PodUsage, PvcRef, Snapshot, SystemContainer, VolumeUsage, netdev,
    node,
};
use crate::eviction::signals::MemorySource;
use crate::eviction::stats::{CgroupReader, DiskUsage, disk_usage};
use crate::pods::set::PodSet;
use crate::volumes::layout::{self, Plugin};
use crate::volumes::mounted_claims::MountedClaims;

/// What a snapshot measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// Storage, network and processes too (not only CPU and memory).
    pub everything: bool,
    /// Compute `usageNanoCores` against the previous snapshot that did (the summary's).
    pub cpu_rates: bool,
}

/// Where the node's files are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-dir>/agent` (pods' volumes under `pods/`, writable layers under `containers/`,
    /// images under `images/`).
    pub agent_dir: PathBuf,
    /// Where container logs are (`/var/log/pods`).
    pub log_dir: PathBuf,
    /// Where the pods' persistentVolumeClaim volumes are (as the volume manager set them up).
    pub claims: MountedClaims,
}

/// Takes snapshots of the node and the pods it runs.
pub struct Collector {
    pods: PodSet,
    runtime: Arc<Runtime>,
    paths: Paths,
    node_name: String,
    rates: Mutex<CpuRates>,
    activity: Arc<Activity>,
}

impl Collector {
    /// A collector of the pods in `pods`, reporting the pod workers' counters `activity`.
    pub fn new(pods: PodSet, runtime: Arc<Runtime>, paths: Paths, node_name: String, activity: Arc<Activity>) -> Self {
        Self { pods, runtime, paths, node_name, rates: Mutex::new(CpuRates::new()), activity }
    }

    /// What the kubelet's `/metrics` reports, measured now.
    pub async fn kubelet_metrics(self: &Arc<Self>) -> KubeletMetrics {
        let this = Arc::clone(self);
        let measured = tokio::task::spawn_blocking(move || this.kubelet_metrics_blocking()).await;
        measured.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stats: measuring task failed");
            KubeletMetrics {
                node_name: self.node_name.clone(),
                running_pods: 0,
                containers: ContainerStates::default(),
                activity: self.activity.totals(),
                claims: Vec::new(),
            }
        })
    }

    fn kubelet_metrics_blocking(&self) -> KubeletMetrics {
        let pods = self.pods.pods();
        KubeletMetrics {
            node_name: self.node_name.clone(),
            running_pods: running_pods(&pods, Layout::host()) as u64,
            containers: container_states(&pods),
            activity: self.activity.totals(),
            claims: mounted_claims(&self.paths.claims),
        }
    }

    /// Measures the node and its running pods.
    pub async fn snapshot(self: &Arc<Self>, scope: Scope) -> Snapshot {
        let this = Arc::clone(self);
        let measured = tokio::task::spawn_blocking(move || this.snapshot_blocking(scope)).await;
        measured.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stats: measuring task failed");
            Snapshot { timestamp_ms: now_ms(), scrape_error: true, ..Snapshot::default() }
        })
    }

    fn snapshot_blocking(&self, scope: Scope) -> Snapshot {
        let pods: Vec<Pod> = self
            .pods
            .pods()
            .into_iter()
            .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
            .collect();
        let instances = self.runtime.list().unwrap_or_default();
        let layout = Layout::host();
        let mut snapshot = measure(&pods, layout, &self.paths, &instances, scope);
        snapshot.node = self.measure_node(layout, scope);
        if scope.cpu_rates {
            let mut rates = self.rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            add_rates(&mut snapshot, &mut rates);
        }
        snapshot
    }

    fn measure_node(&self, layout: &Layout, scope: Scope) -> NodeUsage {
        let cgroups = CgroupStats::new(layout);
        let kubepods = layout.kubepods();
        let agent = node::own_process().map(|(cpu, rss, start)| SystemContainer {
            name: "kubelet".into(),
            start_time_ms: Some(start),
            cpu: Some(CpuUsage { total_nanos: cpu, nano_cores: None }),
            memory: Some(super::MemoryUsage { usage: rss, working_set: rss, rss: Some(rss), ..Default::default() }),
        });
        let pods = SystemContainer {
            name: "pods".into(),
            start_time_ms: None,
            cpu: cgroups.cpu_nanos(&kubepods).map(|total_nanos| CpuUsage { total_nanos, nano_cores: None }),
            memory: cgroups.memory(&kubepods),
        };
        let mut usage = NodeUsage {
            name: self.node_name.clone(),
            start_time_ms: node::boot_time_ms(),
            cpu_cores: node::cpu_cores(),
            memory_capacity: node::memory_capacity(),
            cpu: node::cpu_usage_nanos().map(|total_nanos| CpuUsage { total_nanos, nano_cores: None }),
            memory: node::memory(&MemorySource::host()),
            system_containers: agent.into_iter().chain([pods]).collect(),
            ..NodeUsage::default()
        };
        if scope.everything {
            usage.network = netdev::read(None);
            usage.fs = node::fs_totals(&self.paths.agent_dir);
            let images_dir = self.paths.agent_dir.join("images");
            usage.image_fs = node::fs_totals(&images_dir).map(|fs| FsUsage {
                used: self.runtime.images().list().ok().map(|images| images.iter().map(|i| i.size).sum()),
                inodes_used: None,
                ..fs
            });
            let containers_dir = self.paths.agent_dir.join("containers");
            usage.container_fs =
                node::fs_totals(&containers_dir).map(|fs| used_on(Some(fs), disk_usage(&containers_dir)));
            usage.container_fs_device = node::device_of(&containers_dir);
            usage.swap = node::swap();
            usage.rlimit = node::rlimit();
        }
        usage
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Adds the CPU rates since the previous readings of the same cgroups.
pub fn add_rates(snapshot: &mut Snapshot, rates: &mut CpuRates) {
    let at = snapshot.timestamp_ms;
    let mut observe = |key: &str, cpu: &mut Option<CpuUsage>| {
        if let Some(cpu) = cpu {
            cpu.nano_cores = rates.observe(key, at, cpu.total_nanos);
        }
    };
    observe("node", &mut snapshot.node.cpu);
    for system in &mut snapshot.node.system_containers {
        observe(&format!("system/{}", system.name), &mut system.cpu);
    }
    for pod in &mut snapshot.pods {
        observe(&pod.cgroup, &mut pod.cpu);
        for c in &mut pod.containers {
            observe(&c.cgroup, &mut c.cpu);
        }
    }
    rates.finish();
}

/// Space used, on the file system of `totals`.
fn used_on(totals: Option<FsUsage>, used: DiskUsage) -> FsUsage {
    FsUsage { used: Some(used.bytes), inodes_used: Some(used.inodes), ..totals.unwrap_or_default() }
}

/// Measures `pods` on a host with cgroup `layout`; `instances` are the runtime ids of the
/// node's container instances. The node's totals are left empty. Blocking.
pub fn measure(pods: &[Pod], layout: &Layout, paths: &Paths, instances: &[String], scope: Scope) -> Snapshot {
    let (cgroups, pids) = (CgroupStats::new(layout), CgroupReader::new(layout));
    let timestamp_ms = now_ms();
    let node_fs = if scope.everything { node::fs_totals(&paths.agent_dir) } else { None };
    let mut scrape_error = false;
    let mut out = Vec::new();
    for pod in pods {
        let uid = crate::static_pods::runtime_uid(pod);
        if uid.is_empty() {
            continue;
        }
        let cgroup = layout.pod_cgroup(crate::pods::resources::qos(pod), &uid);
        let (pod_cpu, pod_memory) = (cgroups.cpu_nanos(&cgroup), cgroups.memory(&cgroup));
        if pod_cpu.is_none() && pod_memory.is_none() {
            continue; // nothing of it runs
        }
        let (namespace, name) =
            (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        let log_dir = paths.log_dir.join(format!("{namespace}_{name}_{uid}"));
        let mut ephemeral = DiskUsage::default();
        let containers = running_containers(pod)
            .into_iter()
            .filter_map(|status| {
                let dir = format!("{}/{}", cgroup.trim_end_matches('/'), status.name);
                let (cpu, memory) = (cgroups.cpu_nanos(&dir), cgroups.memory(&dir));
                if cpu.is_none() && memory.is_none() {
                    scrape_error = true;
                    return None;
                }
                let instance = newest_instance(instances, &uid, &status.name).unwrap_or_default();
                let mut usage = ContainerUsage {
                    name: status.name.clone(),
                    image: status.image.clone(),
                    start_time_ms: status
                        .state
                        .as_ref()
                        .and_then(|s| s.running.as_ref()?.started_at.as_ref())
                        .map(|t| t.0.as_millisecond()),
                    cpu: cpu.map(|total_nanos| CpuUsage { total_nanos, nano_cores: None }),
                    memory,
                    swap: if scope.everything { cgroups.swap(&dir) } else { None },
                    cgroup: dir,
                    ..ContainerUsage::default()
                };
                if scope.everything {
                    let rootfs = disk_usage(&paths.agent_dir.join("containers").join(&instance).join("upper"));
                    let logs = disk_usage(&log_dir.join(&status.name));
                    ephemeral = add(add(ephemeral, rootfs), logs);
                    usage.rootfs = Some(used_on(node_fs, rootfs));
                    usage.logs = Some(used_on(node_fs, logs));
                }
                usage.instance = instance;
                Some(usage)
            })
            .collect();
        let mut usage = PodUsage {
            namespace,
            name,
            start_time_ms: pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0.as_millisecond()),
            cpu: pod_cpu.map(|total_nanos| CpuUsage { total_nanos, nano_cores: None }),
            memory: pod_memory,
            containers,
            ..PodUsage::default()
        };
        if scope.everything {
            usage.swap = cgroups.swap(&cgroup);
            usage.network = netdev::read(cgroups.any_process(&cgroup));
            let pod_dir = layout::pod_dir(&paths.agent_dir, &uid);
            usage.volumes = volumes(pod, &pod_dir);
            usage.volumes.extend(claim_volumes(&paths.claims, &uid));
            // Volumes on the node's disk: tmpfs ones are mounts of their own, not counted.
            ephemeral = add(ephemeral, disk_usage(&pod_dir.join("volumes")));
            usage.ephemeral = Some(used_on(node_fs, ephemeral));
            usage.processes = pids.processes(&cgroup);
        }
        usage.uid = uid;
        usage.cgroup = cgroup;
        out.push(usage);
    }
    Snapshot { timestamp_ms, node: NodeUsage::default(), pods: out, scrape_error }
}

fn add(a: DiskUsage, b: DiskUsage) -> DiskUsage {
    DiskUsage { bytes: a.bytes + b.bytes, inodes: a.inodes + b.inodes }
}

/// The pod's volumes whose files the agent keeps under the pod's directory (emptyDirs and
/// projections; not hostPaths or claims), measured where they are set up.
fn volumes(pod: &Pod, pod_dir: &std::path::Path) -> Vec<VolumeUsage> {
    layout::used_volumes(pod)
        .into_iter()
        .filter_map(|volume| {
            let plugin = Plugin::of(volume);
            if matches!(plugin, Plugin::HostPath | Plugin::Claim | Plugin::Unsupported) {
                return None;
            }
            let dir = layout::volume_dir(pod_dir, plugin, &volume.name);
            let totals = node::fs_totals(&dir)?;
            Some(VolumeUsage { name: volume.name.clone(), fs: used_on(Some(totals), disk_usage(&dir)), pvc_ref: None })
        })
        .collect()
}

/// The pod's persistentVolumeClaim volumes, measured at their PersistentVolume's host path
/// (its file system's totals, and what the files under the path use).
fn claim_volumes(claims: &MountedClaims, uid: &str) -> Vec<VolumeUsage> {
    claims
        .of(uid)
        .into_iter()
        .filter_map(|claim| {
            let totals = node::fs_totals(&claim.path)?;
            Some(VolumeUsage {
                name: claim.volume,
                fs: used_on(Some(totals), disk_usage(&claim.path)),
                pvc_ref: Some(PvcRef { name: claim.claim, namespace: claim.namespace }),
            })
        })
        .collect()
}

/// How many of `pods` run (their cgroup, where the sandbox lives, accounts CPU): the pods
/// [`measure`] would report, counted without measuring them.
fn running_pods(pods: &[Pod], layout: &Layout) -> usize {
    let cgroups = CgroupStats::new(layout);
    pods.iter()
        .filter(|pod| {
            let uid = crate::static_pods::runtime_uid(pod);
            !uid.is_empty() && {
                let cgroup = layout.pod_cgroup(crate::pods::resources::qos(pod), &uid);
                cgroups.cpu_nanos(&cgroup).is_some() || cgroups.memory(&cgroup).is_some()
            }
        })
        .count()
}

/// The claims mounted on the node, each once (several pods may share one), measured at their
/// PersistentVolume's host path.
fn mounted_claims(claims: &MountedClaims) -> Vec<ClaimVolume> {
    let mut all = claims.all();
    all.sort_by(|a, b| (&a.namespace, &a.claim).cmp(&(&b.namespace, &b.claim)));
    all.dedup_by(|a, b| (&a.namespace, &a.claim) == (&b.namespace, &b.claim));
    all.into_iter()
        .map(|claim| ClaimVolume {
            fs: node::fs_totals(&claim.path).map(|totals| used_on(Some(totals), disk_usage(&claim.path))),
            claim: PvcRef { name: claim.claim, namespace: claim.namespace },
        })
        .collect()
}

/// The containers of `pods` by state, as their statuses report them: running, or ended with the
/// instance kept (terminated, or waiting to restart after a terminated one).
fn container_states(pods: &[Pod]) -> ContainerStates {
    let mut states = ContainerStates::default();
    let statuses = pods
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()));
    for status in statuses {
        let state = status.state.as_ref();
        if state.is_some_and(|s| s.running.is_some()) {
            states.running += 1;
        } else if state.is_some_and(|s| s.terminated.is_some())
            || status.last_state.as_ref().is_some_and(|s| s.terminated.is_some())
        {
            states.exited += 1;
        }
    }
    states
}

/// The runtime id of the newest instance of container `name` of pod `uid`.
fn newest_instance(instances: &[String], uid: &str, name: &str) -> Option<String> {
    let prefix = format!("{uid}-{name}-");
    instances
        .iter()
        .filter_map(|id| Some((id.strip_prefix(&prefix)?.parse::<u32>().ok()?, id)))
        .max()
        .map(|(_, id)| id.clone())
}

/// The statuses of the containers of `pod` its status reports running (init containers
/// included: sidecars).
fn running_containers(pod: &Pod) -> Vec<&ContainerStatus> {
    let Some(status) = pod.status.as_ref() else { return vec![] };
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter(|s| s.state.as_ref().is_some_and(|state| state.running.is_some()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::mounted_claims::MountedClaim;
    use std::fs;

    fn write(path: &std::path::Path, text: &[u8]) {
        fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn pods_and_running_containers_are_measured_from_their_cgroups_and_disks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display();
        let mountinfo = format!(
            "30 25 0:26 / {root}/cpuacct rw - cgroup cgroup rw,cpuacct\n31 25 0:27 / {root}/memory rw - cgroup cgroup rw,memory\n"
        );
        let layout = Layout::from_proc(&mountinfo, "2:cpuacct:/\n4:memory:/\n");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "burner", "namespace": "default", "uid": "u1"},
            "spec": {
                "containers": [
                    {"name": "main", "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]},
                    {"name": "gone"}
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "unused", "emptyDir": {}}]
            },
            "status": {"qosClass": "BestEffort", "startTime": "2025-12-31T23:59:59Z", "containerStatuses": [
                {"name": "main", "image": "docker.io/library/busybox:latest", "imageID": "", "ready": true,
                 "restartCount": 1, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
                {"name": "gone", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}}
            ]}
        }))
        .expect("pod");
        let absent: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "absent", "namespace": "default", "uid": "u2"}, "spec": {"containers": []}
        }))
        .expect("pod");
        let pod_dir = "skiff/kubepods/besteffort/podu1";
        for (file, text) in [
            (format!("cpuacct/{pod_dir}/cpuacct.usage"), "3000000000"),
            (format!("cpuacct/{pod_dir}/main/cpuacct.usage"), "2000000000"),
            (format!("memory/{pod_dir}/memory.usage_in_bytes"), "8192"),
            (format!("memory/{pod_dir}/memory.stat"), "total_inactive_file 4096\n"),
            (format!("memory/{pod_dir}/main/memory.usage_in_bytes"), "6000"),
            (format!("memory/{pod_dir}/main/memory.stat"), "total_inactive_file 1000\ntotal_rss 3000\n"),
            ("agent/containers/u1-main-1/upper/data".to_string(), "x"),
            ("agent/pods/u1/volumes/kubernetes.io~empty-dir/scratch/f".to_string(), "y"),
            ("logs/default_burner_u1/main/1.log".to_string(), "z"),
        ] {
            write(&dir.path().join(file), text.as_bytes());
        }
        write(&dir.path().join("pv/data"), b"0123456789");
        let claims = MountedClaims::default();
        let claim = MountedClaim {
            volume: "data".into(),
            claim: "claim".into(),
            namespace: "default".into(),
            path: dir.path().join("pv"),
        };
        claims.record("u1", claim);
        let paths = Paths { agent_dir: dir.path().join("agent"), log_dir: dir.path().join("logs"), claims };
        let instances = ["u1-main-0".to_string(), "u1-main-1".to_string(), "u10-main-2".to_string()];
        let everything = Scope { everything: true, cpu_rates: true };
        let snapshot = measure(&[pod.clone(), absent], &layout, &paths, &instances, everything);
        assert_eq!(snapshot.pods.len(), 1, "{snapshot:?}");
        let p = &snapshot.pods[0];
        assert_eq!(
            (p.name.as_str(), p.uid.as_str(), p.cgroup.as_str()),
            ("burner", "u1", "/skiff/kubepods/besteffort/podu1")
        );
        assert_eq!(p.cpu.map(|c| c.total_nanos), Some(3_000_000_000));
        assert_eq!(p.memory.map(|m| m.working_set), Some(4096));
        assert_eq!(p.start_time_ms, Some(1_767_225_599_000));
        assert_eq!(p.containers.len(), 1);
        let c = &p.containers[0];
        assert_eq!((c.name.as_str(), c.instance.as_str()), ("main", "u1-main-1"));
        assert_eq!(c.image, "docker.io/library/busybox:latest");
        assert_eq!(c.cpu.map(|c| c.total_nanos), Some(2_000_000_000));
        assert_eq!(c.memory.map(|m| (m.working_set, m.rss)), Some((5000, Some(3000))));
        assert_eq!(c.start_time_ms, Some(1_767_225_600_000));
        // Each file takes at least one inode; the upper dir, the file: two.
        assert_eq!(c.rootfs.and_then(|r| r.inodes_used), Some(2));
        assert!(c.logs.and_then(|l| l.used).is_some_and(|b| b > 0));
        let names: Vec<&str> = p.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["scratch", "data"], "unused volumes are not set up");
        let data = &p.volumes[1];
        assert_eq!(data.pvc_ref, Some(PvcRef { name: "claim".into(), namespace: "default".into() }));
        assert_eq!((data.fs.inodes_used, data.fs.used.map(|u| u >= 10)), (Some(2), Some(true)), "{data:?}");
        assert!(p.volumes[0].fs.capacity.is_some_and(|c| c > 0));
        assert_eq!(p.volumes[0].fs.inodes_used, Some(2));
        // rootfs (2) + logs (dir and file: 2) + the volumes directory tree (4).
        assert_eq!(p.ephemeral.and_then(|e| e.inodes_used), Some(8));
        assert!(!snapshot.scrape_error);

        let cpu_and_memory =
            measure(&[pod], &layout, &paths, &instances, Scope { everything: false, cpu_rates: false });
        let p = &cpu_and_memory.pods[0];
        assert!(p.volumes.is_empty() && p.ephemeral.is_none() && p.containers[0].rootfs.is_none());
    }

    #[test]
    fn containers_are_counted_by_the_state_their_status_reports() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {
                "initContainerStatuses": [{"name": "init", "image": "", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}],
                "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                     "state": {"running": {}}},
                    {"name": "b", "image": "", "imageID": "", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1}}},
                    {"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                ]
            }
        }))
        .expect("pod");
        assert_eq!(container_states(&[pod, Pod::default()]), ContainerStates { running: 1, exited: 2 });
    }

    #[test]
    fn a_claim_mounted_by_several_pods_is_measured_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("pv/f"), b"data");
        let claims = MountedClaims::default();
        let claim = |volume: &str, path: std::path::PathBuf| MountedClaim {
            volume: volume.into(),
            claim: "shared".into(),
            namespace: "default".into(),
            path,
        };
        claims.record("u1", claim("a", dir.path().join("pv")));
        claims.record("u2", claim("b", dir.path().join("pv")));
        let gone = MountedClaim { claim: "gone".into(), ..claim("c", dir.path().join("missing")) };
        claims.record("u2", gone);
        let measured = mounted_claims(&claims);
        let names: Vec<&str> = measured.iter().map(|c| c.claim.name.as_str()).collect();
        assert_eq!(names, ["gone", "shared"]);
        assert_eq!(measured[0].fs, None, "a missing path is not measured");
        let fs = measured[1].fs.expect("measured");
        assert!(fs.used.is_some_and(|u| u > 0) && fs.capacity >= fs.available, "{fs:?}");
        assert_eq!(fs.inodes_used, Some(2));
    }

    #[test]
    fn rates_are_added_per_cgroup() {
        let mut rates = CpuRates::new();
        let mut snapshot = Snapshot {
            timestamp_ms: 1_000,
            node: NodeUsage {
                cpu: Some(CpuUsage { total_nanos: 1_000_000_000, nano_cores: None }),
                ..Default::default()
            },
            pods: vec![PodUsage {
                cgroup: "/p".into(),
                cpu: Some(CpuUsage { total_nanos: 100, nano_cores: None }),
                containers: vec![ContainerUsage {
                    cgroup: "/p/c".into(),
                    cpu: Some(CpuUsage { total_nanos: 50, nano_cores: None }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            scrape_error: false,
        };
        add_rates(&mut snapshot.clone(), &mut rates);
        snapshot.timestamp_ms = 2_000;
        snapshot.node.cpu = Some(CpuUsage { total_nanos: 3_000_000_000, nano_cores: None });
        snapshot.pods[0].containers[0].cpu = Some(CpuUsage { total_nanos: 500_000_050, nano_cores: None });
        add_rates(&mut snapshot, &mut rates);
        assert_eq!(snapshot.node.cpu.and_then(|c| c.nano_cores), Some(2_000_000_000));
        assert_eq!(snapshot.pods[0].cpu.and_then(|c| c.nano_cores), Some(0));
        assert_eq!(snapshot.pods[0].containers[0].cpu.and_then(|c| c.nano_cores), Some(500_000_000));
    }
}
