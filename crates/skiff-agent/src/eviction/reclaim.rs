//! Node-level reclaim under disk pressure, tried before any pod is evicted (upstream's
//! `DeleteAllUnusedContainers` then `DeleteUnusedImages`):
//!
//! - dead containers: every ended instance that is not the newest of its container, and every
//!   ended instance of a pod that has finished, with its log files (rotated ones too);
//! - unused images: every image no container instance uses, whatever the image GC thresholds.
//!
//! What does not live here: deciding when to reclaim ([`super::EvictionManager`]), the image GC
//! loop ([`crate::images::gc`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::images::gc::{DiskUsage, GcPolicy};

use crate::images::ImageManager;

/// `<uid>-<container>-<attempt>` split into `(<uid>-<container>, attempt)`.
fn split_instance(id: &str) -> Option<(&str, u32)> {
    let (base, attempt) = id.rsplit_once('-')?;
    Some((base, attempt.parse().ok()?))
}

/// The dead instances to remove among `ids`: ended ones that are not their container's newest,
/// and every ended one of the pods in `finished` (pod uids). `ended` tells whether an instance
/// has ended.
pub fn dead_instances(ids: &[String], finished: &HashSet<String>, ended: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut newest: HashMap<&str, u32> = HashMap::new();
    for (base, attempt) in ids.iter().filter_map(|id| split_instance(id)) {
        let n = newest.entry(base).or_insert(attempt);
        *n = (*n).max(attempt);
    }
    ids.iter()
        .filter(|id| {
            let Some((base, attempt)) = split_instance(id) else { return false };
            let uid = id.get(..36).unwrap_or("");
            (attempt < newest[base] || finished.contains(uid)) && ended(id)
        })
        .cloned()
        .collect()
}

/// Removes a log file and its rotated siblings (`<log>.<timestamp>[.gz]`).
fn remove_logs(log: &Path) {
    let _ = std::fs::remove_file(log);
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else { return };
    let prefix = format!("{name}.");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes the dead container instances (see the module doc) and their logs; returns how many
/// went. Blocking.
pub fn delete_dead_containers(runtime: &Runtime, finished: &HashSet<String>) -> usize {
    let ids = runtime.list().unwrap_or_default();
    let ended = |id: &str| matches!(runtime.state(id), Ok(ContainerState::Exited(_) | ContainerState::Lost));
    let mut removed = 0;
    for id in dead_instances(&ids, finished, &ended) {
        let log = runtime.log_path(&id).ok().flatten();
        match runtime.remove(&id) {
            Ok(()) => {
                removed += 1;
                if let Some(log) = log {
                    remove_logs(&log);
                }
                tracing::info!(container = %id, "removed a dead container to reclaim disk");
            }
            Err(e) => tracing::warn!(container = %id, error = %e, "removing a dead container"),
        }
    }
    removed
}

/// Deletes every image no container uses; returns how many went. Blocking.
pub fn delete_unused_images(manager: &ImageManager) -> usize {
    let runtime = manager.runtime();
    // A collection that must free more than any disk holds deletes every unused image.
    let policy = GcPolicy { high_threshold_percent: 0, low_threshold_percent: 0, min_age: std::time::Duration::ZERO };
    let full = || Ok(DiskUsage { capacity: u64::MAX / 2, available: 0 });
    let (result, usage) = crate::images::gc::collect_once(runtime, &policy, &manager.usage(), SystemTime::now(), &full);
    manager.set_usage(usage);
    let deleted = match result {
        Ok(report) => report.deleted.len(),
        Err(crate::images::gc::CollectError::Gc(
            skiff_runtime::images::gc::GcError::NotEnough { deleted, .. }
            | skiff_runtime::images::gc::GcError::Deletion { deleted, .. },
        )) => deleted.len(),
        Err(e) => {
            tracing::warn!(error = %e, "deleting unused images");
            0
        }
    };
    if deleted > 0 {
        tracing::info!(images = deleted, "deleted unused images to reclaim disk");
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
    const B: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

    #[test]
    fn dead_instances_spare_the_newest_of_running_pods() {
        let ids: Vec<String> = [
            format!("{A}-main-0"),
            format!("{A}-main-1"),
            format!("{A}-main-2"),
            format!("{A}-side-car-0"),
            format!("{B}-main-0"),
            "not-an-instance".to_string(),
        ]
        .into();
        let running = format!("{A}-main-1");
        let ended = |id: &str| id != running;
        let none = HashSet::new();
        assert_eq!(dead_instances(&ids, &none, &ended), [format!("{A}-main-0")], "a running old instance stays");
        let finished = HashSet::from([B.to_string()]);
        assert_eq!(dead_instances(&ids, &finished, &ended), [format!("{A}-main-0"), format!("{B}-main-0")]);
    }

    #[test]
    fn logs_go_with_their_rotations() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["0.log", "0.log.20240101-000000.gz", "0.log.20240101-000100", "1.log", "10.log"] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        remove_logs(&dir.path().join("0.log"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1.log", "10.log"]);
    }
}
