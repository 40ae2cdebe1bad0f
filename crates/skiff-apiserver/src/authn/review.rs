//! The authentication.k8s.io reviews: `TokenReview` (is this token valid, and for whom?) and
//! `SelfSubjectReview` (who am I? — `kubectl auth whoami`). Called from
//! [`crate::handlers`]' review dispatch; nothing is stored.

use serde_json::{Value, json};
use skiff_api::StatusError;

use super::serviceaccount::{review_status, user_json};
use crate::handlers::Ctx;
use crate::state::ApiState;

/// The answered review for `question` (already decoded and type-checked).
pub fn answer(state: &ApiState, ctx: &Ctx, mut question: Value) -> Result<Value, StatusError> {
    let status = match ctx.info.kind {
        "TokenReview" => {
            let spec = question.get("spec").cloned().unwrap_or_else(|| json!({}));
            if spec.get("token").and_then(Value::as_str).unwrap_or("").is_empty() {
                return Err(StatusError::bad_request("token is required for TokenReview in authentication"));
            }
            let tokens = state
                .service_accounts
                .get()
                .ok_or_else(|| StatusError::service_unavailable("the token authenticator is not configured"))?;
            review_status(tokens, &spec)
        }
        _ => json!({"userInfo": user_json(&ctx.user)}),
    };
    if !question.get("metadata").is_some_and(Value::is_object) {
        question["metadata"] = json!({});
    }
    question["metadata"]["creationTimestamp"] = Value::Null;
    question["status"] = status;
    Ok(question)
}
