//! Field-level validation errors and the shared validators (names, labels, annotations).
//!
//! [`FieldError`] mirrors apimachinery's `field.Error`: its `Display` is the upstream message
//! (`spec.replicas: Invalid value: -1: must be greater than or equal to 0`) and its kind maps to
//! the `details.causes[].reason` of an `Invalid` Status. Per-kind rules live in submodules.

pub mod gofmt;
pub mod kinds;
pub mod names;
pub mod objectmeta;

use std::fmt;

/// What kind of problem a [`FieldError`] reports (apimachinery `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The referenced object was not found.
    NotFound,
    /// A required value is missing.
    Required,
    /// A value appears twice where it must be unique.
    Duplicate,
    /// A value is malformed.
    Invalid,
    /// A value is not one of the supported set.
    NotSupported,
    /// A value is not allowed here.
    Forbidden,
    /// A value is too long.
    TooLong,
    /// There are too many items.
    TooMany,
    /// The server failed while validating.
    Internal,
    /// A value has the wrong type.
    TypeInvalid,
}

impl ErrorKind {
    /// The `causes[].reason` string of this kind.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Internal => "InternalError",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable label of this kind (`Required value`, `Invalid value`, …).
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Internal => "Internal error",
            ErrorKind::TypeInvalid => "Invalid value",
        }
    }

    /// Whether upstream omits the offending value from the message for this kind.
    fn omits_value(self) -> bool {
        matches!(self, ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong | ErrorKind::Internal)
    }
}

/// One validation failure at a field path.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The offending value, when the message should show it.
    pub value: Option<serde_json::Value>,
    /// Explanation appended after the value.
    pub detail: String,
}

impl FieldError {
    fn build(
        kind: ErrorKind,
        field: impl Into<String>,
        value: Option<serde_json::Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self { kind, field: field.into(), value, detail: detail.into() }
    }

    /// A required value is missing.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::build(ErrorKind::Required, field, None, detail)
    }

    /// A value is malformed.
    pub fn invalid(field: impl Into<String>, value: impl Into<serde_json::Value>, detail: impl Into<String>) -> Self {
        Self::build(ErrorKind::Invalid, field, Some(value.into()), detail)
    }

    /// A value is malformed, where upstream omits the value (`field.OmitValueType`).
    pub fn invalid_omit(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::build(ErrorKind::Invalid, field, None, detail)
    }

    /// A value is malformed, where upstream shows the value in Go syntax (`%#v` of a struct):
    /// `go_value` is printed as is, unquoted.
    pub fn invalid_go(field: impl Into<String>, go_value: &str, detail: &str) -> Self {
        // The body is `Invalid value: <value>: <detail>`; without a JSON value, the Go rendering
        // leads the detail, which prints the same.
        Self::build(ErrorKind::Invalid, field, None, format!("{go_value}: {detail}"))
    }

    /// A value is not one of `supported`.
    pub fn not_supported(field: impl Into<String>, value: impl Into<serde_json::Value>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::build(ErrorKind::NotSupported, field, Some(value.into()), detail)
    }

    /// A value appears twice.
    pub fn duplicate(field: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Self::build(ErrorKind::Duplicate, field, Some(value.into()), "")
    }

    /// A value is not allowed here.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::build(ErrorKind::Forbidden, field, None, detail)
    }

    /// A value is longer than `max` bytes.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::build(ErrorKind::TooLong, field, None, format!("must have at most {max} bytes"))
    }

    /// A value is longer than `max` (upstream's `TooLongMaxLength` wording).
    pub fn too_long_max_length(field: impl Into<String>, max: usize) -> Self {
        Self::build(ErrorKind::TooLong, field, None, format!("may not be longer than {max}"))
    }

    /// There are more than `max` items.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::build(ErrorKind::TooMany, field, Some(actual.into()), format!("must have at most {max} items"))
    }

    /// A referenced object does not exist.
    pub fn not_found(field: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Self::build(ErrorKind::NotFound, field, Some(value.into()), "")
    }

    /// The message without the field path (what upstream puts in `causes[].message`).
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        if !self.kind.omits_value()
            && let Some(v) = &self.value
        {
            s.push_str(": ");
            s.push_str(&render_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

/// Renders a value the way Go's `%q`/`%d`/`%v` would in a field error.
fn render_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.body()) } else { write!(f, "{}: {}", self.field, self.body()) }
    }
}

/// A list of field errors, built up while walking an object.
pub type ErrorList = Vec<FieldError>;

/// Joins a parent field path and a child name (`spec` + `replicas` → `spec.replicas`).
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

/// Appends an index to a field path (`spec.containers` + 0 → `spec.containers[0]`).
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Appends a map key to a field path (`metadata.labels` + `a` → `metadata.labels[a]`).
pub fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream_shapes() {
        assert_eq!(FieldError::required("spec.x", "").to_string(), "spec.x: Required value");
        assert_eq!(
            FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0").to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "OnFailure", "Never"]).to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            FieldError::duplicate("spec.containers[1].name", "a").to_string(),
            "spec.containers[1].name: Duplicate value: \"a\""
        );
        assert_eq!(FieldError::forbidden("spec.x", "may not be set").to_string(), "spec.x: Forbidden: may not be set");
    }
}
