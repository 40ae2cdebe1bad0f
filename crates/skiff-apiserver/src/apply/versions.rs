//! Field sets across the served API versions of one resource.
//!
//! Every `managedFields` entry stays recorded against the API version it was written in, as
//! upstream keeps it. A write works in its own request version: [`Working::enter`] translates
//! the entries of other versions into that version's paths (what has no counterpart there is
//! set aside), and [`Working::leave`] translates them back and returns what was set aside. How
//! paths differ between versions is the caller's knowledge, behind [`Versions`]; this module
//! knows no resource.

use std::collections::BTreeMap;
use std::fmt::Debug;

use super::fieldpath::{Element, FieldSet, Path};
use super::{Entry, Operation};

/// How the field paths of one resource are spelled in each of its served API versions.
pub trait Versions: Debug + Sync {
    /// `path`, recorded against `from` (`apps/v1`), as spelled in `to`; `None` when `to` has no
    /// such field.
    fn convert(&self, path: &[Element], from: &str, to: &str) -> Option<Path>;
}

/// Every version spells every path the same way: kinds served in one version, and custom
/// resources (conversion `None` rewrites only `apiVersion`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SamePaths;

impl Versions for SamePaths {
    fn convert(&self, path: &[Element], _from: &str, _to: &str) -> Option<Path> {
        Some(path.to_vec())
    }
}

/// An entry's identity, which [`Working::leave`] uses to give back what was set aside.
type Identity = (String, Operation, String, String);

fn identity(e: &Entry) -> Identity {
    (e.manager.clone(), e.operation, e.subresource.clone(), e.api_version.clone())
}

/// Entries translated into one working version.
#[derive(Debug)]
pub(crate) struct Working<'a> {
    version: String,
    versions: &'a dyn Versions,
    /// Paths of entries of other versions that the working version has no field for.
    set_aside: BTreeMap<Identity, FieldSet>,
}

fn translate(fields: &FieldSet, versions: &dyn Versions, from: &str, to: &str) -> (FieldSet, FieldSet) {
    let mut kept = FieldSet::new();
    let mut lost = FieldSet::new();
    for p in fields {
        match versions.convert(p, from, to) {
            Some(q) => {
                kept.insert(q);
            }
            None => {
                lost.insert(p.clone());
            }
        }
    }
    (kept, lost)
}

impl<'a> Working<'a> {
    /// Translates `list` into `version`: entries keep their `apiVersion` (their identity) but
    /// their fields are spelled as in `version`.
    pub(crate) fn enter(list: Vec<Entry>, version: &str, versions: &'a dyn Versions) -> (Working<'a>, Vec<Entry>) {
        let mut w = Working { version: version.to_string(), versions, set_aside: BTreeMap::new() };
        let list = list
            .into_iter()
            .map(|mut e| {
                if e.api_version != w.version {
                    let (kept, lost) = translate(&e.fields, versions, &e.api_version, &w.version);
                    e.fields = kept;
                    if !lost.is_empty() {
                        w.set_aside.insert(identity(&e), lost);
                    }
                }
                e
            })
            .collect();
        (w, list)
    }

    /// Translates `list` back: every entry's fields are spelled in its own `apiVersion` again,
    /// with what [`Working::enter`] set aside restored.
    pub(crate) fn leave(mut self, list: Vec<Entry>) -> Vec<Entry> {
        list.into_iter()
            .map(|mut e| {
                if e.api_version != self.version {
                    let (mut back, _) = translate(&e.fields, self.versions, &self.version, &e.api_version);
                    back.extend(self.set_aside.remove(&identity(&e)).unwrap_or_default());
                    e.fields = back;
                }
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v2 calls `spec.size` what v1 calls `spec.replicas`, and v2 alone has `spec.extra`.
    #[derive(Debug)]
    struct Renamed;

    impl Versions for Renamed {
        fn convert(&self, path: &[Element], from: &str, to: &str) -> Option<Path> {
            let swap = |p: &[Element], a: &str, b: &str| -> Path {
                p.iter().map(|e| if e == a { b.to_string() } else { e.clone() }).collect()
            };
            match (from, to) {
                ("x/v1", "x/v2") => Some(swap(path, "f:replicas", "f:size")),
                ("x/v2", "x/v1") if path.iter().any(|e| e == "f:extra") => None,
                ("x/v2", "x/v1") => Some(swap(path, "f:size", "f:replicas")),
                _ => Some(path.to_vec()),
            }
        }
    }

    fn entry(manager: &str, version: &str, paths: &[&[&str]]) -> Entry {
        Entry {
            manager: manager.into(),
            operation: Operation::Update,
            api_version: version.into(),
            time: None,
            subresource: String::new(),
            fields: paths.iter().map(|p| p.iter().map(|e| e.to_string()).collect()).collect(),
        }
    }

    #[test]
    fn entries_are_translated_into_the_working_version_and_back() {
        let list = vec![
            entry("old", "x/v1", &[&["f:spec", "f:replicas"]]),
            entry("new", "x/v2", &[&["f:spec", "f:size"], &["f:spec", "f:extra"]]),
        ];
        let (w, inside) = Working::enter(list.clone(), "x/v1", &Renamed);
        assert_eq!(inside[0], list[0], "entries of the working version are untouched");
        assert_eq!(inside[1].fields, entry("", "", &[&["f:spec", "f:replicas"]]).fields, "renamed, extra set aside");
        assert_eq!(inside[1].api_version, "x/v2", "the identity stays");
        assert_eq!(w.leave(inside), list, "translated back with what was set aside");
    }
}
