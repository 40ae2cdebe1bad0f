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
/// namespace is going away. A conflict (a write from a stale copy) is not harmless: the
/// controller must retry from fresh state, or the change it meant to make is lost.
pub fn benign(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (s.code == 409 && s.reason == "AlreadyExists") || s.code == 404)
        || namespace_terminating(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn conflicts_are_not_benign() {
        assert!(benign(&api_error(409, "AlreadyExists", "pods \"a\" already exists")));
        assert!(benign(&api_error(404, "NotFound", "pods \"a\" not found")));
        assert!(benign(&api_error(
            403,
            "Forbidden",
            "unable to create new content in namespace x because it is being terminated"
        )));
        assert!(!benign(&api_error(409, "Conflict", "the object has been modified")));
        assert!(!benign(&api_error(500, "InternalError", "boom")));
    }
}
