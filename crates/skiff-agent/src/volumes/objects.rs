//! The ConfigMaps and Secrets the node's pods mount, kept current by one watch per object
//! (`fieldSelector=metadata.name=<name>` in its namespace), as the kubelet's watch-based object
//! managers do. Pods register the objects they use and release them when they go; a watch runs
//! while at least one pod uses its object. Readers get the latest copy without a request.
//!
//! What does not live here: turning objects into files (the volume modules).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

/// How long a reader waits for a fresh watch's first list (the kubelet's one second).
const SYNC_WAIT: Duration = Duration::from_secs(1);

/// What a watch knows about its object.
#[derive(Debug)]
pub enum Known<K> {
    /// The first list has not completed.
    Unsynced,
    /// The object does not exist.
    Missing,
    /// The object's latest version.
    Present(Arc<K>),
}

impl<K> Clone for Known<K> {
    fn clone(&self) -> Self {
        match self {
            Known::Unsynced => Known::Unsynced,
            Known::Missing => Known::Missing,
            Known::Present(k) => Known::Present(Arc::clone(k)),
        }
    }
}

struct Entry<K> {
    users: usize,
    state: watch::Receiver<Known<K>>,
    task: tokio::task::JoinHandle<()>,
}

/// Watched objects of one kind, by namespace and name.
pub struct ObjectCache<K> {
    client: kube::Client,
    /// `configmap` or `secret`: the resource in the kubelet's messages.
    resource: &'static str,
    entries: Mutex<HashMap<(String, String), Entry<K>>>,
}

type Shared<K> = Mutex<HashMap<(String, String), Entry<K>>>;

fn lock<K>(m: &Shared<K>) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry<K>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K> ObjectCache<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    /// An empty cache; `resource` names the kind in messages (`configmap`, `secret`).
    pub fn new(client: kube::Client, resource: &'static str) -> Self {
        Self { client, resource, entries: Mutex::new(HashMap::new()) }
    }

    /// Starts using `ns/name` (starting its watch if nobody used it yet).
    pub fn register(&self, ns: &str, name: &str) {
        let mut entries = lock(&self.entries);
        let key = (ns.to_string(), name.to_string());
        if let Some(entry) = entries.get_mut(&key) {
            entry.users += 1;
            return;
        }
        let (tx, rx) = watch::channel(Known::Unsynced);
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let task = tokio::spawn(run_watch(api, name.to_string(), tx));
        entries.insert(key, Entry { users: 1, state: rx, task });
    }

    /// Stops using `ns/name` (its watch ends with its last user).
    pub fn release(&self, ns: &str, name: &str) {
        let mut entries = lock(&self.entries);
        let key = (ns.to_string(), name.to_string());
        if let Some(entry) = entries.get_mut(&key) {
            entry.users = entry.users.saturating_sub(1);
            if entry.users == 0 {
                entry.task.abort();
                entries.remove(&key);
            }
        }
    }

    /// The object (`None` when it does not exist), waiting up to a second for a new watch's
    /// first list. Errors read like the kubelet's (`configmap "x" not found` is the caller's).
    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<Arc<K>>, String> {
        let rx = lock(&self.entries).get(&(ns.to_string(), name.to_string())).map(|e| e.state.clone());
        let Some(mut rx) = rx else {
            return Err(format!("object {ns:?}/{name:?} not registered"));
        };
        let synced = tokio::time::timeout(SYNC_WAIT, rx.wait_for(|k| !matches!(k, Known::Unsynced))).await;
        let known = match synced {
            Ok(Ok(k)) => k.clone(),
            _ => return Err(format!("failed to sync {} cache: timed out waiting for the condition", self.resource)),
        };
        Ok(match known {
            Known::Present(k) => Some(k),
            _ => None,
        })
    }

    /// How many objects are watched (for tests and diagnostics).
    pub fn watched(&self) -> usize {
        lock(&self.entries).len()
    }
}

async fn run_watch<K>(api: Api<K>, name: String, tx: watch::Sender<Known<K>>)
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut listed: Option<Arc<K>> = None;
    let ours = |k: &K| k.meta().name.as_deref() == Some(name.as_str());
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = None,
            Ok(Event::InitApply(k)) if ours(&k) => listed = Some(Arc::new(k)),
            Ok(Event::InitDone) => {
                tx.send_replace(listed.take().map_or(Known::Missing, Known::Present));
            }
            Ok(Event::Apply(k)) if ours(&k) => {
                tx.send_replace(Known::Present(Arc::new(k)));
            }
            Ok(Event::Delete(k)) if ours(&k) => {
                tx.send_replace(Known::Missing);
            }
            Ok(_) => {}
            // The object's content is never logged, only the failure.
            Err(e) => tracing::debug!(object = %name, error = %e, "volume source watch failed; retrying"),
        }
    }
}
