//! The OCI runtime spec (`config.json`) of a container, built from a Kubernetes-agnostic
//! [`ContainerConfig`]: process, user, namespaces to join, mounts, cgroup and resources,
//! capabilities and the default hardening (masked and read-only paths) of runc/containerd.
//!
//! Translating a Pod's container into a [`ContainerConfig`] is the agent's job; running the spec
//! is the shim's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The capabilities containers get by default (containerd's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, for privileged containers.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities this process can grant ([`privileged_capabilities`] of its own status),
/// which privileged containers and `add: [ALL]` get.
pub fn all_current_capabilities() -> Vec<&'static str> {
    privileged_capabilities(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// The OOM score adjustment this process can give a container it starts: `requested`, or its
/// own adjustment if that is higher and it lacks `CAP_SYS_RESOURCE` (which lowering needs), as
/// containerd's `restrict_oom_score_adj`.
pub fn grantable_oom_score_adj(requested: i32) -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective =
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    let own = std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|v| v.trim().parse::<i32>().ok());
    restrict_oom_score_adj(requested, effective, own)
}

/// `CAP_SYS_RESOURCE`'s bit.
const CAP_SYS_RESOURCE_BIT: u64 = 1 << 24;

fn restrict_oom_score_adj(requested: i32, effective_caps: Option<u64>, own: Option<i32>) -> i32 {
    match (effective_caps, own) {
        (Some(caps), Some(own)) if caps & CAP_SYS_RESOURCE_BIT == 0 => requested.max(own),
        _ => requested,
    }
}

/// Paths hidden from containers (the kubelet's defaults, kept in step with Docker's).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths containers may read but not write.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The identity the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// A Linux namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    /// Processes.
    Pid,
    /// Network.
    Network,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Host and domain name.
    Uts,
    /// Mounts.
    Mount,
    /// cgroup root.
    Cgroup,
}

/// A namespace of the container: new (`path: None`) or joined (`path: /proc/<pid>/ns/<kind>`).
/// A kind absent from [`ContainerConfig::namespaces`] is shared with the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Which namespace.
    #[serde(rename = "type")]
    pub kind: NamespaceKind,
    /// The namespace to join, if not a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountSpec {
    /// Path inside the container.
    pub destination: PathBuf,
    /// Host path (for binds) or a name (`tmpfs`).
    pub source: PathBuf,
    /// `bind` or a filesystem type such as `tmpfs`.
    pub kind: String,
    /// Mount options (`ro`, `rbind`, `rprivate`, `size=…`).
    #[serde(default)]
    pub options: Vec<String>,
}

impl MountSpec {
    /// A recursive bind of `source` at `destination`.
    pub fn bind(source: impl Into<PathBuf>, destination: impl Into<PathBuf>, read_only: bool) -> Self {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if read_only {
            options.push("ro".into());
        }
        Self { destination: destination.into(), source: source.into(), kind: "bind".into(), options }
    }
}

/// cgroup limits of the container (absent = unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// cgroup v1 `cpu.shares` (v2 weight is derived from it).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per period.
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    #[serde(default)]
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_limit: Option<i64>,
    /// Maximum number of processes.
    #[serde(default)]
    pub pids_limit: Option<i64>,
}

/// Everything the runtime needs to know to build a container's spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerConfig {
    /// Argument vector (`args[0]` is resolved in the container's `PATH`).
    pub args: Vec<String>,
    /// `NAME=value` environment.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// Identity of the process.
    pub user: ProcessUser,
    /// Host name (effective only with a new UTS namespace).
    pub hostname: Option<String>,
    /// Namespaces to create or join.
    pub namespaces: Vec<Namespace>,
    /// Extra mounts, after the defaults (`/proc`, `/dev`, `/sys`, …).
    pub mounts: Vec<MountSpec>,
    /// cgroup path (absolute, relative to the cgroup root).
    pub cgroups_path: Option<String>,
    /// Limits.
    pub resources: Resources,
    /// Root filesystem mounted read-only.
    pub readonly_rootfs: bool,
    /// All capabilities, no masked paths, host devices.
    pub privileged: bool,
    /// Capabilities (`CAP_*`) of the process.
    pub capabilities: Vec<String>,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// `/proc` without the masked and read-only paths (`procMount: Unmasked`).
    #[serde(default)]
    pub unmasked_proc: bool,
    /// The seccomp filter (an OCI `linux.seccomp` object, e.g. from
    /// [`crate::seccomp::render`]); none runs the process unconfined.
    #[serde(default)]
    pub seccomp: Option<Value>,
    /// OOM score adjustment.
    pub oom_score_adj: Option<i32>,
    /// Namespaced sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Allocate a terminal for the process.
    pub terminal: bool,
    /// Propagation of the container's root mount (`shared`, `slave`, `private`); unset is
    /// `slave`. `shared` is what a Bidirectional volume mount needs to reach the host.
    #[serde(default)]
    pub rootfs_propagation: Option<String>,
    /// Keep the process's standard input open for attaching (`stdin: true`).
    #[serde(default)]
    pub stdin: bool,
    /// Close the standard input after the first attach (`stdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
}

impl ContainerConfig {
    /// A config running `args` as root with the default capabilities, in new namespaces.
    pub fn new(args: Vec<String>) -> Self {
        Self {
            args,
            cwd: "/".into(),
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            namespaces: [
                NamespaceKind::Pid,
                NamespaceKind::Network,
                NamespaceKind::Ipc,
                NamespaceKind::Uts,
                NamespaceKind::Mount,
                NamespaceKind::Cgroup,
            ]
            .into_iter()
            .map(|kind| Namespace { kind, path: None })
            .collect(),
            ..Default::default()
        }
    }
}

fn default_mounts(privileged: bool) -> Vec<Value> {
    let sys_options: Vec<&str> =
        if privileged { vec!["nosuid", "noexec", "nodev"] } else { vec!["nosuid", "noexec", "nodev", "ro"] };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", if privileged { "rw" } else { "ro" }]}),
    ]
}

/// The capabilities a privileged container gets: every capability of [`ALL_CAPABILITIES`] (listed
/// in bit order) that is in the bounding set of this process (`CapBnd` of its
/// `/proc/self/status` text), as containerd grants "all current capabilities". A capability the
/// host withholds cannot be granted: asking for it makes the container's `capset` fail.
pub fn privileged_capabilities(proc_status: &str) -> Vec<&'static str> {
    let bounding = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES.iter().enumerate().filter(|(bit, _)| bounding & (1 << bit) != 0).map(|(_, c)| *c).collect()
}

/// The OCI runtime spec of `config` with its root filesystem at `rootfs`.
pub fn runtime_spec(config: &ContainerConfig, rootfs: &Path) -> Value {
    let caps: Vec<&str> = if config.privileged {
        privileged_capabilities(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
    } else {
        config.capabilities.iter().map(String::as_str).collect()
    };
    let mut process = json!({
        "terminal": config.terminal,
        "user": {"uid": config.user.uid, "gid": config.user.gid, "additionalGids": config.user.additional_gids},
        "args": config.args,
        "env": config.env,
        "cwd": config.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    // Only when set: libcontainer takes a present `false` for "set", and would then load the
    // seccomp filter after dropping the capability that loading it without no_new_privs needs.
    if config.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(adj) = config.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    // Explicit binds replace the default mount at the same destination (e.g. /dev/shm).
    let mut mounts: Vec<Value> = default_mounts(config.privileged)
        .into_iter()
        .filter(|m| {
            !config.mounts.iter().any(|c| Some(c.destination.to_string_lossy().as_ref()) == m["destination"].as_str())
        })
        .collect();
    mounts.extend(
        config
            .mounts
            .iter()
            .map(|m| json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options})),
    );
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let r = &config.resources;
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = r.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(quota) = r.cpu_quota {
        cpu.insert("quota".into(), json!(quota));
    }
    if let Some(period) = r.cpu_period {
        cpu.insert("period".into(), json!(period));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = r.memory_limit {
        resources["memory"] = json!({"limit": limit});
    }
    if let Some(limit) = r.pids_limit {
        resources["pids"] = json!({"limit": limit});
    }
    if config.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        // The standard character devices every container may use.
        let mut devices = vec![json!({"allow": false, "access": "rwm"})];
        for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)] {
            devices.push(json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}));
        }
        devices.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
        resources["devices"] = Value::Array(devices);
    }
    let mut linux = json!({
        "namespaces": config.namespaces,
        "resources": resources,
        "sysctl": config.sysctls,
    });
    if let Some(path) = &config.cgroups_path {
        linux["cgroupsPath"] = json!(path);
    }
    if let Some(propagation) = &config.rootfs_propagation {
        linux["rootfsPropagation"] = json!(propagation);
    }
    if !config.privileged && !config.unmasked_proc {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(seccomp) = &config.seccomp {
        linux["seccomp"] = seccomp.clone();
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": config.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if let Some(hostname) = &config.hostname {
        spec["hostname"] = json!(hostname);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_as_an_oci_runtime_spec() {
        let mut config = ContainerConfig::new(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        config.env = vec!["PATH=/bin".into()];
        config.user = ProcessUser { uid: 1000, gid: 1000, additional_gids: vec![5] };
        config.resources = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        config.namespaces[1].path = Some("/proc/42/ns/net".into());
        config.mounts.push(MountSpec::bind("/host/shm", "/dev/shm", false));
        config.cgroups_path = Some("/skiff/pod1/c1".into());
        config.hostname = Some("web-0".into());
        config.rootfs_propagation = Some("shared".into());
        let value = runtime_spec(&config, Path::new("/run/c1/rootfs"));
        let spec: oci_spec::runtime::Spec = serde_json::from_value(value.clone()).expect("valid OCI spec");
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.args().as_ref().expect("args")[2], "echo hi");
        assert_eq!(process.user().uid(), 1000);
        let linux = spec.linux().as_ref().expect("linux");
        assert_eq!(linux.rootfs_propagation().as_deref(), Some("shared"));
        let memory = linux.resources().as_ref().and_then(|r| r.memory().as_ref()).expect("memory");
        assert_eq!(memory.limit(), Some(64 << 20));
        let net = linux.namespaces().as_ref().expect("ns").iter().find(|n| n.path().is_some()).expect("joined");
        assert_eq!(net.path().as_deref(), Some(Path::new("/proc/42/ns/net")));
        // The explicit /dev/shm bind replaced the default tmpfs.
        let shm: Vec<_> = spec
            .mounts()
            .as_ref()
            .expect("mounts")
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
        assert!(value["linux"]["maskedPaths"].is_array());
    }

    #[test]
    fn hardening_fields_reach_the_spec() {
        let mut config = ContainerConfig::new(vec!["true".into()]);
        config.readonly_rootfs = true;
        config.no_new_privileges = true;
        config.oom_score_adj = Some(-997);
        config.sysctls.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        config.seccomp = Some(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}));
        let value = runtime_spec(&config, Path::new("/r"));
        assert_eq!(value["root"]["readonly"], json!(true));
        assert_eq!(value["process"]["noNewPrivileges"], json!(true));
        assert_eq!(value["process"]["oomScoreAdj"], json!(-997));
        assert_eq!(value["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"], json!("0"));
        assert_eq!(value["linux"]["seccomp"]["defaultAction"], json!("SCMP_ACT_ERRNO"));
        assert_eq!(value["linux"]["maskedPaths"], json!(MASKED_PATHS));
        assert!(MASKED_PATHS.contains(&"/proc/kcore") && MASKED_PATHS.contains(&"/sys/devices/virtual/powercap"));
        assert_eq!(value["linux"]["readonlyPaths"], json!(READONLY_PATHS));
        let spec: oci_spec::runtime::Spec = serde_json::from_value(value).expect("valid OCI spec");
        assert_eq!(spec.root().as_ref().and_then(|r| r.readonly()), Some(true));

        // procMount: Unmasked; Unconfined seccomp.
        let mut config = ContainerConfig::new(vec!["true".into()]);
        config.unmasked_proc = true;
        let value = runtime_spec(&config, Path::new("/r"));
        assert!(value["linux"].get("maskedPaths").is_none() && value["linux"].get("readonlyPaths").is_none());
        assert!(value["linux"].get("seccomp").is_none());
        assert_eq!(value["root"]["readonly"], json!(false));
        assert!(value["process"].get("noNewPrivileges").is_none(), "absent, not false");
    }

    #[test]
    fn privileged_gets_everything() {
        let mut config = ContainerConfig::new(vec!["true".into()]);
        config.privileged = true;
        let value = runtime_spec(&config, Path::new("/r"));
        let own = privileged_capabilities(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
        assert_eq!(value["process"]["capabilities"]["bounding"].as_array().map(Vec::len), Some(own.len()));
        assert_eq!(privileged_capabilities("CapBnd:\t000001ffffffffff\n").len(), ALL_CAPABILITIES.len());
        let without_sys_resource = privileged_capabilities("CapBnd:\t000001fffeffffff\n");
        assert!(!without_sys_resource.contains(&"CAP_SYS_RESOURCE") && without_sys_resource.contains(&"CAP_SYS_TIME"));
        assert!(value["linux"].get("maskedPaths").is_none());
        assert_eq!(value["linux"]["resources"]["devices"][0]["allow"], json!(true));
    }

    #[test]
    fn oom_score_adj_is_restricted_without_cap_sys_resource() {
        assert_eq!(restrict_oom_score_adj(-997, Some(0x1ff_ffff_ffff), Some(0)), -997);
        assert_eq!(restrict_oom_score_adj(-997, Some(0x1ff_feff_ffff), Some(0)), 0);
        assert_eq!(restrict_oom_score_adj(1000, Some(0x1ff_feff_ffff), Some(0)), 1000);
        assert_eq!(restrict_oom_score_adj(-997, None, None), -997);
    }
}
