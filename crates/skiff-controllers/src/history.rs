//! ControllerRevisions: the template history DaemonSets and StatefulSets keep (upstream
//! `controller/history`), so `kubectl rollout history|undo` work on them.
//!
//! A revision is named `<parent>-<hash>`, where the hash covers the revision's data (a strategic
//! merge patch replacing the parent's pod template) and the parent's `collisionCount`; it carries
//! the parent's template labels plus `controller-revision-hash`, the parent's annotations (so
//! `kubernetes.io/change-cause` shows in the history), a controller owner reference and a
//! monotonically increasing `revision` number.
//!
//! What does not live here: deciding which revision is current or updated (the DaemonSet and
//! StatefulSet controllers do that) and adopting orphaned revisions (callers use
//! [`crate::podutil::claim`] as for pods).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The label carrying a revision's hash (DaemonSet pods carry the hash, StatefulSet pods the
/// revision's name).
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// Longest parent-name prefix of a revision name (upstream keeps names within 253 characters).
const MAX_PREFIX: usize = 223;

/// The alphabet of [`safe_fnv`].
pub const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-32a over `chunks` in order, rendered in upstream's "safe" alphabet (no vowels, no
/// confusable digits) as `rand.SafeEncodeString` does: the hash of pod-template and revision names.
pub fn safe_fnv(chunks: &[&[u8]]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in chunks.iter().flat_map(|c| c.iter()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string().bytes().map(|b| char::from(SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()])).collect()
}

/// The revision data of a pod template: a patch that replaces `spec.template` wholesale, the
/// form `kubectl rollout undo` applies back to the parent.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The data of a revision (`Value::Null` when it has none).
pub fn data_of(rev: &ControllerRevision) -> &Value {
    rev.data.as_ref().map(|d| &d.0).unwrap_or(&Value::Null)
}

/// The hash of a revision's data with `collision_count`.
pub fn hash_of(data: &Value, collision_count: Option<i32>) -> String {
    let data = serde_json::to_string(data).unwrap_or_default();
    let count = collision_count.map(|c| c.to_string()).unwrap_or_default();
    safe_fnv(&[data.as_bytes(), count.as_bytes()])
}

/// `<parent>-<hash>`, the parent's name cut to keep the result a valid name.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let prefix: String = parent.chars().take(MAX_PREFIX).collect();
    format!("{prefix}-{hash}")
}

/// A new (unsaved) revision of the parent described by `parent` and `owner`, with
/// `template_labels` plus the hash label, the parent's annotations, `data` and number `revision`.
pub fn new_revision(
    parent: &ObjectMeta,
    owner: OwnerReference,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_of(&data, collision_count);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(parent.name.as_deref().unwrap_or(""), &hash)),
            namespace: parent.namespace.clone(),
            labels: Some(labels),
            annotations: parent.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// Sorts revisions oldest first: by revision number, then creation time, then name.
pub fn sort(revs: &mut [ControllerRevision]) {
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The number the next revision gets: one more than the largest (1 for the first).
pub fn next_revision(revs: &[ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The revisions among `revs` equal to `needle`: same hash label (when both have one) and same
/// data.
pub fn find_equal<'a>(revs: &'a [ControllerRevision], needle: &ControllerRevision) -> Vec<&'a ControllerRevision> {
    let hash =
        |r: &ControllerRevision| r.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).cloned();
    let want = hash(needle);
    revs.iter()
        .filter(|r| match (hash(r), &want) {
            (Some(a), Some(b)) if &a != b => false,
            _ => data_of(r) == data_of(needle),
        })
        .collect()
}

/// The names of revisions to delete so that at most `limit` revisions not in `live` remain,
/// oldest first (`revs` sorted by [`sort`]).
pub fn to_truncate(revs: &[ControllerRevision], live: &HashSet<String>, limit: i32) -> Vec<String> {
    let old: Vec<&ControllerRevision> =
        revs.iter().filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or(""))).collect();
    let excess = old.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    old.iter().take(excess).filter_map(|r| r.metadata.name.clone()).collect()
}

/// Creates `rev`, handling hash collisions as upstream: when a revision of that name exists with
/// equal data it is returned instead; otherwise `collision_count` is bumped and the name is
/// recomputed. The caller persists a changed `collision_count` in the parent's status.
pub async fn create(
    api: &Api<ControllerRevision>,
    mut rev: ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, kube::Error> {
    loop {
        let parent = rev.metadata.name.as_deref().and_then(|n| n.rsplit_once('-')).map(|(p, _)| p.to_string());
        let hash = hash_of(data_of(&rev), Some(*collision_count));
        if let Some(p) = parent {
            rev.metadata.name = Some(revision_name(&p, &hash));
        }
        rev.metadata.labels.get_or_insert_with(BTreeMap::new).insert(CONTROLLER_REVISION_HASH.into(), hash);
        match api.create(&PostParams::default(), &rev).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
                let name = rev.metadata.name.clone().unwrap_or_default();
                let existing = api.get(&name).await?;
                if data_of(&existing) == data_of(&rev) {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn rev(parent: &str, image: &str, number: i64) -> ControllerRevision {
        let meta = ObjectMeta { name: Some(parent.into()), namespace: Some("default".into()), ..Default::default() };
        let owner = crate::podutil::new_controller_ref("apps/v1", "DaemonSet", parent, "uid-1");
        let t = template(image);
        new_revision(
            &meta,
            owner,
            t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            template_patch(&t),
            number,
            None,
        )
    }

    #[test]
    fn the_patch_replaces_the_template() {
        let p = template_patch(&template("nginx:1"));
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        assert_eq!(p["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1");
    }

    #[test]
    fn names_and_labels_follow_the_hash() {
        let a = rev("web", "nginx:1", 1);
        let b = rev("web", "nginx:2", 2);
        let hash =
            a.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).cloned().unwrap_or_default();
        assert_eq!(a.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
        assert_eq!(a.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
        assert_ne!(a.metadata.name, b.metadata.name);
        assert!(hash.bytes().all(|c| SAFE_ALPHANUMS.contains(&c)));
        // The collision count changes the hash.
        assert_ne!(hash_of(data_of(&a), Some(1)), hash_of(data_of(&a), None));
        assert_eq!(rev("web", "nginx:1", 7).metadata.name, a.metadata.name);
    }

    #[test]
    fn equal_revisions_are_found_by_data() {
        let revs = vec![rev("web", "nginx:1", 1), rev("web", "nginx:2", 2)];
        let needle = rev("web", "nginx:1", 3);
        let found = find_equal(&revs, &needle);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].revision, 1);
        assert!(find_equal(&revs, &rev("web", "nginx:3", 3)).is_empty());
    }

    #[test]
    fn history_is_sorted_numbered_and_truncated_oldest_first() {
        let mut revs = vec![rev("web", "b", 2), rev("web", "a", 1), rev("web", "c", 3), rev("web", "d", 4)];
        sort(&mut revs);
        assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(next_revision(&revs), 5);
        assert_eq!(next_revision(&[]), 1);
        let live: HashSet<String> = [revs[3].metadata.name.clone().unwrap_or_default()].into();
        let names =
            |i: &[usize]| i.iter().map(|&i| revs[i].metadata.name.clone().unwrap_or_default()).collect::<Vec<_>>();
        assert_eq!(to_truncate(&revs, &live, 1), names(&[0, 1]));
        assert_eq!(to_truncate(&revs, &live, 10), Vec::<String>::new());
        assert_eq!(to_truncate(&revs, &live, 0), names(&[0, 1, 2]));
    }

    #[test]
    fn long_parent_names_are_cut() {
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "abc").len(), MAX_PREFIX + 4);
    }
}
