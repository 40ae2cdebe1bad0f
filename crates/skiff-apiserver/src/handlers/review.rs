//! The create-only review resources (`TokenReview`, `SelfSubjectReview`, the four
//! `*SubjectAccessReview`s and `SelfSubjectRulesReview`): the body is a question, the answer is
//! the same object with its `status` filled in, and nothing is stored. Each kind's answer is
//! computed by the authenticator or authorizer module that owns it; this module only decodes,
//! dispatches and responds.

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::catalogue::ResourceInfo;

use super::Ctx;
use super::meta::decode_request;
use crate::response;
use crate::state::ApiState;

/// Whether `info` is a review resource served here.
pub fn is_review(info: &ResourceInfo) -> bool {
    matches!(info.group, "authentication.k8s.io" | "authorization.k8s.io") && info.verbs == ["create"]
}

/// `POST` of a review: 201 with the answered object.
pub async fn create(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let question = decode_request(ctx, &body)?;
    let answer = answer(state, ctx, question).await?;
    Ok(response::json(201, &answer))
}

async fn answer(state: &ApiState, ctx: &Ctx, question: Value) -> Result<Value, StatusError> {
    match ctx.info.kind {
        "TokenReview" | "SelfSubjectReview" => return crate::authn::review::answer(state, ctx, question),
        _ => {}
    }
    Err(StatusError::service_unavailable(format!("{} are not served yet", ctx.info.plural)))
}
