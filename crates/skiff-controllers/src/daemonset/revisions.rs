//! The DaemonSet's side of its ControllerRevision history, as pure functions (upstream's
//! `constructHistory`, `dedupCurHistories` and `cleanupHistory` decisions): which revisions match
//! the current template, which duplicate goes, and which old revisions are truncated.
//!
//! What does not live here: naming, hashing and creating revisions ([`crate::history`]) and the
//! API calls ([`super`]).

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use serde_json::Value;

use crate::history::{self, CONTROLLER_REVISION_HASH};

/// Splits `revs` into those whose data is `data` (the current template's) and the others,
/// each sorted oldest first.
pub fn split(revs: Vec<ControllerRevision>, data: &Value) -> (Vec<ControllerRevision>, Vec<ControllerRevision>) {
    let (mut cur, mut old): (Vec<_>, Vec<_>) = revs.into_iter().partition(|r| history::data_of(r) == data);
    history::sort(&mut cur);
    history::sort(&mut old);
    (cur, old)
}

/// Of several revisions matching the template, the one kept (the highest revision) and the
/// names of the duplicates to delete; `None` when there is none.
pub fn dedup(mut cur: Vec<ControllerRevision>) -> Option<(ControllerRevision, Vec<String>)> {
    history::sort(&mut cur);
    let keep = cur.pop()?;
    Some((keep, cur.into_iter().filter_map(|r| r.metadata.name).collect()))
}

/// The names of old revisions to delete so that at most `limit` remain, oldest first, never one
/// whose hash a live pod still carries.
pub fn to_truncate(old: &[ControllerRevision], live_hashes: &HashSet<String>, limit: i32) -> Vec<String> {
    let excess = old.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    if excess == 0 {
        return Vec::new();
    }
    let live: HashSet<String> = old
        .iter()
        .filter(|r| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH))
                .is_some_and(|h| live_hashes.contains(h))
        })
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    history::to_truncate(old, &live, 0).into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn rev(image: &str, number: i64) -> ControllerRevision {
        let meta = ObjectMeta { name: Some("ds".into()), ..Default::default() };
        let owner = crate::podutil::new_controller_ref("apps/v1", "DaemonSet", "ds", "u");
        let mut r = history::new_revision(&meta, owner, None, history::template_patch(&template(image)), number, None);
        // Distinct names for duplicates of one template.
        r.metadata.name = Some(format!("ds-{image}-{number}"));
        r
    }

    #[test]
    fn current_and_old_revisions() {
        let data = history::template_patch(&template("b"));
        let (cur, old) = split(vec![rev("b", 3), rev("a", 1), rev("c", 2), rev("b", 4)], &data);
        assert_eq!(cur.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(old.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
        let (keep, delete) = dedup(cur).expect("one kept");
        assert_eq!(keep.revision, 4);
        assert_eq!(delete, vec!["ds-b-3".to_string()]);
        assert!(dedup(Vec::new()).is_none());
        // Rolling back to an old template: the matching revision gets the next number.
        let (cur, old) = split(vec![rev("a", 1), rev("b", 2)], &history::template_patch(&template("a")));
        assert_eq!((cur[0].revision, history::next_revision(&old)), (1, 3));
    }

    #[test]
    fn old_revisions_beyond_the_limit_are_truncated_unless_live() {
        let old = vec![rev("a", 1), rev("b", 2), rev("c", 3), rev("d", 4)];
        let hash = |r: &ControllerRevision| {
            r.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).cloned().unwrap_or_default()
        };
        assert_eq!(to_truncate(&old, &HashSet::new(), 2), vec!["ds-a-1".to_string(), "ds-b-2".to_string()]);
        let live: HashSet<String> = [hash(&old[0])].into();
        assert_eq!(to_truncate(&old, &live, 2), vec!["ds-b-2".to_string(), "ds-c-3".to_string()]);
        assert_eq!(to_truncate(&old, &HashSet::new(), 10), Vec::<String>::new());
        assert_eq!(to_truncate(&old, &HashSet::new(), 0).len(), 4);
    }
}
