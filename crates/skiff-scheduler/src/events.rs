//! The scheduler's event recorder: `events.k8s.io/v1` Events about pods, as upstream's
//! scheduler writes them (reporting controller `default-scheduler`, instance
//! `default-scheduler-<host>`, name `<pod>.<hex nanoseconds>`), with upstream's series folding
//! (an identical event within 6 minutes bumps `series.count` instead of creating a new one).
//!
//! Recording never blocks scheduling: events go through a bounded queue to a few writer tasks,
//! and are dropped (as upstream's broadcaster drops them) when the queue is full.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

/// How long an event stays foldable into a series.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 10_000;
/// Concurrent event writes.
const WRITERS: usize = 8;

/// One event to record about a pod.
#[derive(Debug, Clone)]
pub struct PodEvent {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub name: String,
    /// UID of the pod.
    pub uid: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// The reason (`Scheduled`, `FailedScheduling`, `Preempted`, …).
    pub reason: &'static str,
    /// The action (`Binding`, `Scheduling`, `Preempting`).
    pub action: &'static str,
    /// The note.
    pub note: String,
}

/// Sends events to the writer tasks.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<PodEvent>,
}

impl Recorder {
    /// Queues an event; drops it when the queue is full.
    pub fn record(&self, ev: PodEvent) {
        if self.tx.try_send(ev).is_err() {
            tracing::debug!("event queue full; dropping an event");
        }
    }
}

#[derive(Debug)]
struct Series {
    name: String,
    count: i32,
    seen: Instant,
}

type SeriesMap = HashMap<(String, &'static str, String), Series>;

/// Starts the writer tasks; returns the recorder.
pub fn start(client: kube::Client, instance: String) -> (Recorder, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<PodEvent>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let series: Arc<Mutex<SeriesMap>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let rx = rx.clone();
        let client = client.clone();
        let instance = instance.clone();
        let series = series.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(ev) = rx.lock().await.recv().await else { return };
                write(&client, &instance, &series, ev).await;
            }
        }));
    }
    (Recorder { tx }, tasks)
}

fn micro_now() -> serde_json::Value {
    json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

async fn write(client: &kube::Client, instance: &str, series: &Mutex<SeriesMap>, ev: PodEvent) {
    let api: Api<Event> = Api::namespaced(client.clone(), &ev.namespace);
    let key = (ev.uid.clone(), ev.reason, ev.note.clone());
    let existing = {
        let mut map = series.lock().await;
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, s| now.duration_since(s.seen) < SERIES_WINDOW);
        }
        match map.get_mut(&key) {
            Some(s) if now.duration_since(s.seen) < SERIES_WINDOW => {
                s.count += 1;
                s.seen = now;
                Some((s.name.clone(), s.count))
            }
            _ => None,
        }
    };
    if let Some((name, count)) = existing {
        let patch = json!({"series": {"count": count, "lastObservedTime": micro_now()}});
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return,
            Err(e) => tracing::debug!(error = %e, event = %name, "cannot update an event series; creating a new event"),
        }
    }
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let name = format!("{}.{:x}", ev.name, nanos);
    let event: Event = match serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ev.namespace},
        "eventTime": micro_now(),
        "reportingController": "default-scheduler",
        "reportingInstance": instance,
        "action": ev.action,
        "reason": ev.reason,
        "type": ev.type_,
        "note": ev.note,
    })) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build an event");
            return;
        }
    };
    let mut event = event;
    event.regarding = Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(ev.name.clone()),
        namespace: Some(ev.namespace.clone()),
        uid: Some(ev.uid.clone()),
        ..Default::default()
    });
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            series.lock().await.insert(key, Series { name, count: 1, seen: Instant::now() });
        }
        Err(e) => tracing::debug!(error = %e, pod = %ev.name, reason = ev.reason, "cannot record an event"),
    }
}
