//! Events off the caller's path: [`emit`] queues an event and returns at once; one background
//! task publishes the queue, in order for each involved object, several objects at a time.
//!
//! Why: an event is a durable write on the API server (a round trip and an fsync); a pod's start
//! records several (Pulled, Created, Started) and must not wait for them. Events are best effort,
//! as the kubelet's: a failure is logged at debug level, and what is still queued when the agent
//! stops is lost.
//!
//! What does not live here: what to record (the pod workers and the image manager) and how a
//! recorder folds repeated events into series (kube's `Recorder`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// At most this many events are being published at once (each holds an API connection).
const CONCURRENCY: usize = 8;

struct Item {
    recorder: Recorder,
    reference: ObjectReference,
    event: Event,
}

static QUEUE: OnceLock<mpsc::UnboundedSender<Item>> = OnceLock::new();

/// Queues `event` about `reference` for `recorder` to publish. Events about one object are
/// published in the order they were emitted. Must be called within the agent's tokio runtime.
pub fn emit(recorder: &Recorder, reference: &ObjectReference, event: Event) {
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publisher(rx));
        tx
    });
    let item = Item { recorder: recorder.clone(), reference: reference.clone(), event };
    if queue.send(item).is_err() {
        tracing::debug!("the event publisher is gone; event dropped");
    }
}

/// What orders the events: the involved object's uid, else its kind, namespace and name.
fn key(reference: &ObjectReference) -> String {
    match &reference.uid {
        Some(uid) => uid.clone(),
        None => format!(
            "{}/{}/{}",
            reference.kind.as_deref().unwrap_or(""),
            reference.namespace.as_deref().unwrap_or(""),
            reference.name.as_deref().unwrap_or("")
        ),
    }
}

/// The queues of one publisher: events waiting per object, the objects with an event in flight,
/// and the objects that wait for a free slot.
#[derive(Default)]
struct Queues {
    pending: HashMap<String, VecDeque<Item>>,
    busy: HashSet<String>,
    ready: VecDeque<String>,
}

impl Queues {
    fn push(&mut self, item: Item) {
        let key = key(&item.reference);
        let queue = self.pending.entry(key.clone()).or_default();
        queue.push_back(item);
        if queue.len() == 1 && !self.busy.contains(&key) {
            self.ready.push_back(key);
        }
    }

    /// The next event to publish, if a slot is free (`in_flight` < [`CONCURRENCY`]).
    fn next(&mut self, in_flight: usize) -> Option<(String, Item)> {
        if in_flight >= CONCURRENCY {
            return None;
        }
        let key = self.ready.pop_front()?;
        let item = self.pending.get_mut(&key)?.pop_front()?;
        self.busy.insert(key.clone());
        Some((key, item))
    }

    /// The event in flight for `key` is done.
    fn done(&mut self, key: &str) {
        self.busy.remove(key);
        match self.pending.get(key) {
            Some(queue) if !queue.is_empty() => self.ready.push_back(key.to_string()),
            _ => {
                self.pending.remove(key);
            }
        }
    }
}

async fn publisher(mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut queues = Queues::default();
    let mut in_flight: JoinSet<String> = JoinSet::new();
    loop {
        while let Some((key, item)) = queues.next(in_flight.len()) {
            in_flight.spawn(async move {
                if let Err(e) = item.recorder.publish(&item.event, &item.reference).await {
                    tracing::debug!(error = %e, reason = %item.event.reason, "publishing event");
                }
                key
            });
        }
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => queues.push(item),
                None if in_flight.is_empty() => return,
                None => {}
            },
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(key) = done {
                    queues.done(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::events::{EventType, Reporter};

    use super::*;

    fn item(uid: &str, reason: &str) -> Item {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().expect("url"))).expect("client");
        Item {
            recorder: Recorder::new(client, Reporter { controller: "test".into(), instance: None }),
            reference: ObjectReference { uid: Some(uid.into()), ..Default::default() },
            event: Event {
                type_: EventType::Normal,
                reason: reason.into(),
                note: None,
                action: reason.into(),
                secondary: None,
            },
        }
    }

    #[tokio::test]
    async fn one_object_in_order_and_objects_side_by_side() {
        let mut q = Queues::default();
        q.push(item("a", "Pulled"));
        q.push(item("a", "Created"));
        q.push(item("b", "Pulled"));
        let (k1, first) = q.next(0).expect("a's first");
        assert_eq!((k1.as_str(), first.event.reason.as_str()), ("a", "Pulled"));
        let (k2, other) = q.next(1).expect("b, while a is in flight");
        assert_eq!((k2.as_str(), other.event.reason.as_str()), ("b", "Pulled"));
        assert!(q.next(2).is_none(), "a's second waits for its first");
        q.done("a");
        let (_, second) = q.next(1).expect("a's second");
        assert_eq!(second.event.reason, "Created");
        q.done("a");
        q.done("b");
        assert!(q.pending.is_empty() && q.busy.is_empty() && q.ready.is_empty());
    }

    #[tokio::test]
    async fn no_more_than_the_concurrency_limit_in_flight() {
        let mut q = Queues::default();
        for i in 0..CONCURRENCY + 1 {
            q.push(item(&i.to_string(), "Started"));
        }
        for n in 0..CONCURRENCY {
            assert!(q.next(n).is_some());
        }
        assert!(q.next(CONCURRENCY).is_none());
        q.done("0");
        assert!(q.next(CONCURRENCY - 1).is_some(), "a finished event frees a slot");
    }
}
