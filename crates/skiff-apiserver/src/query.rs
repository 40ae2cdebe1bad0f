//! Query parameters of resource requests, parsed into typed options with upstream errors.

use std::collections::HashMap;

use skiff_api::StatusError;
use skiff_api::selector::{FieldSelectorExpr, LabelSelectorExpr};
use skiff_store::Revision;

/// The raw query parameters (last value wins).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a query string.
    pub fn parse(query: &str) -> Self {
        Self(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    /// An integer parameter; 400 when malformed.
    pub fn int(&self, key: &str) -> Result<Option<i64>, StatusError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| StatusError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))),
        }
    }

    /// `dryRun=All` (any other value is rejected as upstream does).
    pub fn dry_run(&self) -> Result<bool, StatusError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(StatusError::bad_request(format!("Invalid dryRun value {other:?}: only \"All\" is supported")))
            }
        }
    }

    /// The label selector.
    pub fn label_selector(&self) -> Result<LabelSelectorExpr, StatusError> {
        match self.get("labelSelector") {
            None | Some("") => Ok(LabelSelectorExpr::everything()),
            Some(s) => LabelSelectorExpr::parse(s)
                .map_err(|e| StatusError::bad_request(format!("unable to parse requirement: {}", e.0))),
        }
    }

    /// The field selector.
    pub fn field_selector(&self) -> Result<FieldSelectorExpr, StatusError> {
        FieldSelectorExpr::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| StatusError::bad_request(format!("invalid field selector: {}", e.0)))
    }

    /// `resourceVersion` as a revision (`None` when unset; 0 is "any").
    pub fn resource_version(&self) -> Result<Option<Revision>, StatusError> {
        parse_rv(self.get("resourceVersion"))
    }
}

/// Parses a resource version string.
pub fn parse_rv(rv: Option<&str>) -> Result<Option<Revision>, StatusError> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => {
            s.parse().map(Some).map_err(|_| StatusError::bad_request(format!("invalid resource version: {s:?}")))
        }
    }
}
