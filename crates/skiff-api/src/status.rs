//! The Kubernetes `Status` error: every failure the API answers is one of these.
//!
//! Constructors mirror apimachinery's `pkg/api/errors` so that messages, reasons and details are
//! what client-go, kube-rs and the Python client expect (they turn only this shape into typed
//! errors). Field-level validation errors live in [`crate::validation`]; this module only renders
//! them into `details.causes`.

use serde::Serialize;

use crate::validation::FieldError;

/// Result alias for operations that fail with a Kubernetes `Status`.
pub type StatusResult<T> = Result<T, StatusError>;

/// A group and a plural resource name, e.g. `deployments.apps`; used in error messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, possibly with a subresource (`pods/status`).
    pub resource: String,
}

impl GroupResource {
    /// Builds a group-resource pair.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { group: group.into(), resource: resource.into() }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() { f.write_str(&self.resource) } else { write!(f, "{}.{}", self.resource, self.group) }
    }
}

/// A group and a kind, e.g. `Deployment.apps`; used in `Invalid` errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKind {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

impl GroupKind {
    /// Builds a group-kind pair.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        Self { group: group.into(), kind: kind.into() }
    }
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() { f.write_str(&self.kind) } else { write!(f, "{}.{}", self.kind, self.group) }
    }
}

/// One cause in `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCause {
    /// Machine-readable reason, e.g. `FieldValueRequired`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Field path the cause concerns, e.g. `spec.containers[0].image`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `details` of a Status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// Name of the object concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group of the object concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind (for Invalid) or plural resource (for the others), as upstream does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// UID of the object concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field-level causes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds after which the client may retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// Machine-readable Status reasons (apimachinery `StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No reason given.
    Unknown,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409 on create.
    AlreadyExists,
    /// 409 on update.
    Conflict,
    /// 410 for deleted resources.
    Gone,
    /// 422.
    Invalid,
    /// 504 from the server.
    ServerTimeout,
    /// 504 waiting for a condition.
    Timeout,
    /// 429.
    TooManyRequests,
    /// 400.
    BadRequest,
    /// 405.
    MethodNotAllowed,
    /// 406.
    NotAcceptable,
    /// 413.
    RequestEntityTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 500.
    InternalError,
    /// 410 for a resource version that was compacted.
    Expired,
    /// 503.
    ServiceUnavailable,
}

impl Reason {
    /// The wire string of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Invalid => "Invalid",
            Reason::ServerTimeout => "ServerTimeout",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::BadRequest => "BadRequest",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::InternalError => "InternalError",
            Reason::Expired => "Expired",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

/// A failed API call, rendered on the wire as a `v1 Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason.
    pub reason: Reason,
    /// Human-readable message.
    pub message: String,
    /// Optional details.
    pub details: Option<StatusDetails>,
}

impl StatusError {
    fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(404, Reason::NotFound, format!("{gr} \"{name}\" not found")).with_details(StatusDetails {
            name: name.to_string(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            ..Default::default()
        })
    }

    /// 404 with a free-form message (unknown paths and resources).
    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self::new(404, Reason::NotFound, message)
    }

    /// 409: `pods "x" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::new(409, Reason::AlreadyExists, format!("{gr} \"{name}\" already exists")).with_details(StatusDetails {
            name: name.to_string(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            ..Default::default()
        })
    }

    /// 409: `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(409, Reason::Conflict, format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"))
            .with_details(StatusDetails {
                name: name.to_string(),
                group: gr.group.clone(),
                kind: gr.resource.clone(),
                ..Default::default()
            })
    }

    /// 409 for a stale `resourceVersion`, with upstream's exact wording.
    pub fn stale(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: `Pod "x" is invalid: <field errors>`.
    pub fn invalid(gk: &GroupKind, name: &str, errors: &[FieldError]) -> Self {
        let mut messages: Vec<String> = Vec::new();
        for e in errors {
            let m = e.to_string();
            if !messages.contains(&m) {
                messages.push(m);
            }
        }
        let aggregate = match messages.len() {
            0 => String::new(),
            1 => messages.remove(0),
            _ => format!("[{}]", messages.join(", ")),
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause { reason: e.kind.reason().to_string(), message: e.body(), field: e.field.clone() })
            .collect();
        Self::new(422, Reason::Invalid, format!("{gk} \"{name}\" is invalid: {aggregate}")).with_details(
            StatusDetails {
                name: name.to_string(),
                group: gk.group.clone(),
                kind: gk.kind.clone(),
                causes,
                ..Default::default()
            },
        )
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, Reason::BadRequest, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, Reason::Unauthorized, message)
    }

    /// 403: `pods "x" is forbidden: <why>`.
    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{gr} is forbidden: {why}")
        } else {
            format!("{gr} \"{name}\" is forbidden: {why}")
        };
        Self::new(403, Reason::Forbidden, message).with_details(StatusDetails {
            name: name.to_string(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            ..Default::default()
        })
    }

    /// 403 for a request that names no resource: `forbidden: <why>`.
    pub fn forbidden_message(why: &str) -> Self {
        Self::new(403, Reason::Forbidden, format!("forbidden: {why}"))
    }

    /// 405: `<verb> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(gr: &GroupResource, verb: &str) -> Self {
        Self::new(405, Reason::MethodNotAllowed, format!("{verb} is not supported on resources of kind \"{gr}\""))
            .with_details(StatusDetails { group: gr.group.clone(), kind: gr.resource.clone(), ..Default::default() })
    }

    /// 406.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, Reason::NotAcceptable, message)
    }

    /// 422 without field causes (a patch that cannot be applied).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, Reason::Invalid, message)
    }

    /// 410 `Expired`: a resource version or continue token that was compacted away.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, Reason::Expired, message)
    }

    /// 410 `Expired` for a watch or list from a compacted revision.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::expired(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(413, Reason::RequestEntityTooLarge, format!("Request entity too large: limit is {limit}"))
    }

    /// 415 naming the media types that are accepted.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 429.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        Self::new(429, Reason::TooManyRequests, message)
            .with_details(StatusDetails { retry_after_seconds: Some(retry_after_seconds), ..Default::default() })
    }

    /// 500: `Internal error occurred: <err>`.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let err = err.to_string();
        Self::new(500, Reason::InternalError, format!("Internal error occurred: {err}")).with_details(StatusDetails {
            causes: vec![StatusCause { reason: String::new(), message: err, field: String::new() }],
            ..Default::default()
        })
    }

    /// 503.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, Reason::ServiceUnavailable, message)
    }

    /// 504 `Timeout` with a retry hint.
    pub fn timeout(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        Self::new(504, Reason::Timeout, message)
            .with_details(StatusDetails { retry_after_seconds: Some(retry_after_seconds), ..Default::default() })
    }

    /// The `v1 Status` JSON object of this error.
    pub fn to_status(&self) -> serde_json::Value {
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if self.reason != Reason::Unknown {
            status["reason"] = self.reason.as_str().into();
        }
        if let Some(details) = &self.details {
            status["details"] = serde_json::to_value(details).unwrap_or_default();
        }
        status
    }
}

/// The `v1 Status` object of a successful delete or other non-object answer.
pub fn success_status(details: Option<StatusDetails>) -> serde_json::Value {
    let mut status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    });
    if let Some(details) = details {
        status["details"] = serde_json::to_value(details).unwrap_or_default();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::FieldError;

    #[test]
    fn not_found_message_and_details_match_upstream() {
        let e = StatusError::not_found(&GroupResource::new("apps", "deployments"), "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let s = e.to_status();
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_aggregates_single_and_many_like_upstream() {
        let one = StatusError::invalid(
            &GroupKind::new("", "Pod"),
            "p",
            &[FieldError::required("spec.containers[0].image", "")],
        );
        assert_eq!(one.message, "Pod \"p\" is invalid: spec.containers[0].image: Required value");
        let many = StatusError::invalid(
            &GroupKind::new("apps", "Deployment"),
            "d",
            &[FieldError::required("spec.selector", ""), FieldError::required("spec.template", "")],
        );
        assert_eq!(
            many.message,
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.template: Required value]"
        );
        let status = many.to_status();
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(status["details"]["causes"][0]["field"], "spec.selector");
        assert_eq!(status["details"]["kind"], "Deployment");
    }

    #[test]
    fn stale_conflict_uses_upstream_wording() {
        let e = StatusError::stale(&GroupResource::new("", "pods"), "x");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(e.code, 409);
    }
}
