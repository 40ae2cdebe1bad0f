//! The audit log (`--audit-log-path`, `--audit-policy-file`): one `audit.k8s.io/v1` Event per
//! request stage the policy asks for, written as JSON lines off the request path.
//!
//! Flow: `routes::entry` calls [`prepare`] (buffers a write's body when auditing, so that the
//! `Request` level can log it) and puts a [`Slot`] in the request's extensions; `routes::route`
//! calls [`authorized`] once the user and the authorization decision are known (policy
//! evaluation, `RequestReceived`); `entry` ends with [`finish`] (`ResponseComplete`, or
//! `ResponseStarted` now and `ResponseComplete` when a watch or stream ends, `Panic` after a
//! panic). Events go through a bounded channel to the writer thread (`writer`); when it is
//! full the event is dropped, counted and logged — a request never waits for the log. The
//! counts ([`AuditCounts`]) are served at `/metrics` (`crate::telemetry`).
//!
//! Requests that fail authentication get one `ResponseStarted` event without a user (as
//! upstream's failed-authentication audit); public paths are audited as `system:anonymous`.
//! Admission adds annotations through [`Slot::annotate`] (PodSecurity, webhooks,
//! ValidatingAdmissionPolicy). Request bodies are logged when they decode (JSON, YAML or
//! protobuf).

pub mod policy;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, header};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::authn::{PeerAddress, UserInfo};
use crate::authz::Attributes;
pub use policy::{Level, Policy, Stage};
pub use writer::Rotation;

/// Events waiting for the writer before new ones are dropped.
const QUEUE: usize = 10_000;

/// Largest response body kept for `responseObject` (bigger ones are logged without it).
const MAX_RESPONSE_OBJECT: usize = 3 * 1024 * 1024;

/// Audit settings.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The policy (the documented default without `--audit-policy-file`).
    pub policy: Policy,
    /// The log file (`-` for standard output).
    pub log_path: PathBuf,
    /// Rotation limits.
    pub rotation: Rotation,
}

/// The running audit backend.
pub struct Auditor {
    policy: Policy,
    tx: mpsc::Sender<Vec<u8>>,
    events: AtomicU64,
    dropped: AtomicU64,
    write_failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auditor {{ {:?} }}", self.counts())
    }
}

/// What the audit backend has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    /// Events generated (written or not).
    pub events: u64,
    /// Events dropped because the writer's queue was full.
    pub dropped: u64,
    /// Events the writer failed to write.
    pub write_failures: u64,
}

impl Auditor {
    /// Opens the log and starts the writer thread.
    pub fn start(opts: &AuditOptions) -> std::io::Result<Arc<Self>> {
        let mut log = writer::LogFile::open(&opts.log_path, opts.rotation)?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let write_failures = Arc::new(AtomicU64::new(0));
        let failures = write_failures.clone();
        std::thread::Builder::new().name("audit-log".into()).spawn(move || {
            while let Some(line) = rx.blocking_recv() {
                let mut batch = 1;
                let mut result = log.write_line(&line);
                while let Ok(more) = rx.try_recv() {
                    batch += 1;
                    result = result.and_then(|()| log.write_line(&more));
                }
                if let Err(e) = result.and_then(|()| log.flush()) {
                    // Which lines of the batch made it is unknown: the batch counts as failed.
                    failures.fetch_add(batch, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot write the audit log");
                }
            }
        })?;
        Ok(Arc::new(Self {
            policy: opts.policy.clone(),
            tx,
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_failures,
        }))
    }

    /// The backend's counts so far.
    pub fn counts(&self) -> AuditCounts {
        AuditCounts {
            events: self.events.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
        }
    }

    fn send(&self, event: &Value) {
        let Ok(line) = serde_json::to_vec(event) else { return };
        self.events.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(line).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind: events dropped");
            }
        }
    }
}

/// One request's audit state, carried in the request's extensions.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Record>>>);

impl Slot {
    /// Adds an annotation to the request's remaining audit events (upstream's audit
    /// annotations) when the policy logs the request at `min_level` or above. The first value
    /// of a key wins.
    pub fn annotate(&self, min_level: Level, key: &str, value: String) {
        let Ok(mut guard) = self.0.lock() else { return };
        let Some(record) = guard.as_mut() else { return };
        if record.decision.level < min_level {
            return;
        }
        if let Some(Value::Object(annotations)) = record.event.get_mut("annotations") {
            annotations.entry(key).or_insert(Value::String(value));
        }
    }
}

struct Record {
    auditor: Arc<Auditor>,
    decision: policy::Decision,
    event: Map<String, Value>,
    long_running: bool,
}

/// The request body when it was buffered for auditing.
#[derive(Clone)]
struct RequestBody(Bytes);

/// Prepares a request for auditing: a slot in its extensions and, for writes, the body
/// buffered (at most the API's body limit; larger bodies answer 413 here).
pub async fn prepare(req: Request<Body>, auditor: &Arc<Auditor>) -> Result<(Request<Body>, Slot), Response<Body>> {
    let slot = Slot::default();
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(slot.clone());
    parts.extensions.insert(auditor.clone());
    let body = if matches!(
        parts.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
    ) {
        let limited = http_body_util::Limited::new(body, crate::negotiate::MAX_BODY_BYTES);
        match limited.collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                parts.extensions.insert(RequestBody(bytes.clone()));
                Body::from(bytes)
            }
            Err(_) => {
                return Err(crate::response::status(&skiff_api::StatusError::too_large(
                    crate::negotiate::MAX_BODY_BYTES,
                )));
            }
        }
    } else {
        body
    };
    Ok((Request::from_parts(parts, body), slot))
}

/// `2026-11-26T16:02:47.123456Z` (upstream's MicroTime).
fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn user_json(user: &UserInfo) -> Value {
    let mut u = Map::new();
    u.insert("username".into(), json!(user.name));
    if !user.uid.is_empty() {
        u.insert("uid".into(), json!(user.uid));
    }
    if !user.groups.is_empty() {
        u.insert("groups".into(), json!(user.groups));
    }
    if !user.extra.is_empty() {
        u.insert("extra".into(), json!(user.extra));
    }
    Value::Object(u)
}

/// Records the authenticated user (and whom it impersonates) and the authorization decision;
/// evaluates the policy for the authenticated user, as upstream, and writes `RequestReceived`.
/// A no-op when the request is not being audited.
pub fn authorized(
    parts: &Parts,
    user: &UserInfo,
    impersonated: Option<&UserInfo>,
    attrs: &Attributes,
    allowed: bool,
    reason: &str,
) {
    let Some(slot) = parts.extensions.get::<Slot>() else { return };
    let Some((auditor, decision)) = evaluate(parts, user, attrs) else { return };
    let mut event = base_event(parts, user, attrs, &decision);
    if let Some(as_user) = impersonated {
        event.insert("impersonatedUser".into(), user_json(as_user));
    }
    let mut annotations = Map::new();
    annotations.insert("authorization.k8s.io/decision".into(), json!(if allowed { "allow" } else { "forbid" }));
    annotations.insert("authorization.k8s.io/reason".into(), json!(reason));
    event.insert("annotations".into(), Value::Object(annotations));
    let long_running = attrs.verb == "watch"
        || attrs
            .resource
            .as_ref()
            .is_some_and(|r| matches!(r.subresource.as_str(), "exec" | "attach" | "portforward" | "proxy" | "log"));
    let record = Record { auditor, decision, event, long_running };
    record.emit(Stage::RequestReceived, None);
    if let Ok(mut guard) = slot.0.lock() {
        *guard = Some(record);
    }
}

/// Records a request that failed authentication, as upstream's failed-authentication audit:
/// one `ResponseStarted` event with no user and a 401 naming the credentials tried.
pub fn unauthenticated(parts: &Parts, attrs: &Attributes, had_certificate: bool) {
    let nobody = UserInfo::default();
    let Some((auditor, decision)) = evaluate(parts, &nobody, attrs) else { return };
    let mut event = base_event(parts, &nobody, attrs, &decision);
    event.insert("user".into(), json!({}));
    let mut status = Map::new();
    status.insert("metadata".into(), json!({}));
    status.insert("message".into(), json!(attempted_credentials(parts, had_certificate)));
    status.insert("code".into(), json!(401));
    let mut extra = Map::new();
    extra.insert("responseStatus".into(), Value::Object(status));
    Record { auditor, decision, event, long_running: false }.emit(Stage::ResponseStarted, Some(extra));
}

/// Upstream's message for a failed authentication: which kinds of credentials were tried.
fn attempted_credentials(parts: &Parts, had_certificate: bool) -> String {
    let mut methods = Vec::new();
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let scheme = authorization.split(' ').next().unwrap_or("").to_ascii_lowercase();
    if scheme == "basic" {
        methods.push("basic");
    }
    if scheme == "bearer" && authorization.split(' ').count() > 1 {
        methods.push("bearer");
    }
    if parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token=") && kv.len() > 13)) {
        methods.push("access_token");
    }
    if had_certificate {
        methods.push("x509");
    }
    if methods.is_empty() {
        "Authentication failed, no credentials provided".to_string()
    } else {
        format!("Authentication failed, attempted: {}", methods.join(", "))
    }
}

/// The auditor and the policy's decision for a request, or `None` when it is not audited.
fn evaluate(parts: &Parts, user: &UserInfo, attrs: &Attributes) -> Option<(Arc<Auditor>, policy::Decision)> {
    let auditor = parts.extensions.get::<Arc<Auditor>>().cloned()?;
    let decision = auditor.policy.evaluate(&policy::RequestAttributes {
        user: &user.name,
        groups: &user.groups,
        verb: &attrs.verb,
        resource: attrs.resource.as_ref(),
        path: &attrs.path,
    });
    (decision.level != Level::None).then_some((auditor, decision))
}

/// The fields every event of a request shares.
fn base_event(parts: &Parts, user: &UserInfo, attrs: &Attributes, decision: &policy::Decision) -> Map<String, Value> {
    // JSON, YAML or protobuf, decoded as the handlers do.
    let sent = parts.extensions.get::<RequestBody>().and_then(|RequestBody(body)| {
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let format = crate::negotiate::body_format(content_type).ok()?;
        crate::negotiate::decode_body(body, format).ok()
    });
    let mut event = Map::new();
    event.insert("kind".into(), json!("Event"));
    event.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    event.insert("level".into(), json!(decision.level));
    event.insert("auditID".into(), json!(uuid::Uuid::new_v4().to_string()));
    let uri = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |pq| pq.as_str().to_string());
    event.insert("requestURI".into(), json!(uri));
    event.insert("verb".into(), json!(attrs.verb));
    event.insert("user".into(), user_json(user));
    if let Some(peer) = parts.extensions.get::<PeerAddress>() {
        event.insert("sourceIPs".into(), json!([peer.0.ip().to_string()]));
    }
    if let Some(agent) = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        event.insert("userAgent".into(), json!(agent));
    }
    if let Some(res) = &attrs.resource {
        let mut obj = Map::new();
        obj.insert("resource".into(), json!(res.resource));
        for (k, v) in [("namespace", &res.namespace), ("name", &res.name)] {
            if !v.is_empty() {
                obj.insert(k.into(), json!(v));
            }
        }
        obj.insert("apiGroup".into(), json!(res.group));
        obj.insert("apiVersion".into(), json!(res.version));
        if !res.subresource.is_empty() {
            obj.insert("subresource".into(), json!(res.subresource));
        }
        // Creates name their object in the body only: upstream fills the reference from it.
        if let Some(Value::Object(meta)) = sent.as_ref().and_then(|s| s.get("metadata")) {
            for (k, field) in
                [("namespace", "namespace"), ("name", "name"), ("uid", "uid"), ("resourceVersion", "resourceVersion")]
            {
                if let Some(Value::String(v)) = meta.get(field)
                    && !v.is_empty()
                    && !obj.contains_key(k)
                {
                    obj.insert(k.into(), json!(v));
                }
            }
        }
        event.insert("objectRef".into(), Value::Object(obj));
    }
    if decision.level >= Level::Request
        && let Some(mut obj) = sent
    {
        if decision.omit_managed_fields {
            strip_managed_fields(&mut obj);
        }
        event.insert("requestObject".into(), obj);
    }
    event.insert("requestReceivedTimestamp".into(), json!(now()));
    event
}

impl Record {
    fn emit(&self, stage: Stage, extra: Option<Map<String, Value>>) {
        if self.decision.omit_stages.contains(&stage) {
            return;
        }
        let mut event = self.event.clone();
        event.insert("stage".into(), json!(stage));
        event.insert("stageTimestamp".into(), json!(now()));
        if let Some(extra) = extra {
            event.extend(extra);
        }
        self.auditor.send(&Value::Object(event));
    }
}

fn strip_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            strip_managed_fields(item);
        }
    }
}

/// `responseStatus`: the code, and for failures the `Status` body's status, reason and message.
fn response_status(code: u16, body: Option<&[u8]>) -> Value {
    let mut status = Map::new();
    status.insert("metadata".into(), json!({}));
    if code >= 300
        && let Some(s) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
        && s.get("kind").and_then(Value::as_str) == Some("Status")
    {
        for k in ["status", "message", "reason"] {
            if let Some(v) = s.get(k) {
                status.insert(k.into(), v.clone());
            }
        }
    }
    status.insert("code".into(), json!(code));
    Value::Object(status)
}

/// Writes the closing events of a request and returns its response (long-running responses
/// get a body that writes `ResponseComplete` when it ends or the client goes away).
pub async fn finish(slot: Slot, resp: Response<Body>, panicked: bool) -> Response<Body> {
    let Some(record) = slot.0.lock().ok().and_then(|mut g| g.take()) else { return resp };
    let code = resp.status().as_u16();
    if panicked {
        let mut extra = Map::new();
        extra.insert("responseStatus".into(), response_status(code, None));
        record.emit(Stage::Panic, Some(extra));
        return resp;
    }
    if record.long_running && code < 300 {
        let mut extra = Map::new();
        extra.insert("responseStatus".into(), response_status(code, None));
        record.emit(Stage::ResponseStarted, Some(extra.clone()));
        return crate::response::hold_until_done(resp, CompleteOnDrop { record: Some(record), extra });
    }
    let wants_body = record.decision.level == Level::RequestResponse || code >= 300;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let (resp, body) = if wants_body && is_json {
        let (parts, body) = resp.into_parts();
        match http_body_util::Limited::new(body, MAX_RESPONSE_OBJECT).collect().await {
            Ok(c) => {
                let bytes = c.to_bytes();
                (Response::from_parts(parts, Body::from(bytes.clone())), Some(bytes))
            }
            Err(_) => (Response::from_parts(parts, Body::empty()), None),
        }
    } else {
        (resp, None)
    };
    let mut extra = Map::new();
    extra.insert("responseStatus".into(), response_status(code, body.as_deref()));
    if record.decision.level == Level::RequestResponse
        && let Some(mut obj) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        if record.decision.omit_managed_fields {
            strip_managed_fields(&mut obj);
        }
        extra.insert("responseObject".into(), obj);
    }
    record.emit(Stage::ResponseComplete, Some(extra));
    resp
}

/// Writes `ResponseComplete` once a long-running response's body is dropped.
struct CompleteOnDrop {
    record: Option<Record>,
    extra: Map<String, Value>,
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.emit(Stage::ResponseComplete, Some(std::mem::take(&mut self.extra)));
        }
    }
}

#[cfg(test)]
mod tests;
