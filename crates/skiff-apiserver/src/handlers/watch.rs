//! WATCH: a newline-delimited JSON event stream served from the watch cache (COMPAT.md §4):
//! synthetic ADDED for current state, resumption from a resource version, in-stream 410 for
//! versions the cache no longer holds, bookmarks, `sendInitialEvents`, and timeouts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use rand::Rng;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_store::{EventKind, Revision};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Ctx;
use super::read::{Filter, cache_err, table_options};
use crate::cache::{CacheError, CacheEvent, Entry, Message, ResourceCache};
use crate::negotiate::{self, Shape};
use crate::state::ApiState;
use crate::tables::{self, TableOptions};
use crate::views;

/// How often idle watches get a bookmark when they asked for them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// What one watch needs to render events.
struct Renderer {
    info: &'static skiff_api::catalogue::ResourceInfo,
    shape: Shape,
    table: Option<TableOptions>,
    sent_columns: bool,
}

impl Renderer {
    fn line(&mut self, kind: &str, entry: &Entry) -> Bytes {
        if self.shape == Shape::Object && !self.info.is_view() {
            let mut out = Vec::with_capacity(entry.json.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(&entry.json);
            out.extend_from_slice(b"}\n");
            return Bytes::from(out);
        }
        let value = views::from_storage(self.info, entry.value());
        let object = match (self.shape, &mut self.table) {
            (Shape::Table, Some(opts)) => {
                opts.include_columns = !self.sent_columns;
                self.sent_columns = true;
                opts.now = jiff::Timestamp::now();
                tables::build_table(self.info, &[&value], json!({"resourceVersion": entry.revision.to_string()}), opts)
            }
            (Shape::Metadata, _) => tables::partial_object_metadata(&value),
            _ => value,
        };
        event_line(kind, &object)
    }

    fn bookmark(&self, revision: Revision, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": metadata}),
        )
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn error_line(err: &StatusError) -> Bytes {
    event_line("ERROR", &err.to_status())
}

/// Which event type (if any) a change means for a watcher with `filter`.
fn classify<'a>(ev: &'a CacheEvent, filter: &Filter) -> Option<(&'static str, &'a Entry)> {
    match ev.kind {
        EventKind::Create => filter.matches(&ev.object).then_some(("ADDED", ev.object.as_ref())),
        EventKind::Delete => filter.matches(&ev.object).then_some(("DELETED", ev.object.as_ref())),
        EventKind::Update => {
            let now = filter.matches(&ev.object);
            let before = ev.previous.as_ref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", ev.object.as_ref())),
                (false, true) => Some(("ADDED", ev.object.as_ref())),
                (true, false) => Some(("DELETED", ev.object.as_ref())),
                (false, false) => None,
            }
        }
    }
}

/// Where a watch starts.
enum Start {
    /// Synthetic ADDED for these, then live events after `revision`.
    Initial { objects: Vec<Arc<Entry>>, revision: Revision, receiver: broadcast::Receiver<Message>, end_marker: bool },
    /// Replay these, then live events after `revision`.
    Resume { backlog: Vec<Arc<CacheEvent>>, revision: Revision, receiver: broadcast::Receiver<Message> },
    /// The requested version is gone: one ERROR event.
    Expired(StatusError),
}

/// WATCH on a collection (or one object via `metadata.name`).
pub async fn watch(state: &ApiState, ctx: &Ctx) -> Result<Response<Body>, StatusError> {
    let mut filter = Filter::from_ctx(ctx)?;
    if let Some(name) = &ctx.name {
        filter.restrict_to_name(name);
    }
    let filter = Arc::new(filter);
    let cache = state
        .caches
        .cache(&ctx.info.key_prefix())
        .ok_or_else(|| StatusError::internal(format!("no cache for {}", ctx.info.plural)))?;
    let rv = ctx.query.resource_version()?;
    let send_initial = match ctx.query.get("sendInitialEvents") {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        _ => None,
    };
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let timeout = match ctx.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let shape = negotiate::shape(ctx.accept.as_deref());
    let table = if shape == Shape::Table { Some(table_options(ctx, true)?) } else { None };

    let initial = send_initial.unwrap_or(matches!(rv, None | Some(0)));
    let start = if initial {
        match rv {
            None => state.caches.sync_to_store().await.map_err(cache_err)?,
            Some(0) => {}
            Some(rv) => state.caches.wait_for(rv, Duration::from_secs(3)).await.map_err(cache_err)?,
        }
        let (snapshot, receiver) = cache.snapshot_and_subscribe();
        let objects = snapshot.objects.values().filter(|e| filter.matches(e)).cloned().collect();
        Start::Initial { objects, revision: snapshot.revision, receiver, end_marker: send_initial == Some(true) }
    } else {
        let rv = rv.unwrap_or(0);
        state.caches.wait_for(rv, Duration::from_secs(3)).await.map_err(cache_err)?;
        match cache.subscribe_after(rv) {
            Ok(sub) => Start::Resume { backlog: sub.backlog, revision: rv, receiver: sub.receiver },
            Err(e @ CacheError::TooOld { .. }) => Start::Expired(cache_err(e)),
            Err(e) => return Err(cache_err(e)),
        }
    };

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let renderer = Renderer { info: ctx.info, shape, table, sent_columns: false };
    let shutdown = state.shutdown_signal();
    tokio::spawn(async move {
        tokio::select! {
            _ = run(cache, filter, renderer, start, tx, bookmarks, timeout) => {}
            _ = shutdown => {}
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// Sends the events after `last` that the filter selects, advancing `last`; false once the
/// client is gone.
async fn forward(
    events: Vec<Arc<CacheEvent>>,
    last: &mut Revision,
    filter: &Filter,
    renderer: &mut Renderer,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
) -> bool {
    for ev in events {
        if ev.revision() <= *last {
            continue;
        }
        *last = ev.revision();
        if let Some((kind, entry)) = classify(&ev, filter)
            && tx.send(Ok(renderer.line(kind, entry))).await.is_err()
        {
            return false;
        }
    }
    true
}

async fn run(
    cache: Arc<ResourceCache>,
    filter: Arc<Filter>,
    mut renderer: Renderer,
    start: Start,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    bookmarks: bool,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let send = |b: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(b)).await.is_ok() }
    };
    let (mut last, mut receiver) = match start {
        Start::Expired(err) => {
            let _ = send(error_line(&err)).await;
            return;
        }
        Start::Initial { objects, revision, receiver, end_marker } => {
            for e in objects {
                if !send(renderer.line("ADDED", &e)).await {
                    return;
                }
            }
            if end_marker && !send(renderer.bookmark(revision, true)).await {
                return;
            }
            (revision, receiver)
        }
        Start::Resume { backlog, revision, receiver } => {
            let mut last = revision;
            if !forward(backlog, &mut last, &filter, &mut renderer, &tx).await {
                return;
            }
            (last, receiver)
        }
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
    loop {
        let events: Vec<Arc<CacheEvent>> = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if bookmarks => {
                if receiver.is_empty() {
                    let progress = cache.progress().max(last);
                    if !send(renderer.bookmark(progress, false)).await {
                        return;
                    }
                }
                continue;
            }
            msg = receiver.recv() => match msg {
                Ok(Message::Event(ev)) => vec![ev],
                Ok(Message::Reset) => {
                    let _ = send(error_line(&StatusError::expired("the watch cache was reset; please re-list"))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => match cache.replay_after(last) {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = send(error_line(&cache_err(e))).await;
                        return;
                    }
                },
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !forward(events, &mut last, &filter, &mut renderer, &tx).await {
            return;
        }
    }
}
