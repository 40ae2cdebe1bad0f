//! Mounting the cgroup hierarchies when this process's mount namespace has none: `ip netns exec`
//! gives the command a fresh `/sys` without the host's cgroup mounts, and the container runtime
//! cannot place containers then. The hierarchies this process belongs to (`/proc/self/cgroup`)
//! are mounted the way a v1 or v2 host mounts them, in this mount namespace only (`ip netns exec`
//! makes one); nothing is done when any cgroup file system is mounted already.
//!
//! What does not live here: reading the layout (`skiff_runtime::cgroups`).

use std::path::Path;
use std::process::Command;

/// Where the hierarchies go.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One `mount` to run: file system type, options, target.
#[derive(Debug, PartialEq, Eq)]
pub struct MountStep {
    /// `tmpfs`, `cgroup` or `cgroup2`.
    pub fstype: &'static str,
    /// `-o` options.
    pub options: String,
    /// The mount point.
    pub target: String,
}

/// Whether `mountinfo` shows any cgroup file system.
pub fn has_cgroup_mounts(mountinfo: &str) -> bool {
    mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - ").map(|(_, r)| r))
        .any(|r| matches!(r.split_whitespace().next(), Some("cgroup" | "cgroup2")))
}

/// The mounts that recreate the hierarchies of `proc_cgroup`: v1 controllers under a tmpfs at
/// `/sys/fs/cgroup` (named hierarchies like `name=systemd` by their name) with the v2 hierarchy
/// at `/sys/fs/cgroup/unified` when the process is in one too (a hybrid host), or the v2
/// hierarchy at `/sys/fs/cgroup` itself when it is the only one.
pub fn plan(proc_cgroup: &str) -> Vec<MountStep> {
    let v1: Vec<&str> = proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers) = (parts.next()?, parts.next()?);
            (!controllers.is_empty()).then_some(controllers)
        })
        .collect();
    if v1.is_empty() {
        if proc_cgroup.lines().any(|l| l.starts_with("0::")) {
            return vec![MountStep { fstype: "cgroup2", options: "rw".into(), target: CGROUP_ROOT.into() }];
        }
        return Vec::new();
    }
    let mut steps = vec![MountStep { fstype: "tmpfs", options: "mode=755".into(), target: CGROUP_ROOT.into() }];
    for controllers in v1 {
        let (options, dir) = match controllers.strip_prefix("name=") {
            Some(name) => (format!("none,name={name}"), name.to_string()),
            None => (controllers.to_string(), controllers.to_string()),
        };
        steps.push(MountStep { fstype: "cgroup", options, target: format!("{CGROUP_ROOT}/{dir}") });
    }
    if proc_cgroup.lines().any(|l| l.starts_with("0::")) {
        steps.push(MountStep { fstype: "cgroup2", options: "rw".into(), target: format!("{CGROUP_ROOT}/unified") });
    }
    steps
}

/// Mounts the hierarchies if none is mounted; failures are logged (the runtime then reports
/// what it cannot do).
pub fn ensure_mounted() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mountinfo.is_empty() || has_cgroup_mounts(&mountinfo) {
        return;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let steps = plan(&own);
    if steps.is_empty() || !Path::new(CGROUP_ROOT).is_dir() {
        return;
    }
    for step in &steps {
        if let Err(e) = std::fs::create_dir_all(&step.target) {
            tracing::warn!(target = %step.target, error = %e, "cannot create a cgroup mount point");
            return;
        }
        let status =
            Command::new("mount").args(["-t", step.fstype, "-o", &step.options, step.fstype, &step.target]).status();
        match status {
            Ok(s) if s.success() => {}
            // Without the v2 hierarchy of a hybrid host the v1 controllers still serve.
            Ok(s) if step.fstype == "cgroup2" && step.target != CGROUP_ROOT => {
                tracing::warn!(target = %step.target, status = %s, "cannot mount the unified cgroup hierarchy");
            }
            Ok(s) => {
                tracing::warn!(target = %step.target, status = %s, "cannot mount a cgroup hierarchy");
                return;
            }
            Err(e) => {
                tracing::warn!(target = %step.target, error = %e, "cannot run mount");
                return;
            }
        }
    }
    tracing::info!(hierarchies = steps.len(), "no cgroup hierarchy was mounted here (ip netns exec?); mounted them");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hosts_get_a_tmpfs_one_mount_per_hierarchy_and_the_unified_one() {
        let own = "9:name=systemd:/\n4:memory:/x\n2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(plan("4:memory:/x\n").len(), 2);
        let steps = plan(own);
        let targets: Vec<(&str, &str, &str)> =
            steps.iter().map(|s| (s.fstype, s.options.as_str(), s.target.as_str())).collect();
        assert_eq!(
            targets,
            [
                ("tmpfs", "mode=755", "/sys/fs/cgroup"),
                ("cgroup", "none,name=systemd", "/sys/fs/cgroup/systemd"),
                ("cgroup", "memory", "/sys/fs/cgroup/memory"),
                ("cgroup", "cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
                ("cgroup2", "rw", "/sys/fs/cgroup/unified"),
            ]
        );
    }

    #[test]
    fn v2_hosts_get_the_unified_hierarchy_and_mounted_ones_nothing() {
        assert_eq!(plan("0::/user.slice\n")[0].fstype, "cgroup2");
        assert!(plan("").is_empty());
        let mounted = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert!(has_cgroup_mounts(mounted));
        assert!(!has_cgroup_mounts("22 1 0:21 / /sys rw - sysfs sysfs rw\n"));
    }
}
