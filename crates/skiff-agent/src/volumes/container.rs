//! The volume mounts of one container: each `volumeMount` becomes a bind of its volume's host
//! path (or of a safely prepared `subPath`/`subPathExpr`), read-only when the mount or the
//! volume says so (`recursiveReadOnly` as `rro`), with the mount propagation translated as the
//! kubelet does (None → rprivate, HostToContainer → rslave, Bidirectional → rshared).
//!
//! Propagation needs a shared source: volumes in the pod's directory are made shared mounts
//! on demand; a host path on a private mount is refused as containerd refuses it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};
use skiff_runtime::spec::MountSpec;

use super::{HostVolume, VolumeManager, host_path, layout, mountinfo, subpath, uid_of};

/// Why a container's mounts cannot be made: the waiting reason and message of the container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MountError {
    /// `CreateContainerConfigError` or `CreateContainerError`.
    pub reason: &'static str,
    /// What went wrong (upstream's wording).
    pub message: String,
}

fn config_error(message: String) -> MountError {
    MountError { reason: "CreateContainerConfigError", message }
}

/// The `rprivate`/`rslave`/`rshared` option of a mount's `mountPropagation`.
pub fn propagation(mode: Option<&str>) -> Result<&'static str, String> {
    match mode {
        None | Some("None") => Ok("rprivate"),
        Some("HostToContainer") => Ok("rslave"),
        Some("Bidirectional") => Ok("rshared"),
        Some(other) => Err(format!("invalid MountPropagation mode: {other:?}")),
    }
}

/// Refuses a host path whose mount cannot propagate as asked (containerd's check).
fn check_host_propagation(path: &Path, option: &str) -> Result<(), MountError> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let entries = mountinfo::read().map_err(|e| config_error(format!("reading the mount table: {e}")))?;
    let Some(m) = mountinfo::containing(&entries, &real) else { return Ok(()) };
    let (ok, what) = match option {
        "rshared" => (m.is_shared(), "a shared mount"),
        _ => (m.is_shared() || m.is_slave(), "a shared or slave mount"),
    };
    if ok {
        Ok(())
    } else {
        Err(MountError {
            reason: "CreateContainerError",
            message: format!(
                "path {:?} is mounted on {:?} but it is not {what}",
                path.display().to_string(),
                m.mount_point.display().to_string()
            ),
        })
    }
}

struct Prepared {
    index: usize,
    mount: VolumeMount,
    volume: HostVolume,
    sub: String,
    option: &'static str,
}

/// Host side of one mount: subPath bind and propagation (blocking).
fn prepare(p: &Prepared, pod_dir: &Path, container: &str) -> Result<PathBuf, MountError> {
    let vm = &p.mount;
    if p.volume.create_if_missing {
        host_path::create_missing(&p.volume.path).map_err(config_error)?;
    }
    let mut source = p.volume.path.clone();
    if !p.sub.is_empty() {
        subpath::validate(&p.sub).map_err(config_error)?;
        if std::fs::metadata(p.volume.path.join(&p.sub)).is_err() {
            subpath::make_dirs(&p.volume.path, &p.sub).map_err(|e| {
                tracing::warn!(volume = %vm.name, container, error = %e, "creating a subPath directory");
                config_error(format!(
                    "failed to create subPath directory for volumeMount {:?} of container {container:?}",
                    vm.name
                ))
            })?;
        }
        let target = layout::subpath_target(pod_dir, &vm.name, container, p.index);
        subpath::bind(&p.volume.path, &p.sub, &target).map_err(|e| {
            // The details could tell the user about the host's filesystem: logged only.
            tracing::warn!(volume = %vm.name, container, error = %e, "preparing a subPath");
            config_error(format!("failed to prepare subPath for volumeMount {:?} of container {container:?}", vm.name))
        })?;
        if p.option != "rprivate" {
            mountinfo::ensure_shared(&target)
                .map_err(|e| config_error(format!("making {} a shared mount: {e}", target.display())))?;
        }
        source = target;
    } else if p.option != "rprivate" {
        if p.volume.managed {
            mountinfo::ensure_shared(&source)
                .map_err(|e| config_error(format!("making {} a shared mount: {e}", source.display())))?;
        } else {
            check_host_propagation(&source, p.option)?;
        }
    }
    Ok(source)
}

/// The container's root propagation its mounts need: `shared` when one is Bidirectional (so
/// mounts the container makes reach the host), as containerd sets it; otherwise the default.
pub fn rootfs_propagation(mounts: &[MountSpec]) -> Option<String> {
    mounts.iter().any(|m| m.options.iter().any(|o| o == "rshared")).then(|| "shared".to_string())
}

impl VolumeManager {
    /// The volume mounts of `container`; `env` is its resolved environment (for
    /// `subPathExpr`). The pod's volumes must be ready ([`VolumeManager::sync`]).
    pub async fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<MountSpec>, MountError> {
        let uid = uid_of(pod);
        let state = self.state(&uid);
        let st = state.lock().await;
        let mut prepared = Vec::new();
        for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
            let volume = st.mounted.get(&vm.name).cloned().ok_or_else(|| {
                config_error(format!("cannot find volume {:?} to mount into container {:?}", vm.name, container.name))
            })?;
            let sub = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                Some(expr) => subpath::expand(expr, env).map_err(config_error)?,
                None => vm.sub_path.clone().unwrap_or_default(),
            };
            let option = propagation(vm.mount_propagation.as_deref()).map_err(config_error)?;
            prepared.push(Prepared { index, mount: vm.clone(), volume, sub, option });
        }
        let pod_dir = self.pod_dir(&uid);
        let name = container.name.clone();
        let joined = tokio::task::spawn_blocking(move || {
            prepared
                .into_iter()
                .map(|p| {
                    let source = prepare(&p, &pod_dir, &name)?;
                    let mut options = vec!["rbind".to_string(), p.option.to_string()];
                    if p.mount.read_only == Some(true) || p.volume.read_only {
                        options.push("ro".into());
                        if matches!(p.mount.recursive_read_only.as_deref(), Some("Enabled" | "IfPossible")) {
                            options.push("rro".into());
                        }
                    }
                    Ok(MountSpec {
                        destination: PathBuf::from(&p.mount.mount_path),
                        source,
                        kind: "bind".into(),
                        options,
                    })
                })
                .collect::<Result<Vec<_>, MountError>>()
        })
        .await;
        joined.unwrap_or_else(|e| Err(config_error(format!("preparing volume mounts: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_translates_like_the_kubelet() {
        assert_eq!(propagation(None), Ok("rprivate"));
        assert_eq!(propagation(Some("None")), Ok("rprivate"));
        assert_eq!(propagation(Some("HostToContainer")), Ok("rslave"));
        assert_eq!(propagation(Some("Bidirectional")), Ok("rshared"));
        assert_eq!(propagation(Some("Sideways")), Err("invalid MountPropagation mode: \"Sideways\"".into()));
        let mut m = MountSpec::bind("/a", "/b", false);
        assert_eq!(rootfs_propagation(std::slice::from_ref(&m)), None);
        m.options.push("rshared".into());
        assert_eq!(rootfs_propagation(&[m]).as_deref(), Some("shared"));
    }
}
