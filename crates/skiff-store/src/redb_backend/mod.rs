//! The embedded backend: MVCC history in a redb database, one writer thread with group commit.
//!
//! Reads run on the caller's thread (or a blocking thread for ranges) against redb snapshots.
//! All writes go through one writer thread ([`writer`]) that drains every pending request into a
//! single transaction, commits it durably (fsync) and only then answers the callers and
//! publishes the events to watchers. A background task compacts history by age and count.

mod codec;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::watch::{self, Hub, Replay, WatchStream};
use crate::{
    Event, EventKind, KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, WriteOp, prefix_end,
};
use codec::{decode_history, decode_log, history_key, split_history_key};

pub(crate) const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct RedbConfig {
    /// Database file.
    pub path: PathBuf,
    /// redb page cache size in bytes.
    pub cache_size: usize,
    /// History older than this is compacted.
    pub retention_age: Duration,
    /// At most this many revisions of history are kept, whatever their age.
    pub retention_revisions: u64,
    /// How often compaction runs.
    pub compact_interval: Duration,
    /// At most this many writes share one transaction.
    pub max_batch: usize,
}

impl RedbConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache_size: 32 * 1024 * 1024,
            retention_age: Duration::from_secs(10 * 60),
            retention_revisions: 100_000,
            compact_interval: Duration::from_secs(60),
            max_batch: 1024,
        }
    }
}

pub(crate) fn backend_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Shared state between the store handle, its writer and its readers.
pub(crate) struct Shared {
    pub db: Database,
    pub revision: AtomicU64,
    pub compacted: AtomicU64,
    pub hub: Hub,
}

/// The embedded MVCC store.
pub struct RedbStore {
    shared: Arc<Shared>,
    commands: mpsc::Sender<writer::Command>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    compactor: tokio::task::JoinHandle<()>,
}

impl RedbStore {
    /// Opens (or creates) the database and starts the writer and the compactor.
    ///
    /// Must be called within a Tokio runtime.
    pub fn open(config: RedbConfig) -> Result<Self, StoreError> {
        if let Some(parent) = config.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", parent.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(config.cache_size)
            .create(&config.path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", config.path.display())))?;
        let (revision, compacted) = init_tables(&db)?;
        let shared = Arc::new(Shared {
            db,
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            hub: Hub::new(),
        });
        let (tx, rx) = mpsc::channel(16 * 1024);
        let writer = writer::spawn(shared.clone(), rx, config.max_batch)?;
        let compactor = tokio::spawn(compaction_loop(shared.clone(), tx.clone(), config.clone()));
        tracing::info!(path = %config.path.display(), revision, compacted, "store opened");
        Ok(Self { shared, commands: tx, writer: std::sync::Mutex::new(Some(writer)), compactor })
    }

    fn replay(&self) -> Replay {
        let shared = self.shared.clone();
        Arc::new(move |prefix: &str, after: Revision| replay_events(&shared, prefix, after))
    }
}

fn init_tables(db: &Database) -> Result<(Revision, Revision), StoreError> {
    let txn = db.begin_write().map_err(backend_err)?;
    let (rev, compacted) = {
        txn.open_table(HISTORY).map_err(backend_err)?;
        txn.open_table(LOG).map_err(backend_err)?;
        let meta = txn.open_table(META).map_err(backend_err)?;
        let rev = meta.get(META_REVISION).map_err(backend_err)?.map(|v| v.value()).unwrap_or(0);
        let compacted = meta.get(META_COMPACTED).map_err(backend_err)?.map(|v| v.value()).unwrap_or(0);
        (rev, compacted)
    };
    txn.commit().map_err(backend_err)?;
    Ok((rev, compacted))
}

/// Reads the latest version of `key` in a read transaction's history table.
pub(crate) fn latest<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    key: &str,
) -> Result<Option<KeyValue>, StoreError> {
    let lo = history_key(key.as_bytes(), 0);
    let hi = history_key(key.as_bytes(), Revision::MAX);
    let mut range = table.range(lo.as_slice()..=hi.as_slice()).map_err(backend_err)?;
    let Some(entry) = range.next_back() else { return Ok(None) };
    let (k, v) = entry.map_err(backend_err)?;
    let (_, rev) = split_history_key(k.value())?;
    let rec = decode_history(v.value())?;
    if rec.tombstone {
        return Ok(None);
    }
    Ok(Some(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(rec.value),
        create_revision: rec.create_revision,
        mod_revision: rev,
    }))
}

/// The version of `key` visible at `at` (the last write at or before it), tombstones included.
fn version_at<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    key: &[u8],
    at: Revision,
) -> Result<Option<(Revision, Revision, bool, Bytes)>, StoreError> {
    let lo = history_key(key, 0);
    let hi = history_key(key, at);
    let mut range = table.range(lo.as_slice()..=hi.as_slice()).map_err(backend_err)?;
    let Some(entry) = range.next_back() else { return Ok(None) };
    let (k, v) = entry.map_err(backend_err)?;
    let (_, rev) = split_history_key(k.value())?;
    let rec = decode_history(v.value())?;
    Ok(Some((rev, rec.create_revision, rec.tombstone, Bytes::copy_from_slice(rec.value))))
}

fn read_range(shared: &Shared, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
    let txn = shared.db.begin_read().map_err(backend_err)?;
    let meta = txn.open_table(META).map_err(backend_err)?;
    let current = meta.get(META_REVISION).map_err(backend_err)?.map(|v| v.value()).unwrap_or(0);
    let compacted = meta.get(META_COMPACTED).map_err(backend_err)?.map(|v| v.value()).unwrap_or(0);
    let at = req.revision.unwrap_or(current);
    if at > current {
        return Err(StoreError::FutureRevision { requested: at, current });
    }
    if at < compacted {
        return Err(StoreError::Compacted { requested: at, compacted });
    }
    let table = txn.open_table(HISTORY).map_err(backend_err)?;
    let mut lower = match &req.start_after {
        Some(after) if after.as_str() >= req.prefix.as_str() => {
            let mut b = after.as_bytes().to_vec();
            b.push(1);
            b
        }
        _ => req.prefix.as_bytes().to_vec(),
    };
    if lower.is_empty() {
        lower.push(0);
    }
    let upper = prefix_end(&req.prefix);
    let iter = if upper.is_empty() {
        table.range(lower.as_slice()..).map_err(backend_err)?
    } else {
        table.range(lower.as_slice()..upper.as_slice()).map_err(backend_err)?
    };
    let limit = req.limit.unwrap_or(usize::MAX);
    let mut kvs: Vec<KeyValue> = Vec::new();
    let mut more = false;
    // The newest version at or before `at` of the key group being scanned.
    let mut group: Option<(Vec<u8>, Option<KeyValue>)> = None;
    let flush = |group: Option<(Vec<u8>, Option<KeyValue>)>, kvs: &mut Vec<KeyValue>, more: &mut bool| {
        if let Some((_, Some(kv))) = group {
            if kvs.len() < limit {
                kvs.push(kv);
            } else {
                *more = true;
            }
        }
    };
    for entry in iter {
        let (k, v) = entry.map_err(backend_err)?;
        let (key, rev) = split_history_key(k.value())?;
        if group.as_ref().is_none_or(|(g, _)| g.as_slice() != key) {
            flush(group.take(), &mut kvs, &mut more);
            if more {
                break;
            }
            group = Some((key.to_vec(), None));
        }
        if rev > at {
            continue;
        }
        let rec = decode_history(v.value())?;
        if let Some((g, slot)) = group.as_mut() {
            *slot = if rec.tombstone {
                None
            } else {
                Some(KeyValue {
                    key: String::from_utf8(g.clone())
                        .map_err(|e| StoreError::Corrupt { what: "key".into(), detail: e.to_string() })?,
                    value: Bytes::copy_from_slice(rec.value),
                    create_revision: rec.create_revision,
                    mod_revision: rev,
                })
            };
        }
    }
    if !more {
        flush(group.take(), &mut kvs, &mut more);
    }
    Ok(RangeResponse { kvs, revision: at, more })
}

/// Events under `prefix` committed after `after`, read from the log and history.
fn replay_events(shared: &Shared, prefix: &str, after: Revision) -> Result<Vec<Event>, StoreError> {
    let txn = shared.db.begin_read().map_err(backend_err)?;
    let meta = txn.open_table(META).map_err(backend_err)?;
    let compacted = meta.get(META_COMPACTED).map_err(backend_err)?.map(|v| v.value()).unwrap_or(0);
    if after < compacted {
        return Err(StoreError::Compacted { requested: after, compacted });
    }
    let log = txn.open_table(LOG).map_err(backend_err)?;
    let history = txn.open_table(HISTORY).map_err(backend_err)?;
    let mut out = Vec::new();
    for entry in log.range(after.saturating_add(1)..).map_err(backend_err)? {
        let (rev, v) = entry.map_err(backend_err)?;
        let rev = rev.value();
        let rec = decode_log(v.value())?;
        if !rec.key.starts_with(prefix.as_bytes()) {
            continue;
        }
        let key = String::from_utf8(rec.key.to_vec())
            .map_err(|e| StoreError::Corrupt { what: "log key".into(), detail: e.to_string() })?;
        let kv = match rec.kind {
            EventKind::Delete => {
                // The deleted object's last state is the version before the tombstone.
                let prev = version_at(&history, rec.key, rev - 1)?;
                let (_, create, _, value) = prev.ok_or_else(|| StoreError::Corrupt {
                    what: format!("history of {key}"),
                    detail: format!("no version before deletion at {rev}"),
                })?;
                KeyValue { key, value, create_revision: create, mod_revision: rev }
            }
            _ => {
                let (_, create, _, value) = version_at(&history, rec.key, rev)?.ok_or_else(|| StoreError::Corrupt {
                    what: format!("history of {key}"),
                    detail: format!("no version at {rev}"),
                })?;
                KeyValue { key, value, create_revision: create, mod_revision: rev }
            }
        };
        out.push(Event { kind: rec.kind, kv });
    }
    Ok(out)
}

/// The newest revision whose commit time is at or before `cutoff_millis`.
fn revision_before(shared: &Shared, cutoff_millis: u64) -> Result<Revision, StoreError> {
    let txn = shared.db.begin_read().map_err(backend_err)?;
    let log = txn.open_table(LOG).map_err(backend_err)?;
    let mut found = 0;
    for entry in log.iter().map_err(backend_err)? {
        let (rev, v) = entry.map_err(backend_err)?;
        if decode_log(v.value())?.unix_millis > cutoff_millis {
            break;
        }
        found = rev.value();
    }
    Ok(found)
}

pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn compaction_loop(shared: Arc<Shared>, commands: mpsc::Sender<writer::Command>, config: RedbConfig) {
    let mut tick = tokio::time::interval(config.compact_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let current = shared.revision.load(Ordering::Acquire);
        let cutoff = unix_millis().saturating_sub(config.retention_age.as_millis() as u64);
        let s = shared.clone();
        let by_age = match tokio::task::spawn_blocking(move || revision_before(&s, cutoff)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "compaction scan failed");
                continue;
            }
            Err(_) => continue,
        };
        let by_count = current.saturating_sub(config.retention_revisions);
        let target = by_age.max(by_count).min(current);
        if target <= shared.compacted.load(Ordering::Acquire) {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        if commands.send(writer::Command::Compact { revision: target, reply: tx }).await.is_err() {
            return;
        }
        match rx.await {
            Ok(Ok(())) => tracing::debug!(revision = target, "history compacted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "compaction failed"),
            Err(_) => return,
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let txn = self.shared.db.begin_read().map_err(backend_err)?;
        let table = txn.open_table(HISTORY).map_err(backend_err)?;
        latest(&table, key)
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || read_range(&shared, &req))
            .await
            .map_err(|e| StoreError::Backend(format!("range task failed: {e}")))?
    }

    async fn write(&self, op: WriteOp) -> Result<Event, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(writer::Command::Write { op, reply: tx }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let live = self.shared.hub.subscribe();
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        let current = self.shared.revision.load(Ordering::Acquire);
        if after > current {
            return Err(StoreError::FutureRevision { requested: after, current });
        }
        // The writer stores a revision before publishing its events, and `live` subscribed before
        // `current` was read: a watch from the current revision misses nothing on `live`, so it
        // needs no replay (which a compaction racing with the watch task's start could refuse).
        let needs_replay = after < current;
        Ok(watch::spawn(prefix.to_string(), after, needs_replay, live, self.shared.hub.closed(), self.replay()))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(writer::Command::Compact { revision, reply: tx }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn close(&self) {
        self.compactor.abort();
        self.shared.hub.close();
        let (tx, rx) = oneshot::channel();
        if self.commands.send(writer::Command::Close { reply: tx }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

#[cfg(test)]
mod tests;
