//! Label and field selectors: parsing the query-string syntax and matching objects.

pub mod field;
pub mod label;

pub use field::{FieldOp, FieldRequirement, FieldSelectorError, FieldSelectorExpr};
pub use label::{LabelSelectorError, LabelSelectorExpr, Operator, Requirement};
