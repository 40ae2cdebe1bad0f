//! Keeps the Node authorizer's [`Graph`] current from the watch caches of pods,
//! PersistentVolumeClaims and VolumeAttachments: a snapshot first, then every change as it is applied; a reset or a
//! lagging subscription rebuilds from a fresh snapshot.
//!
//! What does not live here: the graph itself ([`super::graph`]) and the decisions ([`super`]).

use std::sync::{Arc, RwLock};

use skiff_store::EventKind;
use tokio::sync::broadcast::error::RecvError;

use super::graph::Graph;
use crate::cache::{Message, ResourceCache, WatchCaches};

/// Which cache feeds which part of the graph.
#[derive(Debug, Clone, Copy)]
enum Source {
    Pods,
    Claims,
    Attachments,
}

impl Source {
    /// The resource's (group, version, plural).
    fn resource(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Source::Pods => ("", "v1", "pods"),
            Source::Claims => ("", "v1", "persistentvolumeclaims"),
            Source::Attachments => ("storage.k8s.io", "v1", "volumeattachments"),
        }
    }

    fn clear(self, g: &mut Graph) {
        match self {
            Source::Pods => g.clear_pods(),
            Source::Claims => g.clear_claims(),
            Source::Attachments => g.clear_attachments(),
        }
    }

    fn set(self, g: &mut Graph, key: &str, value: &serde_json::Value) {
        match self {
            Source::Pods => g.set_pod(key, value),
            Source::Claims => g.set_claim(key, value),
            Source::Attachments => g.set_attachment(key, value),
        }
    }

    fn remove(self, g: &mut Graph, key: &str) {
        match self {
            Source::Pods => g.remove_pod(key),
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
    for source in [Source::Pods, Source::Claims, Source::Attachments] {
        let (group, version, plural) = source.resource();
        let Some(cache) = cache_of(caches, group, version, plural) else { continue };
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
    for (key, entry) in snapshot.objects.iter() {
        source.set(&mut g, key, &entry.value());
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
                let value = (ev.kind != EventKind::Delete).then(|| ev.object.value());
                let mut g = write(&graph);
                match value {
                    Some(v) => source.set(&mut g, &ev.object.key, &v),
                    None => source.remove(&mut g, &ev.object.key),
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
