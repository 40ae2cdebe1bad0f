//! The API server's own metrics, served at `/metrics` in the Prometheus text format with
//! upstream's names and labels: requests by verb, resource, scope and code
//! (`apiserver_request_total`), their durations (`apiserver_request_duration_seconds`, long-running
//! requests left out), requests in flight (`apiserver_current_inflight_requests`) and
//! long-running ones (`apiserver_longrunning_requests`), audit events and the ones lost
//! (`apiserver_audit_event_total`, `apiserver_audit_error_total`), objects per resource
//! (`apiserver_storage_objects`), and the process's start time and memory.
//!
//! `routes::entry` calls [`Telemetry::begin`] when a request arrives and [`Tracked::finish`]
//! with its response. [`labels`] derives the labels, [`registry`] counts, [`exposition`] writes
//! the text, [`process`] reads `/proc`. Who may read `/metrics` is RBAC's business (the
//! `system:monitoring` ClusterRole); the resource metrics API `metrics.k8s.io` is
//! [`crate::metrics`], not this.

pub mod exposition;
pub mod labels;
pub mod process;
pub mod registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::body::Body;
use http::Response;

use self::exposition::{Document, Kind};
use self::labels::RequestKind;
pub use self::labels::RequestLabels;
use self::registry::{DURATION_BUCKETS, Registry};
use crate::audit::AuditCounts;

/// The `component` label of every request series.
const COMPONENT: &str = "apiserver";

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Telemetry {
    registry: Registry,
    read_only_in_flight: AtomicI64,
    mutating_in_flight: AtomicI64,
}

/// What the scrape reads from outside this module.
#[derive(Debug, Default)]
pub struct Sources {
    /// The audit backend's counts, when auditing.
    pub audit: Option<AuditCounts>,
    /// Objects per storage prefix (`/registry/<group>/<resource>/`).
    pub objects: Vec<(String, usize)>,
}

impl Telemetry {
    /// No requests seen yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn in_flight(&self, kind: RequestKind) -> &AtomicI64 {
        match kind {
            RequestKind::ReadOnly => &self.read_only_in_flight,
            RequestKind::Mutating => &self.mutating_in_flight,
        }
    }

    /// Starts tracking a request with `labels`: it counts as in flight (unless long-running)
    /// until the returned value is finished or dropped.
    pub fn begin(self: &Arc<Self>, labels: RequestLabels) -> Tracked {
        let kind = (!labels.is_long_running()).then(|| labels.request_kind());
        if let Some(kind) = kind {
            self.in_flight(kind).fetch_add(1, Ordering::Relaxed);
        }
        Tracked { telemetry: self.clone(), labels: Some(labels), kind, started: Instant::now() }
    }

    /// The `/metrics` document.
    pub fn render(&self, sources: &Sources) -> String {
        let snapshot = self.registry.snapshot();
        let mut doc = Document::default();
        doc.family(
            "apiserver_request_total",
            "Requests answered, by verb, dry run, group, version, resource, subresource, scope, component and HTTP status code.",
            Kind::Counter,
        );
        for (l, series) in &snapshot.requests {
            for (code, n) in &series.codes {
                let code = code.to_string();
                let labels = request_labels(l, Some(&code));
                doc.sample("apiserver_request_total", &labels, *n as f64);
            }
        }
        doc.family(
            "apiserver_request_duration_seconds",
            "Time to answer a request in seconds (watches and connections excluded), by verb, dry run, group, version, resource, subresource, scope and component.",
            Kind::Histogram,
        );
        for (l, series) in snapshot.requests.iter().filter(|(_, s)| s.observed() > 0) {
            let labels = request_labels(l, None);
            doc.histogram(
                "apiserver_request_duration_seconds",
                &labels,
                &DURATION_BUCKETS,
                &series.buckets,
                series.sum,
            );
        }
        doc.family(
            "apiserver_current_inflight_requests",
            "Requests being handled now (long-running ones excluded), by kind: readOnly or mutating.",
            Kind::Gauge,
        );
        for kind in [RequestKind::Mutating, RequestKind::ReadOnly] {
            let n = self.in_flight(kind).load(Ordering::Relaxed);
            doc.sample("apiserver_current_inflight_requests", &[("request_kind", kind.as_str())], n as f64);
        }
        doc.family(
            "apiserver_longrunning_requests",
            "Long-running requests (watches, logs, exec, attach, port forwarding, proxy) streaming now, by verb, group, version, resource, subresource, scope and component.",
            Kind::Gauge,
        );
        for (l, n) in &snapshot.long_running {
            let labels = [
                ("component", COMPONENT),
                ("group", l.group.as_str()),
                ("resource", l.resource.as_str()),
                ("scope", l.scope),
                ("subresource", l.subresource.as_str()),
                ("verb", l.verb),
                ("version", l.version.as_str()),
            ];
            doc.sample("apiserver_longrunning_requests", &labels, *n as f64);
        }
        let audit = sources.audit.unwrap_or_default();
        doc.family(
            "apiserver_audit_event_total",
            "Audit events generated and handed to the audit backend.",
            Kind::Counter,
        );
        doc.sample("apiserver_audit_event_total", &[], audit.events as f64);
        doc.family(
            "apiserver_audit_error_total",
            "Audit events lost, by plugin: buffered (dropped because the writer's queue was full) or log (the write failed).",
            Kind::Counter,
        );
        doc.sample("apiserver_audit_error_total", &[("plugin", "buffered")], audit.dropped as f64);
        doc.sample("apiserver_audit_error_total", &[("plugin", "log")], audit.write_failures as f64);
        doc.family(
            "apiserver_storage_objects",
            "Objects stored, by resource, as the watch cache holds them.",
            Kind::Gauge,
        );
        let mut objects: Vec<(String, usize)> =
            sources.objects.iter().filter_map(|(prefix, n)| Some((storage_resource(prefix)?, *n))).collect();
        objects.sort();
        for (resource, n) in &objects {
            doc.sample("apiserver_storage_objects", &[("resource", resource)], *n as f64);
        }
        if let Some(start) = process::start_time_seconds() {
            doc.family(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                Kind::Gauge,
            );
            doc.sample("process_start_time_seconds", &[], start);
        }
        if let Some(rss) = process::resident_memory_bytes() {
            doc.family("process_resident_memory_bytes", "Resident memory size in bytes.", Kind::Gauge);
            doc.sample("process_resident_memory_bytes", &[], rss);
        }
        doc.finish()
    }
}

/// The labels of a request series in name order (`code` only for the counter).
fn request_labels<'a>(l: &'a RequestLabels, code: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut labels = Vec::with_capacity(9);
    if let Some(code) = code {
        labels.push(("code", code));
    }
    labels.extend([
        ("component", COMPONENT),
        ("dry_run", l.dry_run),
        ("group", l.group.as_str()),
        ("resource", l.resource.as_str()),
        ("scope", l.scope),
        ("subresource", l.subresource.as_str()),
        ("verb", l.verb),
        ("version", l.version.as_str()),
    ]);
    labels
}

/// The `resource` label of a storage prefix: `pods` for `/registry/core/pods/`,
/// `deployments.apps` for `/registry/apps/deployments/`.
fn storage_resource(prefix: &str) -> Option<String> {
    let (group, resource) = prefix.strip_prefix("/registry/")?.trim_end_matches('/').split_once('/')?;
    Some(if group == "core" { resource.to_string() } else { format!("{resource}.{group}") })
}

/// A request being handled.
#[derive(Debug)]
pub struct Tracked {
    telemetry: Arc<Telemetry>,
    labels: Option<RequestLabels>,
    kind: Option<RequestKind>,
    started: Instant,
}

impl Tracked {
    /// Counts the request with its response. A successful long-running response is counted
    /// now and stays in `apiserver_longrunning_requests` until its body is dropped (the stream
    /// ended or the client went away).
    pub fn finish(mut self, resp: Response<Body>) -> Response<Body> {
        let Some(labels) = self.labels.take() else { return resp };
        let code = resp.status().as_u16();
        if !labels.is_long_running() {
            self.telemetry.registry.record(labels, code, Some(self.started.elapsed()));
            return resp;
        }
        if !resp.status().is_success() {
            self.telemetry.registry.record(labels, code, None);
            return resp;
        }
        self.telemetry.registry.long_running(&labels, 1);
        let streaming = LongRunning { telemetry: self.telemetry.clone(), labels: labels.clone() };
        self.telemetry.registry.record(labels, code, None);
        crate::response::hold_until_done(resp, streaming)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(kind) = self.kind {
            self.telemetry.in_flight(kind).fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Counts a long-running request as in progress until dropped.
struct LongRunning {
    telemetry: Arc<Telemetry>,
    labels: RequestLabels,
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.telemetry.registry.long_running(&self.labels, -1);
    }
}

#[cfg(test)]
mod tests;
