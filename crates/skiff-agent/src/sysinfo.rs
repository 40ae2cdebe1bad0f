//! Facts about the host the Node reports: CPUs, memory, disk under the data dir, kernel, OS
//! image, machine and boot ids. Read from `/proc`, `/etc` and `statvfs`; nothing is cached here.

use std::path::Path;

/// What the Node says about its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Online CPUs.
    pub cpus: usize,
    /// `MemTotal` in bytes.
    pub memory_bytes: u64,
    /// Size of the filesystem holding the data dir, in bytes.
    pub storage_bytes: u64,
    /// GOARCH-style architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

/// Reading host facts failed.
#[derive(Debug, thiserror::Error)]
#[error("reading host facts: {0}")]
pub struct HostInfoError(String);

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// `PRETTY_NAME` of an os-release text.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
}

impl HostInfo {
    /// Reads the facts; `data_dir` is where pods' ephemeral storage lives.
    pub fn gather(data_dir: &Path) -> Result<Self, HostInfoError> {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let meminfo =
            std::fs::read_to_string("/proc/meminfo").map_err(|e| HostInfoError(format!("/proc/meminfo: {e}")))?;
        let memory_bytes = mem_total(&meminfo).ok_or_else(|| HostInfoError("no MemTotal in /proc/meminfo".into()))?;
        let stat = nix::sys::statvfs::statvfs(data_dir)
            .map_err(|e| HostInfoError(format!("statvfs {}: {e}", data_dir.display())))?;
        let storage_bytes = stat.blocks() as u64 * stat.fragment_size() as u64;
        let uname = nix::sys::utsname::uname().map_err(|e| HostInfoError(format!("uname: {e}")))?;
        Ok(Self {
            cpus,
            memory_bytes,
            storage_bytes,
            architecture: skiff_runtime::images::host_architecture().to_string(),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_image: pretty_name(&read_trimmed("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_etc() {
        assert_eq!(mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24_576_000 * 1024));
        assert_eq!(mem_total("nothing"), None);
        assert_eq!(
            pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let host = HostInfo::gather(Path::new("/")).expect("gather");
        assert!(host.cpus >= 1 && host.memory_bytes > 0 && host.storage_bytes > 0);
        assert!(!host.kernel_version.is_empty());
    }
}
