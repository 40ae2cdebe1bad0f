//! The files the kubelet gives every container of a pod: `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf` and the termination-message file, in `<agent-dir>/pods/<uid>/`, merged
//! with the container's volume mounts (prepared by `crate::volumes`).
//!
//! Volumes themselves (emptyDir, hostPath, configMap, secret, …) live in `crate::volumes`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
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

/// Mounts of `container` (instance `attempt`) of `pod`: its `volumes` (from
/// `crate::volumes`) and the pod's `/etc` files, which it prepares in `pod_dir`. A volume mounted
/// at `/etc/hosts` replaces the generated file, as upstream. Mounts are ordered by depth so a
/// mount never hides one below it. `/etc/resolv.conf` gets `resolv_conf`.
pub fn container_mounts(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    attempt: u32,
    volumes: Vec<MountSpec>,
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
    let own_hosts = volumes.iter().any(|m| m.destination == Path::new("/etc/hosts"));
    let mut mounts = volumes;
    if !own_hosts {
        mounts.push(MountSpec::bind(&hosts, "/etc/hosts", false));
    }
    mounts.push(MountSpec::bind(&hostname, "/etc/hostname", false));
    mounts.push(MountSpec::bind(&resolv, "/etc/resolv.conf", false));
    mounts.push(MountSpec::bind(&term, term_path, false));
    mounts.sort_by_key(|m| m.destination.components().count());
    Ok(mounts)
}

/// Removes a pod's files after its containers are gone, unmounting its volumes first.
pub fn remove_pod_dir(dir: &Path) {
    if let Err(e) = crate::volumes::cleanup::remove_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing pod directory");
    }
}
