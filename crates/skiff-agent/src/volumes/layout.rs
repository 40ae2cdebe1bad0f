//! Where a pod's volumes live on the host, in the kubelet's layout, and which volumes a pod
//! actually uses:
//!
//! ```text
//! <agent>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>       emptyDir, configMap, …
//! <agent>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>  subPath bind mounts
//! ```
//!
//! Also the nested mount points the kubelet pre-creates in read-only volumes (so a volume
//! mounted below another one's mount path has a directory to be mounted on).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume, VolumeMount};

/// The kind of a pod volume, as the agent handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `emptyDir` (disk or memory).
    EmptyDir,
    /// `hostPath`.
    HostPath,
    /// `configMap`.
    ConfigMap,
    /// `secret`.
    Secret,
    /// `downwardAPI`.
    DownwardApi,
    /// `projected`.
    Projected,
    /// `persistentVolumeClaim`.
    Claim,
    /// Anything else (network and cloud volumes, `ephemeral`, `image`, …).
    Unsupported,
}

impl Plugin {
    /// The kind of `volume`.
    pub fn of(volume: &Volume) -> Plugin {
        if volume.empty_dir.is_some() {
            Plugin::EmptyDir
        } else if volume.host_path.is_some() {
            Plugin::HostPath
        } else if volume.config_map.is_some() {
            Plugin::ConfigMap
        } else if volume.secret.is_some() {
            Plugin::Secret
        } else if volume.downward_api.is_some() {
            Plugin::DownwardApi
        } else if volume.projected.is_some() {
            Plugin::Projected
        } else if volume.persistent_volume_claim.is_some() {
            Plugin::Claim
        } else {
            Plugin::Unsupported
        }
    }

    /// The kubelet's directory name for volumes of this kind.
    pub fn dir_name(self) -> &'static str {
        match self {
            Plugin::EmptyDir => "kubernetes.io~empty-dir",
            Plugin::ConfigMap => "kubernetes.io~configmap",
            Plugin::Secret => "kubernetes.io~secret",
            Plugin::DownwardApi => "kubernetes.io~downward-api",
            Plugin::Projected => "kubernetes.io~projected",
            Plugin::HostPath | Plugin::Claim | Plugin::Unsupported => "kubernetes.io~other",
        }
    }

    /// Whether the volume's files are written by the atomic writer (and refreshed).
    pub fn is_projection(self) -> bool {
        matches!(self, Plugin::ConfigMap | Plugin::Secret | Plugin::DownwardApi | Plugin::Projected)
    }
}

/// `<agent>/pods/<uid>`.
pub fn pod_dir(agent_dir: &Path, uid: &str) -> PathBuf {
    agent_dir.join("pods").join(uid)
}

/// Where volume `name` of kind `plugin` lives for the pod in `pod_dir`.
pub fn volume_dir(pod_dir: &Path, plugin: Plugin, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(plugin.dir_name()).join(name)
}

/// Where the `index`th mount of `container` binds its subPath of volume `volume`.
pub fn subpath_target(pod_dir: &Path, volume: &str, container: &str, index: usize) -> PathBuf {
    pod_dir.join("volume-subpaths").join(volume).join(container).join(index.to_string())
}

fn all_mounts(pod: &Pod) -> impl Iterator<Item = (&str, &[VolumeMount])> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    let app = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let ephemeral = spec.and_then(|s| s.ephemeral_containers.as_deref()).unwrap_or_default();
    init.iter()
        .chain(app)
        .map(|c| (c.name.as_str(), c.volume_mounts.as_deref().unwrap_or_default()))
        .chain(ephemeral.iter().map(|c| (c.name.as_str(), c.volume_mounts.as_deref().unwrap_or_default())))
}

/// The pod's volumes that some container mounts, in spec order (the kubelet sets up no others).
pub fn used_volumes(pod: &Pod) -> Vec<&Volume> {
    let used: BTreeSet<&str> = all_mounts(pod).flat_map(|(_, m)| m.iter().map(|m| m.name.as_str())).collect();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|v| used.contains(v.name.as_str()))
        .collect()
}

fn clean(path: &str) -> String {
    let parts: Vec<&str> = Path::new(path)
        .components()
        .filter_map(|c| if let Component::Normal(n) = c { n.to_str() } else { None })
        .collect();
    format!("/{}", parts.join("/"))
}

/// Directories to create inside volume `name` because, in some container, another mount lies
/// below one of its mount paths (only the first level below each, as upstream).
pub fn nested_mount_points(pod: &Pod, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, mounts) in all_mounts(pod) {
        let mut all: Vec<String> = mounts.iter().map(|m| clean(&m.mount_path)).collect();
        all.sort();
        for mine in mounts.iter().filter(|m| m.name == name).map(|m| clean(&m.mount_path)) {
            let prefix = if mine == "/" { "/".to_string() } else { format!("{mine}/") };
            let mut previous: Option<String> = None;
            for mp in &all {
                let Some(rel) = mp.strip_prefix(&prefix).filter(|r| !r.is_empty()) else { continue };
                if previous.as_ref().is_some_and(|p| mp.starts_with(p.as_str())) {
                    continue;
                }
                previous = Some(format!("{mp}/"));
                if !out.iter().any(|o| o == rel) {
                    out.push(rel.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, PodSpec};

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
    }

    fn volume(name: &str) -> Volume {
        Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
    }

    #[test]
    fn used_volumes_and_nested_mount_points() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    volume_mounts: Some(vec![
                        mount("cfg", "/etc/app"),
                        mount("data", "/etc/app/data"),
                        mount("deeper", "/etc/app/data/more"),
                        mount("logs", "/etc/app/logs/"),
                    ]),
                    ..Default::default()
                }],
                volumes: Some(vec![volume("cfg"), volume("unused"), volume("data"), volume("deeper"), volume("logs")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<&str> = used_volumes(&pod).iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["cfg", "data", "deeper", "logs"]);
        assert_eq!(nested_mount_points(&pod, "cfg"), ["data", "logs"]);
        assert_eq!(nested_mount_points(&pod, "data"), ["more"]);
        assert!(nested_mount_points(&pod, "logs").is_empty());
        let dir = volume_dir(Path::new("/a/pods/u"), Plugin::Secret, "s");
        assert_eq!(dir, Path::new("/a/pods/u/volumes/kubernetes.io~secret/s"));
        assert_eq!(subpath_target(Path::new("/p"), "v", "c", 2), Path::new("/p/volume-subpaths/v/c/2"));
    }
}
