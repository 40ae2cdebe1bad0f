//! How controllers read API errors: upstream's wording of a failure (the Status message) and the
//! failures a controller treats as done (the object exists, is gone, or its namespace is being
//! terminated).
//!
//! What does not live here: retries (the work queue's back-off).

/// The message of an API error as upstream prints it (the Status message).
pub fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Whether a create failed because the namespace is being terminated.
pub fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

/// Whether a write failed harmlessly: the object already exists, is already gone, or its
/// namespace is going away.
pub fn benign(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 404) || namespace_terminating(e)
}
