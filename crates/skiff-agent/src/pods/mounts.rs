//! The files and volumes a pod's containers see: `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`, the termination-message file, and the volumes of the pod mounted where
//! `volumeMounts` say (emptyDir on disk or tmpfs, hostPath with its `type` checks).
//!
//! The pod's files live in `<agent-dir>/pods/<uid>/`; configMap, secret, downwardAPI, projected
//! and persistentVolumeClaim volumes are not implemented yet and make the container fail with
//! `CreateContainerConfigError` naming the volume.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use skiff_runtime::spec::MountSpec;

/// The host name of the pod's containers.
pub fn pod_hostname(pod: &Pod) -> String {
    let name =
        pod.spec.as_ref().and_then(|s| s.hostname.clone()).or_else(|| pod.metadata.name.clone()).unwrap_or_default();
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

fn write_if_changed(path: &Path, content: &str) -> Result<(), String> {
    if fs::read_to_string(path).ok().as_deref() != Some(content) {
        fs::write(path, content).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The kubelet-managed `/etc/hosts` of a pod: the node's own with `hostNetwork`, else localhost,
/// the pod's address and host aliases.
pub fn hosts_file(pod: &Pod) -> String {
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        let node = fs::read_to_string("/etc/hosts").unwrap_or_default();
        return format!("# Kubernetes-managed hosts file (host network).\n{node}");
    }
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) {
        let host = pod_hostname(pod);
        match spec.and_then(|s| s.subdomain.as_deref()) {
            Some(sub) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                out.push_str(&format!("{ip}\t{host}.{sub}.{ns}.svc.cluster.local\t{host}\n"));
            }
            None => out.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if aliases.is_some_and(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases.into_iter().flatten() {
            out.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.clone().unwrap_or_default().join("\t")));
        }
    }
    out
}

fn volume_source(volume: &Volume, pod_dir: &Path) -> Result<MountSpec, String> {
    let name = &volume.name;
    if let Some(empty) = &volume.empty_dir {
        if empty.medium.as_deref() == Some("Memory") {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
            if let Some(limit) = empty.size_limit.as_ref().and_then(|q| skiff_api::quantity::Quantity::parse(&q.0).ok())
            {
                options.push(format!("size={}", limit.value().max(4096)));
            }
            return Ok(MountSpec {
                destination: PathBuf::new(),
                source: "tmpfs".into(),
                kind: "tmpfs".into(),
                options,
            });
        }
        let dir = pod_dir.join("volumes").join("empty-dir").join(name);
        fs::create_dir_all(&dir).map_err(|e| format!("emptyDir {name}: {e}"))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| format!("emptyDir {name}: {e}"))?;
        return Ok(MountSpec::bind(dir, PathBuf::new(), false));
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        let kind = host.type_.as_deref().unwrap_or("");
        let meta = fs::metadata(&path);
        let mismatch = |what: &str| Err(format!("hostPath type check failed: {} is not a {what}", host.path));
        match kind {
            "DirectoryOrCreate" if meta.is_err() => {
                fs::create_dir_all(&path).map_err(|e| format!("hostPath {}: {e}", host.path))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
            }
            "FileOrCreate" if meta.is_err() => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                fs::write(&path, b"").map_err(|e| format!("hostPath {}: {e}", host.path))?;
            }
            "Directory" | "DirectoryOrCreate" if !meta.as_ref().is_ok_and(|m| m.is_dir()) => {
                return mismatch("directory");
            }
            "File" | "FileOrCreate" if !meta.as_ref().is_ok_and(|m| m.is_file()) => return mismatch("file"),
            "Socket" if !meta.as_ref().is_ok_and(|m| m.file_type().is_socket()) => return mismatch("socket"),
            "CharDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()) => {
                return mismatch("character device");
            }
            "BlockDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()) => {
                return mismatch("block device");
            }
            "" if meta.is_err() => {
                // Unset type: no check; a missing path is created as a directory, as Docker did.
                fs::create_dir_all(&path).map_err(|e| format!("hostPath {}: {e}", host.path))?;
            }
            _ => {}
        }
        return Ok(MountSpec::bind(path, PathBuf::new(), false));
    }
    Err(format!("volume \"{name}\": this volume type is not supported by skiff's agent yet"))
}

/// Mounts of `container` (instance `attempt`) of `pod`; prepares the pod's files in `pod_dir`
/// (`/etc/resolv.conf` with `resolv_conf`).
pub fn container_mounts(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    attempt: u32,
    resolv_conf: &str,
) -> Result<Vec<MountSpec>, String> {
    fs::create_dir_all(pod_dir).map_err(|e| format!("creating {}: {e}", pod_dir.display()))?;
    let hosts = pod_dir.join("etc-hosts");
    write_if_changed(&hosts, &hosts_file(pod))?;
    let hostname = pod_dir.join("etc-hostname");
    write_if_changed(&hostname, &format!("{}\n", pod_hostname(pod)))?;
    let resolv = pod_dir.join("resolv.conf");
    write_if_changed(&resolv, resolv_conf)?;
    let term_dir = pod_dir.join("containers").join(&container.name);
    fs::create_dir_all(&term_dir).map_err(|e| e.to_string())?;
    let term = term_dir.join(format!("{attempt}-termination-log"));
    fs::write(&term, b"").map_err(|e| e.to_string())?;
    fs::set_permissions(&term, fs::Permissions::from_mode(0o666)).map_err(|e| e.to_string())?;
    let term_path = container.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into());
    let mut mounts = vec![
        MountSpec::bind(&hosts, "/etc/hosts", false),
        MountSpec::bind(&hostname, "/etc/hostname", false),
        MountSpec::bind(&resolv, "/etc/resolv.conf", false),
        MountSpec::bind(&term, term_path, false),
    ];
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for vm in container.volume_mounts.iter().flatten() {
        let volume = volumes.and_then(|v| v.iter().find(|v| v.name == vm.name)).ok_or_else(|| {
            format!("cannot find volume \"{}\" to mount into container \"{}\"", vm.name, container.name)
        })?;
        let mut mount = volume_source(volume, pod_dir)?;
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if mount.kind == "tmpfs" {
                return Err(format!("subPath on a memory-backed emptyDir ({}) is not supported yet", vm.name));
            }
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!("invalid subPath {sub:?}: must be a relative path without '..'"));
            }
            let path = mount.source.join(sub);
            if !path.exists() {
                fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            }
            mount.source = path;
        }
        mount.destination = PathBuf::from(&vm.mount_path);
        if vm.read_only == Some(true) {
            mount.options.push("ro".into());
        }
        mounts.push(mount);
    }
    Ok(mounts)
}

/// Removes a pod's files after its containers are gone.
pub fn remove_pod_dir(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing pod directory");
    }
}
