//! Keeps the Node authorizer's [`Graph`] current from the watch caches of pods,
//! PersistentVolumeClaims and VolumeAttachments: a snapshot first, then every change as it is applied; a reset or a
//! lagging subscription rebuilds from a fresh snapshot.
//!
//! What does not live here: the graph itself ([`super::graph`]) and the decisions ([`super`]).

use std::sync::{Arc, RwLock};

use skiff_store::EventKind;
use tokio::sync::broadcast::error::RecvError;

use super::graph::{self, Graph};
use crate::cache::{Entry, Message, ResourceCache, WatchCaches};

/// The pod field that says whether a pod is bound.
const NODE_NAME: &str = "spec.nodeName";

/// Which cache feeds which part of the graph.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Pods; `true` when the cache indexes `spec.nodeName`, so unbound pods need no parsing.
    Pods(bool),
    Claims,
    Attachments,
}

impl Source {
    /// The resource's (group, version, plural).
    fn resource(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Source::Pods(_) => ("", "v1", "pods"),
            Source::Claims => ("", "v1", "persistentvolumeclaims"),
            Source::Attachments => ("storage.k8s.io", "v1", "volumeattachments"),
        }
    }

    fn clear(self, g: &mut Graph) {
        match self {
            Source::Pods(_) => g.clear_pods(),
            Source::Claims => g.clear_claims(),
            Source::Attachments => g.clear_attachments(),
        }
    }

    /// Records `entry`. A pod no node is named for is not parsed at all: it contributes nothing
    /// (most pod changes at scale are creations of pods not scheduled yet).
    fn set(self, g: &mut Graph, entry: &Entry) {
        let key = &entry.key;
        match self {
            Source::Pods(true) if entry.field(NODE_NAME).is_none_or(|n| n.is_empty()) => g.remove_pod(key),
            Source::Pods(_) => g.set_pod_refs(key, graph::pod_refs_json(&entry.json)),
            Source::Claims => g.set_claim(key, &entry.value()),
            Source::Attachments => g.set_attachment(key, &entry.value()),
        }
    }

    fn remove(self, g: &mut Graph, key: &str) {
        match self {
            Source::Pods(_) => g.remove_pod(key),
            Source::Claims => g.remove_claim(key),
            Source::Attachments => g.remove_attachment(key),
        }
    }
}

/// The cache of core resource `plural`.
pub(super) fn core_cache(caches: &WatchCaches, plural: &str) -> Option<Arc<ResourceCache>> {
    cache_of(caches, "", "v1", plural)
}

/// The cache of resource `plural` of `group`/`version`.
pub(super) fn cache_of(caches: &WatchCaches, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceCache>> {
    let info = skiff_api::catalogue::find(group, version, plural)?;
    caches.cache(&info.key_prefix())
}

/// Loads the graph from the caches now and keeps it current in the background.
pub fn spawn(caches: &Arc<WatchCaches>, graph: &Arc<RwLock<Graph>>) {
    for source in [Source::Pods(false), Source::Claims, Source::Attachments] {
        let (group, version, plural) = source.resource();
        let Some(cache) = cache_of(caches, group, version, plural) else { continue };
        let source = match source {
            Source::Pods(_) => Source::Pods(cache.indexes(NODE_NAME)),
            other => other,
        };
        let rx = load(&cache, graph, source);
        let graph = graph.clone();
        tokio::spawn(follow(cache, graph, source, rx));
    }
}

fn write(graph: &RwLock<Graph>) -> std::sync::RwLockWriteGuard<'_, Graph> {
    graph.write().unwrap_or_else(|p| p.into_inner())
}

/// Rebuilds `source`'s part of the graph from a snapshot; returns the changes after it.
fn load(cache: &ResourceCache, graph: &RwLock<Graph>, source: Source) -> tokio::sync::broadcast::Receiver<Message> {
    let (snapshot, rx) = cache.snapshot_and_subscribe();
    let mut g = write(graph);
    source.clear(&mut g);
    for entry in snapshot.objects.values() {
        source.set(&mut g, entry);
    }
    rx
}

async fn follow(
    cache: Arc<ResourceCache>,
    graph: Arc<RwLock<Graph>>,
    source: Source,
    mut rx: tokio::sync::broadcast::Receiver<Message>,
) {
    loop {
        match rx.recv().await {
            Ok(Message::Event(ev)) => {
                let mut g = write(&graph);
                match ev.kind {
                    EventKind::Delete => source.remove(&mut g, &ev.object.key),
                    _ => source.set(&mut g, &ev.object),
                }
            }
            Ok(Message::Reset) | Err(RecvError::Lagged(_)) => {
                tracing::debug!(resource = source.resource().2, "node authorizer graph rebuilt");
                rx = load(&cache, &graph, source);
            }
            Err(RecvError::Closed) => return,
        }
    }
}
