//! The agent's side of containers: preparing a container directory (snapshots, OCI spec,
//! shim request), launching its shim, reading its state, signalling and removing it.
//!
//! Every call here blocks (file I/O, a short-lived process); the async agent runs them on its
//! blocking pool. Nothing here forks inside the caller: the shim is launched as a separate
//! program that daemonises itself ([`crate::shim`]), and the agent never reaps anything but that
//! short-lived launcher.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::images::{ImageError, ImageRecord, ImageStore};
use crate::shim::{self, Exited, ShimRequest, Started};
use crate::snapshots::Snapshots;
use crate::spec::{ContainerConfig, runtime_spec};

/// Container failures.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The image store or snapshots failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The container directory or a process operation failed.
    #[error("{0}")]
    Io(String),
    /// A container with this id already exists.
    #[error("container {0} already exists")]
    Exists(String),
    /// No container with this id.
    #[error("container {0} not found")]
    NotFound(String),
    /// The shim did not report within the deadline.
    #[error("container {0} did not start within {1:?}")]
    Timeout(String, Duration),
}

impl From<shim::ShimError> for ContainerError {
    fn from(e: shim::ShimError) -> Self {
        Self::Io(e.to_string())
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(io::Error) -> ContainerError {
    let context = format!("{what} {}", path.display());
    move |e| ContainerError::Io(format!("{context}: {e}"))
}

/// What is known about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Its process runs.
    Running(Started),
    /// It ended (or never started: see [`Exited::start_error`]).
    Exited(Exited),
    /// Its shim is gone without recording an end (e.g. the node rebooted).
    Lost,
}

/// The container runtime of one node.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) containers: PathBuf,
    pub(crate) sandboxes: PathBuf,
    pub(crate) state_root: PathBuf,
    images: ImageStore,
    snapshots: Snapshots,
    pub(crate) shim_binary: PathBuf,
}

/// How long the shim may take to create and start a container.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Runtime {
    /// Opens the runtime state under `agent_dir` (`images/`, `snapshots/`, `containers/`,
    /// `sandboxes/`, `libcontainer/`); containers are run by `shim_binary shim <dir>` and pod
    /// sandboxes by `shim_binary pause <dir>` (the `skiff` binary).
    pub fn open(agent_dir: &Path, shim_binary: &Path) -> Result<Self, ContainerError> {
        let containers = agent_dir.join("containers");
        let sandboxes = agent_dir.join("sandboxes");
        let state_root = agent_dir.join("libcontainer");
        for d in [&containers, &sandboxes, &state_root] {
            fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        Ok(Self {
            containers,
            sandboxes,
            state_root,
            images: ImageStore::open(&agent_dir.join("images"))?,
            snapshots: Snapshots::open(&agent_dir.join("snapshots"))?,
            shim_binary: shim_binary.to_path_buf(),
        })
    }

    /// The node's image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The node's layer snapshots.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    fn dir(&self, id: &str) -> Result<PathBuf, ContainerError> {
        if !valid_id(id) {
            return Err(ContainerError::Io(format!("invalid container id {id:?}")));
        }
        Ok(self.containers.join(id))
    }

    /// Creates and starts container `id` from `image` (or an empty root) and waits until its
    /// process runs or it has failed to start. The returned state is `Running` or `Exited`.
    pub fn start(
        &self,
        id: &str,
        image: Option<&ImageRecord>,
        config: &ContainerConfig,
        log_path: &Path,
    ) -> Result<ContainerState, ContainerError> {
        let dir = self.dir(id)?;
        if dir.exists() {
            return Err(ContainerError::Exists(id.to_string()));
        }
        let lowers = match image {
            Some(image) => self.snapshots.prepare(self.images.blobs(), image)?,
            None => Vec::new(),
        };
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let spec = runtime_spec(config, &dir.join("rootfs"));
        shim::write_json(&dir, "config.json", &spec)?;
        let request = ShimRequest {
            id: id.to_string(),
            lowers,
            log_path: log_path.to_path_buf(),
            state_root: self.state_root.clone(),
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            tty: config.terminal,
        };
        shim::write_json(&dir, "shim.json", &request)?;
        let log = shim::open_shim_log(&dir)?;
        let log2 = log.try_clone().map_err(io("opening", &dir))?;
        // The launcher daemonises the real shim and exits at once.
        let status = Command::new(&self.shim_binary)
            .arg("shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .status()
            .map_err(io("running", &self.shim_binary))?;
        if !status.success() {
            let log = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            return Err(ContainerError::Io(format!("the shim failed to launch ({status}): {}", log.trim())));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.state(id)? {
                ContainerState::Lost if Instant::now() < deadline => {}
                ContainerState::Lost => return Err(ContainerError::Timeout(id.to_string(), START_TIMEOUT)),
                state => return Ok(state),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The state of container `id`.
    pub fn state(&self, id: &str) -> Result<ContainerState, ContainerError> {
        let dir = self.dir(id)?;
        if !dir.is_dir() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        if let Some(exited) = shim::read_json::<Exited>(&dir, "exited.json")? {
            return Ok(ContainerState::Exited(exited));
        }
        match shim::read_json::<Started>(&dir, "started.json")? {
            Some(started) if alive(started.shim_pid) => Ok(ContainerState::Running(started)),
            // Between `started.json` and `exited.json` the shim may just have finished.
            Some(started) => match shim::read_json::<Exited>(&dir, "exited.json")? {
                Some(exited) => Ok(ContainerState::Exited(exited)),
                None if alive(started.pid) => Ok(ContainerState::Running(started)),
                None => Ok(ContainerState::Lost),
            },
            None => Ok(ContainerState::Lost),
        }
    }

    /// Sends `signal` to the container's init process (a no-op if it is not running).
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), ContainerError> {
        if let ContainerState::Running(started) = self.state(id)? {
            match kill(Pid::from_raw(started.pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(ContainerError::Io(format!("signalling container {id}: {e}"))),
            }
        }
        Ok(())
    }

    /// Removes a container that is not running: its directory, and whatever a lost shim left
    /// behind (mount, libcontainer state, cgroup).
    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let dir = self.dir(id)?;
        match self.state(id) {
            Ok(ContainerState::Running(_)) => {
                return Err(ContainerError::Io(format!("container {id} is running; stop it first")));
            }
            Err(ContainerError::NotFound(_)) => return Ok(()),
            _ => {}
        }
        let state = self.state_root.join(id);
        if state.exists()
            && let Ok(mut container) = libcontainer::container::Container::load(state.clone())
        {
            let _ = container.delete(true);
        }
        let _ = fs::remove_dir_all(&state);
        let _ = nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        fs::remove_dir_all(&dir).map_err(io("removing", &dir))
    }

    /// The image layer directories of every container instance (running or not), as their
    /// shims were asked to stack them, top first.
    pub fn lowers_in_use(&self) -> Result<Vec<Vec<PathBuf>>, ContainerError> {
        let mut out = Vec::new();
        for id in self.list()? {
            if let Some(request) = shim::read_json::<ShimRequest>(&self.dir(&id)?, "shim.json")? {
                out.push(request.lowers);
            }
        }
        Ok(out)
    }

    /// The CRI log file of container `id` (from its `shim.json`), if it has one.
    pub fn log_path(&self, id: &str) -> Result<Option<PathBuf>, ContainerError> {
        Ok(shim::read_json::<ShimRequest>(&self.dir(id)?, "shim.json")?.map(|r| r.log_path))
    }

    /// Ids of every container directory (running or not).
    pub fn list(&self) -> Result<Vec<String>, ContainerError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.containers).map_err(io("listing", &self.containers))? {
            let entry = entry.map_err(io("listing", &self.containers))?;
            if entry.path().is_dir() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Whether `id` may name a container or sandbox directory: 1-128 of `[A-Za-z0-9_.-]`, not
/// starting with a dot.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.')
}

fn alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

/// Removes the (empty) cgroup `path` (e.g. a pod's parent cgroup) from every hierarchy: the v2
/// tree and each v1 controller. Containers' own cgroups are removed by their shims.
pub fn remove_cgroup(path: &str) {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|p| p == "..") {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(rel)];
    if let Ok(entries) = fs::read_dir(root) {
        candidates.extend(entries.flatten().map(|e| e.path().join(rel)));
    }
    for dir in candidates {
        if dir.is_dir()
            && let Err(e) = fs::remove_dir(&dir)
        {
            tracing::warn!(cgroup = %dir.display(), error = %e, "removing cgroup");
        }
    }
}
