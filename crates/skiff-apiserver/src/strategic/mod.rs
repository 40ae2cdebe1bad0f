//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! A pure module: [`apply`] takes the stored object and the patch as JSON and returns the
//! patched object; the HTTP layer handles content types, preconditions and status codes.
//! Which lists merge, by which key, and which maps are replaced comes from one generated table
//! (`schema.txt`, produced by `scripts/gen-patch-schema.py` from Kubernetes' Go types) — there
//! are no per-field special cases in the code.
//!
//! Supported directives, as upstream: `$patch: replace|delete` on maps, `$patch:
//! delete|replace` elements in merging lists, `$setElementOrder/<field>`,
//! `$deleteFromPrimitiveList/<field>`, `$retainKeys`, and `null` to delete a field. Fields the
//! table does not describe (e.g. inside `RawExtension`) merge like JSON merge patch.
//!
//! Deliberate differences from upstream, all about what ends up stored (upstream relies on
//! decoding into Go structs to drop leftovers; skiff stores the JSON as merged):
//! - values added where the original has nothing are stripped of directives and `null`
//!   fields; a map there carrying `$patch: replace` keeps its content (upstream drops it);
//! - lists replaced wholesale and maps replaced by `$patch: replace` are stripped likewise.
//!
//! Kinds are looked up by group and kind only; a group served in several versions uses the
//! metadata of its storage version (`autoscaling` → v2, plus `Scale` from v1).

mod error;
mod merge;
pub(crate) mod schema;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use error::SmpError;
pub use schema::{TableFact, table_facts};

/// Applies a strategic merge patch to `original`, an object of the built-in kind `kind` in API
/// group `group` (empty for the core group), e.g. `("apps", "Deployment")` or `("", "Pod")`.
/// Returns the patched object; `original` and `patch` are left untouched. A
/// `metadata.resourceVersion` in the patch is merged like any other field (checking it as a
/// precondition is the caller's business).
pub fn apply(group: &str, kind: &str, original: &Value, patch: &Value) -> Result<Value, SmpError> {
    let schema = schema::schema().map_err(|e| SmpError::Schema(e.to_string()))?;
    let root = schema.kind(group, kind).ok_or(SmpError::Unsupported)?;
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(SmpError::BadJsonDoc);
    };
    let merged = merge::Merger::new(schema).merge_map(original.clone(), patch.clone(), &root, "")?;
    Ok(Value::Object(merged))
}

/// Whether strategic merge patch is supported for the kind (`false` for custom resources and
/// unknown kinds, which the HTTP layer answers with 415).
pub fn supports(group: &str, kind: &str) -> bool {
    schema::schema().is_ok_and(|s| s.kind(group, kind).is_some())
}
