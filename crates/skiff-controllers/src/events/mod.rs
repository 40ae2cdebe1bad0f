//! Event recording for the controllers, as upstream's controllers record them: core/v1 Events
//! with `source.component` (e.g. `replicaset-controller`), passed through client-go's
//! [`correlator`] (similar events combined, a per-object spam filter), then one Event per
//! distinct (object, type, reason, message), a repeat within ten minutes bumping `count` and
//! `lastTimestamp` (and the message, for the combined event). Publishing never fails a sync.
//!
//! (kube-rs's `Recorder` folds every event of one reason into a series that keeps the first
//! note, which would hide "Created pod: b" behind "Created pod: a".)
//! What does not live here: the wording of events (each controller's, as upstream's).

pub mod correlator;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::EventType;
use serde_json::json;

/// How long a recorded event is remembered for counting repeats.
const CACHE_TTL: Duration = Duration::from_secs(600);

type Key = (String, String, &'static str, String, String);
/// Event name, count, and when it was last recorded.
type Seen = (String, i32, Instant);

/// Publishes events for one controller.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    component: String,
    cache: Arc<Mutex<HashMap<Key, Seen>>>,
    correlator: Arc<Mutex<correlator::Correlator>>,
}

impl Events {
    /// A recorder reporting as `component`.
    pub fn new(client: kube::Client, component: &str) -> Self {
        Self { client, component: component.into(), cache: Arc::default(), correlator: Arc::default() }
    }

    /// Records a Normal event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj.object_ref(&()), EventType::Normal, reason, note).await;
    }

    /// Records a Warning event about `obj`.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj.object_ref(&()), EventType::Warning, reason, note).await;
    }

    /// Records an event about the object `reference`.
    pub async fn publish(&self, reference: ObjectReference, type_: EventType, reason: &str, note: String) {
        let type_ = match type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let ns = reference.namespace.clone().unwrap_or_else(|| "default".into());
        let object: correlator::Object = (
            reference.kind.clone().unwrap_or_default(),
            ns.clone(),
            reference.name.clone().unwrap_or_default(),
            reference.uid.clone().unwrap_or_default(),
            reference.api_version.clone().unwrap_or_default(),
        );
        let correlated = self.correlator.lock().unwrap_or_else(|e| e.into_inner()).correlate(
            &object,
            type_,
            reason,
            &note,
            Instant::now(),
        );
        let Some(correlated) = correlated else {
            tracing::debug!(reason, object = %object.2, "event dropped by the spam filter");
            return;
        };
        let note = correlated.message;
        // The combined event is one event, whatever its latest message.
        let key_note = if correlated.combined { correlator::COMBINED_PREFIX.to_string() } else { note.clone() };
        let key: Key = (
            reference.uid.clone().unwrap_or_default(),
            reference.name.clone().unwrap_or_default(),
            type_,
            reason.to_string(),
            key_note,
        );
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &ns);
        let now = Timestamp::now();
        let seen = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (_, _, at)| at.elapsed() < CACHE_TTL);
            cache.get(&key).map(|(name, count, _)| (name.clone(), *count))
        };
        let result = match seen {
            Some((name, count)) => {
                let patch = json!({"count": count + 1, "lastTimestamp": Time(now), "message": note});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| (name, count + 1))
            }
            None => {
                let name =
                    format!("{}.{:x}", reference.name.as_deref().unwrap_or(&self.component), now.as_nanosecond());
                let ev = CoreEvent {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    involved_object: reference,
                    reason: Some(reason.into()),
                    message: Some(note),
                    type_: Some(type_.into()),
                    source: Some(EventSource { component: Some(self.component.clone()), host: None }),
                    first_timestamp: Some(Time(now)),
                    last_timestamp: Some(Time(now)),
                    count: Some(1),
                    reporting_component: Some(self.component.clone()),
                    reporting_instance: Some(self.component.clone()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &ev).await.map(|_| (name, 1))
            }
        };
        match result {
            Ok((name, count)) => {
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (name, count, Instant::now()));
            }
            Err(e) => tracing::debug!(reason, error = %e, "cannot record an event"),
        }
    }
}
