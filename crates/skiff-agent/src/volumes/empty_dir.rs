//! emptyDir volumes, and the scratch directories the configMap, secret, downwardAPI and projected
//! volumes are written into: a directory under the pod's volume directory (mode 0777), or a
//! tmpfs mounted there for `medium: Memory`, sized as the kubelet sizes it (the smallest of the
//! node's allocatable memory, the pod's memory limit and `sizeLimit`).
//!
//! Also the disk usage of a volume (what `sizeLimit` eviction compares). Mounting is idempotent:
//! a tmpfs already mounted (by a previous agent) is kept with its content.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_api::quantity::Quantity;

use super::mountinfo;

fn memory_limit(container: &Container) -> Option<u64> {
    let q = container.resources.as_ref()?.limits.as_ref()?.get("memory")?;
    let v = Quantity::parse(&q.0).ok()?.value();
    (v > 0).then_some(v as u64)
}

/// The pod's memory limit as its cgroup gets it: only when every container has one; the larger
/// of the app containers plus sidecars, and of each init container plus the sidecars started
/// before it; plus the pod overhead.
pub fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let mut sidecars = 0u64;
    let mut init_max = 0u64;
    for c in init {
        let limit = memory_limit(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.saturating_add(limit);
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(sidecars.saturating_add(limit));
        }
    }
    let mut app = sidecars;
    for c in &spec.containers {
        app = app.saturating_add(memory_limit(c)?);
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get("memory"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.value().max(0) as u64);
    Some(app.max(init_max).saturating_add(overhead))
}

/// Size of a memory-backed volume: node allocatable memory, lowered to the pod's memory limit
/// and then to `size_limit` when they are positive and smaller.
pub fn tmpfs_size(node_allocatable: u64, pod: &Pod, size_limit: Option<&str>) -> u64 {
    let mut size = node_allocatable;
    if let Some(pod_limit) = pod_memory_limit(pod).filter(|l| *l > 0 && *l <= size) {
        size = pod_limit;
    }
    if let Some(limit) = size_limit.and_then(|s| Quantity::parse(s).ok()).map(|q| q.value())
        && limit > 0
        && (limit as u64) <= size
    {
        size = limit as u64;
    }
    size
}

/// Creates `dir` with mode 0777.
pub fn setup_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if fs::metadata(dir)?.mode() & 0o7777 != 0o777 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777))?;
    }
    Ok(())
}

/// Creates `dir` and mounts a tmpfs of `size` bytes there unless one already is.
pub fn setup_tmpfs(dir: &Path, size: u64) -> Result<(), String> {
    setup_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let entries = mountinfo::read().map_err(|e| format!("reading the mount table: {e}"))?;
    if mountinfo::at(&entries, dir).is_some_and(|m| m.fs_type == "tmpfs") {
        return Ok(());
    }
    let mut options = Vec::new();
    if size > 0 {
        options.push(format!("size={size}"));
    }
    // Never let Secret data reach swap (kernels before 6.4 refuse the option; retried without).
    options.push("noswap".to_string());
    mountinfo::mount_tmpfs(dir, &options).map_err(|e| format!("mounting tmpfs at {}: {e}", dir.display()))
}

/// Bytes allocated to the files under `dir` (like `du -x -s -B1`): blocks of each inode once,
/// without crossing into other filesystems.
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    fn walk(path: &Path, dev: u64, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> io::Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            // Files come and go while the container runs.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.dev() != dev {
            return Ok(());
        }
        if seen.insert((meta.dev(), meta.ino())) {
            *total = total.saturating_add(meta.blocks().saturating_mul(512));
        }
        if meta.is_dir() {
            let entries = match fs::read_dir(path) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                walk(&entry.path(), dev, seen, total)?;
            }
        }
        Ok(())
    }
    let dev = fs::metadata(dir)?.dev();
    let mut total = 0;
    walk(dir, dev, &mut HashSet::new(), &mut total)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(name: &str, memory: Option<&str>, sidecar: bool) -> Container {
        Container {
            name: name.into(),
            resources: memory.map(|m| ResourceRequirements {
                limits: Some([("memory".to_string(), Q(m.into()))].into()),
                ..Default::default()
            }),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    fn pod(init: Vec<Container>, app: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec { init_containers: Some(init), containers: app, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_memory_limit_follows_the_pod_cgroup() {
        let mi = 1 << 20;
        let p = pod(vec![], vec![container("a", Some("64Mi"), false), container("b", Some("32Mi"), false)]);
        assert_eq!(pod_memory_limit(&p), Some(96 * mi));
        let p = pod(vec![container("i", Some("200Mi"), false)], vec![container("a", Some("64Mi"), false)]);
        assert_eq!(pod_memory_limit(&p), Some(200 * mi));
        let p = pod(
            vec![container("s", Some("10Mi"), true), container("i", Some("100Mi"), false)],
            vec![container("a", Some("64Mi"), false)],
        );
        assert_eq!(pod_memory_limit(&p), Some(110 * mi));
        let p = pod(vec![], vec![container("a", Some("64Mi"), false), container("b", None, false)]);
        assert_eq!(pod_memory_limit(&p), None, "a container without a limit: no pod limit");
    }

    #[test]
    fn tmpfs_size_takes_the_smallest_bound() {
        let gi: u64 = 1 << 30;
        let limited = pod(vec![], vec![container("a", Some("512Mi"), false)]);
        let unlimited = pod(vec![], vec![container("a", None, false)]);
        assert_eq!(tmpfs_size(4 * gi, &unlimited, None), 4 * gi);
        assert_eq!(tmpfs_size(4 * gi, &limited, None), gi / 2);
        assert_eq!(tmpfs_size(4 * gi, &limited, Some("64Mi")), 64 << 20);
        assert_eq!(tmpfs_size(4 * gi, &limited, Some("1Gi")), gi / 2, "sizeLimit above the pod limit is ignored");
        assert_eq!(tmpfs_size(4 * gi, &unlimited, Some("0")), 4 * gi);
    }

    #[test]
    fn disk_usage_counts_allocated_blocks_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("v");
        setup_dir(&dir).expect("setup");
        assert_eq!(fs::metadata(&dir).expect("meta").mode() & 0o777, 0o777);
        let empty = disk_usage(&dir).expect("du");
        fs::write(dir.join("big"), vec![1u8; 256 * 1024]).expect("write");
        fs::hard_link(dir.join("big"), dir.join("again")).expect("link");
        let used = disk_usage(&dir).expect("du") - empty;
        assert!((256 * 1024..256 * 1024 + 64 * 1024).contains(&used), "{used}");
    }
}
