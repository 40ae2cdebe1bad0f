//! One cached object: its serialized JSON (with `resourceVersion` stamped in) and the few fields
//! selectors need, so LIST and WATCH filter without re-parsing.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;
use skiff_store::{KeyValue, Revision};

use crate::objects;

/// A cached object.
#[derive(Debug)]
pub struct Entry {
    /// Store key.
    pub key: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's selectable fields, by JSON path.
    pub fields: Vec<(&'static str, String)>,
    /// The object's JSON including `metadata.resourceVersion`.
    pub json: Bytes,
    /// Modification revision (the resource version).
    pub revision: Revision,
}

impl Entry {
    /// Builds an entry from a stored key-value; `None` if the value is not an object.
    pub fn from_kv(kv: &KeyValue, field_paths: &[&'static str]) -> Option<Self> {
        let picked = super::pick::pick(&kv.value, field_paths)?;
        let json = objects::inject_resource_version(&kv.value, kv.mod_revision)?;
        Some(Self {
            key: kv.key.clone(),
            namespace: picked.namespace,
            name: picked.name,
            labels: picked.labels,
            fields: picked.fields,
            json: Bytes::from(json),
            revision: kv.mod_revision,
        })
    }

    /// The value of a selectable field by JSON path (`metadata.name` and `metadata.namespace`
    /// always work).
    pub fn field(&self, path: &str) -> Option<String> {
        match path {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            _ => self.fields.iter().find(|(p, _)| *p == path).map(|(_, v)| v.clone()),
        }
    }

    /// The object parsed.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}
