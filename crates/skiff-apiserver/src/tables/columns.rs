//! Column definitions of a table and the shared columns most printers use.

use serde_json::{Value, json};

/// One column of a `meta.k8s.io/v1` Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// Human-readable name (kubectl upper-cases it for the header).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `number` or `date`.
    pub type_: &'static str,
    /// OpenAPI format; `name` marks the column holding the object's name.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for normal output; greater columns are shown only with `-o wide`.
    pub priority: i32,
}

impl ColumnDef {
    /// A normal `string` column.
    pub const fn string(name: &'static str, description: &'static str) -> Self {
        Self { name, type_: "string", format: "", description, priority: 0 }
    }

    /// A normal `integer` column.
    pub const fn integer(name: &'static str, description: &'static str) -> Self {
        Self { name, type_: "integer", format: "", description, priority: 0 }
    }

    /// A normal `boolean` column.
    pub const fn boolean(name: &'static str, description: &'static str) -> Self {
        Self { name, type_: "boolean", format: "", description, priority: 0 }
    }

    /// The same column shown only with `-o wide`.
    pub const fn wide(self) -> Self {
        Self { priority: 1, ..self }
    }

    /// The same column marked as holding the object's name.
    pub const fn named(self) -> Self {
        Self { format: "name", ..self }
    }

    /// The column as it appears in `columnDefinitions`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The object's name.
pub const NAME: ColumnDef = ColumnDef::string("Name", "Name of the object, unique within its namespace.").named();
/// Time since the object was created.
pub const AGE: ColumnDef = ColumnDef::string("Age", "Time since the object was created.");
/// Creation time as an RFC 3339 date (generic fallback and RBAC roles).
pub const CREATED_AT: ColumnDef = ColumnDef {
    name: "Created At",
    type_: "date",
    format: "",
    description: "When the object was created, in UTC.",
    priority: 0,
};
/// Names of the containers of a pod template (wide).
pub const CONTAINERS: ColumnDef =
    ColumnDef::string("Containers", "Names of the containers in the pod template.").wide();
/// Images of the containers of a pod template (wide).
pub const IMAGES: ColumnDef = ColumnDef::string("Images", "Images used by the containers in the pod template.").wide();
/// Label selector of a workload (wide).
pub const SELECTOR: ColumnDef = ColumnDef::string("Selector", "Label selector of the pods this object manages.").wide();
