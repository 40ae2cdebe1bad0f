//! Where pods live in the cgroup hierarchies (DESIGN.md §6), and the limits of the levels skiff
//! owns: a skiff root placed under the agent's own cgroup, `kubepods` below it (the node's
//! allocatable resources), a parent per QoS class, and one cgroup per pod:
//!
//! ```text
//! <agent's cgroup>/skiff/kubepods/pod<uid>              Guaranteed
//! <agent's cgroup>/skiff/kubepods/burstable/pod<uid>    Burstable
//! <agent's cgroup>/skiff/kubepods/besteffort/pod<uid>   BestEffort
//! ```
//!
//! A pod's cgroup holds its sandbox holder (`pause`, [`crate::sandbox`]) and one cgroup per
//! container, which libcontainer creates from the OCI spec's `cgroupsPath`. libcontainer uses one
//! path for every v1 controller, so the agent's "own cgroup" on a v1 or hybrid host is the deepest
//! of its per-controller cgroups that has all the others as ancestors: below it, pods are below
//! the agent in every hierarchy. Pod cgroups are created (with limits) before the sandbox starts
//! and removed after it stopped, together with the levels above that became empty, up to the
//! agent's own cgroup.
//!
//! What does not live here: container cgroups and their limits (libcontainer, in the shim), the
//! Kubernetes rules that compute a pod's limits (the agent).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::spec::Resources;

/// The directory of skiff's cgroup tree under the agent's own cgroup.
pub const ROOT_NAME: &str = "skiff";
/// The parent of every pod cgroup (as the kubelet names it).
pub const KUBEPODS: &str = "kubepods";
/// The CFS period of pod cgroups, in µs.
pub const CPU_PERIOD: u64 = 100_000;

/// cgroup failures.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup directory or file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: io::Error,
    },
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> CgroupError {
    move |source| CgroupError::Io { context, source }
}

/// How the host mounts cgroups (as libcontainer tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// v1 controllers only.
    Legacy,
    /// v1 controllers plus a v2 hierarchy (`/sys/fs/cgroup/unified`); limits are v1's.
    Hybrid,
    /// v2 only.
    Unified,
}

/// A pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Every container's requests equal its limits.
    Guaranteed,
    /// Some requests or limits.
    Burstable,
    /// None.
    BestEffort,
}

impl QosClass {
    /// From a `status.qosClass` value (anything unknown is `BestEffort`).
    pub fn parse(s: &str) -> Self {
        match s {
            "Guaranteed" => Self::Guaranteed,
            "Burstable" => Self::Burstable,
            _ => Self::BestEffort,
        }
    }

    fn dir(self) -> Option<&'static str> {
        match self {
            Self::Guaranteed => None,
            Self::Burstable => Some("burstable"),
            Self::BestEffort => Some("besteffort"),
        }
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The cgroup the mount shows as its root (`/` unless bind-mounted or namespaced).
    pub mount_root: String,
    /// Its v1 controllers (`cpu`, `memory`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// A v2 hierarchy.
    pub v2: bool,
    /// This process's cgroup in it.
    pub own: Option<String>,
}

impl Hierarchy {
    /// The directory of `cgroup` (absolute in the hierarchy) in this mount.
    pub fn dir(&self, cgroup: &str) -> PathBuf {
        let rel = cgroup.strip_prefix(self.mount_root.trim_end_matches('/')).unwrap_or(cgroup);
        self.mount.join(rel.trim_start_matches('/'))
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The host's cgroup hierarchies and skiff's root in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1, hybrid or v2.
    pub mode: Mode,
    /// Every mounted hierarchy.
    pub hierarchies: Vec<Hierarchy>,
    /// skiff's root cgroup (e.g. `/system.slice/skiff.service/skiff`).
    pub root: String,
}

/// Splits a cgroup path into its components.
fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Whether `ancestor` is `path` or one of its ancestors.
fn is_ancestor(ancestor: &str, path: &str) -> bool {
    let (a, p) = (components(ancestor), components(path));
    a.len() <= p.len() && a.iter().zip(&p).all(|(x, y)| x == y)
}

fn join(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

impl Layout {
    /// The layout of this host as seen by this process. A host whose cgroups cannot be read gets
    /// a layout without hierarchies (and pods no cgroups of their own).
    pub fn detect() -> Self {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut layout = Self::from_proc(&mountinfo, &own);
        if layout.mode == Mode::Unified {
            layout.check_delegation();
        }
        tracing::info!(mode = ?layout.mode, root = %layout.root, "cgroup layout");
        layout
    }

    /// The layout of this process (detected once).
    pub fn host() -> &'static Self {
        static HOST: OnceLock<Layout> = OnceLock::new();
        HOST.get_or_init(Self::detect)
    }

    /// The layout described by `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn from_proc(mountinfo: &str, proc_cgroup: &str) -> Self {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let left: Vec<&str> = left.split_whitespace().collect();
            let right: Vec<&str> = right.split_whitespace().collect();
            let (Some(root), Some(mount), Some(fstype)) = (left.get(3), left.get(4), right.first()) else { continue };
            let v2 = match *fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => continue,
            };
            let controllers: Vec<String> = if v2 {
                Vec::new()
            } else {
                right
                    .get(2)
                    .map(|o| o.split(',').filter(|c| !matches!(*c, "rw" | "ro")).map(String::from).collect())
                    .unwrap_or_default()
            };
            // A hierarchy mounted twice is used through its first mount.
            if hierarchies.iter().any(|h| h.v2 == v2 && h.controllers == controllers) {
                continue;
            }
            hierarchies.push(Hierarchy {
                mount: PathBuf::from(mount),
                mount_root: root.to_string(),
                controllers,
                v2,
                own: None,
            });
        }
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let mut wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
            wanted.sort_unstable();
            for h in &mut hierarchies {
                let mut have: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
                have.sort_unstable();
                if (h.v2 && controllers.is_empty()) || (!h.v2 && !have.is_empty() && have == wanted) {
                    h.own = Some(path.to_string());
                }
            }
        }
        let mode = if hierarchies.iter().any(|h| h.v2 && h.mount == Path::new("/sys/fs/cgroup")) {
            Mode::Unified
        } else if hierarchies.iter().any(|h| h.v2) {
            Mode::Hybrid
        } else {
            Mode::Legacy
        };
        let root = join(&Self::agent_cgroup(mode, &hierarchies), ROOT_NAME);
        Self { mode, hierarchies, root }
    }

    /// The cgroup the skiff root goes under: on v2 the agent's cgroup; on v1 the deepest of its
    /// controller cgroups that all others are ancestors of (`/` when they disagree, as then no
    /// single path is below the agent in every hierarchy).
    fn agent_cgroup(mode: Mode, hierarchies: &[Hierarchy]) -> String {
        let owns: Vec<&str> = hierarchies
            .iter()
            .filter(|h| {
                if mode == Mode::Unified {
                    h.v2
                } else {
                    !h.v2 && !h.controllers.iter().all(|c| c.starts_with("name="))
                }
            })
            .filter_map(|h| h.own.as_deref())
            .collect();
        let Some(deepest) = owns.iter().max_by_key(|p| components(p).len()) else { return "/".into() };
        if owns.iter().all(|p| is_ancestor(p, deepest)) {
            deepest.to_string()
        } else {
            tracing::warn!(cgroups = ?owns, "the agent's cgroups differ between controllers; pods go under the hierarchy root");
            "/".into()
        }
    }

    /// On v2, controllers can be delegated below the agent's cgroup only if it holds no
    /// processes (or is the root); otherwise the skiff root moves to the hierarchy's root.
    fn check_delegation(&mut self) {
        let Some(v2) = self.hierarchies.iter().find(|h| h.v2) else { return };
        let parent = self.root.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        if parent.is_empty() {
            return;
        }
        let dir = v2.dir(parent);
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = available
            .split_whitespace()
            .filter(|c| matches!(*c, "cpu" | "memory" | "pids" | "cpuset"))
            .map(|c| format!("+{c}"))
            .collect();
        if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), enable.join(" ")) {
            tracing::warn!(cgroup = parent, error = %e,
                "cannot delegate controllers below the agent's cgroup (it holds processes); pods go under the hierarchy root");
            self.root = join("/", ROOT_NAME);
        }
    }

    /// `<root>/kubepods`.
    pub fn kubepods(&self) -> String {
        join(&self.root, KUBEPODS)
    }

    /// The parent of the pods of a QoS class.
    pub fn qos_cgroup(&self, qos: QosClass) -> String {
        match qos.dir() {
            Some(dir) => join(&self.kubepods(), dir),
            None => self.kubepods(),
        }
    }

    /// The cgroup of pod `uid`.
    pub fn pod_cgroup(&self, qos: QosClass, uid: &str) -> String {
        join(&self.qos_cgroup(qos), &format!("pod{uid}"))
    }

    /// Every place pod `uid`'s cgroup may be (its QoS class unknown).
    pub fn pod_cgroup_candidates(&self, uid: &str) -> [String; 3] {
        [QosClass::Guaranteed, QosClass::Burstable, QosClass::BestEffort].map(|q| self.pod_cgroup(q, uid))
    }

    /// The files (controller, file, value) that set `limits` on one cgroup in this mode.
    pub fn limit_files(&self, limits: &Resources) -> Vec<(&'static str, &'static str, String)> {
        let mut files = Vec::new();
        let unified = self.mode == Mode::Unified;
        if let Some(shares) = limits.cpu_shares {
            files.push(if unified {
                ("cpu", "cpu.weight", shares_to_weight(shares).to_string())
            } else {
                ("cpu", "cpu.shares", shares.to_string())
            });
        }
        if let Some(period) = limits.cpu_period {
            let quota = limits.cpu_quota.filter(|q| *q > 0);
            if unified {
                let quota = quota.map_or("max".to_string(), |q| q.to_string());
                files.push(("cpu", "cpu.max", format!("{quota} {period}")));
            } else {
                files.push(("cpu", "cpu.cfs_period_us", period.to_string()));
                files.push(("cpu", "cpu.cfs_quota_us", quota.unwrap_or(-1).to_string()));
            }
        }
        if let Some(memory) = limits.memory_limit {
            let value = if memory > 0 {
                memory.to_string()
            } else if unified {
                "max".into()
            } else {
                "-1".into()
            };
            files.push(("memory", if unified { "memory.max" } else { "memory.limit_in_bytes" }, value));
        }
        if let Some(pids) = limits.pids_limit {
            files.push(("pids", "pids.max", if pids > 0 { pids.to_string() } else { "max".into() }));
        }
        files
    }

    fn limit_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        match self.mode {
            Mode::Unified => self.hierarchies.iter().find(|h| h.v2),
            Mode::Legacy | Mode::Hybrid => self.hierarchies.iter().find(|h| !h.v2 && h.has(controller)),
        }
    }

    fn write_limits(&self, cgroup: &str, limits: &Resources) -> Result<(), CgroupError> {
        for (controller, file, value) in self.limit_files(limits) {
            let Some(h) = self.limit_hierarchy(controller) else {
                tracing::debug!(controller, "no such cgroup controller; limit not set");
                continue;
            };
            let path = h.dir(cgroup).join(file);
            fs::write(&path, &value).map_err(io_err(format!("writing {value} to {}", path.display())))?;
        }
        Ok(())
    }

    /// Creates `cgroup` in every hierarchy (copying the CPUs and memory nodes into new v1 cpuset
    /// cgroups, which start empty; delegating the controllers down the path on v2).
    fn create(&self, cgroup: &str) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            let mut attempt = 0;
            loop {
                match self.create_in(h, cgroup) {
                    // Another agent pruned a level we were creating below: try again.
                    Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound && attempt < 3 => {
                        attempt += 1;
                    }
                    other => break other?,
                }
            }
        }
        Ok(())
    }

    fn create_in(&self, h: &Hierarchy, cgroup: &str) -> Result<(), CgroupError> {
        let target = h.dir(cgroup);
        let mut dir = h.mount.clone();
        let rel = target.strip_prefix(&h.mount).unwrap_or(&target).to_path_buf();
        for part in rel.components() {
            let parent = dir.clone();
            dir.push(part);
            if self.mode == Mode::Unified && h.v2 {
                enable_controllers(&parent);
            }
            if dir.is_dir() {
                continue;
            }
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("creating cgroup {}", dir.display()))(e)),
            }
            if !h.v2 && h.has("cpuset") {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let value = fs::read_to_string(parent.join(file))
                        .map_err(io_err(format!("reading {}", parent.join(file).display())))?;
                    fs::write(dir.join(file), value.trim())
                        .map_err(io_err(format!("writing {}", dir.join(file).display())))?;
                }
            }
        }
        Ok(())
    }

    /// Creates the cgroup of pod `uid` of class `qos` with `limits`, and the levels above it
    /// (`kubepods` with `node` as its limits, BestEffort's parent with the least CPU weight).
    /// Returns its path. Idempotent.
    pub fn ensure_pod(
        &self,
        qos: QosClass,
        uid: &str,
        limits: &Resources,
        node: &Resources,
    ) -> Result<String, CgroupError> {
        let pod = self.pod_cgroup(qos, uid);
        self.create(&pod)?;
        // The levels shared by all pods are best effort: a limit below what is in use is
        // refused, and must not keep a pod from starting.
        if let Err(e) = self.write_limits(&self.kubepods(), node) {
            tracing::warn!(error = %e, "setting the node's pod limits");
        }
        let besteffort = Resources { cpu_shares: Some(MIN_SHARES), ..Default::default() };
        if qos == QosClass::BestEffort
            && let Err(e) = self.write_limits(&self.qos_cgroup(QosClass::BestEffort), &besteffort)
        {
            tracing::warn!(error = %e, "setting the BestEffort cgroup's CPU weight");
        }
        self.write_limits(&pod, limits)?;
        Ok(pod)
    }

    /// Removes the cgroup `pod` (with the empty cgroups left in it: the holder's, containers'
    /// whose shim could not) from every hierarchy, then the levels above that became empty, up to
    /// the agent's own cgroup. Absent is fine; a cgroup that still holds processes is an error.
    pub fn remove_pod(&self, pod: &str) -> Result<(), CgroupError> {
        let mut first_error = None;
        for h in &self.hierarchies {
            let dir = h.dir(pod);
            if !dir.is_dir() {
                continue;
            }
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                    if let Err(e) = remove_dir(&entry.path()) {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = remove_dir(&dir) {
                first_error.get_or_insert(e);
                continue;
            }
            self.prune(h, pod);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes pod `uid`'s cgroup wherever it is (its QoS class unknown).
    pub fn remove_pod_uid(&self, uid: &str) -> Result<(), CgroupError> {
        let mut result = Ok(());
        for pod in self.pod_cgroup_candidates(uid) {
            if let Err(e) = self.remove_pod(&pod) {
                result = Err(e);
            }
        }
        result
    }

    /// Removes the empty ancestors of `cgroup` below the agent's own cgroup in `h`.
    fn prune(&self, h: &Hierarchy, cgroup: &str) {
        let own = h.own.as_deref().unwrap_or("/");
        let mut path = cgroup.to_string();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if parent.is_empty() || is_ancestor(parent, own) || !is_ancestor(&self.root_parent(), parent) {
                break;
            }
            if fs::remove_dir(h.dir(parent)).is_err() {
                break; // not empty (other pods), or gone
            }
            path = parent.to_string();
        }
    }

    /// The cgroup the skiff root is under.
    fn root_parent(&self) -> String {
        match self.root.rsplit_once('/') {
            Some(("", _)) | None => "/".into(),
            Some((parent, _)) => parent.into(),
        }
    }
}

fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing cgroup {}", dir.display()))(e)),
    }
}

/// Makes `cpu`, `memory`, `pids` and `cpuset` (those available) usable by the children of the
/// v2 cgroup `dir`. Best effort: a cgroup holding processes refuses.
fn enable_controllers(dir: &Path) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "memory" | "pids" | "cpuset") && !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if !missing.is_empty()
        && let Err(e) = fs::write(dir.join("cgroup.subtree_control"), missing.join(" "))
    {
        tracing::debug!(cgroup = %dir.display(), error = %e, "enabling cgroup controllers");
    }
}

/// The least CPU shares (the kubelet's `MinShares`).
pub const MIN_SHARES: u64 = 2;
/// The most CPU shares.
pub const MAX_SHARES: u64 = 262_144;

/// CPU shares of `milli_cpu` millicores (the kubelet's `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    ((milli_cpu as u64) * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota of `milli_cpu` millicores per `period` µs (the kubelet's `MilliCPUToQuota`: at
/// least 1 ms; none for no limit).
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> Option<i64> {
    (milli_cpu > 0).then(|| (milli_cpu * period as i64 / 1000).max(1000))
}

/// cgroup v2 `cpu.weight` of v1 CPU shares (runc's mapping, which libcontainer uses for
/// containers too).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares <= MIN_SHARES {
        return 1;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:29 / /mnt/cpu-again rw,relatime - cgroup cgroup rw,cpu
";

    fn hybrid(own: &str) -> Layout {
        Layout::from_proc(HYBRID_MOUNTS, own)
    }

    #[test]
    fn v1_root_goes_under_the_deepest_consistent_agent_cgroup() {
        let layout = hybrid("9:name=systemd:/\n8:pids:/\n4:memory:/jobs/j1\n3:cpuset:/\n1:cpu:/\n0::/\n");
        assert_eq!(layout.mode, Mode::Hybrid);
        assert_eq!(layout.hierarchies.len(), 6, "the second mount of cpu is ignored");
        assert_eq!(layout.root, "/jobs/j1/skiff");
        let memory = layout.hierarchies.iter().find(|h| h.has("memory")).expect("memory");
        assert_eq!(memory.own.as_deref(), Some("/jobs/j1"));

        let service = hybrid(
            "9:name=systemd:/system.slice/skiff.service\n8:pids:/system.slice/skiff.service\n\
             4:memory:/system.slice/skiff.service\n3:cpuset:/\n1:cpu:/system.slice\n0::/system.slice/skiff.service\n",
        );
        assert_eq!(service.root, "/system.slice/skiff.service/skiff");

        let diverging = hybrid("4:memory:/a\n1:cpu:/b\n3:cpuset:/\n8:pids:/\n");
        assert_eq!(diverging.root, "/skiff", "no single path is below both");
        assert_eq!(hybrid("").root, "/skiff");
    }

    #[test]
    fn unified_and_legacy_modes() {
        let unified = Layout::from_proc(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/user.slice/session-1.scope\n",
        );
        assert_eq!(unified.mode, Mode::Unified);
        assert_eq!(unified.root, "/user.slice/session-1.scope/skiff");
        let legacy = Layout::from_proc(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            "2:cpuacct,cpu:/x\n",
        );
        assert_eq!(legacy.mode, Mode::Legacy);
        assert_eq!(legacy.hierarchies[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(legacy.root, "/x/skiff");
    }

    #[test]
    fn pods_are_placed_by_qos_class() {
        let layout = hybrid("4:memory:/\n1:cpu:/\n");
        assert_eq!(layout.pod_cgroup(QosClass::Guaranteed, "u1"), "/skiff/kubepods/podu1");
        assert_eq!(layout.pod_cgroup(QosClass::Burstable, "u1"), "/skiff/kubepods/burstable/podu1");
        assert_eq!(layout.pod_cgroup(QosClass::BestEffort, "u1"), "/skiff/kubepods/besteffort/podu1");
        assert_eq!(QosClass::parse("Burstable"), QosClass::Burstable);
        assert_eq!(QosClass::parse(""), QosClass::BestEffort);
        let memory = layout.hierarchies.iter().find(|h| h.has("memory")).expect("memory");
        assert_eq!(memory.dir("/skiff/kubepods/podu1"), Path::new("/sys/fs/cgroup/memory/skiff/kubepods/podu1"));
        let nested = Hierarchy { mount_root: "/outer".into(), ..memory.clone() };
        assert_eq!(nested.dir("/outer/skiff"), Path::new("/sys/fs/cgroup/memory/skiff"));
    }

    #[test]
    fn limits_in_v1_and_v2_files() {
        let limits = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(CPU_PERIOD),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        let v1 = hybrid("");
        assert_eq!(
            v1.limit_files(&limits),
            [
                ("cpu", "cpu.shares", "512".to_string()),
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "50000".to_string()),
                ("memory", "memory.limit_in_bytes", (64 << 20).to_string()),
                ("pids", "pids.max", "100".to_string()),
            ]
        );
        let v2 = Layout { mode: Mode::Unified, ..v1.clone() };
        assert_eq!(
            v2.limit_files(&limits),
            [
                ("cpu", "cpu.weight", "59".to_string()),
                ("cpu", "cpu.max", "50000 100000".to_string()),
                ("memory", "memory.max", (64 << 20).to_string()),
                ("pids", "pids.max", "100".to_string()),
            ]
        );
        let unlimited = Resources {
            cpu_period: Some(CPU_PERIOD),
            cpu_quota: None,
            memory_limit: Some(-1),
            pids_limit: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            v2.limit_files(&unlimited),
            [
                ("cpu", "cpu.max", "max 100000".to_string()),
                ("memory", "memory.max", "max".to_string()),
                ("pids", "pids.max", "max".to_string()),
            ]
        );
        assert_eq!(v1.limit_files(&unlimited)[1], ("cpu", "cpu.cfs_quota_us", "-1".to_string()));
    }

    #[test]
    fn cpu_conversions_match_the_kubelet_and_runc() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD), None);
        assert_eq!(milli_cpu_to_quota(5, CPU_PERIOD), Some(1000));
        assert_eq!(milli_cpu_to_quota(500, CPU_PERIOD), Some(50_000));
        assert_eq!((shares_to_weight(2), shares_to_weight(1024), shares_to_weight(262_144)), (1, 100, 10_000));
    }

    /// A layout over plain directories standing in for the cgroup mounts.
    fn fake(dir: &Path, own_memory: &str) -> Layout {
        let mounts: String = ["cpu", "cpuset", "memory", "pids"]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i} 1 0:{i} / {}/{c} rw - cgroup cgroup rw,{c}\n", dir.display()))
            .collect();
        for c in ["cpu", "cpuset", "memory", "pids"] {
            fs::create_dir_all(dir.join(c)).expect("mount dir");
        }
        fs::write(dir.join("cpuset/cpuset.cpus"), "0-3\n").expect("cpus");
        fs::write(dir.join("cpuset/cpuset.mems"), "0\n").expect("mems");
        Layout::from_proc(&mounts, &format!("1:cpu:/\n2:cpuset:/\n3:memory:{own_memory}\n4:pids:/\n"))
    }

    #[test]
    fn ensure_pod_creates_every_level_with_its_limits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = fake(tmp.path(), "/job");
        assert_eq!(layout.root, "/job/skiff");
        let limits = Resources {
            cpu_shares: Some(256),
            memory_limit: Some(1 << 30),
            pids_limit: Some(42),
            ..Default::default()
        };
        let node = Resources { cpu_shares: Some(2048), memory_limit: Some(8 << 30), ..Default::default() };
        let pod = layout.ensure_pod(QosClass::BestEffort, "u1", &limits, &node).expect("ensure");
        assert_eq!(pod, "/job/skiff/kubepods/besteffort/podu1");
        let read = |p: &str| fs::read_to_string(tmp.path().join(p)).expect(p);
        assert_eq!(read("cpu/job/skiff/kubepods/besteffort/podu1/cpu.shares"), "256");
        assert_eq!(read("memory/job/skiff/kubepods/besteffort/podu1/memory.limit_in_bytes"), (1u64 << 30).to_string());
        assert_eq!(read("pids/job/skiff/kubepods/besteffort/podu1/pids.max"), "42");
        assert_eq!(read("cpu/job/skiff/kubepods/cpu.shares"), "2048");
        assert_eq!(read("memory/job/skiff/kubepods/memory.limit_in_bytes"), (8u64 << 30).to_string());
        assert_eq!(read("cpu/job/skiff/kubepods/besteffort/cpu.shares"), "2");
        // New cpuset levels got the parent's CPUs and memory nodes.
        assert_eq!(read("cpuset/job/skiff/kubepods/besteffort/podu1/cpuset.cpus"), "0-3");
        assert_eq!(read("cpuset/job/cpuset.mems"), "0");
        // Idempotent.
        layout.ensure_pod(QosClass::BestEffort, "u1", &limits, &node).expect("again");
    }

    #[test]
    fn remove_pod_prunes_empty_levels_but_never_the_agents_cgroup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = fake(tmp.path(), "/job");
        // Plain directories (no limit files), as rmdir needs them empty outside cgroupfs.
        for pod in ["/job/skiff/kubepods/burstable/podu1/pause", "/job/skiff/kubepods/burstable/podu2"] {
            for c in ["cpu", "memory"] {
                fs::create_dir_all(tmp.path().join(c).join(pod.trim_start_matches('/'))).expect("mkdir");
            }
        }
        layout.remove_pod_uid("u1").expect("remove");
        assert!(!tmp.path().join("memory/job/skiff/kubepods/burstable/podu1").exists());
        assert!(tmp.path().join("memory/job/skiff/kubepods/burstable/podu2").exists(), "other pods stay");
        layout.remove_pod(&layout.pod_cgroup(QosClass::Burstable, "u2")).expect("remove");
        assert!(!tmp.path().join("memory/job/skiff").exists(), "empty levels are pruned");
        assert!(tmp.path().join("memory/job").exists(), "the agent's own cgroup stays");
        assert!(!tmp.path().join("cpu/job").exists(), "levels created below the agent's cgroup go");
        layout.remove_pod_uid("absent").expect("absent is fine");
    }
}
