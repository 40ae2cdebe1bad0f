//! Pod sandboxes (DESIGN.md §6): a tiny holder process per pod (`skiff pause`, no pause image)
//! that owns the pod's network, IPC and UTS namespaces (and, with `shareProcessNamespace`, a PID
//! namespace whose PID 1 is `skiff pause --init`), which the pod's containers join.
//!
//! Two sides live here. The agent's ([`Runtime::start_sandbox`], [`Runtime::sandbox_state`],
//! [`Runtime::stop_sandbox`], [`Runtime::list_sandboxes`]) prepares a sandbox directory and
//! spawns `skiff pause --foreground <dir>`, which starts its own session and survives agent
//! restarts, like the shim (the runtime's [`crate::reaper`] reaps it if it ends while the agent
//! runs). The holder's ([`run_holder`], [`run_init`]) runs in those processes.
//!
//! The sandbox directory is the contract between them:
//! ```text
//! pause.json    SandboxConfig (written by the agent)
//! sandbox.json  SandboxState, once the namespaces are ready (written by the holder)
//! failed.json   SandboxFailed, when they could not be set up (written by the holder)
//! pause.log     the holder's own log
//! ```
//! Only `failed.json` is fsynced: the others mean nothing after a reboot (the holder is gone),
//! so they cost no disk flush on the way to a running pod.
//!
//! What does not live here: the pod's network interfaces and addresses (`skiff-net`, which the
//! `skiff` binary hands to [`run_holder`] for bringing `lo` up) and the containers themselves
//! ([`crate::container`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::container::{Runtime, valid_id};
use crate::ready::{ReadyPipe, Seen};
use crate::shim::{self, read_json, read_json_transient, write_json, write_json_transient};
use crate::spec::{Namespace, NamespaceKind};

/// How long the holder may take to set up the namespaces.
pub const SANDBOX_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Runtime::stop_sandbox`] waits for the killed processes to be gone.
pub const SANDBOX_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The cgroup (under the sandbox's `cgroup_parent`) the holder moves itself into.
pub const PAUSE_CGROUP: &str = "pause";

/// Sandbox failures.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A file of the sandbox directory, a cgroup file, or a process operation.
    #[error("{0}")]
    Io(String),
    /// A sandbox with this id already exists.
    #[error("sandbox {0} already exists")]
    Exists(String),
    /// No sandbox with this id.
    #[error("sandbox {0} not found")]
    NotFound(String),
    /// An id that cannot name a sandbox directory.
    #[error("invalid sandbox id {0:?}")]
    InvalidId(String),
    /// The holder could not set up the namespaces.
    #[error("sandbox {id} failed to start: {error}")]
    Start {
        /// The sandbox.
        id: String,
        /// What the holder reported.
        error: String,
    },
    /// The holder did not report (or its processes did not end) in time.
    #[error("sandbox {0}: no result within {1:?}")]
    Timeout(String, Duration),
}

impl From<shim::ShimError> for SandboxError {
    fn from(e: shim::ShimError) -> Self {
        Self::Io(e.to_string())
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(io::Error) -> SandboxError {
    let context = format!("{what} {}", path.display());
    move |e| SandboxError::Io(format!("{context}: {e}"))
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SandboxError {
    move |e| SandboxError::Io(format!("{what}: {e}"))
}

/// What a pod's sandbox must provide (`pause.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Host name inside the pod (ignored with `host_network`, which shares the host's UTS
    /// namespace as upstream does).
    pub hostname: String,
    /// `shareProcessNamespace`: one PID namespace for all containers, with a holder as PID 1.
    pub share_pid_namespace: bool,
    /// `hostNetwork`: the host's network and UTS namespaces.
    pub host_network: bool,
    /// `hostIPC`: the host's IPC namespace.
    pub host_ipc: bool,
    /// `hostPID`: the host's PID namespace (overrides `share_pid_namespace`).
    pub host_pid: bool,
    /// cgroup of the pod (relative to each hierarchy's root, e.g. `/skiff/pod<uid>`); the holder
    /// moves itself into its `pause` child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
}

/// A running sandbox (`sandbox.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    /// Host pid of the holder.
    pub pid: i32,
    /// Its start time (clock ticks after boot, `/proc/<pid>/stat`), to tell it from a reused pid.
    pub start_time: u64,
    /// Host pid of the PID namespace's init, when the pod shares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    /// Its start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_start_time: Option<u64>,
    /// The pod's network namespace (none with `host_network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<PathBuf>,
    /// The pod's IPC namespace (none with `host_ipc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<PathBuf>,
    /// The pod's UTS namespace (none with `host_network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<PathBuf>,
    /// The pod's shared PID namespace (only with `share_pid_namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<PathBuf>,
    /// RFC 3339 time the sandbox became ready.
    pub started_at: String,
    /// What it was asked for.
    pub config: SandboxConfig,
}

impl SandboxState {
    /// The namespaces of a container of this pod, for [`crate::spec::ContainerConfig`]: the
    /// sandbox's network, IPC, UTS (and shared PID) namespaces joined, the host's where the pod
    /// shares them, and new mount, cgroup (and PID, unless shared) namespaces.
    pub fn container_namespaces(&self) -> Vec<Namespace> {
        let join = |kind, path: &Option<PathBuf>| path.clone().map(|path| Namespace { kind, path: Some(path) });
        let mut namespaces = vec![
            Namespace { kind: NamespaceKind::Mount, path: None },
            Namespace { kind: NamespaceKind::Cgroup, path: None },
        ];
        namespaces.extend(join(NamespaceKind::Network, &self.net));
        namespaces.extend(join(NamespaceKind::Ipc, &self.ipc));
        namespaces.extend(join(NamespaceKind::Uts, &self.uts));
        match (&self.pid_namespace, self.config.host_pid) {
            (Some(path), _) => namespaces.push(Namespace { kind: NamespaceKind::Pid, path: Some(path.clone()) }),
            (None, true) => {}
            (None, false) => namespaces.push(Namespace { kind: NamespaceKind::Pid, path: None }),
        }
        namespaces
    }

    fn alive(&self) -> bool {
        alive(self.pid, self.start_time)
            && match (self.init_pid, self.init_start_time) {
                (Some(pid), Some(start)) => alive(pid, start),
                _ => true,
            }
    }
}

/// Why the holder could not set up a sandbox (`failed.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxFailed {
    /// The error.
    pub error: String,
}

/// What is known about a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxStatus {
    /// Its holder runs; containers may join its namespaces.
    Ready(SandboxState),
    /// Its holder is gone (killed, crashed, the node rebooted) or never got ready; the last
    /// state it reported, if any. The pod needs a new sandbox.
    NotReady(Option<SandboxState>),
}

impl Runtime {
    fn sandbox_dir(&self, id: &str) -> Result<PathBuf, SandboxError> {
        if !valid_id(id) {
            return Err(SandboxError::InvalidId(id.to_string()));
        }
        Ok(self.sandboxes.join(id))
    }

    /// Starts the sandbox of pod `id` and waits until its namespaces are ready. On failure the
    /// directory (with `pause.log`) stays for inspection until [`Runtime::stop_sandbox`].
    pub fn start_sandbox(&self, id: &str, config: &SandboxConfig) -> Result<SandboxState, SandboxError> {
        let dir = self.sandbox_dir(id)?;
        if dir.exists() {
            return Err(SandboxError::Exists(id.to_string()));
        }
        let t0 = Instant::now();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        write_json_transient(&dir, "pause.json", config)?;
        let log_path = dir.join("pause.log");
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io("opening", &log_path))?;
        let (mut ready, ready_out) = ReadyPipe::new().map_err(io("creating a pipe for", &dir))?;
        // The holder starts its own session and outlives the agent; until then the runtime's
        // reaper waits for it. It reports on its standard output once `sandbox.json` (or
        // `failed.json`) is written.
        let holder = Command::new(&self.shim_binary)
            .args(["pause", "--foreground"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(ready_out)
            .stderr(log)
            .spawn()
            .map_err(io("running", &self.shim_binary))?;
        crate::reaper::reap(holder);
        let launched = t0.elapsed();
        let deadline = Instant::now() + SANDBOX_START_TIMEOUT;
        loop {
            let seen = ready.wait(deadline);
            if let Some(state) = read_json_transient::<SandboxState>(&dir, "sandbox.json")? {
                tracing::debug!(
                    target: crate::TIMING_TARGET,
                    sandbox = id,
                    launch_ms = crate::container::ms(launched),
                    wait_ms = crate::container::ms(t0.elapsed() - launched),
                    "sandbox start"
                );
                tracing::info!(sandbox = id, pid = state.pid, "sandbox ready");
                return Ok(state);
            }
            if let Some(failed) = read_json::<SandboxFailed>(&dir, "failed.json")? {
                return Err(SandboxError::Start { id: id.into(), error: failed.error });
            }
            if seen == Seen::Closed {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                let error = format!("the holder ended without reporting: {}", log.trim());
                return Err(SandboxError::Start { id: id.into(), error });
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::Timeout(id.to_string(), SANDBOX_START_TIMEOUT));
            }
        }
    }

    /// The status of the sandbox of pod `id`.
    pub fn sandbox_state(&self, id: &str) -> Result<SandboxStatus, SandboxError> {
        let dir = self.sandbox_dir(id)?;
        if !dir.is_dir() {
            return Err(SandboxError::NotFound(id.to_string()));
        }
        Ok(match read_json_transient::<SandboxState>(&dir, "sandbox.json")? {
            Some(state) if state.alive() => SandboxStatus::Ready(state),
            state => SandboxStatus::NotReady(state),
        })
    }

    /// Kills the holder (and the PID namespace's init, which takes every process left in that
    /// namespace with it), waits until they are gone, removes the holder's cgroup and the
    /// sandbox directory. Absent is fine. Stop the pod's containers first.
    pub fn stop_sandbox(&self, id: &str) -> Result<(), SandboxError> {
        let dir = self.sandbox_dir(id)?;
        if !dir.is_dir() {
            return Ok(());
        }
        if let Some(state) = read_json_transient::<SandboxState>(&dir, "sandbox.json")? {
            let processes: Vec<(i32, u64)> =
                state.init_pid.zip(state.init_start_time).into_iter().chain([(state.pid, state.start_time)]).collect();
            for &(pid, start) in &processes {
                if alive(pid, start) {
                    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                        Err(e) => return Err(SandboxError::Io(format!("killing sandbox {id} process {pid}: {e}"))),
                    }
                }
            }
            let deadline = Instant::now() + SANDBOX_STOP_TIMEOUT;
            while processes.iter().any(|&(pid, start)| alive(pid, start)) {
                if Instant::now() >= deadline {
                    return Err(SandboxError::Timeout(id.to_string(), SANDBOX_STOP_TIMEOUT));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(parent) = &state.config.cgroup_parent {
                for hierarchy in cgroup_hierarchies()? {
                    let leaf = cgroup_dir(&hierarchy, parent).join(PAUSE_CGROUP);
                    match fs::remove_dir(&leaf) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io("removing cgroup", &leaf)(e)),
                    }
                }
            }
        }
        fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
        tracing::info!(sandbox = id, "sandbox stopped");
        Ok(())
    }

    /// Ids of every sandbox directory (ready or not).
    pub fn list_sandboxes(&self) -> Result<Vec<String>, SandboxError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.sandboxes).map_err(io("listing", &self.sandboxes))? {
            let entry = entry.map_err(io("listing", &self.sandboxes))?;
            if entry.path().is_dir() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// The process's state letter and start time from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may contain anything, so split after its last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// Whether `pid` is still the process that started at `start_time` and has not ended (a zombie
/// waiting for init to reap it has ended).
fn alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((state, start)) if start == start_time && !matches!(state, 'Z' | 'X'))
}

/// Mount points of every cgroup hierarchy (v1 controllers, named v1, and v2).
fn cgroup_hierarchies() -> Result<Vec<PathBuf>, SandboxError> {
    let path = Path::new("/proc/self/mountinfo");
    let info = fs::read_to_string(path).map_err(io("reading", path))?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (mount, fstype) = line.split_once(" - ")?;
            let fstype = fstype.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| mount.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .collect())
}

fn cgroup_dir(hierarchy: &Path, cgroup: &str) -> PathBuf {
    hierarchy.join(cgroup.trim_start_matches('/'))
}

/// Moves the calling process into `<cgroup_parent>/pause` of every hierarchy, creating it. A
/// new v1 cpuset cgroup starts with no CPUs or memory nodes, so those are copied from its
/// parent first.
fn join_cgroups(cgroup_parent: &str) -> Result<(), SandboxError> {
    let pid = std::process::id().to_string();
    for hierarchy in cgroup_hierarchies()? {
        let leaf = cgroup_dir(&hierarchy, cgroup_parent).join(PAUSE_CGROUP);
        let mut created = Vec::new();
        let mut dir = hierarchy.clone();
        for part in leaf.strip_prefix(&hierarchy).unwrap_or(&leaf).components() {
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).map_err(io("creating cgroup", &dir))?;
                created.push(dir.clone());
            }
        }
        for dir in &created {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let (own, parent) = (dir.join(file), dir.parent().map(|p| p.join(file)));
                let empty = fs::read_to_string(&own).is_ok_and(|v| v.trim().is_empty());
                if let (true, Some(parent)) = (empty, parent) {
                    let value = fs::read_to_string(&parent).map_err(io("reading", &parent))?;
                    // An empty v2 value means "inherit": nothing to copy.
                    if !value.trim().is_empty() {
                        fs::write(&own, value.trim()).map_err(io("writing", &own))?;
                    }
                }
            }
        }
        let procs = leaf.join("cgroup.procs");
        fs::write(&procs, &pid).map_err(io("writing", &procs))?;
    }
    Ok(())
}

/// The signals the holder and the init wait for (blocked, then taken with `sigwait`).
fn wait_signals() -> SigSet {
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD].into_iter().collect()
}

/// Runs the holder of the sandbox directory `dir` (`skiff pause --foreground <dir>`) until it
/// is told to stop. Must be called while the process is single-threaded: the namespaces are
/// unshared for the calling thread only. `loopback_up` brings `lo` up in the new network
/// namespace (skiff-net's netlink; it may use threads, and runs before the PID namespace is
/// unshared, after which no thread can be created).
pub fn run_holder(dir: &Path, loopback_up: impl FnOnce() -> Result<(), String>) -> Result<(), SandboxError> {
    let signals = wait_signals();
    signals.thread_block().map_err(sys("blocking signals"))?;
    // Survive the agent: own session (signals to the agent's process group do not reach us).
    let _ = nix::unistd::setsid();
    let config: SandboxConfig = read_json_transient(dir, "pause.json")?
        .ok_or_else(|| SandboxError::Io(format!("{}/pause.json is missing", dir.display())))?;
    let (state, init) = match set_up(&config, loopback_up) {
        Ok(ready) => ready,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the sandbox");
            let written = write_json(dir, "failed.json", &SandboxFailed { error: e.to_string() });
            crate::ready::report();
            written?;
            return Err(e);
        }
    };
    write_json_transient(dir, "sandbox.json", &state)?;
    crate::ready::report();
    tracing::info!(pid = state.pid, init = ?state.init_pid, "sandbox ready");
    hold(&signals, init)
}

/// Unshares the pod's namespaces and, for a shared PID namespace, starts its init.
fn set_up(
    config: &SandboxConfig,
    loopback_up: impl FnOnce() -> Result<(), String>,
) -> Result<(SandboxState, Option<Child>), SandboxError> {
    if let Some(parent) = &config.cgroup_parent {
        join_cgroups(parent)?;
    }
    let mut flags = CloneFlags::empty();
    if !config.host_network {
        flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
    }
    if !config.host_ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    nix::sched::unshare(flags).map_err(sys("unsharing the pod namespaces"))?;
    if !config.host_network {
        if !config.hostname.is_empty() {
            nix::unistd::sethostname(&config.hostname).map_err(sys("setting the host name"))?;
        }
        loopback_up().map_err(|e| SandboxError::Io(format!("setting lo up: {e}")))?;
    }
    let pid = std::process::id() as i32;
    let ns = |kind: &str| Some(PathBuf::from(format!("/proc/{pid}/ns/{kind}")));
    let mut init = None;
    let mut state = SandboxState {
        pid,
        start_time: proc_stat(pid).map(|(_, t)| t).ok_or_else(|| SandboxError::Io("cannot read own stat".into()))?,
        init_pid: None,
        init_start_time: None,
        net: if config.host_network { None } else { ns("net") },
        ipc: if config.host_ipc { None } else { ns("ipc") },
        uts: if config.host_network { None } else { ns("uts") },
        pid_namespace: None,
        started_at: jiff::Timestamp::now().to_string(),
        config: config.clone(),
    };
    if config.share_pid_namespace && !config.host_pid {
        nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(sys("unsharing the PID namespace"))?;
        let exe = std::env::current_exe().map_err(|e| SandboxError::Io(format!("finding the skiff binary: {e}")))?;
        // Not holding the ready pipe (standard output), which must close with the holder's report.
        let child = Command::new(&exe)
            .args(["pause", "--init"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(io("starting the PID namespace init", &exe))?;
        let init_pid = child.id() as i32;
        state.init_pid = Some(init_pid);
        state.init_start_time = proc_stat(init_pid).map(|(_, t)| t);
        state.pid_namespace = Some(PathBuf::from(format!("/proc/{init_pid}/ns/pid")));
        init = Some(child);
    }
    Ok((state, init))
}

/// Sleeps until SIGTERM/SIGINT (then ends the init, if any) or until the init ends (an error:
/// the shared PID namespace is unusable without it).
fn hold(signals: &SigSet, mut init: Option<Child>) -> Result<(), SandboxError> {
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(child) = &mut init
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(SandboxError::Io(format!("the PID namespace init ended ({status})")));
                }
            }
            Ok(signal) => {
                tracing::info!(%signal, "stopping the sandbox");
                if let Some(mut child) = init {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Ok(());
            }
            Err(e) => return Err(SandboxError::Io(format!("waiting for signals: {e}"))),
        }
    }
}

/// Runs PID 1 of a pod's shared PID namespace (`skiff pause --init`): reaps every orphan that
/// is reparented to it until SIGTERM/SIGINT. Its end kills every process of the namespace.
pub fn run_init() -> Result<(), SandboxError> {
    let signals = wait_signals();
    signals.thread_block().map_err(sys("blocking signals"))?;
    loop {
        match signals.wait().map_err(sys("waiting for signals"))? {
            Signal::SIGCHLD => loop {
                match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(SandboxError::Io(format!("reaping: {e}"))),
                }
            },
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config: SandboxConfig) -> SandboxState {
        SandboxState {
            pid: 10,
            start_time: 1,
            init_pid: None,
            init_start_time: None,
            net: (!config.host_network).then(|| "/proc/10/ns/net".into()),
            ipc: (!config.host_ipc).then(|| "/proc/10/ns/ipc".into()),
            uts: (!config.host_network).then(|| "/proc/10/ns/uts".into()),
            pid_namespace: config.share_pid_namespace.then(|| "/proc/11/ns/pid".into()),
            started_at: String::new(),
            config,
        }
    }

    fn kinds(namespaces: &[Namespace]) -> Vec<(NamespaceKind, Option<&str>)> {
        let mut out: Vec<_> = namespaces.iter().map(|n| (n.kind, n.path.as_deref().and_then(|p| p.to_str()))).collect();
        out.sort_by_key(|(k, _)| format!("{k:?}"));
        out
    }

    #[test]
    fn containers_join_the_sandbox_namespaces() {
        use NamespaceKind::*;
        let plain = state(SandboxConfig { hostname: "web".into(), ..Default::default() });
        assert_eq!(
            kinds(&plain.container_namespaces()),
            [
                (Cgroup, None),
                (Ipc, Some("/proc/10/ns/ipc")),
                (Mount, None),
                (Network, Some("/proc/10/ns/net")),
                (Pid, None),
                (Uts, Some("/proc/10/ns/uts")),
            ]
        );
        let shared = state(SandboxConfig { share_pid_namespace: true, ..Default::default() });
        assert!(kinds(&shared.container_namespaces()).contains(&(Pid, Some("/proc/11/ns/pid"))));
    }

    #[test]
    fn host_namespaces_are_left_out() {
        use NamespaceKind::*;
        let host = state(SandboxConfig { host_network: true, host_ipc: true, host_pid: true, ..Default::default() });
        assert_eq!(kinds(&host.container_namespaces()), [(Cgroup, None), (Mount, None)]);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let (_, start) = proc_stat(pid).expect("own stat");
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1), "a reused pid is not the sandbox");
        assert!(!alive(-1, start));
    }

    #[test]
    fn sandbox_ids_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Runtime::open(dir.path(), Path::new("/nonexistent/skiff")).expect("runtime");
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(matches!(runtime.sandbox_state(bad), Err(SandboxError::InvalidId(_))), "{bad}");
        }
        assert!(matches!(runtime.sandbox_state("absent"), Err(SandboxError::NotFound(_))));
        runtime.stop_sandbox("absent").expect("stopping an absent sandbox is fine");
        assert!(runtime.list_sandboxes().expect("list").is_empty());
    }
}
