//! Temporary generic Table printer (replaced by the per-kind printers).

use serde_json::{Value, json};
use skiff_api::catalogue::ResourceInfo;

/// What each row's `object` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// PartialObjectMetadata.
    Metadata,
    /// The object.
    Object,
}

impl IncludeObject {
    /// Parses the query value.
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s.unwrap_or("") {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            o => Err(format!("invalid includeObject {o}")),
        }
    }
}

/// Options for one table.
pub struct TableOptions {
    /// Row objects.
    pub include_object: IncludeObject,
    /// Whether to emit column definitions.
    pub include_columns: bool,
    /// Now.
    pub now: jiff::Timestamp,
}

/// Builds a Table.
pub fn build_table(_info: &ResourceInfo, objects: &[&Value], list_metadata: Value, opts: &TableOptions) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match opts.include_object {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_object_metadata(o),
                IncludeObject::Object => (*o).clone(),
            };
            json!({"cells": [o["metadata"]["name"], o["metadata"]["creationTimestamp"]], "object": object})
        })
        .collect();
    let cols = if opts.include_columns {
        json!([{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}, {"name": "Created At", "type": "date", "format": "", "description": "", "priority": 0}])
    } else {
        json!([])
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "columnDefinitions": cols, "rows": rows})
}

/// PartialObjectMetadata of an object.
pub fn partial_object_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata").cloned().unwrap_or(json!({}))})
}
