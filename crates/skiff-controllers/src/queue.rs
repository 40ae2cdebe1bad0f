//! The work queue every controller drains: client-go's rate-limited queue semantics.
//!
//! - A key is queued at most once however often it is added (`dirty`), and never handed to two
//!   workers at once (`processing`): a key added while being processed is queued again when its
//!   worker calls [`WorkQueue::done`].
//! - [`WorkQueue::add_rate_limited`] delays a retry by the larger of a per-key exponential
//!   back-off (5 ms doubling up to 1000 s) and an overall token bucket (10 per second, burst 100),
//!   upstream's `DefaultControllerRateLimiter`; [`WorkQueue::forget`] resets a key's back-off.
//! - [`run_workers`] is the reconcile loop: workers take keys, sync them, and retry failures.
//!
//! What does not live here: what a key means (each controller's `sync`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::Notify;

/// The first retry delay of a key.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay of a key.
pub const MAX_DELAY: Duration = Duration::from_secs(1000);
const BUCKET_QPS: f64 = 10.0;
const BUCKET_BURST: f64 = 100.0;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    shutdown: bool,
}

/// The combined per-key exponential and overall token-bucket rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    failures: HashMap<String, u32>,
    tokens: f64,
    last: Instant,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self { failures: HashMap::new(), tokens: BUCKET_BURST, last: Instant::now() }
    }
}

impl RateLimiter {
    /// How long to wait before retrying `key` now (and counts one more failure).
    pub fn when(&mut self, key: &str) -> Duration {
        self.when_at(key, Instant::now())
    }

    fn when_at(&mut self, key: &str, now: Instant) -> Duration {
        let n = self.failures.entry(key.to_string()).or_insert(0);
        let exp = BASE_DELAY.as_secs_f64() * 2f64.powi((*n).min(40) as i32);
        *n += 1;
        let exp = Duration::from_secs_f64(exp.min(MAX_DELAY.as_secs_f64()));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * BUCKET_QPS).min(BUCKET_BURST) - 1.0;
        let bucket =
            if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / BUCKET_QPS) };
        exp.max(bucket)
    }

    /// Forgets the failures of `key`.
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How many times `key` failed since it was last forgotten.
    pub fn requeues(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// A deduplicating, rate-limited queue of object keys (`namespace/name` or `name`).
#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    limiter: Mutex<RateLimiter>,
    notify: Notify,
}

impl WorkQueue {
    /// A new, empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.lock();
        if s.shutdown || !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(q) = me.upgrade() {
                q.add(key);
            }
        });
    }

    /// Queues `key` after its rate-limited back-off.
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let delay = self.limiter.lock().unwrap_or_else(|e| e.into_inner()).when(&key);
        self.add_after(key, delay);
    }

    /// Resets the back-off of `key` (after a successful sync).
    pub fn forget(&self, key: &str) {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner()).forget(key);
    }

    /// How many rate-limited retries `key` has had since it was last forgotten.
    pub fn requeues(&self, key: &str) -> u32 {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner()).requeues(key)
    }

    /// Waits for the next key; `None` once the queue is shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.shutdown {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; queues it again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stops handing out keys; waiting workers return.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// How many keys wait (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `workers` concurrent workers over `queue` until it shuts down: each sync that fails (or
/// panics) is retried with the key's back-off, each that succeeds resets it.
pub async fn run_workers<F, Fut, E>(name: &'static str, queue: Arc<WorkQueue>, workers: usize, sync: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    let mut set = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        set.push(async move {
            while let Some(key) = queue.get().await {
                // A panicking sync is a bug; it must not take the worker (and so the controller)
                // down with it: it is logged and retried like a failed sync.
                match std::panic::AssertUnwindSafe(sync(key.clone())).catch_unwind().await {
                    Ok(Ok(())) => queue.forget(&key),
                    Ok(Err(e)) => {
                        tracing::info!(controller = name, key = %key, error = %e, "sync failed; retrying");
                        queue.add_rate_limited(key.clone());
                    }
                    Err(_) => {
                        tracing::error!(controller = name, key = %key, "sync panicked; retrying");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    futures::future::join_all(set).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_keys_added_while_processing() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.get().await;
        assert_eq!(k.as_deref(), Some("a"));
        q.add("a");
        assert_eq!(q.len(), 1, "a key being processed is not queued twice");
        q.done("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("b"));
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.shutdown();
        assert_eq!(q.get().await, None);
    }

    #[tokio::test]
    async fn a_panicking_sync_is_retried_and_the_worker_survives() {
        let q = WorkQueue::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let worker = tokio::spawn(run_workers("test", q.clone(), 1, move |key: String| {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if key == "boom" && n == 0 {
                    panic!("bug");
                }
                Ok::<(), String>(())
            }
        }));
        q.add("boom");
        q.add("after");
        for _ in 0..200 {
            if calls.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "boom, after, boom retried");
        q.shutdown();
        assert!(worker.await.is_ok());
    }

    #[test]
    fn per_key_backoff_doubles_and_caps() {
        let mut r = RateLimiter::default();
        let now = Instant::now();
        assert_eq!(r.when_at("k", now), Duration::from_millis(5));
        assert_eq!(r.when_at("k", now), Duration::from_millis(10));
        assert_eq!(r.when_at("k", now), Duration::from_millis(20));
        assert_eq!(r.when_at("other", now), Duration::from_millis(5));
        for _ in 0..40 {
            r.when_at("k", now);
        }
        assert_eq!(r.when_at("k", now), MAX_DELAY);
        r.forget("k");
        assert_eq!(r.requeues("k"), 0);
    }

    #[test]
    fn token_bucket_limits_bursts() {
        let mut r = RateLimiter::default();
        let now = Instant::now();
        for i in 0..100 {
            r.forget("k");
            assert_eq!(r.when_at("k", now), Duration::from_millis(5), "burst item {i}");
        }
        r.forget("k");
        // The 101st immediate retry waits for a token: 100 ms at 10 per second.
        let d = r.when_at("k", now);
        assert!(d >= Duration::from_millis(99) && d <= Duration::from_millis(101), "{d:?}");
    }
}
