//! Taking a [`Snapshot`]: the pods bound to this node (from the API server, like the streaming
//! handlers look pods up), each one's cgroup and its containers' cgroups (`<pod cgroup>/<name>`,
//! as the pod workers create them), and the node totals.
//!
//! What does not live here: the cgroup file formats ([`super::cgroup`]), rendering
//! ([`super::prometheus`]).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use skiff_runtime::cgroups::Layout;

use super::cgroup::CpuReader;
use super::{ContainerUsage, PodUsage, Snapshot, node};
use crate::eviction::signals::MemorySource;
use crate::eviction::stats::CgroupReader;

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The pods of the node could not be listed.
    #[error("listing the pods of node {node}: {source}")]
    Pods {
        /// The node.
        node: String,
        /// Why.
        source: kube::Error,
    },
}

/// Measures node `node_name` and its running pods.
pub async fn snapshot(client: &kube::Client, node_name: &str) -> Result<Snapshot, CollectError> {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={node_name}"));
    let pods = api.list(&params).await.map_err(|source| CollectError::Pods { node: node_name.into(), source })?;
    let pods: Vec<Pod> = pods
        .items
        .into_iter()
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .collect();
    let measured = tokio::task::spawn_blocking(move || measure(&pods, Layout::host())).await;
    Ok(measured.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "resource metrics: measuring task failed");
        Snapshot {
            timestamp_ms: now_ms(),
            node_cpu_nanos: None,
            node_memory_bytes: None,
            pods: vec![],
            scrape_error: true,
        }
    }))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Measures `pods` on a host with cgroup `layout`. Blocking.
pub fn measure(pods: &[Pod], layout: &Layout) -> Snapshot {
    let (cpu, memory) = (CpuReader::new(layout), CgroupReader::new(layout));
    let timestamp_ms = now_ms();
    let mut scrape_error = false;
    let mut out = Vec::new();
    for pod in pods {
        let uid = crate::static_pods::runtime_uid(pod);
        if uid.is_empty() {
            continue;
        }
        let cgroup = layout.pod_cgroup(crate::pods::resources::qos(pod), &uid);
        let (pod_cpu, pod_memory) = (cpu.usage_nanos(&cgroup), memory.memory(&cgroup));
        if pod_cpu.is_none() && pod_memory.is_none() {
            continue; // nothing of it runs
        }
        let containers = running_containers(pod)
            .into_iter()
            .filter_map(|(name, start_time_ms)| {
                let dir = format!("{}/{name}", cgroup.trim_end_matches('/'));
                let (cpu_nanos, memory_bytes) = (cpu.usage_nanos(&dir), memory.memory(&dir));
                if cpu_nanos.is_none() && memory_bytes.is_none() {
                    scrape_error = true;
                    return None;
                }
                Some(ContainerUsage { name, cpu_nanos, memory_bytes, start_time_ms })
            })
            .collect();
        out.push(PodUsage {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            cpu_nanos: pod_cpu,
            memory_bytes: pod_memory,
            containers,
        });
    }
    Snapshot {
        timestamp_ms,
        node_cpu_nanos: node::cpu_usage_nanos(),
        node_memory_bytes: node::memory_working_set(&MemorySource::host()),
        pods: out,
        scrape_error,
    }
}

/// The containers of `pod` its status reports running (init containers included: sidecars), with
/// their start times.
fn running_containers(pod: &Pod) -> Vec<(String, Option<i64>)> {
    let Some(status) = pod.status.as_ref() else { return vec![] };
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|s| {
            let running = s.state.as_ref()?.running.as_ref()?;
            Some((s.name.clone(), running.started_at.as_ref().map(|t| t.0.as_millisecond())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn pods_and_running_containers_are_measured_from_their_cgroups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display();
        let mountinfo = format!(
            "30 25 0:26 / {root}/cpuacct rw - cgroup cgroup rw,cpuacct\n31 25 0:27 / {root}/memory rw - cgroup cgroup rw,memory\n"
        );
        let layout = Layout::from_proc(&mountinfo, "2:cpuacct:/\n4:memory:/\n");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "burner", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "main"}, {"name": "gone"}]},
            "status": {"qosClass": "BestEffort", "containerStatuses": [
                {"name": "main", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
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
            (format!("memory/{pod_dir}/main/memory.stat"), "total_inactive_file 1000\n"),
        ] {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            fs::write(path, text).expect("write");
        }
        let snapshot = measure(&[pod, absent], &layout);
        assert_eq!(snapshot.pods.len(), 1, "{snapshot:?}");
        let p = &snapshot.pods[0];
        assert_eq!((p.name.as_str(), p.cpu_nanos, p.memory_bytes), ("burner", Some(3_000_000_000), Some(4096)));
        assert_eq!(p.containers.len(), 1);
        let c = &p.containers[0];
        assert_eq!((c.name.as_str(), c.cpu_nanos, c.memory_bytes), ("main", Some(2_000_000_000), Some(5000)));
        assert_eq!(c.start_time_ms, Some(1_767_225_600_000));
        assert!(!snapshot.scrape_error);
    }
}
