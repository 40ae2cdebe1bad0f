//! The Node's `status.images` as the kubelet reports it: the largest 50 images first, each with
//! up to 5 names (repository digests `name@sha256:…`, then tags) and its size in bytes.

use k8s_openapi::api::core::v1::ContainerImage;
use skiff_runtime::images::{ImageRecord, Reference};

/// Most images reported (the kubelet's `nodeStatusMaxImages`).
pub const MAX_IMAGES: usize = 50;
/// Most names per image.
pub const MAX_NAMES: usize = 5;

/// `status.images` for `images`.
pub fn node_images(mut images: Vec<ImageRecord>) -> Vec<ContainerImage> {
    images.sort_by(|a, b| b.size.cmp(&a.size).then(a.manifest.cmp(&b.manifest)));
    images.truncate(MAX_IMAGES);
    images
        .iter()
        .map(|image| {
            let refs: Vec<Reference> = image.references.iter().filter_map(|r| Reference::parse(r).ok()).collect();
            let mut names: Vec<String> = Vec::new();
            for r in &refs {
                let digest = format!("{}@{}", r.name(), image.repo_digest());
                if !names.contains(&digest) {
                    names.push(digest);
                }
            }
            names.extend(refs.iter().filter(|r| r.tag.is_some() && r.digest.is_none()).map(ToString::to_string));
            names.truncate(MAX_NAMES);
            ContainerImage { names: Some(names), size_bytes: Some(image.size as i64) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(manifest: &str, size: u64, refs: &[&str]) -> ImageRecord {
        ImageRecord {
            manifest: manifest.into(),
            config: "sha256:c".into(),
            references: refs.iter().map(|s| s.to_string()).collect(),
            layers: Vec::new(),
            size,
            imported: 0,
            index: None,
        }
    }

    #[test]
    fn largest_first_digests_then_tags() {
        let d = format!("sha256:{}", "d".repeat(64));
        let images = vec![
            record("sha256:small", 10, &["docker.io/library/busybox:latest"]),
            record("sha256:big", 99, &["r:5000/app:1", "r:5000/app:2", &format!("r:5000/app@{d}"), "r:5000/other:x"]),
        ];
        let out = node_images(images);
        assert_eq!(out[0].size_bytes, Some(99));
        assert_eq!(
            out[0].names.as_deref().expect("names"),
            ["r:5000/app@sha256:big", "r:5000/other@sha256:big", "r:5000/app:1", "r:5000/app:2", "r:5000/other:x"]
        );
        assert_eq!(
            out[1].names.as_deref().expect("names"),
            ["docker.io/library/busybox@sha256:small", "docker.io/library/busybox:latest"]
        );
        let many: Vec<ImageRecord> = (0..60).map(|i| record(&format!("sha256:{i}"), i, &[])).collect();
        assert_eq!(node_images(many).len(), MAX_IMAGES);
    }
}
