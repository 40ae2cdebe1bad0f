//! The request entry point: authentication, authorization, then non-resource paths (health, version,
//! discovery, OpenAPI, `/metrics`) or the resource handlers. Every request ends in a response; a
//! panic in a handler becomes a 500 `Status` instead of a dropped connection. Every request is
//! counted by [`crate::telemetry`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;
use skiff_api::StatusError;

use crate::authn::{self, PeerCertificate, TokenAuthenticator, UserInfo};
use crate::authz::{self, Attributes, Authorizers, Decision, ResourceAttributes};
use crate::discovery;
use crate::openapi::OpenApiCache;
use crate::reqinfo::{self, Target};
use crate::state::ApiState;
use crate::telemetry::{self, RequestLabels, Telemetry};
use crate::{handlers, response};

/// What the router needs.
pub struct Shared {
    /// API state.
    pub state: Arc<ApiState>,
    /// Bearer tokens.
    pub tokens: TokenAuthenticator,
    /// The authorization chain.
    pub authorizers: Arc<Authorizers>,
    /// Connections to node agents for the streaming subresources of pods.
    pub kubelet: Option<crate::nodeproxy::KubeletDialer>,
    /// The audit backend, when `--audit-log-path` is set.
    pub audit: Option<Arc<crate::audit::Auditor>>,
    /// The resource metrics API (`metrics.k8s.io`), when node agents can be reached.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The server's own metrics (`/metrics`).
    pub telemetry: Arc<Telemetry>,
}

/// The axum router serving the whole API.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(move |req: Request<Body>| {
        let shared = shared.clone();
        async move { entry(shared, req).await }
    })
}

async fn entry(shared: Arc<Shared>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("");
    let target = reqinfo::parse(&method, &path, query);
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let tracked = shared.telemetry.begin(RequestLabels::of(&method, &target, query, content_type));
    let (req, audit) = match &shared.audit {
        Some(auditor) => match crate::audit::prepare(req, auditor).await {
            Ok((req, slot)) => (req, Some(slot)),
            Err(resp) => return tracked.finish(resp),
        },
        None => (req, None),
    };
    let (resp, panicked) = match AssertUnwindSafe(route(&shared, req, target)).catch_unwind().await {
        Ok(resp) => (resp, false),
        Err(_) => {
            tracing::error!(%method, %path, "handler panicked");
            (
                response::status(&StatusError::internal("the server hit an internal error while handling the request")),
                true,
            )
        }
    };
    let resp = match audit {
        Some(slot) => crate::audit::finish(slot, resp, panicked).await,
        None => resp,
    };
    let resp = tracked.finish(resp);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// The identity of a connection without a client certificate.
const NO_CERTIFICATE: PeerCertificate = PeerCertificate { presented: false, user: None };

async fn route(shared: &Shared, req: Request<Body>, target: Target) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let cert = parts.extensions.get::<PeerCertificate>().unwrap_or(&NO_CERTIFICATE);
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let user = if authn::is_public(&path) {
        // Anyone may read these; the audit log still names who asked when they say.
        if shared.audit.is_some() {
            let user = authn::authenticate(&shared.tokens, cert, authorization)
                .unwrap_or_else(|| Arc::new(UserInfo::anonymous()));
            let attrs = attributes(&user, &parts.method, &path, &target);
            crate::audit::authorized(&parts, &user, None, &attrs, true, "");
        }
        Arc::new(UserInfo::anonymous())
    } else {
        let Some(caller) = authn::authenticate(&shared.tokens, cert, authorization) else {
            if shared.audit.is_some() {
                let attrs = attributes(&Arc::new(UserInfo::default()), &parts.method, &path, &target);
                crate::audit::unauthenticated(&parts, &attrs, cert.presented);
            }
            return response::status(&StatusError::unauthorized("Unauthorized"));
        };
        let user = match authz::impersonation::apply(&shared.authorizers, caller.clone(), &parts.headers) {
            Ok(user) => user,
            Err(e) => {
                if shared.audit.is_some() {
                    let attrs = attributes(&caller, &parts.method, &path, &target);
                    crate::audit::authorized(&parts, &caller, None, &attrs, false, &e.message);
                }
                return response::status(&e);
            }
        };
        let mut attrs = attributes(&user, &parts.method, &path, &target).with_query(&query);
        // The reason of an allow is formatted only for the audit log.
        let (decision, allowed_because) = match &shared.audit {
            Some(_) => shared.authorizers.authorize_explained(&attrs),
            None => (shared.authorizers.authorize(&attrs), String::new()),
        };
        if shared.audit.is_some() {
            let (allowed, reason) = match &decision {
                Decision::Deny(why) | Decision::NoOpinion(why) => (false, why.as_str()),
                Decision::Allow => (true, allowed_because.as_str()),
            };
            let impersonated = (!Arc::ptr_eq(&caller, &user)).then_some(user.as_ref());
            crate::audit::authorized(&parts, &caller, impersonated, &attrs, allowed, reason);
        }
        if let Decision::Deny(why) = decision {
            tracing::debug!(user = %user.name, verb = %attrs.verb, %path, reason = %why, "forbidden");
            return response::status(&authz::forbidden(&attrs, &why));
        }
        // A GET of exec/attach/portforward (WebSocket) must also be allowed to `create`, as upstream.
        if authz::rbac::needs_create_too(&attrs) {
            attrs.verb = "create".into();
            if let Decision::Deny(why) = shared.authorizers.authorize(&attrs) {
                return response::status(&authz::forbidden(&attrs, &why));
            }
        }
        user
    };
    let state = &shared.state;
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return health(state, &path, &query),
        "/version" => return response::json(200, &discovery::version_info()),
        "/.well-known/openid-configuration" | "/openid/v1/jwks" => {
            return authn::serviceaccount::oidc_response(state, &path);
        }
        "/openapi/v2" => return openapi_v2(accept, &parts.headers),
        "/metrics" if matches!(parts.method, Method::GET | Method::HEAD) => return metrics(shared),
        "/openapi/v3" | "/openapi/v3/" => {
            return response::json_bytes(200, OpenApiCache::current().index_body().to_vec());
        }
        _ => {}
    }
    if let Some(check) = path
        .strip_prefix("/readyz/")
        .or_else(|| path.strip_prefix("/livez/"))
        .or_else(|| path.strip_prefix("/healthz/"))
    {
        return single_check(state, check);
    }
    if let Some(doc) = path.strip_prefix("/openapi/v3/") {
        let cache = OpenApiCache::current();
        return match cache.v3_document(doc) {
            Some(d) => {
                let mut resp = response::json_bytes(200, d.body.clone());
                if query.contains("hash=") {
                    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
                }
                resp
            }
            None => response::status(&StatusError::not_found_message(format!("no OpenAPI document at {path}"))),
        };
    }
    let resources = skiff_api::catalogue::all();
    let aggregated = discovery::wants_aggregated(accept);
    match target {
        Target::CoreDiscovery if aggregated => aggregated_response(discovery::aggregated_discovery(true, &resources)),
        Target::GroupsDiscovery if aggregated => {
            aggregated_response(discovery::aggregated_discovery(false, &resources))
        }
        Target::CoreDiscovery => {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
            let address = host.unwrap_or_else(|| format!("{}:{}", state.config.advertise_address, state.config.port));
            response::json(200, &discovery::api_versions(&address))
        }
        Target::GroupsDiscovery => response::json(200, &discovery::api_group_list(&resources)),
        Target::GroupDiscovery(group) => match discovery::api_group(&group, &resources) {
            Some(v) => response::json(200, &v),
            None => not_found(&path),
        },
        Target::GroupVersionDiscovery(group, version) => {
            match discovery::api_resource_list(&group, &version, &resources) {
                Some(v) => response::json(200, &v),
                None => not_found(&path),
            }
        }
        Target::Resource(req) if crate::nodeproxy::is_node_proxy(&req) => {
            crate::nodeproxy::handle_node_proxy(state, shared.kubelet.as_ref(), &req, parts, body).await
        }
        Target::Resource(req) if crate::nodeproxy::is_streaming(&req) => {
            crate::nodeproxy::handle(state, shared.kubelet.as_ref(), user, req, parts, body).await
        }
        Target::Resource(req) if crate::metrics::api::is_metrics(&req) => match &shared.metrics {
            Some(metrics) => metrics.handle(state, &req, &query, Some(accept)),
            None => response::status(&StatusError::service_unavailable("the resource metrics API is not available")),
        },
        Target::Resource(req) => handlers::handle(state, user, &parts, req, &query, body).await,
        Target::NonResource => {
            if parts.method != Method::GET {
                return response::status(&StatusError::not_found_message(
                    "the server could not find the requested resource",
                ));
            }
            not_found(&path)
        }
    }
}

/// The authorization question a request asks.
fn attributes(user: &Arc<UserInfo>, method: &Method, path: &str, target: &Target) -> Attributes {
    let (verb, resource) = match target {
        Target::Resource(req) => (req.verb.as_str().to_string(), Some(ResourceAttributes::from_request(req))),
        _ => (method.as_str().to_ascii_lowercase(), None),
    };
    let verb = if verb == "head" { "get".to_string() } else { verb };
    Attributes { user: user.clone(), verb, resource, path: path.to_string() }
}

fn not_found(path: &str) -> Response<Body> {
    response::status(&StatusError::not_found_message(format!(
        "the server could not find the requested resource ({path})"
    )))
}

fn aggregated_response(v: serde_json::Value) -> Response<Body> {
    let mut resp = response::json(200, &v);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_V2_CONTENT_TYPE));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `/openapi/v2`: the protobuf form when asked for (kubectl), else JSON; both with an `ETag`,
/// answered with 304 when `If-None-Match` names it. Rendered on first request after a change of
/// the served resources.
fn openapi_v2(accept: &str, headers: &HeaderMap) -> Response<Body> {
    let doc = OpenApiCache::current().v2();
    let (rendered, content_type) = if accept.contains("protobuf") {
        // The protobuf media type contains '@', which Go's mime parser (used by client-go on
        // every response) rejects; upstream answers with application/octet-stream.
        (&doc.protobuf, "application/octet-stream")
    } else {
        (&doc.json, "application/json")
    };
    let fresh =
        headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| rendered.matches(v));
    let mut resp = if fresh {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let mut resp = Response::new(Body::from(rendered.body.clone()));
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    };
    if let Ok(etag) = HeaderValue::from_str(&rendered.etag) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `/metrics`: the server's own metrics in the Prometheus text format.
fn metrics(shared: &Shared) -> Response<Body> {
    let sources = telemetry::Sources {
        audit: shared.audit.as_ref().map(|a| a.counts()),
        objects: shared.state.caches.object_counts(),
    };
    let mut resp = response::text(200, shared.telemetry.render(&sources));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(telemetry::exposition::CONTENT_TYPE));
    resp
}

fn health(state: &ApiState, path: &str, query: &str) -> Response<Body> {
    let checks = if path == "/readyz" { state.readiness() } else { vec![("ping", Ok(())), ("log", Ok(()))] };
    let verbose = query.split('&').any(|p| p == "verbose" || p.starts_with("verbose="));
    let failed = checks.iter().any(|(_, r)| r.is_err());
    let mut body = String::new();
    if verbose || failed {
        for (name, result) in &checks {
            match result {
                Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
                Err(why) => body.push_str(&format!("[-]{name} failed: {why}\n")),
            }
        }
        let name = path.trim_start_matches('/');
        body.push_str(&if failed { format!("{name} check failed\n") } else { format!("{name} check passed\n") });
    } else {
        body.push_str("ok");
    }
    response::text(if failed { 500 } else { 200 }, body)
}

fn single_check(state: &ApiState, check: &str) -> Response<Body> {
    match state.readiness().into_iter().find(|(name, _)| *name == check) {
        Some((_, Ok(()))) => response::text(200, "ok".into()),
        Some((_, Err(why))) => response::text(500, format!("[-]{check} failed: {why}\n")),
        None => response::status(&StatusError::not_found_message(format!("no health check named {check:?}"))),
    }
}

/// A JSON summary of readiness (for logs and the CLI).
pub fn readiness_summary(state: &ApiState) -> serde_json::Value {
    json!(state.readiness().into_iter().map(|(n, r)| (n, r.is_ok())).collect::<std::collections::BTreeMap<_, _>>())
}
