//! REST handlers for resource requests: resolving the addressed resource, then one module per
//! verb family. Every failure becomes a `Status` response here; handlers never panic on input.
//!
//! Non-resource paths (discovery, OpenAPI, health) are served by [`crate::routes`].

mod binding;
mod delete;
mod eviction;
mod meta;
mod read;
mod review;
mod subresource;
mod token;
mod watch;
mod write;

pub use delete::{DeleteOptions, delete_object};
pub use meta::now_rfc3339;
pub use write::{Admission, Part, create_object, update_object};

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, header};
use http_body_util::BodyExt;
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::status::{GroupKind, GroupResource};

use crate::authn::UserInfo;
use crate::negotiate::MAX_BODY_BYTES;
use crate::query::Query;
use crate::reqinfo::{ResourceRequest, Verb};
use crate::state::ApiState;
use crate::{response, views};

/// Everything a resource handler needs to know about the request.
pub struct Ctx {
    /// Who makes the request (already authorized for it).
    pub user: Arc<UserInfo>,
    /// The served resource.
    pub info: &'static ResourceInfo,
    /// The stored resource (differs for views).
    pub storage: &'static ResourceInfo,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// Subresource from the path.
    pub subresource: Option<String>,
    /// The verb.
    pub verb: Verb,
    /// Query parameters.
    pub query: Query,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `User-Agent` header (default field manager).
    pub user_agent: Option<String>,
    /// The request's audit record, when the request is audited.
    pub audit: Option<crate::audit::Slot>,
}

impl Ctx {
    /// Builds a context for an internal call (no HTTP request).
    pub fn internal(info: &'static ResourceInfo, namespace: Option<&str>, verb: Verb) -> Self {
        Self {
            user: Arc::new(UserInfo::apiserver()),
            info,
            storage: views::storage_info(info),
            namespace: namespace.map(str::to_string),
            name: None,
            subresource: None,
            verb,
            query: Query::default(),
            accept: None,
            content_type: None,
            user_agent: None,
            audit: None,
        }
    }

    /// Adds an audit annotation to this request's audit events (see [`crate::audit::Slot::annotate`]).
    pub fn audit_annotation(&self, min_level: crate::audit::Level, key: &str, value: String) {
        if let Some(slot) = &self.audit {
            slot.annotate(min_level, key, value);
        }
    }

    /// `pods` / `deployments.apps` for messages.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.info.group, self.info.plural)
    }

    /// The served kind for `Invalid` errors.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.info.group, self.info.kind)
    }

    /// Store key of an object of this resource.
    pub fn key(&self, name: &str) -> String {
        self.info.key(self.namespace.as_deref(), name)
    }

    /// The path name, or 400 if the request has none.
    pub fn require_name(&self) -> Result<&str, StatusError> {
        self.name.as_deref().ok_or_else(|| StatusError::bad_request("a resource name is required"))
    }
}

/// Serves one resource request.
pub async fn handle(
    state: &ApiState,
    user: Arc<UserInfo>,
    parts: &http::request::Parts,
    req: ResourceRequest,
    query: &str,
    body: Body,
) -> Response<Body> {
    match dispatch(state, user, parts, req, query, body).await {
        Ok(resp) => resp,
        Err(err) => response::status(&err),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Reads a request body up to the size limit.
pub async fn read_body(body: Body) -> Result<Bytes, StatusError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(StatusError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(StatusError::bad_request(format!("failed to read the request body: {e}"))),
    }
}

async fn dispatch(
    state: &ApiState,
    user: Arc<UserInfo>,
    parts: &http::request::Parts,
    req: ResourceRequest,
    query: &str,
    body: Body,
) -> Result<Response<Body>, StatusError> {
    let (method, headers) = (&parts.method, &parts.headers);
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        return Err(StatusError::method_not_supported(
            &GroupResource::new(req.group.clone(), req.resource.clone()),
            method.as_str(),
        ));
    }
    let info = catalogue::find(&req.group, &req.version, &req.resource).ok_or_else(|| {
        StatusError::not_found_message(format!(
            "the server could not find the requested resource ({} {})",
            method.as_str(),
            req.resource
        ))
    })?;
    let scope_ok = if info.namespaced {
        req.namespace.is_some() || (req.name.is_none() && matches!(req.verb, Verb::List | Verb::Watch))
    } else {
        req.namespace.is_none()
    };
    if !scope_ok {
        return Err(StatusError::not_found_message("the server could not find the requested resource"));
    }
    let ctx = Ctx {
        user,
        info,
        storage: views::storage_info(info),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        subresource: req.subresource.clone(),
        verb: req.verb,
        query: Query::parse(query),
        accept: header_str(headers, header::ACCEPT),
        content_type: header_str(headers, header::CONTENT_TYPE),
        user_agent: header_str(headers, header::USER_AGENT),
        audit: parts.extensions.get::<crate::audit::Slot>().cloned(),
    };
    if let Some(sub) = &ctx.subresource {
        return subresource::handle(state, &ctx, method, sub, body).await;
    }
    if !info.supports(ctx.verb.as_str()) {
        return Err(StatusError::method_not_supported(&ctx.group_resource(), ctx.verb.as_str()));
    }
    match ctx.verb {
        Verb::Get => read::get(state, &ctx).await,
        Verb::List => read::list(state, &ctx).await,
        Verb::Watch => watch::watch(state, &ctx).await,
        Verb::Create if binding::is_legacy_collection(info) => {
            binding::create_legacy(state, &ctx, read_body(body).await?).await
        }
        Verb::Create if review::is_review(info) => review::create(state, &ctx, read_body(body).await?).await,
        Verb::Create => write::create(state, &ctx, read_body(body).await?).await,
        Verb::Update => write::update(state, &ctx, read_body(body).await?).await,
        Verb::Patch => write::patch(state, &ctx, read_body(body).await?).await,
        Verb::Delete => delete::delete(state, &ctx, read_body(body).await?).await,
        Verb::DeleteCollection => delete::delete_collection(state, &ctx, read_body(body).await?).await,
    }
}
