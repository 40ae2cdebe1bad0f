//! Image garbage collection by disk usage, as the kubelet's image GC manager decides it: when
//! the image file system's usage reaches the high threshold, delete unused images, least
//! recently used first (then first detected first), until the bytes needed to get back to the
//! low threshold are freed; images used since the collection began, or detected less than
//! `min_age` ago, are spared.
//!
//! This module only decides and counts: the caller supplies the disk usage (a fake in tests),
//! what it knows of each image (size, last use, first detection, whether a container uses it)
//! and the function that deletes one image. Tracking use, running the collection periodically
//! and reporting events are the agent's; deleting images and snapshots is the store's.

use std::time::{Duration, SystemTime};

/// When collection starts and where it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Usage percentage at which collection starts (`--image-gc-high-threshold`, 85). 100
    /// disables collection.
    pub high_threshold_percent: u8,
    /// Usage percentage collection frees down to (`--image-gc-low-threshold`, 80).
    pub low_threshold_percent: u8,
    /// Images detected more recently than this are never collected.
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self { high_threshold_percent: 85, low_threshold_percent: 80, min_age: Duration::ZERO }
    }
}

impl GcPolicy {
    /// Checks the thresholds as the kubelet validates its configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.high_threshold_percent > 100 || self.low_threshold_percent > 100 {
            return Err("image GC thresholds must be between 0 and 100".into());
        }
        if self.low_threshold_percent > self.high_threshold_percent {
            return Err(format!(
                "image GC low threshold ({}) must not be greater than the high threshold ({})",
                self.low_threshold_percent, self.high_threshold_percent
            ));
        }
        Ok(())
    }
}

/// Size and free space of the file system holding images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total bytes.
    pub capacity: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
}

impl DiskUsage {
    /// The file system holding `path` (statvfs).
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        let block = st.fragment_size() as u64;
        Ok(Self { capacity: st.blocks() as u64 * block, available: st.blocks_available() as u64 * block })
    }
}

/// What the collector knows of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcImage {
    /// Its manifest digest.
    pub id: String,
    /// Its size in bytes (as the store reports it).
    pub size: u64,
    /// When a container last used it.
    pub last_used: SystemTime,
    /// When the agent first saw it.
    pub first_detected: SystemTime,
    /// Whether a container (running or not) uses it now.
    pub in_use: bool,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Usage in percent when it started.
    pub usage_percent: u64,
    /// Bytes it set out to free (0 when under the high threshold).
    pub wanted: u64,
    /// Bytes freed (the sizes of the images deleted).
    pub freed: u64,
    /// Images deleted, in order.
    pub deleted: Vec<String>,
}

/// Why a collection did not free what it had to (the kubelet's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcError {
    /// The file system reports no capacity.
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,
    /// Not enough unused images to get under the low threshold.
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnough {
        /// Bytes it had to free.
        wanted: u64,
        /// Bytes it freed.
        freed: u64,
        /// Images it deleted anyway.
        deleted: Vec<String>,
    },
    /// Some deletions failed.
    #[error("wanted to free {wanted} bytes, but freed {freed} bytes space with errors in image deletion: {errors}")]
    Deletion {
        /// Bytes it had to free.
        wanted: u64,
        /// Bytes it freed.
        freed: u64,
        /// The deletion errors, joined.
        errors: String,
        /// Images it deleted.
        deleted: Vec<String>,
    },
}

/// Usage in whole percent, as the kubelet rounds it (`100 - available*100/capacity`).
fn usage_percent(usage: DiskUsage) -> u64 {
    let available = usage.available.min(usage.capacity);
    100 - (u128::from(available) * 100 / u128::from(usage.capacity)) as u64
}

/// The unused images in the order they are deleted: least recently used first, then first
/// detected first.
pub fn eviction_order(images: &[GcImage]) -> Vec<&GcImage> {
    let mut unused: Vec<&GcImage> = images.iter().filter(|i| !i.in_use).collect();
    unused.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.first_detected.cmp(&b.first_detected)));
    unused
}

/// Runs one collection at `now` (the collection's start): if `usage` is at or over the high
/// threshold, deletes images through `delete` until enough bytes are freed.
pub fn collect(
    policy: &GcPolicy,
    usage: DiskUsage,
    images: &[GcImage],
    now: SystemTime,
    delete: &mut dyn FnMut(&GcImage) -> Result<(), String>,
) -> Result<GcReport, GcError> {
    if usage.capacity == 0 {
        return Err(GcError::InvalidCapacity);
    }
    let percent = usage_percent(usage);
    let mut report = GcReport { usage_percent: percent, ..Default::default() };
    if policy.high_threshold_percent >= 100 || percent < u64::from(policy.high_threshold_percent) {
        return Ok(report);
    }
    let available = usage.available.min(usage.capacity);
    let target = (u128::from(usage.capacity) * u128::from(100 - policy.low_threshold_percent.min(100)) / 100) as u64;
    report.wanted = target.saturating_sub(available);
    let mut errors = Vec::new();
    for image in eviction_order(images) {
        if report.freed >= report.wanted {
            break;
        }
        if image.last_used >= now {
            continue;
        }
        if now.duration_since(image.first_detected).unwrap_or_default() < policy.min_age {
            continue;
        }
        match delete(image) {
            Ok(()) => {
                report.freed += image.size;
                report.deleted.push(image.id.clone());
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let errors = if errors.len() == 1 { errors.remove(0) } else { format!("[{}]", errors.join(", ")) };
        return Err(GcError::Deletion { wanted: report.wanted, freed: report.freed, errors, deleted: report.deleted });
    }
    if report.freed < report.wanted {
        return Err(GcError::NotEnough { wanted: report.wanted, freed: report.freed, deleted: report.deleted });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn image(id: &str, size: u64, last_used: u64, detected: u64, in_use: bool) -> GcImage {
        GcImage { id: id.into(), size, last_used: at(last_used), first_detected: at(detected), in_use }
    }

    fn run(usage: DiskUsage, images: &[GcImage]) -> (Result<GcReport, GcError>, Vec<String>) {
        let mut deleted = Vec::new();
        let result = collect(&GcPolicy::default(), usage, images, at(1000), &mut |i| {
            deleted.push(i.id.clone());
            Ok(())
        });
        (result, deleted)
    }

    #[test]
    fn does_nothing_under_the_high_threshold() {
        let images = [image("a", 10, 1, 1, false)];
        // 84% used.
        let (r, deleted) = run(DiskUsage { capacity: 100, available: 16 }, &images);
        assert_eq!(r.expect("ok").usage_percent, 84);
        assert!(deleted.is_empty());
    }

    #[test]
    fn deletes_least_recently_used_first_down_to_the_low_threshold() {
        let images = [
            image("recent", 10, 900, 1, false),
            image("oldest", 10, 100, 50, false),
            image("busy", 50, 10, 1, true),
            image("old-tie-later", 10, 200, 60, false),
            image("old-tie-earlier", 10, 200, 40, false),
        ];
        // 90% used; getting to 80% needs 100*20/100 - 10 = 10 bytes... of a 1000-byte disk: 100.
        let (r, deleted) = run(DiskUsage { capacity: 1000, available: 100 }, &images);
        let err = r.expect_err("only 40 bytes are eligible");
        assert_eq!(
            err.to_string(),
            "Failed to garbage collect required amount of images. Attempted to free 100 bytes, but only found 40 bytes eligible to free."
        );
        assert_eq!(deleted, ["oldest", "old-tie-earlier", "old-tie-later", "recent"]);

        // Enough after two deletions: 85% used on a 100-byte disk needs 5 bytes.
        let (r, deleted) = run(DiskUsage { capacity: 100, available: 15 }, &images);
        let report = r.expect("ok");
        assert_eq!((report.usage_percent, report.wanted, report.freed), (85, 5, 10));
        assert_eq!(deleted, ["oldest"]);
    }

    #[test]
    fn spares_images_used_since_the_start_and_young_ones() {
        let images = [image("just-used", 10, 1000, 1, false), image("young", 10, 1, 990, false)];
        let policy = GcPolicy { min_age: Duration::from_secs(60), ..Default::default() };
        let mut deleted = Vec::new();
        let r = collect(&policy, DiskUsage { capacity: 100, available: 0 }, &images, at(1000), &mut |i| {
            deleted.push(i.id.clone());
            Ok(())
        });
        assert!(matches!(r, Err(GcError::NotEnough { freed: 0, .. })));
        assert!(deleted.is_empty());
    }

    #[test]
    fn deletion_errors_and_bad_capacity_are_reported() {
        let images = [image("a", 10, 1, 1, false), image("b", 10, 2, 1, false)];
        let r = collect(&GcPolicy::default(), DiskUsage { capacity: 100, available: 0 }, &images, at(1000), &mut |i| {
            if i.id == "a" { Err("in use".into()) } else { Ok(()) }
        });
        let err = r.expect_err("a failed");
        assert!(err.to_string().starts_with("wanted to free 20 bytes, but freed 10 bytes space with errors"), "{err}");
        assert_eq!(run(DiskUsage { capacity: 0, available: 0 }, &images).0, Err(GcError::InvalidCapacity));
        // 100 disables collection.
        let off = GcPolicy { high_threshold_percent: 100, ..Default::default() };
        let r = collect(&off, DiskUsage { capacity: 100, available: 0 }, &images, at(1000), &mut |_| Ok(()));
        assert_eq!(r.expect("off").deleted, Vec::<String>::new());
        assert!(
            GcPolicy { high_threshold_percent: 70, low_threshold_percent: 80, ..Default::default() }
                .validate()
                .is_err()
        );
    }
}
