//! The writer thread: group commit and compaction.
//!
//! One OS thread owns every write transaction. It blocks for the first request, drains whatever
//! else is queued (up to `max_batch`) into the same transaction, applies each request in arrival
//! order (each successful one taking the next revision), commits with immediate durability, and
//! only then answers the callers and publishes the batch to watchers. A failed commit fails the
//! whole batch and leaves the revision unchanged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::{Durability, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{decode_history, decode_log, encode_history, encode_log, history_key, split_history_key};
use super::{HISTORY, LOG, META, META_COMPACTED, META_REVISION, Shared, backend_err, latest, unix_millis};
use crate::{Event, EventKind, KeyValue, Revision, StoreError, WriteOp};

/// Log entries compacted per transaction, so compaction never stalls writers for long.
const COMPACT_CHUNK: u64 = 5_000;

/// A request to the writer thread.
pub(crate) enum Command {
    /// Apply one write.
    Write { op: WriteOp, reply: oneshot::Sender<Result<Event, StoreError>> },
    /// Compact history at or below `revision`.
    Compact { revision: Revision, reply: oneshot::Sender<Result<(), StoreError>> },
    /// Finish queued work and stop.
    Close { reply: oneshot::Sender<()> },
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    max_batch: usize,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("skiff-store-writer".into())
        .spawn(move || run(shared, rx, max_batch))
        .map_err(|e| StoreError::Backend(format!("cannot start writer thread: {e}")))
}

type Pending = (WriteOp, oneshot::Sender<Result<Event, StoreError>>);

fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Command>, max_batch: usize) {
    let mut deferred: Option<Command> = None;
    loop {
        let first = match deferred.take() {
            Some(c) => c,
            None => match rx.blocking_recv() {
                Some(c) => c,
                None => return,
            },
        };
        match first {
            Command::Close { reply } => {
                let _ = reply.send(());
                return;
            }
            Command::Compact { revision, reply } => {
                let _ = reply.send(compact(&shared, revision));
            }
            Command::Write { op, reply } => {
                let mut batch: Vec<Pending> = vec![(op, reply)];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Command::Write { op, reply }) => batch.push((op, reply)),
                        Ok(other) => {
                            deferred = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_batch(&shared, batch);
            }
        }
    }
}

fn commit_batch(shared: &Shared, batch: Vec<Pending>) {
    let base = shared.revision.load(Ordering::Acquire);
    match apply_batch(shared, base, &batch) {
        Ok((results, rev)) => {
            shared.revision.store(rev, Ordering::Release);
            let events: Vec<Event> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            shared.hub.publish(events);
        }
        Err(e) => {
            tracing::error!(error = %e, writes = batch.len(), "store commit failed");
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Backend(e.to_string())));
            }
        }
    }
}

/// Applies every write in one transaction; returns per-write results and the new revision.
fn apply_batch(
    shared: &Shared,
    base: Revision,
    batch: &[Pending],
) -> Result<(Vec<Result<Event, StoreError>>, Revision), StoreError> {
    let mut txn = shared.db.begin_write().map_err(backend_err)?;
    txn.set_durability(Durability::Immediate).map_err(backend_err)?;
    let mut rev = base;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut history = txn.open_table(HISTORY).map_err(backend_err)?;
        let mut log = txn.open_table(LOG).map_err(backend_err)?;
        let now = unix_millis();
        for (op, _) in batch {
            match apply_one(&mut history, &mut log, op, rev + 1, now) {
                Ok(event) => {
                    rev += 1;
                    results.push(Ok(event));
                }
                Err(e @ (StoreError::Backend(_) | StoreError::Corrupt { .. })) => return Err(e),
                Err(e) => results.push(Err(e)),
            }
        }
        let mut meta = txn.open_table(META).map_err(backend_err)?;
        meta.insert(META_REVISION, rev).map_err(backend_err)?;
    }
    txn.commit().map_err(backend_err)?;
    Ok((results, rev))
}

fn apply_one(
    history: &mut Table<&'static [u8], &'static [u8]>,
    log: &mut Table<u64, &'static [u8]>,
    op: &WriteOp,
    rev: Revision,
    now: u64,
) -> Result<Event, StoreError> {
    let (kind, key, value, create_revision) = match op {
        WriteOp::Create { key, value } => {
            if latest(history, key)?.is_some() {
                return Err(StoreError::AlreadyExists { key: key.clone() });
            }
            (EventKind::Create, key, value.clone(), rev)
        }
        WriteOp::Update { key, value, expected } => {
            let current = check_current(history, key, *expected)?;
            (EventKind::Update, key, value.clone(), current.create_revision)
        }
        WriteOp::Delete { key, expected } => {
            let current = check_current(history, key, *expected)?;
            (EventKind::Delete, key, current.value, current.create_revision)
        }
    };
    let tombstone = kind == EventKind::Delete;
    let stored: &[u8] = if tombstone { &[] } else { &value };
    history
        .insert(
            history_key(key.as_bytes(), rev).as_slice(),
            encode_history(create_revision, tombstone, stored).as_slice(),
        )
        .map_err(backend_err)?;
    log.insert(rev, encode_log(kind, now, key.as_bytes()).as_slice()).map_err(backend_err)?;
    Ok(Event { kind, kv: KeyValue { key: key.clone(), value: value as Bytes, create_revision, mod_revision: rev } })
}

fn check_current(
    history: &Table<&'static [u8], &'static [u8]>,
    key: &str,
    expected: Option<Revision>,
) -> Result<KeyValue, StoreError> {
    let current = latest(history, key)?.ok_or_else(|| StoreError::NotFound { key: key.to_string() })?;
    if let Some(expected) = expected
        && expected != current.mod_revision
    {
        return Err(StoreError::Conflict { key: key.to_string(), expected, current: current.mod_revision });
    }
    Ok(current)
}

/// Drops history at or below `target`, keeping the newest live version of every key.
fn compact(shared: &Shared, target: Revision) -> Result<(), StoreError> {
    let target = target.min(shared.revision.load(Ordering::Acquire));
    loop {
        let from = shared.compacted.load(Ordering::Acquire);
        if from >= target {
            return Ok(());
        }
        let upto = target.min(from.saturating_add(COMPACT_CHUNK));
        compact_chunk(shared, from, upto)?;
        shared.compacted.store(upto, Ordering::Release);
    }
}

fn compact_chunk(shared: &Shared, from: Revision, upto: Revision) -> Result<(), StoreError> {
    let mut txn = shared.db.begin_write().map_err(backend_err)?;
    txn.set_durability(Durability::Immediate).map_err(backend_err)?;
    {
        let mut log = txn.open_table(LOG).map_err(backend_err)?;
        let mut history = txn.open_table(HISTORY).map_err(backend_err)?;
        let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        for entry in log.range(from.saturating_add(1)..=upto).map_err(backend_err)? {
            let (_, v) = entry.map_err(backend_err)?;
            keys.insert(decode_log(v.value())?.key.to_vec());
        }
        for key in &keys {
            let lo = history_key(key, 0);
            let hi = history_key(key, upto);
            let mut versions: Vec<(Vec<u8>, bool)> = Vec::new();
            for entry in history.range(lo.as_slice()..=hi.as_slice()).map_err(backend_err)? {
                let (k, v) = entry.map_err(backend_err)?;
                split_history_key(k.value())?;
                versions.push((k.value().to_vec(), decode_history(v.value())?.tombstone));
            }
            let keep_last = versions.last().is_some_and(|(_, tombstone)| !tombstone);
            let drop = if keep_last { versions.len().saturating_sub(1) } else { versions.len() };
            for (k, _) in versions.iter().take(drop) {
                history.remove(k.as_slice()).map_err(backend_err)?;
            }
        }
        log.retain_in(from.saturating_add(1)..=upto, |_, _| false).map_err(backend_err)?;
        let mut meta = txn.open_table(META).map_err(backend_err)?;
        meta.insert(META_COMPACTED, upto).map_err(backend_err)?;
    }
    txn.commit().map_err(backend_err)?;
    Ok(())
}
