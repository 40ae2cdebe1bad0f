//! Event recording for the controllers: one kube-rs `Recorder` per controller (its
//! `reportingController`, e.g. `replicaset-controller`), publishing without failing the sync.
//!
//! What does not live here: the wording of events (each controller's, as upstream's).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes events for one controller.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A recorder reporting as `controller`.
    pub fn new(client: kube::Client, controller: &str) -> Self {
        Self { recorder: Recorder::new(client, Reporter { controller: controller.into(), instance: None }) }
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
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::debug!(reason, error = %e, "cannot record an event");
        }
    }
}
