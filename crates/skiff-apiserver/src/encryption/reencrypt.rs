//! One re-encryption pass: every stored value of an encrypted resource that the current first key
//! did not write is written again (so with that key), page by page, a few writes at a time so the
//! store's group commit batches them and API requests keep being served in between.
//!
//! Each re-write is a compare-and-swap on the revision read: a value changed meanwhile is read
//! again and re-written only if it is still stale. The pass relies on [`EncryptedStore::swap`]
//! having returned before it starts, so nothing written after it begins uses an older key.
//!
//! What does not live here: when a pass runs and what follows it (`rotation`).

use futures::StreamExt as _;
use skiff_store::{KeyValue, RangeRequest, Store, StoreError, WriteOp};

use super::status::Progress;
use super::store::EncryptedStore;

/// Keys read per page.
const PAGE: usize = 500;
/// Re-writes in flight at once.
const CONCURRENT_WRITES: usize = 16;
/// Attempts for one key that keeps changing under the pass.
const ATTEMPTS: usize = 5;

/// Re-writes every stale value, calling `on_page` with the running counts after each page;
/// returns the final counts.
pub async fn reencrypt(store: &EncryptedStore, mut on_page: impl FnMut(Progress)) -> Result<Progress, StoreError> {
    let mut progress = Progress::default();
    let mut start_after = None;
    loop {
        let page = store
            .inner()
            .range(RangeRequest {
                prefix: "/registry/".into(),
                start_after: start_after.clone(),
                revision: None,
                limit: Some(PAGE),
            })
            .await?;
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        let transformers = store.transformers();
        let encrypted: Vec<KeyValue> =
            page.kvs.into_iter().filter(|kv| transformers.chain_for(&kv.key).is_some()).collect();
        progress.scanned += encrypted.len() as u64;
        let mut writes = futures::stream::iter(encrypted.into_iter().map(|kv| rewrite_if_stale(store, kv)))
            .buffer_unordered(CONCURRENT_WRITES);
        while let Some(done) = writes.next().await {
            if done? {
                progress.rewritten += 1;
            }
        }
        on_page(progress);
        if !page.more || start_after.is_none() {
            return Ok(progress);
        }
    }
}

/// Writes `kv` again if the current first key did not write it; whether it did.
pub(super) async fn rewrite_if_stale(store: &EncryptedStore, mut kv: KeyValue) -> Result<bool, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let transformers = store.transformers();
        let Some(chain) = transformers.chain_for(&kv.key) else { return Ok(false) };
        let plain = chain
            .from_storage(&kv.value, kv.key.as_bytes())
            .map_err(|e| StoreError::Corrupt { what: kv.key.clone(), detail: e.to_string() })?;
        if !plain.stale {
            return Ok(false);
        }
        let op = WriteOp::Update { key: kv.key.clone(), value: plain.value.into(), expected: Some(kv.mod_revision) };
        match store.write(op).await {
            Ok(_) => return Ok(true),
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(StoreError::Conflict { .. }) if attempt < ATTEMPTS => match store.inner().get(&kv.key).await? {
                Some(now) => kv = now,
                None => return Ok(false),
            },
            Err(e) => return Err(e),
        }
    }
}
