//! skiff's MVCC key-value store.
//!
//! The API server is the only client. Keys are `/registry/<group>/<resource>/[<ns>/]<name>`,
//! values the objects' JSON (without `resourceVersion`, which is the store revision and is
//! injected on read). One global revision increases by one per successful write; it is the
//! Kubernetes `resourceVersion`.
//!
//! What lives here: the [`Store`] trait every backend implements, its value and event types, and
//! the embedded [`redb`](redb_backend) backend (group commit, history, watch, compaction). What
//! does not: anything that understands the objects (that is `skiff-apiserver`).
//!
//! Guarantees every backend must give:
//! - a write is acknowledged only after it is durable (fsynced);
//! - revisions strictly increase, each successful write taking the next one;
//! - a watch from revision R delivers exactly the committed events after R, in revision order,
//!   or fails with [`StoreError::Compacted`] when R is older than the retained history.

pub mod redb_backend;
mod watch;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

pub use redb_backend::{RedbConfig, RedbStore};
pub use watch::WatchStream;

/// A store revision (= Kubernetes `resourceVersion`).
pub type Revision = u64;

/// A live key and its current value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Revision at which the key was created (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold Secrets: never print them.
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Create,
    /// The key's value was replaced.
    Update,
    /// The key was deleted.
    Delete,
}

/// One committed change.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key (and for deletes, the last value it had), with `mod_revision` = this event's
    /// revision.
    pub kv: KeyValue,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} @{}", self.kind, self.kv.key, self.kv.mod_revision)
    }
}

impl Event {
    /// The revision at which this event was committed.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A range read request.
#[derive(Debug, Clone, Default)]
pub struct RangeRequest {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Only keys strictly greater than this one (pagination); must start with `prefix`.
    pub start_after: Option<String>,
    /// Read as of this revision; `None` reads the latest.
    pub revision: Option<Revision>,
    /// At most this many keys; `None` for all.
    pub limit: Option<usize>,
}

/// The result of a range read.
#[derive(Debug, Clone, Default)]
pub struct RangeResponse {
    /// Matching live keys in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// Whether more keys matched beyond `limit`.
    pub more: bool,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` on a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update`/`delete` on a key that does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// `update`/`delete` whose expected revision is not the key's current one.
    #[error("key {key} was modified: expected revision {expected}, current {current}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current revision.
        current: Revision,
    },
    /// A read or watch at a revision older than the retained history.
    #[error("required revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// A read at a revision the store has not reached.
    #[error("required revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The store is shutting down or its writer stopped.
    #[error("store is closed")]
    Closed,
    /// Stored data could not be decoded.
    #[error("corrupt record for {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The backend failed (I/O, database error).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A write operation, applied atomically and durably.
#[derive(Clone)]
pub enum WriteOp {
    /// Create `key` if absent.
    Create {
        /// The key.
        key: String,
        /// The value.
        value: Bytes,
    },
    /// Replace `key`'s value if it exists and (when given) its revision is `expected`.
    Update {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
        /// Required current revision.
        expected: Option<Revision>,
    },
    /// Delete `key` if it exists and (when given) its revision is `expected`.
    Delete {
        /// The key.
        key: String,
        /// Required current revision.
        expected: Option<Revision>,
    },
}

impl fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteOp::Create { key, .. } => write!(f, "Create({key})"),
            WriteOp::Update { key, expected, .. } => write!(f, "Update({key}, {expected:?})"),
            WriteOp::Delete { key, expected } => write!(f, "Delete({key}, {expected:?})"),
        }
    }
}

/// The MVCC store every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest value of `key`, if live.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Live keys under a prefix, at the latest or a given revision, paginated.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError>;

    /// Applies one write; returns the resulting event (for deletes, carrying the last value).
    async fn write(&self, op: WriteOp) -> Result<Event, StoreError>;

    /// Streams the committed events under `prefix` with revision greater than `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// The latest committed revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The oldest revision still readable (everything at or below it was compacted).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;

    /// Discards history at or below `revision` (the latest value of every key is kept).
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// Stops accepting writes, finishes those in flight, and flushes.
    async fn close(&self);
}

/// Convenience constructors over [`Store::write`].
#[async_trait]
pub trait StoreExt: Store {
    /// Creates `key` if absent.
    async fn create(&self, key: &str, value: Bytes) -> Result<Event, StoreError> {
        self.write(WriteOp::Create { key: key.to_string(), value }).await
    }

    /// Replaces `key` if its revision is `expected` (or unconditionally).
    async fn update(&self, key: &str, value: Bytes, expected: Option<Revision>) -> Result<Event, StoreError> {
        self.write(WriteOp::Update { key: key.to_string(), value, expected }).await
    }

    /// Deletes `key` if its revision is `expected` (or unconditionally).
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Event, StoreError> {
        self.write(WriteOp::Delete { key: key.to_string(), expected }).await
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// The smallest string greater than every string starting with `prefix` (for range ends).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}
