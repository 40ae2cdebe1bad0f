//! Server-side printing: `meta.k8s.io/v1 Table` columns and cells per kind.
//!
//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and renders what the
//! server sends. Each built-in resource has a printer (selected by group and plural) with the
//! columns upstream's printers use; custom resources use their CRD's `additionalPrinterColumns`
//! ([`custom`]); every other resource gets the generic `Name`, `Created At`.
//! As upstream does on the server, every row carries all cells, wide (priority 1) ones included;
//! kubectl drops the wide columns unless `-o wide`.
//!
//! Printers read the JSON object rather than typed structs, so one printer serves every version
//! of a kind; a missing field reads as its zero value.

mod admissionregistration;
mod age;
mod apps;
mod batch;
mod columns;
mod core;
pub mod custom;
mod fields;
mod other;
#[cfg(test)]
mod tests;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use skiff_api::catalogue::ResourceInfo;

pub use age::age;
pub use columns::ColumnDef;

/// What each row's `object` holds (query `includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object (`"object": null`).
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; absent or empty means [`IncludeObject::Metadata`].
    pub fn parse(s: Option<&str>) -> Result<IncludeObject, String> {
        match s.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// Options for one table.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// What each row's `object` holds.
    pub include_object: IncludeObject,
    /// Whether to emit `columnDefinitions`; false for watch events after the first, which then
    /// carry `"columnDefinitions": null` as upstream does.
    pub include_columns: bool,
    /// The time ages are measured against.
    pub now: Timestamp,
}

/// Computes the cells of one row from an object.
type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// Columns and cell logic for one resource.
#[derive(Clone, Copy)]
struct Printer {
    columns: &'static [ColumnDef],
    cells: CellsFn,
}

/// The generic printer for resources without their own columns.
const GENERIC: Printer = Printer { columns: &[columns::NAME, columns::CREATED_AT], cells: created_at_cells };

/// Cells of the generic `Name`, `Created At` table.
fn created_at_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    vec![json!(fields::name(obj)), json!(age::rfc3339_utc(fields::text(obj, &["metadata", "creationTimestamp"])))]
}

/// The printer of resource `plural` in `group`, or the generic one.
fn printer_for(group: &str, plural: &str) -> Printer {
    let found = match group {
        "" => core::printer(plural),
        "apps" => apps::printer(plural),
        "batch" => batch::printer(plural),
        "admissionregistration.k8s.io" => admissionregistration::printer(plural),
        _ => other::printer(group, plural),
    };
    found.unwrap_or(GENERIC)
}

/// Builds a `meta.k8s.io/v1` Table (as serde_json::Value) for objects of the resource `info` (the
/// served resource, e.g. pods, or deployments). `list_metadata` becomes the table's `metadata`
/// (resourceVersion/continue/remainingItemCount).
pub fn build_table(info: &ResourceInfo, objects: &[&Value], list_metadata: Value, opts: &TableOptions) -> Value {
    let printer = printer_for(info.group, info.plural);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            let cells = match info.custom {
                Some(c) => custom::cells(c, obj, opts.now),
                None => (printer.cells)(obj, opts.now),
            };
            row.insert("cells".to_string(), Value::Array(cells));
            if info.group.is_empty()
                && info.plural == "pods"
                && let Some(conditions) = core::pod_row_conditions(obj)
            {
                row.insert("conditions".to_string(), conditions);
            }
            let object = match opts.include_object {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_object_metadata(obj),
                IncludeObject::Object => (*obj).clone(),
            };
            row.insert("object".to_string(), object);
            Value::Object(row)
        })
        .collect();
    let column_definitions = if opts.include_columns {
        match info.custom {
            Some(c) => Value::Array(custom::columns(c)),
            None => Value::Array(printer.columns.iter().map(ColumnDef::to_json).collect()),
        }
    } else {
        Value::Null
    };
    let metadata = if list_metadata.is_null() { json!({}) } else { list_metadata };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// `PartialObjectMetadata` (apiVersion meta.k8s.io/v1, kind PartialObjectMetadata, metadata =
/// object's metadata) of an object.
pub fn partial_object_metadata(object: &Value) -> Value {
    let metadata = object.get("metadata").filter(|m| !m.is_null()).cloned().unwrap_or_else(|| json!({}));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}
