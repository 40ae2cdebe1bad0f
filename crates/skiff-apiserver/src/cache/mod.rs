//! The watch cache: per stored resource, the current objects and a ring of recent events, fed by
//! one store watch over `/registry/` (DESIGN.md §5).
//!
//! LIST without pagination state and every WATCH are served from here; paginated continuations
//! go to the store at the list's revision. What is absent: selectors beyond what [`Entry`]
//! indexes, and conversion between served versions (done by the handlers).
//!
//! Caches are created on demand, so custom resources need no registration: [`WatchCaches::load`]
//! creates one for every `/registry/<group>/<resource>/` prefix present in the store, the feeder
//! creates one on the first event of an unknown prefix, and [`WatchCaches::cache`] creates an
//! empty one for a prefix that has none yet (correct: had any event of that prefix been applied,
//! the feeder would have created its cache). `/registry/ranges/` (address allocation) is never
//! cached. Caches created on demand index no fields beyond name and namespace.

mod entry;
mod pick;

pub use entry::Entry;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use imbl::OrdMap;
use skiff_store::{EventKind, RangeRequest, Revision, Store, StoreError};
use tokio::sync::{broadcast, watch};

/// How many events each resource keeps for watches that resume from a resource version.
const RING_CAPACITY: usize = 10_000;
/// Capacity of each resource's live event channel before slow watchers lag.
const CHANNEL_CAPACITY: usize = 8_192;

/// One change to a cached object.
#[derive(Debug)]
pub struct CacheEvent {
    /// Create, update or delete.
    pub kind: EventKind,
    /// The object after the change (for deletes, its last state stamped with the delete revision).
    pub object: Arc<Entry>,
    /// The object before the change, for updates and deletes.
    pub previous: Option<Arc<Entry>>,
}

impl CacheEvent {
    /// Revision of the change.
    pub fn revision(&self) -> Revision {
        self.object.revision
    }
}

/// What a live subscriber receives.
#[derive(Debug, Clone)]
pub enum Message {
    /// A change.
    Event(Arc<CacheEvent>),
    /// The cache was rebuilt; watchers must end with 410 so clients re-list.
    Reset,
}

struct State {
    objects: OrdMap<String, Arc<Entry>>,
    ring: VecDeque<Arc<CacheEvent>>,
    /// Every event with a revision above this one is in `ring`.
    ring_start: Revision,
    /// Highest revision applied to this resource.
    last_applied: Revision,
}

/// The cache of one stored resource (one key prefix).
pub struct ResourceCache {
    prefix: String,
    field_paths: Vec<&'static str>,
    state: RwLock<State>,
    sender: broadcast::Sender<Message>,
    synced: watch::Receiver<Revision>,
}

/// A consistent view of a resource at a revision.
pub struct Snapshot {
    /// Objects by key.
    pub objects: OrdMap<String, Arc<Entry>>,
    /// The revision the snapshot reflects.
    pub revision: Revision,
}

/// A live subscription started at a revision.
pub struct Subscription {
    /// Events after the requested revision already in the ring, in order.
    pub backlog: Vec<Arc<CacheEvent>>,
    /// Live events (may repeat backlog revisions; skip revisions ≤ `revision`).
    pub receiver: broadcast::Receiver<Message>,
    /// The revision up to which `backlog` is complete.
    pub revision: Revision,
}

/// Why a watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The requested revision is older than the ring keeps.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        /// Requested revision.
        requested: Revision,
        /// Oldest revision that can be resumed from.
        oldest: Revision,
    },
    /// The cache did not reach the revision in time.
    #[error("timed out waiting for the cache to reach resource version {0}")]
    NotReady(Revision),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResourceCache {
    fn new(prefix: String, field_paths: Vec<&'static str>, synced: watch::Receiver<Revision>) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            prefix,
            field_paths,
            state: RwLock::new(State { objects: OrdMap::new(), ring: VecDeque::new(), ring_start: 0, last_applied: 0 }),
            sender,
            synced,
        }
    }

    /// The key prefix this cache holds.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether entries carry the selectable field at `path` (so [`Entry::field`] answering
    /// `None` means the object has no value there).
    pub fn indexes(&self, path: &str) -> bool {
        self.field_paths.contains(&path)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn label(&self, state: &State) -> Revision {
        (*self.synced.borrow()).max(state.last_applied)
    }

    /// The current objects and the revision they reflect.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.read();
        Snapshot { objects: state.objects.clone(), revision: self.label(&state) }
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.read().objects.get(key).cloned()
    }

    /// Subscribes to changes after `after`.
    pub fn subscribe_after(&self, after: Revision) -> Result<Subscription, CacheError> {
        let state = self.read();
        if after < state.ring_start {
            return Err(CacheError::TooOld { requested: after, oldest: state.ring_start + 1 });
        }
        let receiver = self.sender.subscribe();
        let backlog = state.ring.iter().filter(|e| e.revision() > after).cloned().collect();
        Ok(Subscription { backlog, receiver, revision: self.label(&state).max(after) })
    }

    /// The current objects plus a subscription to everything after them.
    pub fn snapshot_and_subscribe(&self) -> (Snapshot, broadcast::Receiver<Message>) {
        let state = self.read();
        let receiver = self.sender.subscribe();
        (Snapshot { objects: state.objects.clone(), revision: self.label(&state) }, receiver)
    }

    /// Replays ring events after `after` for a subscriber that lagged, if still available.
    pub fn replay_after(&self, after: Revision) -> Result<Vec<Arc<CacheEvent>>, CacheError> {
        let state = self.read();
        if after < state.ring_start {
            return Err(CacheError::TooOld { requested: after, oldest: state.ring_start + 1 });
        }
        Ok(state.ring.iter().filter(|e| e.revision() > after).cloned().collect())
    }

    /// Revision a watcher that has drained its receiver has seen everything up to.
    pub fn progress(&self) -> Revision {
        self.label(&self.read())
    }

    /// Revision of the last change applied to this resource (moves only when it changes).
    pub fn applied(&self) -> Revision {
        self.read().last_applied
    }

    fn reset(&self, objects: OrdMap<String, Arc<Entry>>, revision: Revision) {
        let mut state = self.write();
        *state = State { objects, ring: VecDeque::new(), ring_start: revision, last_applied: revision };
        let _ = self.sender.send(Message::Reset);
    }

    fn apply(&self, event: &skiff_store::Event) {
        let entry = match Entry::from_kv(&event.kv, &self.field_paths) {
            Some(e) => Arc::new(e),
            None => {
                tracing::warn!(key = %event.kv.key, "skipping undecodable object in watch cache");
                return;
            }
        };
        let mut state = self.write();
        let previous = match event.kind {
            EventKind::Delete => state.objects.remove(&event.kv.key),
            _ => state.objects.insert(event.kv.key.clone(), entry.clone()),
        };
        let ev = Arc::new(CacheEvent { kind: event.kind, object: entry, previous });
        state.ring.push_back(ev.clone());
        if state.ring.len() > RING_CAPACITY
            && let Some(old) = state.ring.pop_front()
        {
            state.ring_start = old.revision();
        }
        state.last_applied = event.kv.mod_revision;
        let _ = self.sender.send(Message::Event(ev));
    }
}

/// All resource caches, fed by one store watch.
pub struct WatchCaches {
    store: Arc<dyn Store>,
    caches: RwLock<HashMap<String, Arc<ResourceCache>>>,
    /// Field paths of the prefixes registered at start (others index none).
    fields: HashMap<String, Vec<&'static str>>,
    /// The revision of the last load: caches created later hold every event after it.
    loaded_at: std::sync::atomic::AtomicU64,
    synced_tx: watch::Sender<Revision>,
    synced_rx: watch::Receiver<Revision>,
    ready: Mutex<bool>,
}

/// `/registry/<group>/<resource>/` of a key, the prefix its cache is registered under.
pub fn cache_prefix(key: &str) -> Option<&str> {
    if key.starts_with("/registry/ranges/") {
        return None;
    }
    let mut slashes = key.match_indices('/').map(|(i, _)| i);
    let end = slashes.nth(3)?;
    Some(&key[..=end])
}

impl WatchCaches {
    /// Creates the caches for the given `(prefix, field paths)` and starts feeding them.
    pub async fn start(
        store: Arc<dyn Store>,
        resources: Vec<(String, Vec<&'static str>)>,
    ) -> Result<Arc<Self>, StoreError> {
        let (synced_tx, synced_rx) = watch::channel(0);
        let caches = resources
            .iter()
            .map(|(prefix, fields)| {
                (prefix.clone(), Arc::new(ResourceCache::new(prefix.clone(), fields.clone(), synced_rx.clone())))
            })
            .collect();
        let this = Arc::new(Self {
            store,
            caches: RwLock::new(caches),
            fields: resources.into_iter().collect(),
            loaded_at: std::sync::atomic::AtomicU64::new(0),
            synced_tx,
            synced_rx,
            ready: Mutex::new(false),
        });
        let revision = this.load().await?;
        let feeder = this.clone();
        tokio::spawn(async move { feeder.feed(revision).await });
        Ok(this)
    }

    /// How many objects each cache holds, by key prefix (for `apiserver_storage_objects`).
    pub fn object_counts(&self) -> Vec<(String, usize)> {
        let caches = self.caches.read().unwrap_or_else(|p| p.into_inner());
        caches.iter().map(|(prefix, cache)| (prefix.clone(), cache.read().objects.len())).collect()
    }

    /// Whether the initial load finished and the feed runs.
    pub fn is_ready(&self) -> bool {
        *self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cache holding keys under `prefix` (`/registry/<group>/<resource>/`), created empty
    /// if it does not exist yet; `None` only for prefixes that are never cached.
    pub fn cache(&self, prefix: &str) -> Option<Arc<ResourceCache>> {
        if let Some(c) = self.caches.read().unwrap_or_else(|p| p.into_inner()).get(prefix) {
            return Some(c.clone());
        }
        if cache_prefix(prefix) != Some(prefix) {
            return None;
        }
        let mut caches = self.caches.write().unwrap_or_else(|p| p.into_inner());
        let cache = caches.entry(prefix.to_string()).or_insert_with(|| {
            let fields = self.fields.get(prefix).cloned().unwrap_or_default();
            let cache = ResourceCache::new(prefix.to_string(), fields, self.synced_rx.clone());
            let at = self.loaded_at.load(std::sync::atomic::Ordering::Acquire);
            cache.write().ring_start = at;
            cache.write().last_applied = at;
            Arc::new(cache)
        });
        Some(cache.clone())
    }

    /// Waits until every event up to `revision` is applied.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<(), CacheError> {
        let mut rx = self.synced_rx.clone();
        let wait = rx.wait_for(|r| *r >= revision);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::NotReady(revision)),
        }
    }

    /// Waits until the caches reflect every write acknowledged so far (consistent reads).
    pub async fn sync_to_store(&self) -> Result<(), CacheError> {
        let current = self.store.current_revision().await?;
        self.wait_for(current, Duration::from_secs(3)).await
    }

    /// Loads every cache from the store; returns the revision loaded at.
    async fn load(&self) -> Result<Revision, StoreError> {
        let revision = self.store.current_revision().await?;
        let mut per_prefix: HashMap<String, OrdMap<String, Arc<Entry>>> = HashMap::new();
        let mut start_after = None;
        loop {
            let page = self
                .store
                .range(RangeRequest {
                    prefix: "/registry/".into(),
                    start_after: start_after.clone(),
                    revision: Some(revision),
                    limit: Some(5_000),
                })
                .await?;
            for kv in &page.kvs {
                let Some(prefix) = cache_prefix(&kv.key) else { continue };
                let Some(cache) = self.cache(prefix) else { continue };
                if let Some(entry) = Entry::from_kv(kv, &cache.field_paths) {
                    per_prefix.entry(prefix.to_string()).or_default().insert(kv.key.clone(), Arc::new(entry));
                }
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more || start_after.is_none() {
                break;
            }
        }
        let caches: Vec<Arc<ResourceCache>> =
            self.caches.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for cache in caches {
            cache.reset(per_prefix.remove(cache.prefix()).unwrap_or_default(), revision);
        }
        self.loaded_at.store(revision, std::sync::atomic::Ordering::Release);
        self.synced_tx.send_replace(revision);
        Ok(revision)
    }

    async fn feed(self: Arc<Self>, mut revision: Revision) {
        loop {
            *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = true;
            match self.store.watch("/registry/", revision).await {
                Ok(mut stream) => {
                    while let Some(batch) = stream.next().await {
                        match batch {
                            Ok(events) => {
                                for event in &events {
                                    if let Some(cache) = cache_prefix(&event.kv.key).and_then(|p| self.cache(p)) {
                                        cache.apply(event);
                                    }
                                    revision = revision.max(event.kv.mod_revision);
                                }
                                self.synced_tx.send_replace(revision);
                            }
                            Err(StoreError::Closed) => return,
                            Err(e) => {
                                tracing::warn!(error = %e, "watch cache feed failed; reloading");
                                break;
                            }
                        }
                    }
                }
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "cannot watch the store; retrying"),
            }
            *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = false;
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.load().await {
                Ok(r) => revision = r,
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "reloading the watch cache failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
