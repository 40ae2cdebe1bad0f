//! Ownership of the replica count seen through the `/scale` subresource, as upstream's scale
//! handler does it: [`to_subresource`] turns the parent's entries into entries of the
//! autoscaling/v1 Scale (each owner of the parent's replicas field owns the Scale's
//! `spec.replicas`), and after a write to the Scale [`to_parent`] turns the result back.
//!
//! Where each version of the parent keeps its replica count (`spec.replicas`, or a custom
//! resource's `specReplicasPath`) is the caller's knowledge, given as a function. The Scale
//! object itself and the HTTP handling live in `handlers::subresource`.

use super::fieldpath::{Path, field};
use super::{Entry, FieldSet};

/// The API version of the Scale subresource.
pub const SCALE_API_VERSION: &str = "autoscaling/v1";

/// The Scale's replicas field, `spec.replicas`.
fn scale_replicas() -> Path {
    vec![field("spec"), field("replicas")]
}

/// Where a version of the parent keeps its replica count: `None` for a version the server does
/// not serve, `Some(None)` for one without a scale subresource.
pub type ReplicasPath<'a> = &'a dyn Fn(&str) -> Option<Option<Path>>;

/// The parent's entries as entries of its Scale: those owning the replica count, owning the
/// Scale's `spec.replicas`. Entries keep their identity (manager, operation, subresource and
/// API version), so conflicts name them as they are recorded on the parent.
pub fn to_subresource(parent: &[Entry], replicas: ReplicasPath<'_>) -> Vec<Entry> {
    parent
        .iter()
        .filter(|e| replicas(&e.api_version).flatten().is_some_and(|p| e.fields.contains(&p)))
        .map(|e| Entry { fields: FieldSet::from([scale_replicas()]), ..e.clone() })
        .collect()
}

/// Merges the Scale's entries after a write back into the parent's: a parent entry whose
/// replica ownership the write took loses it; managers new to the Scale (the writer) gain the
/// replicas field of `parent_version`. Entries of versions the server does not serve are
/// dropped, as upstream does.
pub fn to_parent(parent: &[Entry], scale: &[Entry], parent_version: &str, replicas: ReplicasPath<'_>) -> Vec<Entry> {
    let mut scale: Vec<&Entry> = scale.iter().collect();
    let mut out = Vec::new();
    for e in parent {
        let Some(path) = replicas(&e.api_version) else { continue };
        match path {
            Some(p) if e.fields.contains(&p) => match scale.iter().position(|s| s.same_identity(e)) {
                Some(i) => {
                    scale.remove(i);
                    out.push(e.clone());
                }
                None => {
                    let mut rest = e.clone();
                    rest.fields.remove(&p);
                    out.push(rest);
                }
            },
            _ => out.push(e.clone()),
        }
    }
    let Some(Some(path)) = replicas(parent_version) else { return out };
    for s in scale.into_iter().filter(|s| s.fields.contains(&scale_replicas())) {
        out.push(Entry {
            api_version: parent_version.to_string(),
            fields: FieldSet::from([path.clone()]),
            ..s.clone()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Operation;
    use super::*;

    fn entry(manager: &str, operation: Operation, subresource: &str, paths: &[&[&str]]) -> Entry {
        Entry {
            manager: manager.into(),
            operation,
            api_version: "apps/v1".into(),
            time: Some("2026-01-01T00:00:00Z".into()),
            subresource: subresource.into(),
            fields: paths.iter().map(|p| p.iter().map(|e| field(e)).collect()).collect(),
        }
    }

    fn replicas(version: &str) -> Option<Option<Path>> {
        (version == "apps/v1").then(|| Some(vec![field("spec"), field("replicas")]))
    }

    #[test]
    fn only_owners_of_the_replica_count_appear_on_the_scale() {
        let parent = vec![
            entry("ci", Operation::Apply, "", &[&["spec", "replicas"], &["spec", "paused"]]),
            entry("labeler", Operation::Update, "", &[&["metadata", "labels"]]),
        ];
        let scale = to_subresource(&parent, &replicas);
        assert_eq!(scale.len(), 1);
        assert_eq!((scale[0].manager.as_str(), scale[0].api_version.as_str()), ("ci", "apps/v1"));
        assert_eq!(scale[0].fields, FieldSet::from([scale_replicas()]));
    }

    #[test]
    fn a_scale_write_that_took_the_replicas_moves_them_to_the_writer() {
        let parent = vec![
            entry("ci", Operation::Apply, "", &[&["spec", "replicas"], &["spec", "paused"]]),
            entry("gone", Operation::Update, "", &[&["spec", "replicas"]]),
        ];
        // The writer took the field from both owners (what a forced apply leaves).
        let mut writer = entry("hpa", Operation::Apply, "scale", &[&["spec", "replicas"]]);
        writer.api_version = "autoscaling/v1".into();
        let out = to_parent(&parent, &[writer], "apps/v1", &replicas);
        let owned: Vec<(&str, usize)> = out.iter().map(|e| (e.manager.as_str(), e.fields.len())).collect();
        // An owner left with nothing is dropped later, by `store_entries`.
        assert_eq!(owned, [("ci", 1), ("gone", 0), ("hpa", 1)]);
        assert_eq!(out[0].fields, entry("", Operation::Apply, "", &[&["spec", "paused"]]).fields);
        assert_eq!(out[2].api_version, "apps/v1");
    }

    #[test]
    fn owners_the_scale_write_left_alone_keep_their_entries() {
        let parent = vec![entry("ci", Operation::Apply, "", &[&["spec", "replicas"]])];
        let scale = to_subresource(&parent, &replicas);
        let mut writer = entry("hpa", Operation::Apply, "scale", &[&["spec", "replicas"]]);
        writer.api_version = "autoscaling/v1".into();
        let out = to_parent(&parent, &[scale[0].clone(), writer], "apps/v1", &replicas);
        assert_eq!(out[0], parent[0]);
        assert_eq!((out[1].manager.as_str(), out[1].subresource.as_str()), ("hpa", "scale"));
        assert_eq!(out[1].api_version, "apps/v1", "recorded against the parent's version");
        assert_eq!(out[1].fields, FieldSet::from([vec![field("spec"), field("replicas")]]));
    }

    #[test]
    fn entries_of_unserved_versions_are_dropped() {
        let mut old = entry("old", Operation::Update, "", &[&["spec", "replicas"]]);
        old.api_version = "apps/v1beta1".into();
        assert!(to_parent(&[old], &[], "apps/v1", &replicas).is_empty());
    }
}
