//! [`EncryptedStore`]: a [`Store`] that encrypts the values of configured resources on their way
//! in and decrypts them on their way out (gets, ranges, write results and watch events), so
//! that everything above it — handlers, the watch caches, the allocator — sees plain JSON and the
//! backend never holds it.
//!
//! The chains can be replaced while the server runs ([`EncryptedStore::swap`]): a swap waits
//! for the writes already encrypting with the old chains, so once it returns every new write
//! uses the new first key — what re-encryption after a key rotation relies on.
//!
//! What does not live here: the ciphers (`providers`), the file (`config`) and deciding when to
//! swap (`rotation`).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use skiff_store::{Event, KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, WatchStream, WriteOp};
use tokio::sync::mpsc;

use super::config::Transformers;

/// Batches a transformed watch may hold before it waits for its reader.
const WATCH_CAPACITY: usize = 1024;

/// A store whose configured resources are encrypted at rest.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    /// The chains in use; read as a snapshot by every operation (shared with watch tasks).
    current: Arc<RwLock<Arc<Transformers>>>,
    /// Held shared by each write from its encryption to its commit, exclusively by a swap.
    writes: tokio::sync::RwLock<()>,
}

impl EncryptedStore {
    /// Wraps `inner` with the chains of `transformers`.
    pub fn new(inner: Arc<dyn Store>, transformers: Transformers) -> Self {
        Self { inner, current: Arc::new(RwLock::new(Arc::new(transformers))), writes: tokio::sync::RwLock::new(()) }
    }

    /// The wrapped store (raw, encrypted values).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// The chains in use now.
    pub fn transformers(&self) -> Arc<Transformers> {
        snapshot(&self.current)
    }

    /// Replaces the chains. Returns once no write encrypted with the previous ones is still in
    /// flight, so every write committed afterwards used `transformers`.
    pub async fn swap(&self, transformers: Transformers) {
        let _no_writes = self.writes.write().await;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(transformers);
    }
}

/// The chains in `current` now.
fn snapshot(current: &RwLock<Arc<Transformers>>) -> Arc<Transformers> {
    current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// The plain value of `kv`, decrypted if its resource is configured.
fn decrypt(transformers: &Transformers, mut kv: KeyValue) -> Result<KeyValue, StoreError> {
    if let Some(chain) = transformers.chain_for(&kv.key) {
        let plain = chain
            .from_storage(&kv.value, kv.key.as_bytes())
            .map_err(|e| StoreError::Corrupt { what: kv.key.clone(), detail: e.to_string() })?;
        kv.value = Bytes::from(plain.value);
    }
    Ok(kv)
}

/// The stored form of `value` under `key`.
fn encrypt(transformers: &Transformers, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
    match transformers.chain_for(key) {
        Some(chain) => chain
            .to_storage(&value, key.as_bytes())
            .map(Bytes::from)
            .map_err(|e| StoreError::Backend(format!("{key}: {e}"))),
        None => Ok(value),
    }
}

#[async_trait]
impl Store for EncryptedStore {
    // Reads take their snapshot after reading: a value written with a new key exists only once
    // the chains holding that key are in place.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let kv = self.inner.get(key).await?;
        kv.map(|kv| decrypt(&self.transformers(), kv)).transpose()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let mut resp = self.inner.range(req).await?;
        let t = self.transformers();
        resp.kvs = std::mem::take(&mut resp.kvs).into_iter().map(|kv| decrypt(&t, kv)).collect::<Result<_, _>>()?;
        Ok(resp)
    }

    async fn write(&self, op: WriteOp) -> Result<Event, StoreError> {
        let _in_flight = self.writes.read().await;
        let t = &self.transformers();
        let (op, plain) = match op {
            WriteOp::Create { key, value } => {
                let stored = encrypt(t, &key, value.clone())?;
                (WriteOp::Create { key, value: stored }, Some(value))
            }
            WriteOp::Update { key, value, expected } => {
                let stored = encrypt(t, &key, value.clone())?;
                (WriteOp::Update { key, value: stored, expected }, Some(value))
            }
            op @ WriteOp::Delete { .. } => (op, None),
        };
        let mut event = self.inner.write(op).await?;
        match plain {
            Some(value) => event.kv.value = value,
            None => event.kv = decrypt(t, event.kv)?,
        }
        Ok(event)
    }

    // Each batch is decrypted with the chains in use when it arrives, so a swap is followed.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let mut inner = self.inner.watch(prefix, after).await?;
        let current = self.current.clone();
        let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
        tokio::spawn(async move {
            while let Some(batch) = inner.next().await {
                let transformers = snapshot(&current);
                let batch = batch.and_then(|events| {
                    events
                        .into_iter()
                        .map(|mut e| {
                            e.kv = decrypt(&transformers, e.kv)?;
                            Ok(e)
                        })
                        .collect::<Result<Vec<_>, _>>()
                });
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(WatchStream::from_receiver(rx))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.inner.compacted_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
