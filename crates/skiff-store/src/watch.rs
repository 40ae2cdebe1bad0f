//! Watch streams shared by the backends: live fan-out of committed batches plus catch-up replay.
//!
//! A backend publishes every committed batch on a broadcast channel ([`Hub`]). A watch
//! subscribes first, then replays history from its start revision (so nothing falls in between),
//! then forwards live batches, skipping what the replay already delivered. A watcher that falls
//! behind the broadcast buffer catches up from history again instead of losing events.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};

use crate::{Event, Revision, StoreError};

/// Capacity of the live broadcast, in committed batches.
const HUB_CAPACITY: usize = 4096;
/// Capacity of one watcher's queue, in batches.
const WATCHER_CAPACITY: usize = 1024;

/// Broadcasts committed batches to every watch.
#[derive(Clone)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<Vec<Event>>>,
    closed: watch::Sender<bool>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self { tx, closed: watch::channel(false).0 }
    }

    /// Publishes a committed batch (no-op without subscribers).
    pub(crate) fn publish(&self, batch: Vec<Event>) {
        if !batch.is_empty() {
            let _ = self.tx.send(Arc::new(batch));
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Event>>> {
        self.tx.subscribe()
    }

    /// Ends every watch with [`StoreError::Closed`] (the store is closing).
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A receiver that turns `true` once the store closes.
    pub(crate) fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// Reads the committed events under a prefix in `(after, ..]`, from the backend's history.
pub(crate) type Replay = Arc<dyn Fn(&str, Revision) -> Result<Vec<Event>, StoreError> + Send + Sync>;

/// A stream of committed events, in revision order, delivered in batches.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<Vec<Event>, StoreError>>,
}

impl WatchStream {
    /// A stream fed by `rx`: for stores that wrap another store and transform its events.
    pub fn from_receiver(rx: mpsc::Receiver<Result<Vec<Event>, StoreError>>) -> Self {
        Self { rx }
    }

    /// The next batch; `None` when the store closed; an error ends the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<Event>, StoreError>> {
        self.rx.recv().await
    }
}

/// Starts a watch of `prefix` from after revision `after`. `live` must have been subscribed
/// before `after` was chosen or validated, so that no commit can fall in between; history is
/// replayed first only when `needs_replay` (`after` is older than the current revision).
pub(crate) fn spawn(
    prefix: String,
    after: Revision,
    needs_replay: bool,
    mut live: broadcast::Receiver<Arc<Vec<Event>>>,
    mut closed: watch::Receiver<bool>,
    replay: Replay,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(WATCHER_CAPACITY);
    tokio::spawn(async move {
        let mut last = after;
        if needs_replay && !catch_up(&prefix, &mut last, &replay, &tx).await {
            return;
        }
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = wait_closed(&mut closed) => {
                    let _ = tx.send(Err(StoreError::Closed)).await;
                    return;
                }
            };
            match received {
                Ok(batch) => {
                    let events: Vec<Event> = batch
                        .iter()
                        .filter(|e| e.revision() > last && e.kv.key.starts_with(&prefix))
                        .cloned()
                        .collect();
                    if let Some(e) = batch.last() {
                        last = last.max(e.revision());
                    }
                    if !events.is_empty() && tx.send(Ok(events)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(prefix = %prefix, skipped = n, "watch lagged; replaying from history");
                    if !catch_up(&prefix, &mut last, &replay, &tx).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    WatchStream { rx }
}

/// Replays history after `*last`, advancing it; false when the watch must end.
async fn wait_closed(closed: &mut watch::Receiver<bool>) {
    loop {
        let is_closed = *closed.borrow_and_update();
        if is_closed || closed.changed().await.is_err() {
            return;
        }
    }
}

async fn catch_up(
    prefix: &str,
    last: &mut Revision,
    replay: &Replay,
    tx: &mpsc::Sender<Result<Vec<Event>, StoreError>>,
) -> bool {
    let replay = replay.clone();
    let (p, from) = (prefix.to_string(), *last);
    let result = tokio::task::spawn_blocking(move || replay(&p, from)).await;
    match result {
        Ok(Ok(events)) => {
            if let Some(e) = events.last() {
                *last = e.revision();
            }
            events.is_empty() || tx.send(Ok(events)).await.is_ok()
        }
        Ok(Err(e)) => {
            let _ = tx.send(Err(e)).await;
            false
        }
        Err(join) => {
            let _ = tx.send(Err(StoreError::Backend(format!("watch replay failed: {join}")))).await;
            false
        }
    }
}
