//! Admitting one custom object: the decoding steps and the validation steps upstream runs for
//! it, in upstream's order, so the write path calls two functions.
//!
//! [`coerce`]: the root `metadata` as ObjectMeta, pruning of unknown fields, the `metadata` of
//! embedded resources. [`validate`] (after defaulting): the structural schema, embedded
//! resources, `set`/`map` list uniqueness (on update only if the stored object had none, as
//! upstream ratchets it). Defaulting stays with the caller because the status-subresource
//! handling sits between the two.

use serde_json::Value;

use super::objectmeta::{self, CoerceError};
use super::{listtype, schema};
use crate::validation::ErrorList;

/// Coerces `obj` as upstream's decoder does; returns the paths of every field dropped (unknown
/// `metadata` fields first, then pruned fields, then embedded `metadata` fields), for
/// `fieldValidation`.
pub fn coerce(obj: &mut Value, structural: Option<&Value>) -> Result<Vec<String>, CoerceError> {
    let mut unknown = objectmeta::coerce_root(obj)?;
    if let Some(structural) = structural {
        let mut pruned = schema::prune(obj, structural);
        pruned.sort();
        unknown.extend(pruned);
        unknown.extend(objectmeta::coerce_embedded(obj, structural)?);
    }
    Ok(unknown)
}

/// Validates a coerced and defaulted custom object; `old` is the stored object on updates.
pub fn validate(obj: &Value, old: Option<&Value>, structural: &Value) -> ErrorList {
    let mut errors = schema::validate(obj, structural, "");
    errors.extend(objectmeta::validate_embedded(obj, structural));
    if old.is_none_or(|o| listtype::validate(o, structural).is_empty()) {
        errors.extend(listtype::validate(obj, structural));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "t": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
        }}}})
    }

    #[test]
    fn coercion_reports_metadata_then_pruned_then_embedded_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "zzz": 1},
            "spec": {"b": 1, "a": {"c": 1}, "t": {"apiVersion": "v1", "kind": "P", "metadata": {"q": 1}}}});
        let unknown = coerce(&mut obj, Some(&schema())).expect("coerces");
        assert_eq!(unknown, vec!["metadata.zzz", "spec.a", "spec.b", "spec.t.metadata.q"]);
        assert_eq!(obj["metadata"], json!({"name": "a"}), "metadata survives a root schema that names it");
    }

    #[test]
    fn list_uniqueness_ratchets_on_update() {
        let dup = json!({"spec": {"tags": ["a", "a"]}});
        assert_eq!(validate(&dup, None, &schema()).len(), 1);
        assert_eq!(validate(&dup, Some(&json!({"spec": {"tags": ["a"]}})), &schema()).len(), 1);
        assert!(validate(&dup, Some(&dup), &schema()).is_empty(), "already broken lists may stay broken");
        let embedded = json!({"spec": {"t": {"kind": "P"}}});
        assert_eq!(validate(&embedded, None, &schema())[0].to_string(), "spec.t.apiVersion: Required value");
    }
}
