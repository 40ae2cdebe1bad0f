//! The agent's image garbage collection loop: every 5 minutes (first 10 s after start), detect
//! the images (first seen, last used: in use now counts as used now), and when the image file
//! system is at or over the high threshold delete unused images, least recently used first,
//! down to the low threshold, then the snapshots only they needed (`skiff_runtime::images::gc`
//! decides, `skiff_runtime::image_usage` deletes). Events on the Node as the kubelet records
//! them: `FreeDiskSpaceFailed` when not enough could be freed, `InvalidDiskCapacity` for a file
//! system without capacity, `ImageGCFailed` when collection fails twice in a row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use skiff_runtime::container::Runtime;
use skiff_runtime::image_usage;
use skiff_runtime::images::gc::{self, DiskUsage, GcError, GcImage, GcPolicy, GcReport};

use super::{ImageManager, Usage};

/// Time between collections (the kubelet's `ImageGCPeriod`).
pub const PERIOD: Duration = Duration::from_secs(300);
/// Delay of the first collection after start.
pub const FIRST_DELAY: Duration = Duration::from_secs(10);

/// Why one collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The collection's own verdict.
    #[error(transparent)]
    Gc(#[from] GcError),
    /// The disk usage or the images could not be read.
    #[error("{0}")]
    Read(String),
}

/// Merges what the manager knows with the images present: new images are detected now, images
/// in use are used now, images gone are forgotten.
pub fn detect(
    known: &HashMap<String, Usage>,
    present: &[String],
    in_use: &std::collections::HashSet<String>,
    now: SystemTime,
) -> HashMap<String, Usage> {
    present
        .iter()
        .map(|id| {
            let mut usage =
                known.get(id).copied().unwrap_or(Usage { first_detected: now, last_used: SystemTime::UNIX_EPOCH });
            if in_use.contains(id) {
                usage.last_used = now;
            }
            (id.clone(), usage)
        })
        .collect()
}

/// One collection on `runtime` at `now`, reading the disk usage with `disk` (statvfs of the image
/// directory in production, a fake in tests). Returns the report and the usage map to keep.
pub fn collect_once(
    runtime: &Runtime,
    policy: &GcPolicy,
    known: &HashMap<String, Usage>,
    now: SystemTime,
    disk: &dyn Fn() -> std::io::Result<DiskUsage>,
) -> (Result<GcReport, CollectError>, HashMap<String, Usage>) {
    let read = |e: &dyn std::fmt::Display| CollectError::Read(e.to_string());
    let (images, in_use) = match (runtime.images().list(), image_usage::images_in_use(runtime)) {
        (Ok(images), Ok(in_use)) => (images, in_use),
        (Err(e), _) => return (Err(read(&e)), known.clone()),
        (_, Err(e)) => return (Err(read(&e)), known.clone()),
    };
    let ids: Vec<String> = images.iter().map(|i| i.manifest.clone()).collect();
    let mut usage = detect(known, &ids, &in_use, now);
    let candidates: Vec<GcImage> = images
        .iter()
        .map(|i| {
            let u = usage[&i.manifest];
            GcImage {
                id: i.manifest.clone(),
                size: i.size,
                last_used: u.last_used,
                first_detected: u.first_detected,
                in_use: in_use.contains(&i.manifest),
            }
        })
        .collect();
    let disk_usage = match disk() {
        Ok(d) => d,
        Err(e) => return (Err(read(&e)), usage),
    };
    let result = gc::collect(policy, disk_usage, &candidates, now, &mut |image| {
        image_usage::remove_image(runtime, &image.id, &in_use).map_err(|e| e.to_string())
    });
    let deleted = match &result {
        Ok(r) => r.deleted.clone(),
        Err(GcError::NotEnough { deleted, .. } | GcError::Deletion { deleted, .. }) => deleted.clone(),
        Err(GcError::InvalidCapacity) => Vec::new(),
    };
    for id in &deleted {
        usage.remove(id);
        tracing::info!(image = %id, "image garbage collected");
    }
    (result.map_err(CollectError::from), usage)
}

async fn node_event(recorder: &Recorder, node: &str, reason: &str, note: String) {
    // The kubelet's node reference uses the node name as uid.
    let reference = ObjectReference {
        kind: Some("Node".into()),
        api_version: Some("v1".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &reference).await {
        tracing::debug!(error = %e, "publishing node event");
    }
}

/// Runs the collection loop until the task is aborted.
pub async fn run(manager: Arc<ImageManager>, recorder: Recorder, policy: GcPolicy, node: String) {
    tokio::time::sleep(FIRST_DELAY).await;
    let mut previous_failed = false;
    loop {
        let runtime = Arc::clone(manager.runtime());
        let known = manager.usage();
        let now = SystemTime::now();
        let dir = runtime.images().dir().to_path_buf();
        let outcome =
            tokio::task::spawn_blocking(move || collect_once(&runtime, &policy, &known, now, &|| DiskUsage::of(&dir)))
                .await;
        match outcome {
            Ok((result, usage)) => {
                // Uses recorded while the collection ran win over its snapshot.
                let mut merged = usage;
                for (id, u) in manager.usage() {
                    if let Some(m) = merged.get_mut(&id) {
                        m.last_used = m.last_used.max(u.last_used);
                    }
                }
                manager.set_usage(merged);
                match result {
                    Ok(report) => {
                        if report.wanted > 0 {
                            tracing::info!(
                                usage = report.usage_percent,
                                freed = report.freed,
                                "image garbage collection freed space"
                            );
                        }
                        previous_failed = false;
                    }
                    Err(e) => {
                        match &e {
                            CollectError::Gc(GcError::NotEnough { .. }) => {
                                node_event(&recorder, &node, "FreeDiskSpaceFailed", e.to_string()).await
                            }
                            CollectError::Gc(GcError::InvalidCapacity) => {
                                node_event(&recorder, &node, "InvalidDiskCapacity", e.to_string()).await
                            }
                            _ => {}
                        }
                        if previous_failed {
                            tracing::error!(error = %e, "image garbage collection failed multiple times in a row");
                            node_event(&recorder, &node, "ImageGCFailed", e.to_string()).await;
                        } else {
                            tracing::warn!(error = %e, "image garbage collection failed");
                        }
                        previous_failed = true;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "image garbage collection task"),
        }
        tokio::time::sleep(PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn detection_keeps_first_sight_and_marks_use() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let known = HashMap::from([
            ("a".to_string(), Usage { first_detected: t(10), last_used: t(20) }),
            ("gone".to_string(), Usage { first_detected: t(1), last_used: t(2) }),
        ]);
        let in_use = HashSet::from(["b".to_string()]);
        let out = detect(&known, &["a".into(), "b".into(), "c".into()], &in_use, t(100));
        assert_eq!(out["a"], Usage { first_detected: t(10), last_used: t(20) });
        assert_eq!(out["b"], Usage { first_detected: t(100), last_used: t(100) });
        assert_eq!(out["c"], Usage { first_detected: t(100), last_used: SystemTime::UNIX_EPOCH });
        assert!(!out.contains_key("gone"));
    }

    #[test]
    fn collects_from_a_real_store_with_a_fake_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Runtime::open(dir.path(), std::path::Path::new("/bin/false")).expect("runtime");
        let store = runtime.images();
        // Two images with one layer each, built as OCI layouts would give them.
        let mut ids = Vec::new();
        for (i, content) in [b"first layer".as_slice(), b"second layer".as_slice()].into_iter().enumerate() {
            let layer = store.blobs().write_bytes(content).expect("layer");
            let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [layer]}});
            let config = store.blobs().write_bytes(&serde_json::to_vec(&config).expect("json")).expect("config");
            let manifest = serde_json::json!({"schemaVersion": 2, "config": {"digest": config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer}]});
            let bytes = serde_json::to_vec(&manifest).expect("json");
            let digest = skiff_runtime::images::blobs::digest_of(&bytes);
            let tmp = tempfile::NamedTempFile::new_in(store.ingest_dir().expect("ingest")).expect("tmp");
            std::fs::write(tmp.path(), &bytes).expect("write");
            let staged = skiff_runtime::images::blobs::Staged { digest: digest.clone(), file: tmp.into_temp_path() };
            let reference = skiff_runtime::images::Reference::parse(&format!("r:5000/img{i}:1")).expect("ref");
            store.record_pulled(vec![staged], &digest, None, &reference).expect("record");
            ids.push(digest);
        }
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        // img1 used long ago, img0 never: img0 goes first, and freeing it is not enough.
        let known = HashMap::from([(ids[1].clone(), Usage { first_detected: t(1), last_used: t(50) })]);
        let policy = GcPolicy::default();
        let full = || Ok(DiskUsage { capacity: 1_000_000, available: 0 });
        let (result, usage) = collect_once(&runtime, &policy, &known, t(100), &full);
        let err = result.expect_err("cannot free 800000 bytes");
        assert!(err.to_string().starts_with("Failed to garbage collect required amount of images"), "{err}");
        let CollectError::Gc(GcError::NotEnough { deleted, .. }) = err else { panic!("not enough") };
        assert_eq!(deleted, [ids[0].clone(), ids[1].clone()], "the never-used image goes first");
        assert!(store.list().expect("list").is_empty(), "both unused images went");
        assert!(usage.is_empty());

        // Under the threshold nothing is touched.
        let (result, _) = collect_once(&runtime, &policy, &HashMap::new(), t(100), &|| {
            Ok(DiskUsage { capacity: 100, available: 50 })
        });
        assert_eq!(result.expect("ok").deleted, Vec::<String>::new());
    }
}
