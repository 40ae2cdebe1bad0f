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
    use crate::authz::review as authz_review;
    match ctx.info.plural {
        "subjectaccessreviews" => authz_review::subject_access_review(state, question, None),
        "localsubjectaccessreviews" => {
            authz_review::subject_access_review(state, question, Some(ctx.namespace.as_deref().unwrap_or("")))
        }
        "selfsubjectaccessreviews" => authz_review::self_subject_access_review(state, &ctx.user, question),
        "selfsubjectrulesreviews" => authz_review::self_subject_rules_review(state, &ctx.user, question),
        "tokenreviews" | "selfsubjectreviews" => crate::authn::review::answer(state, ctx, question),
        other => Err(StatusError::internal(format!("no answer for the review resource {other}"))),
    }
}
